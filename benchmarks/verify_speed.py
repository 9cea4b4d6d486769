"""Time `evidence verify` against `warcio check` and `sha256sum` on the same package.

    python benchmarks/verify_speed.py [--size-mib 320]

Builds one package whose WARC holds SIZE MiB of uncompressed data (captured
from a local server), then runs, in the same process run:
`evidence verify` (every member, CRC, digest, signature and file hash),
`warcio check` (record digests only) and `sha256sum` (file hash only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, serve_bytes, table

import evidence
from evidence.keys import generate_keypair, public_key_pem


def build(tmp: str, size_mib: int) -> tuple[Path, Path]:
    key = generate_keypair()
    pub = Path(tmp) / "signer.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    server, url = serve_bytes(size_mib * 1024 * 1024)
    options = evidence.CaptureOptions(max_response_bytes=size_mib * 1024 * 1024 + 1, deadline=3600)
    result = evidence.capture(url, out=Path(tmp) / "out", options=options, sign_with=[key])
    server.shutdown()
    return Path(result.path), pub


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        pkg, pub = build(tmp, args.size_mib)
        warc = pkg / "data" / "capture.warc.gz"
        commands = {
            "evidence verify": [str(bindir / "evidence"), "verify", str(pkg), "--trust", str(pub)],
            "warcio check": [str(bindir / "warcio"), "check", str(warc)],
            "sha256sum": ["sha256sum", str(warc)],
        }
        rows = []
        for name, cmd in commands.items():
            if not shutil.which(cmd[0]):
                continue
            best = min((run(cmd) for _ in range(args.repeat)), key=lambda r: r[0])
            rows.append((name, *best))
        size = warc.stat().st_size / 1024 / 1024
        print(
            f"Package: {args.size_mib} MiB uncompressed, WARC file {size:.0f} MiB; "
            f"best of {args.repeat}"
        )
        print(table(rows, "warcio check"))
    return 0 if rows[0][3] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

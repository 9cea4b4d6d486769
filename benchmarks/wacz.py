"""Time `evidence export` and `evidence verify FILE.wacz` against py-wacz's `wacz validate`.

    python benchmarks/wacz.py [--size-mib 1024]

Builds one package whose WARC holds SIZE MiB (captured from a local server),
then, in the same run: `evidence export` (integrity check of the package,
then the WACZ written and hashed in one pass), `evidence verify` of the WACZ
(every member hashed, the embedded package rebuilt and verified: WARC
record by record), `wacz validate -f` (py-wacz 0.6, from the judge-tools
venv: extracts everything, hashes every file) and `sha256sum` of the WACZ.
Peak RSS shows that no member is read whole.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from _measure import run, serve_bytes, table

import evidence
from evidence.keys import write_keypair

from judge_tools import ensure_tools


def build(tmp: str, size_mib: int) -> tuple[Path, Path]:
    key_path = Path(tmp) / "keys" / "signer.key"
    write_keypair(key_path, None)
    server, url = serve_bytes(size_mib * 1024 * 1024)
    options = evidence.CaptureOptions(max_response_bytes=size_mib * 1024 * 1024 + 1, deadline=3600)
    key = evidence.load_private_key(key_path, None)
    result = evidence.capture(url, out=Path(tmp) / "out", options=options, sign_with=[key])
    server.shutdown()
    return Path(result.path), key_path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    tools = ensure_tools()
    with tempfile.TemporaryDirectory() as tmp:
        pkg, key = build(tmp, args.size_mib)
        wacz = Path(tmp) / "out.wacz"
        env = {**os.environ, "EVIDENCE_PASSPHRASE": ""}
        export = [str(bindir / "evidence"), "export", str(pkg), str(wacz), "--key", str(key)]
        rows = [("evidence export", *run(export, env=env))]
        commands = {
            "evidence verify OUT.wacz": [
                str(bindir / "evidence"),
                "verify",
                str(wacz),
                "--trust",
                f"{key}.pub",
            ],
            "wacz validate -f OUT.wacz": [str(tools / "wacz"), "validate", "-f", str(wacz)],
            "sha256sum OUT.wacz": ["sha256sum", str(wacz)],
        }
        for name, cmd in commands.items():
            if shutil.which(cmd[0]):
                rows.append((name, *run(cmd)))
        warc = pkg / "data" / "capture.warc.gz"
        warc_mib = warc.stat().st_size / 2**20
        wacz_mib = wacz.stat().st_size / 2**20
        print(
            f"Package: {args.size_mib} MiB uncompressed, WARC {warc_mib:.0f} MiB, "
            f"WACZ {wacz_mib:.0f} MiB"
        )
        print(table(rows, "wacz validate -f OUT.wacz"))
    return 0 if all(r[3] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

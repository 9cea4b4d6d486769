"""Verify at scale: a 1 GiB package and a package of 100,000 small records.

    python benchmarks/verify_scale.py [--size-mib 1024] [--records 100000] [--repeat 2]

Each package is verified by `evidence verify`, `warcio check` and `sha256sum`
in the same run; the table gives time, peak memory and the ratio to warcio.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, serve_bytes, table
from _synthetic import many_records

import evidence


def measure(pkg: Path, repeat: int) -> list[tuple[str, float, float, int]]:
    bindir = Path(sys.executable).parent
    warc = pkg / "data" / "capture.warc.gz"
    commands = {
        "evidence verify": [str(bindir / "evidence"), "verify", str(pkg)],
        "warcio check": [str(bindir / "warcio"), "check", str(warc)],
        "sha256sum": ["sha256sum", str(warc)],
    }
    rows = []
    for name, cmd in commands.items():
        if shutil.which(cmd[0]):
            rows.append((name, *min((run(cmd) for _ in range(repeat)), key=lambda r: r[0])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.size_mib:
            server, url = serve_bytes(args.size_mib * 1024 * 1024)
            opts = evidence.CaptureOptions(
                max_response_bytes=args.size_mib * 2**20 + 1, deadline=3600, requisites=False
            )
            pkg = Path(evidence.capture(url, out=Path(tmp) / "big", options=opts).path)
            server.shutdown()
            size = (pkg / "data/capture.warc.gz").stat().st_size / 2**20
            print(f"\n{args.size_mib} MiB response (WARC {size:.0f} MiB), best of {args.repeat}")
            print(table(measure(pkg, args.repeat), "warcio check"))
            shutil.rmtree(pkg)
        if args.records:
            pkg = many_records(Path(tmp) / "many", args.records)
            size = (pkg / "data/capture.warc.gz").stat().st_size / 2**20
            print(f"\n{args.records} small records (WARC {size:.0f} MiB), best of {args.repeat}")
            print(table(measure(pkg, args.repeat), "warcio check"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory and time of capturing one huge response, against wget --warc-file.

    python benchmarks/capture_memory.py [--size-mib 1024]

The body is streamed from a local server; `evidence capture` spools it to disk
while hashing, so its peak memory must not grow with the response size
(target: under 100 MiB for 1 GiB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, serve_bytes, table


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    total = args.size_mib * 1024 * 1024
    server, url = serve_bytes(total)
    evidence = str(Path(sys.executable).parent / "evidence")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        secs, mib, code = run(
            [
                evidence,
                "capture",
                url,
                "--out",
                f"{tmp}/ev",
                "--max-response-bytes",
                str(total + 1),
                "--deadline",
                "3600",
            ]
        )
        rows.append(("evidence capture", secs, mib, code))
        shutil.rmtree(f"{tmp}/ev", ignore_errors=True)
        if shutil.which("wget"):
            secs, mib, code = run(
                ["wget", "-q", "--warc-file", f"{tmp}/wget", "-O", f"{tmp}/body", url], cwd=tmp
            )
            rows.append(("wget --warc-file", secs, mib, code))
    server.shutdown()
    print(f"One {args.size_mib} MiB response from 127.0.0.1")
    print(table(rows, "evidence capture"))
    peak = rows[0][2]
    print(
        f"\nevidence capture peak memory: {peak:.1f} MiB (target < 100 MiB): "
        f"{'OK' if peak < 100 else 'OVER'}"
    )
    return 0 if rows[0][3] == 0 and peak < 100 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Start-up time of `evidence --help` (imports must be lazy), vs bare Python and warcio.

python benchmarks/startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, table


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "evidence --help": [str(bindir / "evidence"), "--help"],
        "evidence capture --help": [str(bindir / "evidence"), "capture", "--help"],
        "warcio --help": [str(bindir / "warcio"), "--help"],
    }
    rows = [
        (name, *min((run(cmd) for _ in range(args.repeat)), key=lambda r: r[0]))
        for name, cmd in commands.items()
    ]
    print(f"Start-up, best of {args.repeat}")
    print(table(rows, "python -c pass"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

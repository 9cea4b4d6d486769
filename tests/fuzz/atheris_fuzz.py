"""Coverage-guided fuzzing with atheris, for runs longer than CI's.

    pip install atheris
    python tests/fuzz/atheris_fuzz.py warc -max_total_time=3600

TARGET is one of the names in targets.TARGETS. Findings are written as
crash-* files in the current directory; reproduce one with
`python tests/fuzz/atheris_fuzz.py TARGET crash-...`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import atheris

with atheris.instrument_imports():
    from targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: atheris_fuzz.py TARGET [libFuzzer options]; TARGET in {sorted(TARGETS)}")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

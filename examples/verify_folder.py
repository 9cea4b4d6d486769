"""Verify every package in a folder and print one line per package (for a legal team).

    python examples/verify_folder.py ARCHIVE_DIR --trust KEY.pub [--trust DIR ...]

Exit code: 0 when every package is VERIFIED, else 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import evidence
from evidence.display import safe
from evidence.keys import Keyring
from evidence.package import is_package


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--trust", action="append", default=[])
    args = parser.parse_args()
    try:
        keyring = Keyring.from_paths(args.trust)
    except evidence.KeyFileError as exc:
        print(f"error: {safe(str(exc))}", file=sys.stderr)
        return 2
    packages = sorted(p for p in Path(args.folder).iterdir() if p.is_dir() and is_package(p))
    if not packages:
        print(f"no packages in {args.folder}", file=sys.stderr)
        return 1
    all_ok = True
    for package in packages:
        report = evidence.verify(package, trust=keyring)
        all_ok &= report.ok
        print(f"{report.outcome.value:17} {safe(package.name)}")  # a name can hold escapes
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

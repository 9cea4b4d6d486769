"""What is shown cannot be forged (issue 10): a correctly signed package full of
escape sequences, bidi overrides and forged report lines, shown by every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ASSET = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "hostile-strings"
RAW = ("\x1b", "\u202e", "\u2066", "\x07")


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", str(ASSET)],
        ["verify", str(ASSET), "--json"],
        ["show", str(ASSET)],
        ["show", str(ASSET), "--json"],
        ["custody", "show", str(ASSET)],
        ["custody", "show", str(ASSET), "--json"],
    ],
)
def test_every_command_shows_hostile_text_visibly(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", *argv], capture_output=True, text=True
    )
    assert proc.returncode in (0, 3), proc.stderr
    for raw in RAW:
        assert raw not in proc.stdout and raw not in proc.stderr, (argv, repr(raw))
    # A forged "PASS" never starts a line of its own.
    lines = proc.stdout.splitlines()
    assert not any(line.strip().startswith("PASS  Signature by key trusted") for line in lines)
    if "--json" not in argv:
        # The hostile values are there, visibly marked, not dropped.
        assert "\\x1b" in proc.stdout or "⟪U+202E⟫" in proc.stdout

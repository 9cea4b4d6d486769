"""SIGKILL a ledger append at each step: the previous state stays valid, the next append works.

The child process installs a hook (``evidence.ledger.store._fault_hook``) that
stops it at one named point of the append; the test then kills it with
SIGKILL. Nothing in the library sleeps or reads the environment for this.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evidence.keys import generate_keypair
from evidence.ledger import LeafEntry, Ledger, init_ledger, make_checkpoint, verify_ledger

WHEN = "2026-12-01T10:00:00.000000Z"

CHILD = textwrap.dedent(
    """
    import sys, time
    import evidence.ledger.store as store
    from evidence.ledger import LeafEntry, Ledger

    archive, point, package_id = sys.argv[1:4]

    def pause(name):
        if name == point:
            sys.stderr.write("paused at " + name + "\\n")
            sys.stderr.flush()
            time.sleep(600)

    store._fault_hook = pause
    Ledger.open(archive).append(LeafEntry(package_id, "ab" * 32, "2026-12-01T10:00:00.000000Z"))
    sys.stderr.write("finished\\n")
    """
)


def entry(i: int) -> LeafEntry:
    return LeafEntry(
        f"20261201T100000Z-example.org-{i:08x}", hashlib.sha256(b"%d" % i).hexdigest(), WHEN
    )


def kill_at(archive: Path, point: str, package_id: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(archive), point, package_id],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert line == f"paused at {point}\n", line + proc.stderr.read()
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize(
    ("size", "point"),
    [
        (7, "leaf-written"),
        (7, "index-written"),
        (7, "hashes-partial"),
        (8, "hashes-partial"),
        (7, "hashes-written"),
    ],
)
def test_sigkill_during_append_leaves_a_valid_ledger(tmp_path, size, point):
    archive = tmp_path / "archive"
    ledger = init_ledger(archive, origin="example.org/log")
    for i in range(size):
        ledger.append(entry(i))
    key = generate_keypair()
    make_checkpoint(archive, key)
    root = ledger.root()

    kill_at(archive, point, "20261201T100000Z-example.org-killed00")

    after = Ledger.open(archive)
    if point == "hashes-written":  # the append had completed
        assert after.size == size + 1 and after.notes == []
        assert after.root(size) == root
    else:
        assert after.size == size and after.root() == root
        assert after.notes and "torn tail" in after.notes[0]
    report = verify_ledger(archive, ledger_keys=[key.public_key()])
    for name in ("ledger-storage", "checkpoint-trees", "checkpoint-signatures"):
        assert report.check(name).status.value == "PASS", report.to_text()
    # The next append cuts the torn tail and works; so does the next checkpoint.
    index = after.append(entry(100))
    assert index == after.size - 1
    assert Ledger.open(archive).leaf(index) == entry(100)
    make_checkpoint(archive, key)
    report = verify_ledger(archive, ledger_keys=[key.public_key()])
    assert report.check("ledger-storage").status.value == "PASS", report.to_text()
    assert report.check("checkpoint-consistency").status.value == "PASS", report.to_text()

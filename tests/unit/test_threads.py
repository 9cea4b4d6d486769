"""The per-process thread pools (evidence.threads) across a fork."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import time

import pytest

from evidence import threads
from evidence.warc import WARCWriter

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _write_big_record() -> None:
    """A level-0 record big enough for its digest to go to the hash thread."""
    block = os.urandom(2 * 1024 * 1024)
    out = io.BytesIO()
    w = WARCWriter(out)
    info = w.write_record(
        record_type="resource",
        date="2026-01-01T00:00:00Z",
        content_type="application/octet-stream",
        block=io.BytesIO(block),
        block_length=len(block),
        block_sha256=hashlib.sha256(block).digest(),
        level=0,
    )
    assert info.sha256 == hashlib.sha256(out.getvalue()).hexdigest()


def _child_status(child: int, limit: float = 10.0) -> int | None:
    """The child's exit code, or None (after killing it) when it hung."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(child, 9)
    os.waitpid(child, 0)
    return None


def _fork_and_write() -> int | None:
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            _write_big_record()
            code = 0
        finally:
            sys.stdout.flush()
            os._exit(code)
    return _child_status(child)


def test_a_forked_child_gets_its_own_hash_thread():
    _write_big_record()  # the parent's pool exists and has a thread
    assert _fork_and_write() == 0


def test_a_fork_while_another_thread_takes_a_pool_does_not_hang_the_child():
    """A thread of the parent was inside process_pool (holding its lock) at
    the fork: the child's copy of that lock stays held forever unless it is
    made again in the child."""
    inside = threading.Event()
    leave = threading.Event()

    def holder() -> None:
        with threads._lock:
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert inside.wait(10)
        status = _fork_and_write()
    finally:
        leave.set()
        t.join()
    assert status == 0, "the child hung on the pool lock" if status is None else status

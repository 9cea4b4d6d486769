"""SIGKILL a capture at many points: what remains is a verified package or an obvious temp dir."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evidence.attach import sign_package
from evidence.errors import PackageError
from evidence.keys import generate_keypair
from evidence.package import is_package
from evidence.verifying import Outcome, verify

EVIDENCE = [sys.executable, "-m", "evidence.cli"]

# The child installs a fault hook (only a test can: no environment variable
# makes the library stop) that announces the point and sleeps, then runs the CLI.
PAUSING_CHILD = """
import sys, time
from evidence import package
from evidence.cli import main

point = sys.argv[1]


def hook(name):
    if name == point:
        sys.stderr.write(f"evidence: paused at fault point {name}\\n")
        sys.stderr.flush()
        time.sleep(3600)


package.set_fault_hook(hook)
sys.exit(main(sys.argv[2:]))
"""


def pausing(point: str, *args: str) -> subprocess.Popen[str]:
    """A capture child that stops at fault point ``point``; wait for its announcement."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSING_CHILD, point, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert f"fault point {point}" in line, line
    return proc


def drip_page(conn, _request):
    """A page whose body takes about two seconds to arrive."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n")
    for _ in range(40):
        conn.sendall(b"x")
        time.sleep(0.05)


def check_remains(out: Path) -> str:
    """Everything in ``out`` is a package that verifies or a temp dir no command accepts."""
    kinds = []
    for entry in sorted(out.iterdir()) if out.exists() else []:
        if entry.name.startswith("."):
            assert entry.name.startswith(".incomplete-")
            assert not is_package(entry)
            for cmd in (
                ["verify"],
                ["show"],
                ["custody"],
                ["timestamp", "--tsa", "http://127.0.0.1:9/"],
            ):
                proc = subprocess.run(
                    [*EVIDENCE, cmd[0], str(entry), *cmd[1:]], capture_output=True, text=True
                )
                assert proc.returncode == 2, (cmd, proc.stdout, proc.stderr)
                assert "never a package" in proc.stderr + proc.stdout
            with pytest.raises(PackageError, match="never a package"):
                sign_package(entry, generate_keypair())
            kinds.append("temporary")
        else:
            assert is_package(entry)
            assert verify(entry, trust=[]).outcome is Outcome.UNTRUSTED
            kinds.append("package")
    return ",".join(kinds) or "nothing"


def next_capture_works(url: str, out: Path) -> None:
    proc = subprocess.run(
        [*EVIDENCE, "capture", url, "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert verify(proc.stdout.strip(), trust=[]).outcome is Outcome.UNTRUSTED


@pytest.mark.parametrize(
    ("point", "expect"),
    [
        ("warc-started", "temporary"),
        ("before-tag-files", "temporary"),
        ("before-rename", "temporary"),
        ("after-rename", "package"),
    ],
)
def test_kill_at_fault_points(raw_server, tmp_path, point, expect):
    server = raw_server(
        lambda conn, req: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    out = tmp_path / "out"
    with pausing(point, "capture", server.url(), "--out", str(out)) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert check_remains(out) == expect
    next_capture_works(server.url(), out)


def test_kill_mid_body_at_random_moments(raw_server, tmp_path):
    server = raw_server(drip_page)
    out = tmp_path / "out"
    rng = random.Random(1234)
    seen = set()
    for delay in [0.05, 0.3, 0.8, 1.2, 1.7] + [rng.uniform(0.0, 2.6) for _ in range(3)]:
        proc = subprocess.Popen(
            [*EVIDENCE, "capture", server.url(), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.update(check_remains(out).split(","))
    assert "temporary" in seen  # killed while the body was still arriving
    next_capture_works(server.url(), out)


def ok_server(raw_server):
    return raw_server(
        lambda conn, req: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )


def temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".incomplete-"))


def test_the_environment_cannot_make_a_capture_pause(raw_server, tmp_path):
    """The old EVIDENCE_FAULT_PAUSE variable made the library sleep for an hour."""
    server = ok_server(raw_server)
    env = {**os.environ, "EVIDENCE_FAULT_PAUSE": "warc-started"}
    proc = subprocess.run(
        [*EVIDENCE, "capture", server.url(), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fault point" not in proc.stderr


def test_sigterm_during_a_capture_leaves_nothing(raw_server, tmp_path):
    server = ok_server(raw_server)
    out = tmp_path / "out"
    with pausing("warc-started", "capture", server.url(), "--out", str(out)) as proc:
        assert len(temporaries(out)) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        assert "interrupted" in proc.stderr.read()
    assert list(out.iterdir()) == []


def test_stale_temporaries_of_killed_captures_are_removed_and_reported(raw_server, tmp_path):
    server = ok_server(raw_server)
    out = tmp_path / "out"
    with pausing("before-rename", "capture", server.url(), "--out", str(out)) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    stale = temporaries(out)
    assert len(stale) == 1
    proc = subprocess.run(
        [*EVIDENCE, "capture", server.url(), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 unfinished package directory" in proc.stderr
    assert all(name in proc.stderr for name in stale)
    assert temporaries(out) == []
    assert [p.name for p in out.iterdir()] == [Path(proc.stdout.strip()).name]


def test_a_live_capture_is_never_removed(raw_server, tmp_path):
    """Two processes: the second capture must leave the first one's directory alone."""
    server = ok_server(raw_server)
    out = tmp_path / "out"
    with pausing("before-rename", "capture", server.url(), "--out", str(out)) as first:
        try:
            live = temporaries(out)
            assert len(live) == 1 and (out / live[0] / ".lock").is_file()
            second = subprocess.run(
                [*EVIDENCE, "capture", server.url(), "--out", str(out)],
                capture_output=True,
                text=True,
            )
            assert second.returncode == 0, second.stderr
            assert "removed" not in second.stderr
            assert temporaries(out) == live
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()


def test_an_old_temporary_without_a_lock_is_removed_a_new_one_kept(raw_server, tmp_path):
    """Directories from before locks existed: removed once old, never while fresh."""
    server = ok_server(raw_server)
    out = tmp_path / "out"
    old = out / ".incomplete-20260101T000000Z-old-00000000"
    fresh = out / ".incomplete-20260101T000000Z-fresh-00000000"
    for d in (old, fresh):
        (d / "data").mkdir(parents=True)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    proc = subprocess.run(
        [*EVIDENCE, "capture", server.url(), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert old.name in proc.stderr and fresh.name not in proc.stderr
    assert temporaries(out) == [fresh.name]


# --- the lock, in-process ------------------------------------------------------


def test_a_live_writer_in_this_process_is_never_removed(tmp_path):
    from evidence.package import PackageWriter, remove_stale_temporaries

    with PackageWriter(tmp_path, "live-id") as writer:
        assert remove_stale_temporaries(tmp_path) == []
        assert writer.tmp.is_dir()
        other = PackageWriter(tmp_path, "other-id")
        assert other.removed_stale == [] and writer.tmp.is_dir()
        other.abort()
    assert list(tmp_path.iterdir()) == []  # left without finish(): removed


def test_stale_detection_is_careful(tmp_path):
    from evidence.package import remove_stale_temporaries

    dead = tmp_path / ".incomplete-dead"
    dead.mkdir()
    (dead / ".lock").write_text("pid 1\n")  # a lock file nobody holds
    linked = tmp_path / ".incomplete-linked"
    linked.mkdir()
    os.symlink("/dev/null", linked / ".lock")  # odd: left alone
    fifo = tmp_path / ".incomplete-fifo"
    fifo.mkdir()
    os.mkfifo(fifo / ".lock")  # never opened for reading in a way that hangs
    (tmp_path / ".incomplete-file").write_text("not a directory")
    os.symlink(dead, tmp_path / ".incomplete-symlink")
    (tmp_path / "package-dir").mkdir()
    assert remove_stale_temporaries(tmp_path) == [".incomplete-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".incomplete-fifo",
        ".incomplete-file",
        ".incomplete-linked",
        ".incomplete-symlink",
        "package-dir",
    ]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_the_lock_file_never_ends_up_in_a_package(sealed_package):
    assert not (sealed_package / ".lock").exists()
    assert not any(p.name.startswith(".lock") for p in sealed_package.rglob("*"))


def test_sigterm_mid_body_leaves_nothing(raw_server, tmp_path):
    server = raw_server(drip_page)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*EVIDENCE, "capture", server.url(), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (out.exists() and temporaries(out)):
        time.sleep(0.05)
    time.sleep(0.3)  # the body is arriving now
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


class _Killed(BaseException):
    """Stands for kill -9 at a fault point: nothing below the hook runs on."""


def test_a_batch_attempt_stopped_between_its_staged_rename_and_the_claim_is_repeated_once(
    raw_server, tmp_path
):
    """In a batch the fsync that makes the staged rename durable waits for the
    claim's (package.deferred_out_dir_sync). Stopped right after that rename
    (batch workers are processes of their own, so the hook stops this one): a
    complete package sits in staging with no claim naming it. The same attempt
    run again captures the URL again, places one package, and leaves nothing
    of the first in staging; the deferred directory is no longer pending."""
    from evidence import package
    from evidence.batch import _claim_path, capture_one, find_packages, task_id_for

    server = raw_server(
        lambda conn, req: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    task = task_id_for("run", server.url(), 1)

    def hook(name: str) -> None:
        if name == "after-rename":
            raise _Killed

    previous = package.set_fault_hook(hook)
    try:
        with pytest.raises(_Killed):
            capture_one(server.url(), out=tmp_path, task_id=task)
    finally:
        package.set_fault_hook(previous)
    assert package._deferred_syncs.get() is None, "the ContextVar does not outlive the attempt"
    incoming = tmp_path / ".evidence-batch" / "incoming"
    assert len(list(incoming.glob("*/*/[!.]*"))) == 1, "the staged package, unclaimed"
    assert not _claim_path(tmp_path, task).exists()
    assert find_packages(tmp_path) == []
    again = capture_one(server.url(), out=tmp_path, task_id=task)
    assert again.status == "captured"
    assert find_packages(tmp_path) == [Path(again.package)]
    assert verify(again.package, trust=[]).outcome is Outcome.UNTRUSTED
    assert len(server.requests) == 2
    assert not incoming.exists() or not list(incoming.iterdir())

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
    env = {**os.environ, "EVIDENCE_FAULT_PAUSE": point}
    with subprocess.Popen(
        [*EVIDENCE, "capture", server.url(), "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"fault point {point}" in line
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

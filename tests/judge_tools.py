"""The judges' tools (pywb; py-wacz for `wacz validate`) in their own cached virtual environment.

pywb pins pyOpenSSL<26.2, which would downgrade the cryptography of the
project's environment; the tests must run against the cryptography a normal
``pip install`` gives. So the tools live in a separate venv, made once under
``~/.cache/evidence-test-tools/venv-<hash of the requirements>`` (or
``$EVIDENCE_TEST_TOOLS``) and reused. ``.ci/run`` makes it before the tests:
``python tests/judge_tools.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import typing
import urllib.request
from pathlib import Path

REQUIREMENTS = "pywb>=2.8.3\nwacz>=0.6.0\n"


class ToolsUnavailable(Exception):
    """The tools venv could not be made; the message says why."""


@contextlib.contextmanager
def wayback(tools: Path, root: Path) -> typing.Iterator[int]:
    """pywb's ``wayback`` serving the collections under ``root`` on a free port of
    127.0.0.1; yields the port once it answers, and stops it afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [str(tools / "wayback"), "--bind", "127.0.0.1", "-p", str(port)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tools_venv() -> Path:
    """The venv directory for :data:`REQUIREMENTS` with this Python version."""
    key = f"{sys.version_info[:3]}\n{REQUIREMENTS}".encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    base = Path(
        os.environ.get("EVIDENCE_TEST_TOOLS") or Path.home() / ".cache" / "evidence-test-tools"
    )
    return base / f"venv-{digest}"


def ensure_tools(timeout: float = 1800) -> Path:
    """The ``bin`` directory of the tools venv, made first if needed.

    Raises:
        ToolsUnavailable: venv creation or ``pip install`` failed (with its output).
    """
    venv = tools_venv()
    marker = venv / ".complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time; others wait, then reuse
        if not marker.is_file():
            shutil.rmtree(venv, ignore_errors=True)
            python = venv / "bin" / "python"
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS.split()],
            ]
            for step in steps:
                try:
                    proc = subprocess.run(step, capture_output=True, text=True, timeout=timeout)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise ToolsUnavailable(f"{' '.join(step)}: {exc}") from exc
                if proc.returncode != 0:
                    raise ToolsUnavailable(
                        f"{' '.join(step)} exited {proc.returncode}: "
                        f"{(proc.stdout + proc.stderr)[-3000:]}"
                    )
            marker.write_text(REQUIREMENTS)
    return venv / "bin"


if __name__ == "__main__":
    print(ensure_tools())

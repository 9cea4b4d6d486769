"""Shared by the browser tests (and others): each test's own Chromium processes,
found again, and the package's WARC records read without our own reader."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

_MARK = "EVIDENCE_TEST_BROWSER"


def have_chromium() -> bool:
    """Playwright's driver is installed and a Chromium is found (.ci/run installs both)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    from evidence.capturing.browser import have_chromium as found

    return found()


@pytest.fixture(autouse=True)
def own_browsers(tmp_path_factory, monkeypatch):
    """Marks the browsers this test starts and gives them a temporary directory of
    their own, so that leftovers found are this test's, never those of another
    run on the same machine; no Playwright profile may be left in it."""
    monkeypatch.setenv(_MARK, os.urandom(8).hex())
    tmp = tmp_path_factory.mktemp("browser-tmp")
    monkeypatch.setenv("TMPDIR", str(tmp))  # where Playwright makes its profiles
    yield
    assert [n for n in os.listdir(tmp) if n.startswith("playwright_chromiumdev_profile-")] == []


def leftover_browsers() -> list[int]:
    """Pids of this test's browser processes still running (they carry a marker
    flag, and this test's mark in their environment)."""
    mark = f"{_MARK}={os.environ[_MARK]}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if b"--evidence-capture=" not in cmdline:
                    continue
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark in environ:
                found.append(int(entry))
    return found


def records(package: Path) -> list[tuple[dict[str, str], bytes]]:
    """(headers, block) per record of a package's WARC, read with zlib and plain
    parsing, not our reader."""
    return parse_records((package / "data" / "capture.warc.gz").read_bytes())


def parse_records(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """(headers, block) per record of WARC bytes, one gzip member each."""
    out = []
    while data:
        d = zlib.decompressobj(31)
        text = d.decompress(data)
        data = d.unused_data
        head, _, rest = text.partition(b"\r\n\r\n")
        lines = head.decode("utf-8").split("\r\n")
        assert lines[0] == "WARC/1.1"
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers["Content-Length"])
        assert rest[length:] == b"\r\n\r\n", "one record per gzip member, then CRLF CRLF"
        out.append((headers, rest[:length]))
    return out

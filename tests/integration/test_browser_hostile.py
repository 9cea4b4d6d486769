"""Hostile pages end within the deadline and memory bounds, with nothing left behind.

Real Chromium through the recording proxy against raw local servers: a page
that requests forever, one that allocates memory without end (JavaScript
arrays; typed arrays beyond the browser memory cap), one that never reaches
network idle (a long-poll that never answers and an EventSource that never
ends), and ``evidence capture --browser`` stopped by SIGTERM or Ctrl-C. Each
asserts the wall time, that what arrived is kept and marked, and that no
process of the capture is left.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from evidence.capturing import BrowserOptions, CaptureOptions, capture
from evidence.manifest import Manifest
from evidence.verifying import Outcome, verify

from browsers import have_chromium, leftover_browsers, own_browsers, records  # noqa: F401  (own_browsers: autouse)

pytest.importorskip("playwright.sync_api", reason="needs the browser extra")


pytestmark = pytest.mark.skipif(not have_chromium(), reason="no Chromium installed")


def _response(body: bytes, content_type: str = "text/html") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _page_server(raw_server, page: bytes, others=None):
    """A raw server answering ``/`` with ``page``, other paths with ``others(conn, path)``
    or a small text body."""

    def respond(conn, request: bytes) -> None:
        path = request.split(b" ", 2)[1].decode("latin-1")
        if path == "/":
            conn.sendall(_response(page))
        elif others is not None and others(conn, path):
            return
        else:
            conn.sendall(_response(path.encode(), "text/plain"))
        time.sleep(0.02)

    return raw_server(respond)


def _manifest(result) -> Manifest:
    return Manifest.from_bytes((Path(result.path) / "evidence" / "manifest.json").read_bytes())


REQUEST_FOREVER = b"""<!DOCTYPE html><title>forever</title><p id="t">requesting</p>
<script>
let n = 0;
setInterval(() => {
  for (let k = 0; k < 4; k++) fetch("/n/" + (n++)).catch(() => {});
}, 5);
</script>"""


def test_a_page_that_requests_forever_is_capped_and_marked(raw_server, tmp_path):
    server = _page_server(raw_server, REQUEST_FOREVER)
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=20),
        browser=BrowserOptions(max_requests=50, network_idle_timeout=3, pdf=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20 + 12, elapsed
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    # At most the cap was fetched (a fetch that failed upstream counts too).
    assert 0 < len(manifest.exchanges) <= 50
    limits = {hit.limit: hit for hit in manifest.capture.limits_hit}
    assert "browser_requests" in limits
    assert "past 50 refused" in (limits["browser_requests"].detail or "")
    browser = manifest.capture.browser
    assert 0 < len(browser.failed) <= 1000, "failures beyond the cap are listed, bounded"
    assert "limit" in {f.kind for f in browser.failed}
    assert any("more than 50 requests" in w for w in manifest.capture.warnings)
    assert browser.log is not None and browser.log.requests > 50
    assert manifest.page_exchange is not None and not browser.completed, "kept and marked"
    assert verify(Path(result.path), trust=[]).outcome is Outcome.UNTRUSTED


@pytest.mark.slow
def test_our_memory_stays_bounded_while_a_page_requests_forever(raw_server, tmp_path):
    """Peak RSS of the capturing Python process, measured in a child process: the
    proxy and the log keep per-request state only up to their caps."""
    server = _page_server(raw_server, REQUEST_FOREVER)
    code = textwrap.dedent(
        f"""
        import json, sys
        from evidence.capturing import BrowserOptions, CaptureOptions, capture
        result = capture({server.url("/")!r}, out={str(tmp_path)!r},
                         options=CaptureOptions(deadline=15),
                         browser=BrowserOptions(network_idle_timeout=5, pdf=False))
        status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
        print(json.dumps({{"path": result.path, "hwm_kib": int(status)}}))
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    elapsed = time.monotonic() - started
    out = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = Manifest.from_bytes((Path(out["path"]) / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None and manifest.capture.browser is not None
    log = manifest.capture.browser.log
    assert log is not None
    print(
        f"requests the browser reported {log.requests} (+{log.dropped} past the log's caps), "
        f"recorded {len(manifest.exchanges)}, failed {len(manifest.capture.browser.failed)}, "
        f"peak RSS {out['hwm_kib'] // 1024} MiB, {elapsed:.1f} s"
    )
    assert log.requests > 1000, "the page did request a lot"
    assert out["hwm_kib"] < 400 * 1024, out
    assert elapsed < 15 + 20
    assert leftover_browsers() == []


def test_a_page_that_fills_its_javascript_heap_ends_in_time(raw_server, tmp_path):
    # Grows the heap without ever yielding: the heap cap, not the deadline, ends it.
    page = b"""<!DOCTYPE html><title>hog</title><p>hog</p><script>
    const keep = [];
    for (let k = 0; ; k++) keep.push(new Array(100000).fill(k));
    </script>"""
    server = _page_server(raw_server, page)
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=30),
        browser=BrowserOptions(pdf=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"{elapsed}: ended by the heap cap, long before the deadline"
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert not manifest.capture.browser.completed
    assert manifest.page_exchange is not None, "what arrived is kept"
    notes = " ".join(manifest.capture.browser.notes)
    assert "crash" in notes.lower(), notes


def test_a_page_above_the_browser_memory_cap_is_killed_and_marked(raw_server, tmp_path):
    # Typed arrays live outside the JavaScript heap: the heap flag does not
    # stop them, the watchdog's memory cap does.
    page = b"""<!DOCTYPE html><title>buffers</title><p>buffers</p><script>
    const keep = [];
    setInterval(() => keep.push(new Uint8Array(32 * 1024 * 1024).fill(7)), 20);
    </script>"""
    server = _page_server(raw_server, page)
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=40),
        browser=BrowserOptions(max_browser_memory_mb=600, pdf=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 40, elapsed
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert [h.limit for h in manifest.capture.limits_hit] == ["browser_memory"]
    assert not manifest.capture.browser.completed
    assert any("above 600 MiB" in n for n in manifest.capture.browser.notes)
    assert manifest.page_exchange is not None


def test_a_page_that_never_reaches_network_idle_ends_in_time(raw_server, tmp_path):
    page = b"""<!DOCTYPE html><title>never idle</title><p id="t">waiting</p><script>
    fetch("/poll").then(r => r.text()).catch(() => {});
    const source = new EventSource("/events");
    source.onmessage = (e) => { document.getElementById("t").textContent = e.data; };
    document.title = "never idle, scripted";
    </script>"""

    def others(conn, path: str) -> bool:
        if path == "/poll":  # a long-poll that never answers
            time.sleep(30)
            return True
        if path == "/events":  # an event stream that never ends
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\n\r\n"
            )
            for i in range(300):
                conn.sendall(f"data: tick {i}\n\n".encode())
                time.sleep(0.1)
            return True
        return False

    server = _page_server(raw_server, page, others)
    deadline = 25
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=deadline),
        browser=BrowserOptions(network_idle_timeout=4, pdf=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < deadline + 8, elapsed
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    browser = manifest.capture.browser
    assert [a.kind for a in browser.artefacts] == ["screenshot", "dom"], "the snapshot was made"
    assert any(n.startswith("network idle:") for n in browser.notes), browser.notes
    assert manifest.capture.title == "never idle, scripted"
    # Still waiting when the capture ended: a recorded failure (no answer yet)
    # or a record of what arrived, marked, never a gap.
    assert browser.unrecorded == ()
    assert (server.url("/poll"), "timeout") in {(f.url, f.kind) for f in browser.failed}
    (events,) = [e for e in manifest.exchanges if e.url == server.url("/events")]
    assert events.status == 200 and events.truncated == "time"
    assert verify(Path(result.path), trust=[]).outcome is Outcome.UNTRUSTED


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_cli_mid_capture_leaves_no_browser_and_no_package(raw_server, tmp_path, sig):
    page = b"<!DOCTYPE html><title>loop</title><script>for (;;) {}</script>"
    server = _page_server(raw_server, page)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evidence.cli",
            "capture",
            "--browser",
            "--deadline",
            "60",
            "--out",
            str(out),
            server.url("/"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits SIGINT ignored, and Python keeps it
        # so; the child must see Ctrl-C as a terminal would deliver it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Wait until the browser runs and the page's request was answered.
        for _ in range(300):
            if leftover_browsers() and server.requests:
                break
            time.sleep(0.1)
        assert leftover_browsers(), "the browser started"
        time.sleep(1.0)
        stopped = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert took < 15, took
    assert "Traceback" not in err
    for _ in range(20):  # processes being killed may need a moment to be reaped
        if not leftover_browsers():
            break
        time.sleep(0.1)
    assert leftover_browsers() == []
    assert not out.exists() or list(out.iterdir()) == [], "nothing half-written is left"


def test_a_page_that_breaks_its_own_timers_and_fonts_still_gets_its_snapshot(raw_server, tmp_path):
    """The waits before the snapshot are timed by Playwright, not by the page: a
    page that replaces setTimeout and document.fonts cannot hold them forever."""
    page = b"""<!DOCTYPE html><title>no timers</title><p>tall</p>
    <div style="height: 5000px"></div>
    <script>
    window.setTimeout = () => 0;
    window.requestAnimationFrame = () => 0;
    Object.defineProperty(document, "fonts", {value: {ready: new Promise(() => {}),
                                                      status: "loading"}});
    </script>"""
    server = _page_server(raw_server, page)
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=40),
        browser=BrowserOptions(pdf=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 25, f"{elapsed}: bounded by the step caps, not by the 40 s deadline"
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert [a.kind for a in manifest.capture.browser.artefacts] == ["screenshot", "dom"]
    assert manifest.capture.browser.completed, manifest.capture.browser.notes


def test_a_page_whose_load_never_comes_still_gets_its_snapshot(raw_server, tmp_path):
    """An image that never ends holds the load event for ever: the load wait takes
    at most half the time left, then the snapshot is made."""
    page = b"""<!DOCTYPE html><title>never loads</title><p>text</p>
    <img src="/never.png" width="10" height="10">"""

    def others(conn, path: str) -> bool:
        if path == "/never.png":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 99\r\n\r\n"
            )
            time.sleep(40)
            return True
        return False

    server = _page_server(raw_server, page, others)
    deadline = 30
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=deadline),
        browser=BrowserOptions(network_idle_timeout=3, pdf=False, scroll=False),
    )
    elapsed = time.monotonic() - started
    assert elapsed < deadline, elapsed
    assert leftover_browsers() == []
    manifest = _manifest(result)
    assert manifest.capture is not None and manifest.capture.browser is not None
    browser = manifest.capture.browser
    assert [a.kind for a in browser.artefacts] == ["screenshot", "dom"], browser.notes
    assert any(n.startswith("page did not finish loading") for n in browser.notes)
    # Its head arrived, its body never did: recorded as it stood, marked.
    (png,) = [e for e in manifest.exchanges if e.url == server.url("/never.png")]
    assert png.status == 200 and png.truncated == "time"

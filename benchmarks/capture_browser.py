"""Browser capture of an article page vs bare Playwright (goto + full-page screenshot).

Both runs use the same Chromium binary and the same local article (text
fetched by script from a gzip JSON endpoint, a lazy image, a 404 stylesheet).
Median of 5 each, interleaved in the same run (``RUNS=N`` for more). Peak
RSS: our process (VmHWM) and the sum of the browser's processes' VmHWM,
sampled while it runs.

    python benchmarks/capture_browser.py
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from evidence.capturing import BrowserOptions, CaptureOptions, capture
from evidence.capturing.browser import find_chromium

from servers import Site

ARTICLE = b"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Article</title>
<link rel="stylesheet" href="/missing.css"></head><body><h1>Article</h1>
<p id="t">loading</p><div style="height:4000px"></div>
<img loading="lazy" src="/lazy.svg" width="200" height="100">
<script>fetch("/api").then(r => r.json()).then(j => {
  document.getElementById("t").textContent = j.text; });</script></body></html>"""
ROUTES = {
    "/": (200, [("Content-Type", "text/html; charset=utf-8")], ARTICLE),
    "/api": (
        200,
        [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        gzip.compress(json.dumps({"text": "The statement, in full. " * 200}).encode()),
    ),
    "/lazy.svg": (
        200,
        [("Content-Type", "image/svg+xml")],
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
        b'<rect width="200" height="100" fill="red"/></svg>',
    ),
}


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class BrowserRSS:
    """Samples the summed peak RSS of every Chromium process under this process."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _descendants(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_bytes()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(b")", 1)[1].split()[1])
        found = {os.getpid()}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in found and pid not in found:
                    found.add(pid)
                    grew = True
        found.discard(os.getpid())
        return list(found)

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = sum(_hwm_kib(p) for p in self._descendants())
            self.peak_kib = max(self.peak_kib, total)
            time.sleep(0.05)

    def __enter__(self) -> BrowserRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bare(url: str, chromium: str) -> float:
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url, wait_until="load")
        page.screenshot(full_page=True)
        browser.close()
    return time.perf_counter() - start


def ours(url: str, out: str) -> float:
    start = time.perf_counter()
    capture(url, out=out, options=CaptureOptions(deadline=60), browser=BrowserOptions())
    return time.perf_counter() - start


def main() -> None:
    chromium = find_chromium()
    site = Site(ROUTES)
    # As real servers do (nginx, Apache): without TCP_NODELAY, Python's
    # http.server writes the head and the body of a response separately, and
    # on a reused keep-alive connection the body waits for the client's
    # delayed ACK, 40 ms per request. That stalled our fetcher (which reuses
    # connections) far more than the browser, and measured the test server.
    site.server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    url = site.url("/")
    runs = int(os.environ.get("RUNS", "5"))
    bare_times: list[float] = []
    our_times: list[float] = []
    bare_peak = our_peak = 0
    with tempfile.TemporaryDirectory() as out:
        bare(url, chromium)  # warm the page cache once
        # Interleaved, so that both see the same load on a shared machine.
        for _ in range(runs):
            with BrowserRSS() as rss:
                bare_times.append(bare(url, chromium))
            bare_peak = max(bare_peak, rss.peak_kib)
            with BrowserRSS() as rss:
                our_times.append(ours(url, out))
            our_peak = max(our_peak, rss.peak_kib)
    site.close()
    b, o = statistics.median(bare_times), statistics.median(our_times)
    print(f"article page, median of {runs}, interleaved")
    print(f"   bare Playwright goto + full-page screenshot   {b:6.2f} s")
    print(f"   evidence capture --browser                    {o:6.2f} s")
    print(f"   ratio                                         {o / b:6.2f}x")
    print(
        f"   peak RSS, this process                        {_hwm_kib(os.getpid()) / 1024:6.0f} MiB"
    )
    print(f"   peak RSS, browser processes (bare)            {bare_peak / 1024:6.0f} MiB")
    print(f"   peak RSS, browser processes (ours)            {our_peak / 1024:6.0f} MiB")


if __name__ == "__main__":
    main()

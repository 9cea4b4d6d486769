"""A local site for batch tests: many pages, optional latency, counted concurrency and hits."""

from __future__ import annotations

import collections
import http.server
import threading
import time
import typing


class BatchSite:
    """``/page/N`` answers 200; ``/flaky/N`` answers 503 ``fail_first`` times, then 200;
    ``/down`` always 503; anything else 404. Records the most requests in progress at once."""

    def __init__(self, latency: float = 0.0, fail_first: int = 1) -> None:
        self.latency = latency
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.hits: collections.Counter[str] = collections.Counter()
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with site.lock:
                    site.active += 1
                    site.max_active = max(site.max_active, site.active)
                    site.hits[self.path] += 1
                    hits = site.hits[self.path]
                try:
                    if site.latency:
                        time.sleep(site.latency)
                    status, body = site.answer(self.path, hits)
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with site.lock:
                        site.active -= 1

            def log_message(self, *args: typing.Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, hits: int) -> tuple[int, bytes]:
        if path.startswith("/page/"):
            return 200, f"<html><title>page {path[6:]}</title><p>{path}</p></html>".encode()
        if path.startswith("/flaky/"):
            if hits <= self.fail_first:
                return 503, b"busy"
            return 200, b"<html><p>ok now</p></html>"
        if path == "/down":
            return 503, b"down"
        return 404, b"not found"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

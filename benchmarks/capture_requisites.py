"""Capture one page with 200 requisites, each answered after 50 ms, vs `wget --warc-file -p`.

    python benchmarks/capture_requisites.py [--requisites 200] [--latency-ms 50]

Target: at least 3x faster than wget on the same local site, peak memory
under 100 MiB.
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import sys
import tempfile
import threading
import time
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, table


def serve(requisites: int, latency: float) -> http.server.ThreadingHTTPServer:
    page = (
        "<html><head><link rel=stylesheet href=/s.css></head><body>"
        + "".join(f'<img src="/img/{i}.png">' for i in range(requisites - 1))
        + "</body></html>"
    ).encode()
    image = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(latency)
            if self.path == "/":
                body, ctype = page, "text/html"
            elif self.path == "/s.css":
                body, ctype = b"body{color:#333}", "text/css"
            else:
                body, ctype = image, "image/png"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: typing.Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requisites", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50)
    args = parser.parse_args()
    server = serve(args.requisites, args.latency_ms / 1000)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    evidence = str(Path(sys.executable).parent / "evidence")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("evidence capture", *run([evidence, "capture", url, "--out", f"{tmp}/ev"])))
        if shutil.which("wget"):
            rows.append(
                (
                    "wget --warc-file -p",
                    *run(["wget", "-q", "-p", "--warc-file", f"{tmp}/wget", "-P", f"{tmp}/w", url]),
                )
            )
    server.shutdown()
    print(f"One page, {args.requisites} requisites, {args.latency_ms:g} ms latency each")
    print(table(rows, "evidence capture"))
    if len(rows) == 2:
        print(f"\nwget takes {rows[1][1] / rows[0][1]:.1f}x as long (target: at least 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

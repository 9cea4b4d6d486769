"""Shared helpers: run a command, return wall time and the child's own peak RSS."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
import typing


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run(cmd: list[str], **kwargs: typing.Any) -> tuple[float, float, int]:
    """Run ``cmd``; return (seconds, peak RSS in MiB, exit code).

    Peak RSS is the process's own VmHWM, sampled every 5 ms from /proc. (The
    rusage of a child started from a large parent includes the parent's RSS
    at exec time on Linux, so wait4's ru_maxrss would overstate small tools.)
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    peak = 0
    while proc.poll() is None:
        hwm = _hwm_kib(proc.pid)
        if hwm:
            peak = max(peak, hwm)
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    return elapsed, peak / 1024, proc.returncode


def table(rows: list[tuple[str, float, float, int]], baseline: str) -> str:
    base = next(r for r in rows if r[0] == baseline)[1]
    out = [f"{'tool':<34} {'seconds':>9} {'peak MiB':>9} {'exit':>5} {'time vs ' + baseline:>22}"]
    for name, secs, mib, code in rows:
        out.append(f"{name:<34} {secs:>9.2f} {mib:>9.1f} {code:>5} {secs / base:>21.2f}x")
    return "\n".join(out)


def serve_bytes(total: int, path: str = "/big") -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``total`` bytes of mixed text/binary at ``path`` on 127.0.0.1 (streamed)."""
    block = (os.urandom(32 * 1024) + b"<p>report text, repeated.</p>\n" * 1100)[: 64 * 1024]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            left = total
            try:
                while left > 0:
                    n = min(left, len(block))
                    self.wfile.write(block[:n])
                    left -= n
            except OSError:
                pass

        def log_message(self, *args: typing.Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}{path}"

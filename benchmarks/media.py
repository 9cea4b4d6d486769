"""Media capture of a big HLS stream over loopback, against yt-dlp alone.

    python benchmarks/media.py [--sizes 50,200] [--repeat 1]

For each size (MB), an HLS stream of about that many bytes is made once with
ffmpeg (testsrc2 with noise, MPEG-2 at a high bitrate, 4-second segments) and
cached under ~/.cache/evidence-benchmarks/. A separate ``python -m
http.server`` serves it on 127.0.0.1. Then, in turn:

- ``evidence capture URL --media --no-requisites``: yt-dlp through the
  recording proxy, every segment recorded, the merged file stored;
- ``python -m yt_dlp`` alone, writing the file, with the same downloader
  settings (native HLS, one fragment at a time, no cache, no config).

Target: our capture takes at most 1.3x the time of yt-dlp alone, and its peak
memory does not grow with the stream's size.

``--rate-mbit 100`` serves the stream at that many Mbit/s instead of as fast
as loopback allows (our own small server, in its own process), to show the
ratio on a link like a fast home or office connection.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run, table

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evidence-benchmarks"
_BITRATE = 40_000_000  # bits per second: 5 MB a second of stream


def make_stream(megabytes: int) -> Path:
    """An HLS stream of about ``megabytes`` MB (cached)."""
    root = CACHE / f"hls-{megabytes}M"
    if (root / "index.m3u8").is_file():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE))
    seconds = max(int(megabytes * 8_000_000 / _BITRATE), 4)
    video = f"testsrc2=size=1280x720:rate=25:duration={seconds},noise=alls=40:allf=t"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", video,
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "mpeg2video", "-b:v", str(_BITRATE), "-maxrate", str(_BITRATE),
         "-minrate", str(_BITRATE), "-bufsize", str(_BITRATE), "-g", "25",
         "-c:a", "mp2", "-b:a", "128k",
         "-f", "hls", "-hls_time", "4", "-hls_list_size", "0",
         "-hls_segment_filename", str(tmp / "seg%04d.ts"), str(tmp / "index.m3u8")],
        check=True,
    )  # fmt: skip
    os.rename(tmp, root)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(root: Path, rate_mbit: float = 0) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    if rate_mbit:
        cmd = [sys.executable, __file__, "--serve", str(root), str(port), str(rate_mbit)]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/index.m3u8"


def _timed(cmd: list[str]) -> tuple[float, float, int, float]:
    """(seconds, peak MiB, exit code, CPU seconds of the command and its children).

    CPU time does not depend on what else the machine is doing, wall time
    does: both are shown.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    secs, mib, code = run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return secs, mib, code, cpu


def serve_throttled(root: Path, port: int, rate_mbit: float) -> None:
    """Serve ``root``'s files at ``rate_mbit`` Mbit/s per connection (segments are
    fetched one at a time, so that is the stream's rate)."""
    import http.server

    rate = rate_mbit * 1_000_000 / 8

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = root / self.path.lstrip("/").split("?")[0]
            if "/" in self.path.strip("/") or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            start = time.monotonic()
            for offset in range(0, len(data), 64 * 1024):
                self.wfile.write(data[offset : offset + 64 * 1024])
                ahead = start + (offset + 64 * 1024) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def measure(megabytes: int, repeat: int, rate_mbit: float = 0) -> str:
    root = make_stream(megabytes)
    size = sum(p.stat().st_size for p in root.iterdir())
    server, url = serve(root, rate_mbit)
    evidence = str(Path(sys.executable).parent / "evidence")
    best: dict[str, tuple[float, float, int, float]] = {}
    stored = 0
    try:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                ours = _timed(
                    [evidence, "capture", url, "--media", "--no-requisites", "--deadline", "3600",
                     "--max-media-bytes", "8G", "--out", f"{tmp}/ev"]
                )  # fmt: skip
                packages = list(Path(f"{tmp}/ev").glob("*/data/capture.warc.gz"))
                stored = packages[0].stat().st_size if packages else 0
                shutil.rmtree(f"{tmp}/ev", ignore_errors=True)
                alone = _timed(
                    [sys.executable, "-m", "yt_dlp", "--ignore-config", "--no-cache-dir",
                     "--hls-prefer-native", "--downloader", "native", "--concurrent-fragments",
                     "1", "--no-progress", "-q", "-o", f"{tmp}/alone.%(ext)s", url]
                )  # fmt: skip
            for name, result in (("evidence capture --media", ours), ("yt-dlp alone", alone)):
                # Best of the runs that worked: a failed run is fast, not a result.
                if name not in best or (result[2] == 0, -result[0]) > (
                    best[name][2] == 0,
                    -best[name][0],
                ):
                    best[name] = result
    finally:
        server.terminate()
        server.wait(10)
    rows = [(name, *values[:3]) for name, values in best.items()]
    cpu = {name: values[3] for name, values in best.items()}
    link = f"served at {rate_mbit:g} Mbit/s" if rate_mbit else "served as fast as loopback allows"
    head = (
        f"HLS stream of {size / 1e6:.0f} MB ({len(list(root.glob('*.ts')))} segments), "
        f"{link}, best of {repeat}; WARC written: {stored / 1e6:.0f} MB"
    )
    ratio = cpu["evidence capture --media"] / cpu["yt-dlp alone"]
    cpu_line = (
        f"CPU seconds: evidence {cpu['evidence capture --media']:.2f}, "
        f"yt-dlp alone {cpu['yt-dlp alone']:.2f} ({ratio:.2f}x)"
    )
    return head + "\n" + table(rows, "yt-dlp alone") + "\n" + cpu_line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="50,200", help="stream sizes in MB, comma-separated")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--rate-mbit", default="0", help="link rates to serve at, comma-separated (0: unlimited)"
    )
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_throttled(Path(args.serve[0]), int(args.serve[1]), float(args.serve[2]))
        return 0
    if shutil.which("ffmpeg") is None:
        print("needs ffmpeg (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    for rate in (float(r) for r in args.rate_mbit.split(",")):
        for megabytes in (int(s) for s in args.sizes.split(",")):
            print(measure(megabytes, args.repeat, rate))
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

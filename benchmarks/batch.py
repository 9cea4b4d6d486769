"""Batch benchmark: `evidence batch` vs `wget -i`, Celery scaling, `verify --recursive`.

    .venv/bin/python benchmarks/batch.py [--pages 200] [--latency 0.05] [--repeat N]
                                         [--no-queue] [--no-verify]

1. ``--pages`` pages from a local server that answers each request after
   ``--latency`` seconds: `evidence batch` with 1, 2 and 4 workers vs
   `wget --warc-file -i LIST` (one process, one URL after the other). The
   pages have no requisites (no images, styles or scripts), so wget without
   ``-p`` fetches exactly what `evidence batch` fetches: the ``requests``
   column counts what the server answered to each tool.
2. The same list through Celery with 1, 2 and 4 local `evidence worker`
   processes (concurrency 1 each) on a redis-server this script starts on a
   free port (skipped without redis-server or Celery, or with --no-queue).
3. `evidence verify DIR --recursive` of 100 of those packages vs
   `evidence verify PKG` run once per package in a loop.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from _measure import run

from batch_site import BatchSite

EVIDENCE = [sys.executable, "-m", "evidence.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROWS = (
    ("--workers 1", 1, 1),
    ("--workers 2", 2, 2),
    ("--workers 4", 4, 4),
    ("--workers 4 --per-host 2 (default)", 4, 2),
)


def local_batch(site: BatchSite, root: Path, pages: int, repeat: int) -> dict[str, float]:
    """`evidence batch` with 1, 2 and 4 workers (``--per-host`` as many: the list has
    one host), 4 workers at the default ``--per-host 2``, and `wget -i`: the best of
    ``repeat`` rounds, the rows of each round run one after the other."""
    lst = root / "list.txt"
    lst.write_text("\n".join(site.url(f"/page/{i}") for i in range(pages)) + "\n")
    best: dict[str, tuple[float, float, int, int]] = {}
    have_wget = shutil.which("wget") is not None
    for n in range(repeat):
        for label, workers, per_host in ROWS:
            out = root / f"batch-{workers}-{per_host}-{n}"
            argv = [*EVIDENCE, "batch", str(lst), "--out", str(out), "--workers", str(workers)]
            before = sum(site.hits.values())
            seconds, peak, code = run([*argv, "--per-host", str(per_host)])
            row = (seconds, peak, code, sum(site.hits.values()) - before)
            best[label] = min(best.get(label, row), row)
        if have_wget:
            work = root / f"wget-{n}"
            work.mkdir()
            before = sum(site.hits.values())
            seconds, peak, code = run(
                ["wget", "--quiet", "--warc-file=bench", "-i", str(lst), "-O", "/dev/null"],
                cwd=work,
            )
            row = (seconds, peak, code, sum(site.hits.values()) - before)
            best["wget"] = min(best.get("wget", row), row)
    for label, (seconds, peak, code, requests) in best.items():
        name = "wget --warc-file -i LIST" if label == "wget" else f"evidence batch {label}"
        # wget exits 8 when a server answers an error; the pages here all answer 200.
        print(f"   {name:<45} {seconds:7.2f}  {peak:8.1f}  {code:>4}  {requests:>8}")
    if not have_wget:
        print("   wget: not installed, skipped")
    return {label: row[0] for label, row in best.items()}


def queue_scaling(site: BatchSite, root: Path, pages: int) -> None:
    binary = shutil.which("redis-server")
    try:
        import celery  # noqa: F401
    except ImportError:
        binary = None
    if binary is None:
        print("   (skipped: needs redis-server and pip install 'evidence-archive[queue]')")
        return
    port, password = free_port(), secrets.token_hex(8)
    redis = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        for n in (1, 2, 4):
            url = f"redis://:{password}@127.0.0.1:{port}/{n}"
            out = root / f"queue{n}"
            workers = [
                subprocess.Popen(
                    [
                        *EVIDENCE,
                        "worker",
                        "--queue",
                        url,
                        "--out",
                        str(out),
                        "--concurrency",
                        "1",
                        "--name",
                        f"w{i}@bench",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                for i in range(n)
            ]
            time.sleep(3)  # workers connect
            seconds, _peak, code = run(
                [
                    *EVIDENCE,
                    "batch",
                    str(root / "list.txt"),
                    "--queue",
                    url,
                    "--out",
                    str(out),
                    "--workers",
                    "8",
                    "--per-host",
                    "8",
                ]
            )
            print(f"   --queue, {n} worker(s)               {seconds:7.2f}  {'':>8}  {code}")
            for w in workers:
                os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                w.wait()
    finally:
        redis.terminate()
        redis.wait()


def verify_compare(out: Path, root: Path) -> None:
    from evidence.batch import find_packages

    packages = find_packages(out)[:100]
    subset = root / "verify"
    subset.mkdir()
    for p in packages:
        shutil.copytree(p, subset / p.name)
    seconds, peak, code = run([*EVIDENCE, "verify", str(subset), "--recursive"])
    print(f"   verify DIR --recursive ({len(packages)})        {seconds:7.2f}  {peak:8.1f}  {code}")
    start = time.perf_counter()
    for p in sorted(subset.iterdir()):
        subprocess.run([*EVIDENCE, "verify", str(p)], stdout=subprocess.DEVNULL, check=False)
    loop = time.perf_counter() - start
    print(f"   verify PKG, one process each        {loop:7.2f}")
    print(f"   ratio: the loop takes {loop / seconds:.1f}x the time of --recursive")


def compile_package() -> None:
    """Compile evidence's bytecode, as installing it does: from an editable
    checkout under PYTHONDONTWRITEBYTECODE=1 (set on this machine) every worker
    process would compile the sources again at start-up (about 0.1 s each),
    which no installed copy does."""
    import compileall

    import evidence

    compileall.compile_dir(str(Path(evidence.__file__).parent), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--no-queue", action="store_true")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of part 1; the best is kept")
    args = ap.parse_args()
    compile_package()
    site = BatchSite(latency=args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"1. {args.pages} pages, {args.latency * 1000:.0f} ms server latency")
        print(f"   {'command':<45} seconds  peak MiB  exit  requests   (best of {args.repeat})")
        times = local_batch(site, root, args.pages, args.repeat)
        theirs = times.pop("wget", None)
        if theirs:
            for label, seconds in times.items():
                print(f"   ratio: wget takes {theirs / seconds:4.1f}x the time of {label}")
        print("2. Celery scaling (same list; one capture per worker at a time)")
        if args.no_queue:
            print("   (skipped: --no-queue)")
        else:
            queue_scaling(site, root, args.pages)
        print("3. verification of 100 packages")
        if args.no_verify:
            print("   (skipped: --no-verify)")
        else:
            verify_compare(root / "batch-4-4-0", root)
    site.close()


if __name__ == "__main__":
    main()

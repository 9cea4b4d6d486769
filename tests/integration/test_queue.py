"""Batch capture on Celery: a real redis-server of our own, real ``evidence worker`` processes.

The redis-server is started by these tests on a free port with a random
password (never the machine's shared one on 6379), without persistence.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing
import uuid
from pathlib import Path

import pytest

from batch_site import BatchSite
from evidence.batch import list_packages

from browsers import have_chromium

pytest.importorskip("celery", reason="the queue extra is part of the test extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis(typing.NamedTuple):
    port: int
    password: str

    def url(self, db: int) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> typing.Iterator[Redis]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: .ci/run installs Debian's redis-server"
    port = _free_port()
    password = secrets.token_hex(12)
    workdir = tmp_path_factory.mktemp("redis")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--requirepass", password, "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    client.close()
    yield Redis(port, password)
    proc.terminate()
    proc.wait(timeout=10)


class Workers:
    """``evidence worker`` processes, each in its own process group, logs in files."""

    def __init__(self, tmp: Path, url: str, out: Path) -> None:
        self.tmp, self.url, self.out = tmp, url, out
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *extra: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")
        argv = [sys.executable, "-m", "evidence.cli", "worker", "--queue", self.url]
        argv += ["--out", str(self.out), "--concurrency", str(concurrency)]
        argv += ["--redeliver-after", "3", "--name", f"{name}@test", "--no-requisites", *extra]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        deadline = time.monotonic() + 30
        while b"ready." not in self.log(name).encode():
            assert proc.poll() is None, self.log(name)
            assert time.monotonic() < deadline, self.log(name)
            time.sleep(0.05)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


@pytest.fixture
def workers(tmp_path: Path, redis_server: Redis, request: pytest.FixtureRequest):
    # A database of our own per test: no task of one test reaches another's workers.
    db = 1 + (abs(hash(request.node.nodeid)) % 14)
    import redis

    redis.Redis(
        host="127.0.0.1", port=redis_server.port, password=redis_server.password, db=db
    ).flushdb()
    w = Workers(tmp_path, redis_server.url(db), tmp_path / "out")
    yield w
    w.stop_all()


@pytest.fixture
def batch_site() -> typing.Iterator[typing.Callable[..., BatchSite]]:
    made: list[BatchSite] = []

    def make(**kwargs: typing.Any) -> BatchSite:
        s = BatchSite(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def submit(
    workers: Workers, urls: list[str], *extra: str, timeout: float = 90
) -> subprocess.Popen[str]:
    lst = workers.tmp / f"list-{secrets.token_hex(3)}.txt"
    lst.write_text("\n".join(urls) + "\n", encoding="utf-8")
    argv = [sys.executable, "-m", "evidence.cli", "batch", str(lst), "--queue", workers.url]
    argv += ["--out", str(workers.out), "--json", "--backoff", "0.2", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_do_every_task_and_the_broker_password_never_shows(workers, batch_site):
    s = batch_site(latency=0.05)
    urls = [s.url(f"/page/{i}") for i in range(20)] + [s.url("/flaky/1")]
    workers.start("one")
    workers.start("two")
    proc = submit(workers, urls, "--per-host", "4")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["captured"] == 21 and lines[-1]["failed"] == 0
    counts = collections.Counter(e.url for e in list_packages(workers.out))
    assert sorted(counts) == sorted(urls) and set(counts.values()) == {1}
    assert s.hits["/flaky/1"] == 2  # the 503 was retried through the queue
    logs = workers.log("one") + workers.log("two")
    assert workers.log("one").count("succeeded") and workers.log("two").count("succeeded")
    password = workers.url.split(":")[2].split("@")[0]
    for text in (out, err, logs):
        assert password not in text
    assert "redis://:***@" in err
    (report,) = workers.out.glob("batch-*.csv")
    assert len(report.read_text(encoding="utf-8").splitlines()) == 22


@pytest.mark.slow
def test_a_worker_killed_mid_capture_has_its_task_finished_by_another(workers, batch_site):
    s = batch_site(latency=2.0)
    workers.start("doomed", concurrency=1)
    proc = submit(workers, [s.url("/page/slow")])
    deadline = time.monotonic() + 30
    while s.active == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers.kill("doomed")  # SIGKILL mid-capture: its message was never acknowledged
    workers.start("rescuer", concurrency=1)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert s.hits["/page/slow"] == 2
    packages = list_packages(workers.out)
    assert [p.url for p in packages] == [s.url("/page/slow")]
    # The dead worker's temporary directory is gone and was never a package.
    assert not any(p.name.startswith(".incomplete") for p in workers.out.rglob("*"))
    assert "succeeded" in workers.log("rescuer")


def test_forged_task_messages_are_refused_and_reported(workers, batch_site):
    from evidence.queue import TASK_NAME, make_app

    s = batch_site()
    workers.start("guard", "--public-only")
    app = make_app(workers.url)
    evil = workers.tmp / "evil"
    forged = {
        "path option": [s.url("/page/1"), {"options": {"ca_bundle": "/etc/passwd"}}],
        "output directory": [s.url("/page/1"), {"out": str(evil)}],
        "insecure": [s.url("/page/1"), {"options": {"unsafe_insecure": True}}],
        "a third argument": [s.url("/page/1"), {}, str(evil)],
        "file URL": ["file:///etc/passwd", {}],
        # The route is the worker's own: a message can neither set nor unset a proxy.
        "proxy": [s.url("/page/1"), {"options": {"proxy": "socks5h://127.0.0.1:9"}}],
        "proxy off": [s.url("/page/1"), {"options": {"proxy": None}}],
        "proxy address": [s.url("/page/1"), {"options": {"record_proxy_address": True}}],
    }
    results = {
        name: app.send_task(TASK_NAME, args=args, task_id=str(uuid.uuid4()), queue="evidence")
        for name, args in forged.items()
    }
    # public_only cannot be turned off by a task: the loopback site stays refused.
    results["public_only off"] = app.send_task(
        TASK_NAME,
        args=[s.url("/page/2"), {"options": {"public_only": False}}],
        task_id=str(uuid.uuid4()),
        queue="evidence",
    )
    results["not a uuid"] = app.send_task(
        TASK_NAME, args=[s.url("/page/3"), {}], task_id="../../etc", queue="evidence"
    )
    got = {name: r.get(timeout=30) for name, r in results.items()}
    for name in (*forged, "not a uuid"):
        assert got[name]["status"] == "failed" and got[name]["kind"] == "refused-task", name
    assert got["public_only off"]["kind"] == "refused-address"
    assert "refused task" in workers.log("guard")
    assert not evil.exists()
    assert list_packages(workers.out) == []
    assert s.hits == collections.Counter()
    app.close()


def test_without_celery_the_queue_commands_say_how_to_install_it(tmp_path):
    code = (
        "import sys; sys.modules['celery'] = None\n"
        "from evidence.cli import main\n"
        "sys.exit(main(['worker', '--queue', 'redis://127.0.0.1:1/0', '--out', sys.argv[1]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'evidence-archive[queue]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not have_chromium(), reason="needs the browser extra and Chromium")
def test_a_browser_worker_captures_with_chromium_and_a_task_cannot_turn_it_off(workers, batch_site):
    from evidence.manifest import Manifest
    from evidence.package import read_manifest_bytes
    from evidence.queue import TASK_NAME, make_app

    s = batch_site()
    workers.start("eyes", "--browser", "--no-scroll", concurrency=1)
    app = make_app(workers.url)
    forged = app.send_task(
        TASK_NAME,
        args=[s.url("/page/9"), {"options": {"browser": False}}],
        task_id=str(uuid.uuid4()),
        queue="evidence",
    )
    assert forged.get(timeout=60)["kind"] == "refused-task"
    app.close()
    urls = [s.url("/page/1"), s.url("/page/2")]
    proc = submit(workers, urls)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err + workers.log("eyes")
    packages = list_packages(workers.out)
    assert sorted(p.url for p in packages) == sorted(urls)
    for entry in packages:
        manifest = Manifest.from_bytes(read_manifest_bytes(Path(entry.path)))
        assert manifest.capture is not None and manifest.capture.browser is not None
        assert "screenshot" in {a.kind for a in manifest.capture.browser.artefacts}
    assert s.hits["/page/9"] == 0


def test_a_browser_worker_without_chromium_stops_at_start(tmp_path):
    argv = [sys.executable, "-m", "evidence.cli", "worker", "--queue", "redis://127.0.0.1:1/0"]
    argv += ["--out", str(tmp_path / "o"), "--browser", "--chromium", str(tmp_path / "none")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Chromium not found" in done.stderr and "Traceback" not in done.stderr


def test_a_pickled_task_message_is_never_loaded(workers, batch_site):
    """JSON only: a message serialised with pickle is refused before anything reads it."""
    from evidence.queue import TASK_NAME, make_app

    s = batch_site()
    workers.start("strict")
    app = make_app(workers.url)
    app.send_task(
        TASK_NAME,
        args=[s.url("/page/1"), {}],
        task_id=str(uuid.uuid4()),
        queue="evidence",
        serializer="pickle",
    )
    deadline = time.monotonic() + 30
    refusal = "Refusing to deserialize untrusted content of type pickle"
    while refusal not in workers.log("strict"):
        assert time.monotonic() < deadline, workers.log("strict")
        time.sleep(0.1)
    app.close()
    assert s.hits == collections.Counter()
    assert list_packages(workers.out) == []


def test_a_worker_without_a_proxy_refuses_tasks_submitted_through_one(workers, batch_site):
    """The submitter's --proxy is not sent (a task never chooses the route), but
    it is required: a worker started without --proxy refuses the task instead
    of capturing from its own address, and the site is never contacted."""
    from socks import TestProxy

    s = batch_site()
    urls = [s.url(f"/page/{i}") for i in range(3)]
    workers.start("direct")
    proc = submit(workers, urls, "--proxy", "socks5h://127.0.0.1:9", "--retries", "0")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert "a worker without --proxy refuses these tasks" in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["captured"] == 0 and summary["failed"] == 3
    assert "this worker has no --proxy" in workers.log("direct")
    assert sum(s.hits.values()) == 0 and list_packages(workers.out) == []
    workers.stop_all()

    proxy = TestProxy("socks5")
    try:
        workers.start("proxied", "--proxy", proxy.url())
        proc = submit(workers, urls, "--proxy", "socks5h://127.0.0.1:9", "--new-run")
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["captured"] == 3
        assert len(proxy.requests) >= 3
    finally:
        proxy.close()

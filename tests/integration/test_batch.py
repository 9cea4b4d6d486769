"""Batch capture on one machine: lists, politeness, retries, resume after kill -9,
``evidence list`` and ``verify --recursive``, against a real local site."""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from batch_site import BatchSite
from evidence.batch import capture_many, find_packages, list_packages, read_list, verify_many
from evidence.capturing import CaptureOptions
from evidence.keys import Keyring

from browsers import have_chromium

FAST = CaptureOptions(requisite_workers=1, deadline=10, connect_timeout=5, read_timeout=5)


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


def packages_by_url(out: Path) -> collections.Counter[str]:
    return collections.Counter(e.url for e in list_packages(out))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- lists ---------------------------------------------------------------------


def _read_terminal(master: int) -> bytes:
    """Everything written to a pseudo-terminal until its process closes it."""
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    return screen


def test_text_list_skips_comments_blank_lines_bad_lines_and_duplicates(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(
        "# sources for case 12\n\n"
        "https://example.org/a\n"
        "  https://example.org/b  \n"
        "example.org/no-scheme\n"
        "ftp://example.org/file\n"
        "https://example.org/a\n",
        encoding="utf-8",
    )
    parsed = read_list(lst)
    assert [i.url for i in parsed.items] == ["https://example.org/a", "https://example.org/b"]
    assert [p.line for p in parsed.problems] == [5, 6]
    assert "did you mean" in parsed.problems[0].reason
    assert parsed.duplicates == 1


def test_csv_list_carries_other_columns_as_labels(tmp_path):
    lst = tmp_path / "list.csv"
    lst.write_text(
        "case,URL,notes\nC-1,https://example.org/a,first\nC-2,,empty\nC-3,https://example.org/b,\n",
        encoding="utf-8",
    )
    parsed = read_list(lst)
    assert [(i.url, dict(i.labels)) for i in parsed.items] == [
        ("https://example.org/a", {"case": "C-1", "notes": "first"}),
        ("https://example.org/b", {"case": "C-3"}),
    ]
    assert [(p.line, p.reason) for p in parsed.problems] == [(3, "no url in this row")]


def test_list_that_is_not_utf8_is_a_usage_error(tmp_path, cli):
    lst = tmp_path / "list.txt"
    lst.write_bytes(b"https://example.org/\xff\n")
    r = cli("batch", lst, "--out", tmp_path / "out")
    assert r.code == 2
    assert "not UTF-8" in r.err


# --- a whole batch --------------------------------------------------------------


def test_200_urls_from_a_csv_give_200_packages_and_a_correct_report(tmp_path, batch_site, cli):
    s = batch_site()
    lines = ["url,case"] + [f"{s.url(f'/page/{i}')},case-{i % 3}" for i in range(200)]
    lines += [f"{s.url('/page/7')},dup", "not a url,x"]
    lst = tmp_path / "list.csv"
    lst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    r = cli("batch", lst, "--out", out, "--workers", 8, "--per-host", 8, "--no-requisites")
    elapsed = time.monotonic() - started
    assert r.code == 0, r.err
    assert "line 203 skipped" in r.err and "1 duplicate" in r.err
    counts = packages_by_url(out)
    assert len(counts) == 200 and set(counts.values()) == {1}
    (report,) = out.glob("batch-*.csv")
    rows = read_csv(report)
    assert len(rows) == 200
    by_url = {row["url"]: row for row in rows}
    for entry in list_packages(out):
        row = by_url[entry.url]
        assert row["status"] == "captured"
        assert Path(row["package"]).name == entry.package_id
        manifest = Path(row["package"], "evidence", "manifest.json").read_bytes()
        import hashlib

        assert row["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
        assert row["case"] == f"case-{int(entry.url.rsplit('/', 1)[1]) % 3}"
        # The CSV's other columns are sealed into each package's manifest.
        assert json.loads(manifest)["labels"] == {"case": row["case"]}
    assert elapsed < 60


def test_per_host_limit_is_respected_and_workers_still_run_in_parallel(tmp_path, batch_site):
    s = batch_site(latency=0.15)
    other = batch_site(latency=0.15)
    urls = [s.url(f"/page/{i}") for i in range(10)] + [other.url(f"/page/{i}") for i in range(10)]
    results = list(
        capture_many(
            io.StringIO("\n".join(urls)), out=tmp_path, options=FAST, workers=8, per_host=2
        )
    )
    assert len(results) == 20 and all(r.ok for r in results)
    assert s.max_active == 2 and other.max_active == 2


def test_delay_spaces_the_captures_of_one_host(tmp_path, batch_site):
    s = batch_site()
    urls = "\n".join(s.url(f"/page/{i}") for i in range(4))
    started = time.monotonic()
    results = list(
        capture_many(io.StringIO(urls), out=tmp_path, options=FAST, workers=4, delay=0.3)
    )
    assert len(results) == 4
    assert time.monotonic() - started >= 0.9


def test_retries_for_503_but_never_for_404(tmp_path, batch_site):
    s = batch_site(fail_first=2)
    urls = [s.url("/flaky/1"), s.url("/missing"), s.url("/down")]
    results = {
        r.url: r
        for r in capture_many(
            io.StringIO("\n".join(urls)), out=tmp_path, options=FAST, retries=2, backoff=0.05
        )
    }
    assert s.hits["/flaky/1"] == 3 and results[s.url("/flaky/1")].http_status == 200
    assert s.hits["/missing"] == 1 and results[s.url("/missing")].http_status == 404
    assert s.hits["/down"] == 3
    down = results[s.url("/down")]
    # Out of retries: the last answer is kept as the URL's package, and says so.
    assert down.ok and down.http_status == 503 and down.attempts == 3
    assert down.error == "HTTP 503"
    assert set(packages_by_url(tmp_path).values()) == {1}
    assert len(packages_by_url(tmp_path)) == 3


def test_connection_refused_is_retried_then_reported_as_failed(tmp_path, cli):
    from servers import closed_port

    url = f"http://127.0.0.1:{closed_port()}/"
    lst = tmp_path / "l.txt"
    lst.write_text(url + "\n", encoding="utf-8")
    r = cli("batch", lst, "--out", tmp_path / "o", "--retries", 1, "--backoff", 0, "--json")
    assert r.code == 1
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert lines[0]["status"] == "failed" and lines[0]["attempts"] == 2
    assert lines[0]["kind"] == "refused"
    assert lines[-1]["type"] == "summary" and lines[-1]["failed"] == 1
    assert find_packages(tmp_path / "o") == []


def test_running_again_skips_what_is_done_and_a_new_run_captures_again(tmp_path, batch_site, cli):
    s = batch_site()
    lst = tmp_path / "l.txt"
    lst.write_text(f"{s.url('/page/1')}\n{s.url('/page/2')}\n", encoding="utf-8")
    r = cli("batch", lst, "--out", tmp_path / "o")
    assert r.code == 0
    # Not a terminal: one plain line per URL.
    lines = sorted(r.out.splitlines())
    assert [line.split(" -> ")[0] for line in lines] == [
        f"captured {s.url('/page/1')}",
        f"captured {s.url('/page/2')}",
    ]
    # The run finished: the same list again starts a new run (weekly re-archiving).
    r = cli("batch", lst, "--out", tmp_path / "o", "--json")
    assert r.code == 0
    assert sum(packages_by_url(tmp_path / "o").values()) == 4


def test_kill_9_halfway_then_the_same_command_captures_every_url_exactly_once(tmp_path, batch_site):
    s = batch_site(latency=0.2)
    urls = [s.url(f"/page/{i}") for i in range(30)]
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(urls) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "evidence.cli", "batch", str(lst), "--out", str(out)]
    argv += ["--workers", "3", "--per-host", "3", "--no-requisites"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.is_dir() and len(find_packages(out)) >= 10):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(find_packages(out))
    assert 10 <= before < 30
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming run" in done.stderr
    counts = packages_by_url(out)
    assert sorted(counts) == sorted(urls)
    assert set(counts.values()) == {1}
    # Nothing half-written is counted, and nothing is left in staging.
    assert not list((out / ".evidence-batch" / "incoming").glob("*/*/[!.]*"))
    (report,) = out.glob("batch-*.csv")
    assert {row["url"] for row in read_csv(report)} == set(urls)


def test_a_claimed_attempt_is_finished_not_repeated(tmp_path, batch_site):
    """The crash window between claiming an attempt and renaming its package into place."""
    from evidence.batch import _claim_path, capture_one, task_id_for

    s = batch_site()
    task = task_id_for("run", s.url("/page/1"), 1)
    first = capture_one(s.url("/page/1"), out=tmp_path, task_id=task, options=FAST)
    # Put the package back into staging and forget it was placed: as if killed there.
    staged = tmp_path / ".evidence-batch" / "incoming" / task / "x"
    staged.mkdir(parents=True)
    os.rename(first.package, staged / first.package_id)
    _claim_path(tmp_path, task).with_suffix(".placed").unlink()
    again = capture_one(s.url("/page/1"), out=tmp_path, task_id=task, options=FAST)
    assert again.package == first.package and Path(again.package).is_dir()
    assert s.hits["/page/1"] == 1
    assert len(find_packages(tmp_path)) == 1


def test_a_second_batch_in_the_same_directory_is_refused(tmp_path, batch_site):
    s = batch_site(latency=0.3)
    first = capture_many(io.StringIO(s.url("/page/1")), out=tmp_path, options=FAST)
    next(first)  # holds the directory's lock until it is closed
    from evidence.errors import UsageError

    with pytest.raises(UsageError, match="another batch"):
        list(capture_many(io.StringIO(s.url("/page/2")), out=tmp_path, options=FAST))
    first.close()


def test_a_batch_into_a_ledgered_archive_logs_every_package(tmp_path, batch_site):
    from evidence.ledger import Ledger, init_ledger

    s = batch_site()
    out = tmp_path / "archive"
    init_ledger(out)
    urls = "\n".join(s.url(f"/page/{i}") for i in range(3))
    results = list(capture_many(io.StringIO(urls), out=out, options=FAST))
    assert len(results) == 3
    assert Ledger.open(out).size == 3


# --- list and verify --recursive ----------------------------------------------------


def test_list_shows_one_line_per_package_and_filters_by_url(tmp_path, batch_site, cli, signer):
    s = batch_site()
    urls = "\n".join([s.url("/page/1"), s.url("/page/2"), s.url("/missing")])
    list(capture_many(io.StringIO(urls), out=tmp_path, options=FAST, sign_with=[signer.key]))
    r = cli("list", tmp_path)
    assert r.code == 0
    assert len(r.out.splitlines()) == 3
    assert "HTTP 404" in r.out and "signed" in r.out and "no timestamp" in r.out
    r = cli("list", tmp_path, "--url", "/page/", "--json")
    assert sorted(e["url"] for e in json.loads(r.out)) == [s.url("/page/1"), s.url("/page/2")]


def test_verify_recursive_of_100_packages_reports_exactly_the_tampered_one(
    tmp_path, batch_site, signer, cli
):
    s = batch_site()
    out = tmp_path / "archive"
    urls = "\n".join(s.url(f"/page/{i}") for i in range(100))
    results = list(
        capture_many(
            io.StringIO(urls),
            out=out / "2026",
            options=FAST,
            workers=8,
            per_host=8,
            sign_with=[signer.key],
        )
    )
    assert len(results) == 100
    victim = Path(results[37].package) / "data" / "capture.warc.gz"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0x01
    victim.write_bytes(bytes(data))
    report = tmp_path / "verdicts.csv"
    r = cli("verify", out, "--recursive", "--trust", signer.pub, "--json", "--report", report)
    assert r.code == 1
    doc = json.loads(r.out)
    failed = [p["package"] for p in doc["packages"] if p["outcome"] != "verified"]
    assert failed == [results[37].package]
    assert doc["summary"] == {"verified": 99, "failed": 1}
    rows = read_csv(report)
    assert len(rows) == 100 and sum(row["outcome"] == "failed" for row in rows) == 1


def test_verify_many_api_and_untrusted_exit_code(tmp_path, batch_site, cli):
    s = batch_site()
    list(capture_many(io.StringIO(s.url("/page/1")), out=tmp_path, options=FAST))
    reports = list(verify_many(tmp_path, trust=Keyring([])))
    assert len(reports) == 1 and reports[0][1].exit_code == 3
    assert cli("verify", tmp_path, "--recursive").code == 3


def test_verify_recursive_of_a_directory_without_packages_is_a_usage_error(tmp_path, cli):
    r = cli("verify", tmp_path, "--recursive")
    assert r.code == 2 and "no package found" in r.err


def test_a_terminal_gets_a_live_display_with_counts_and_each_workers_url(tmp_path, batch_site):
    import pty

    s = batch_site(latency=0.3)
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(s.url(f"/page/{i}") for i in range(4)) + "\n", encoding="utf-8")
    master, replica = pty.openpty()
    argv = [sys.executable, "-m", "evidence.cli", "batch", str(lst), "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(argv, stdin=replica, stdout=replica, stderr=replica)
    os.close(replica)
    screen = _read_terminal(master)
    assert proc.wait(timeout=60) == 0
    text = screen.decode("utf-8", "replace")
    assert "running 2" in text and "left" in text and "ETA" in text
    assert s.url("/page/0") in text
    assert "done 4  failed 0  running 0  left 0" in text


def test_the_report_names_the_signing_key_and_recursive_refuses_single_package_options(
    tmp_path, batch_site, signer, cli
):
    s = batch_site()
    list(capture_many(io.StringIO(s.url("/page/1")), out=tmp_path, sign_with=[signer.key]))
    (report,) = tmp_path.glob("batch-*.csv")
    assert read_csv(report)[0]["signers"] == signer.kid
    r = cli("verify", tmp_path, "--recursive", "--custody-anchor", "ab" * 32)
    assert r.code == 2 and "not --recursive" in r.err


# --- worker processes -----------------------------------------------------------------


def tagged(tag: str, marker: bytes) -> dict[int, bytes]:
    """Processes whose environment carries ``tag`` (inherited from this test's
    batch, whatever re-parented them) and whose command line holds ``marker``:
    pid -> command line. Other jobs on the machine never carry the tag."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if marker in cmdline and tag.encode() in environ.split(b"\0"):
            found[int(entry)] = cmdline
    return found


@pytest.fixture
def env_tag(monkeypatch: pytest.MonkeyPatch) -> str:
    """A random variable in the environment every process of this test inherits."""
    value = os.urandom(6).hex()
    monkeypatch.setenv("EVIDENCE_TEST_TAG", value)
    return f"EVIDENCE_TEST_TAG={value}"


WORKER = b"_worker_main"


def test_workers_are_processes_spread_over_the_cores_and_gone_at_the_end(
    tmp_path, batch_site, env_tag
):
    s = batch_site(latency=0.3)
    urls = "\n".join(s.url(f"/page/{i}") for i in range(8))
    seen: set[int] = set()
    results = []
    for result in capture_many(
        io.StringIO(urls), out=tmp_path, options=FAST, workers=4, per_host=4
    ):
        seen.update(tagged(env_tag, WORKER))
        results.append(result)
    assert len(results) == 8 and all(r.ok for r in results)
    # Four captures at once, in one process per core (two threads each on two cores).
    assert s.max_active == 4
    assert len(seen) == min(4, os.cpu_count() or 1)
    assert tagged(env_tag, WORKER) == {}


def test_a_worker_process_killed_mid_capture_costs_one_retry_not_the_batch(
    tmp_path, batch_site, env_tag
):
    s = batch_site(latency=1.0)
    urls = [s.url(f"/page/{i}") for i in range(3)]
    killed: list[int] = []

    def kill_one_busy_worker(run: typing.Any) -> None:
        deadline = time.monotonic() + 30
        while not killed and run.running:
            assert time.monotonic() < deadline
            workers = tagged(env_tag, WORKER)
            if workers and s.active:
                killed.append(min(workers))
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.02)

    results = list(
        capture_many(
            io.StringIO("\n".join(urls)),
            out=tmp_path,
            options=FAST,
            workers=3,
            per_host=3,
            backoff=0.01,
            on_start=kill_one_busy_worker,
        )
    )
    assert killed
    assert sorted(r.url for r in results) == sorted(urls) and all(r.ok for r in results)
    assert max(r.attempts for r in results) == 2
    assert set(packages_by_url(tmp_path).values()) == {1}
    assert tagged(env_tag, WORKER) == {}


def test_resume_places_a_package_claimed_by_a_later_attempt_instead_of_capturing_again(
    tmp_path, batch_site
):
    """Killed after attempt 2 claimed its package but before the state said so."""
    from evidence.batch import BatchList, _State, capture_one, read_list, task_id_for

    s = batch_site()
    url = s.url("/page/1")
    batch_list: BatchList = read_list(io.StringIO(url))
    state = _State(tmp_path)
    run_id, _ = state.run_for(batch_list, new_run=False)
    state.update(run_id, url, "running", 2, task_id_for(run_id, url, 2), "")
    state.close()
    first = capture_one(url, out=tmp_path, task_id=task_id_for(run_id, url, 2), options=FAST)
    (result,) = list(capture_many(batch_list, out=tmp_path, options=FAST))
    assert result.package == first.package and result.attempts == 2
    assert s.hits["/page/1"] == 1
    assert len(find_packages(tmp_path)) == 1


# --- browser batches ----------------------------------------------------------------


needs_chromium = pytest.mark.skipif(
    not have_chromium(), reason="needs the browser extra and Chromium (.ci/run installs both)"
)
CHROMIUM = b"chromium"
BROWSER_TOKEN = b"--evidence-capture="


class ChromiumSampler:
    """Counts the Chromium instances of this test alive at once (one token per launch)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.peak = 0
        self.launches: set[bytes] = set()
        self._stop = False
        import threading

        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            tokens = {
                arg
                for cmdline in tagged(self.tag, BROWSER_TOKEN).values()
                for arg in cmdline.split(b"\0")
                if arg.startswith(BROWSER_TOKEN)
            }
            self.launches |= tokens
            self.peak = max(self.peak, len(tokens))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop = True
        self._thread.join()


@needs_chromium
def test_a_browser_batch_runs_one_chromium_per_worker_and_leaves_none(
    tmp_path, batch_site, cli, env_tag
):
    from evidence.manifest import Manifest
    from evidence.package import read_manifest_bytes

    s = batch_site(latency=0.05)
    urls = [s.url(f"/page/{i}") for i in range(6)]
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(urls) + "\n", encoding="utf-8")
    sampler = ChromiumSampler(env_tag)
    try:
        r = cli(
            "batch",
            lst,
            "--out",
            tmp_path / "o",
            "--workers",
            2,
            "--browser",
            "--no-scroll",
            "--json",
        )
    finally:
        sampler.stop()
    assert r.code == 0, r.err
    # Two workers, so two browsers at once at most: and both were used.
    assert sampler.peak == 2
    assert len(sampler.launches) == 6
    assert tagged(env_tag, CHROMIUM) == {}
    assert tagged(env_tag, WORKER) == {}
    counts = packages_by_url(tmp_path / "o")
    assert sorted(counts) == sorted(urls) and set(counts.values()) == {1}
    for path in find_packages(tmp_path / "o"):
        manifest = Manifest.from_bytes(read_manifest_bytes(path))
        assert manifest.capture is not None and manifest.capture.browser is not None
        (shot,) = [a for a in manifest.capture.browser.artefacts if a.kind == "screenshot"]
        assert shot.target_uri.startswith("urn:screenshot:") and shot.size > 1000
        assert shot.record in {rec.id for rec in manifest.records}


def test_a_browser_batch_without_chromium_is_one_error_before_any_url(tmp_path, batch_site, cli):
    s = batch_site()
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(s.url(f"/page/{i}") for i in range(20)) + "\n", encoding="utf-8")
    r = cli("batch", lst, "--out", tmp_path / "o", "--browser", "--chromium", tmp_path / "none")
    assert r.code == 2
    assert r.err.count("error:") == 1 and "Chromium not found" in r.err
    assert s.hits == collections.Counter()
    assert not (tmp_path / "o").exists()
    r = cli("batch", lst, "--out", tmp_path / "o", "--viewport", "800x600")
    assert r.code == 2 and "only apply with --browser" in r.err
    r = cli("batch", lst, "--queue", "redis://127.0.0.1:1/0", "--browser")
    assert r.code == 2 and "evidence worker --browser" in r.err


@needs_chromium
@pytest.mark.slow
def test_kill_9_of_a_browser_batch_leaves_no_chromium_and_the_rerun_captures_each_url_once(
    tmp_path, batch_site, env_tag
):
    s = batch_site(latency=0.05)
    urls = [s.url(f"/page/{i}") for i in range(4)]
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(urls) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "evidence.cli", "batch", str(lst), "--out", str(out)]
    argv += ["--workers", "2", "--browser"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and find_packages(out) and tagged(env_tag, BROWSER_TOKEN)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The workers see their parent gone and take their browsers with them.
    deadline = time.monotonic() + 10
    while tagged(env_tag, CHROMIUM) or tagged(env_tag, WORKER):
        assert time.monotonic() < deadline, tagged(env_tag, CHROMIUM)
        time.sleep(0.05)
    assert 1 <= len(find_packages(out)) < 4
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming run" in done.stderr
    counts = packages_by_url(out)
    assert sorted(counts) == sorted(urls) and set(counts.values()) == {1}
    assert tagged(env_tag, CHROMIUM) == {}


def test_capture_options_reach_the_worker_processes_and_a_list_can_come_from_stdin(
    tmp_path, batch_site, cli, monkeypatch, caplog
):
    from evidence.manifest import Manifest
    from evidence.package import read_manifest_bytes

    from tsa import LocalTSA

    monkeypatch.setenv("EVIDENCE_PASSPHRASE", "correct horse battery")
    assert cli("keygen", tmp_path / "k.key").code == 0
    s = batch_site()
    urls = [s.url(f"/page/{i}") for i in range(3)]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(urls) + "\n"))
    tsa = LocalTSA()
    try:
        r = cli(
            "batch", "-", "--out", tmp_path / "o", "--key", tmp_path / "k.key",
            "--tsa", tsa.url, "--tsa-ca", tsa.root_pem, "--operator-name", "Ana",
            "--user-agent", "probe/1", "--max-redirects", 0, "--json",
        )  # fmt: skip
    finally:
        tsa.close()
    assert r.code == 0, r.err
    # Keys, roots and the operator crossed to the worker processes (no fallback to threads).
    assert "capturing in threads" not in caplog.text
    assert tsa.requests == 3
    for path in find_packages(tmp_path / "o"):
        manifest = Manifest.from_bytes(read_manifest_bytes(path))
        assert manifest.operator is not None and manifest.operator.name == "Ana"
        assert manifest.capture is not None and manifest.capture.user_agent == "probe/1"
        assert manifest.options["max_redirects"] == 0
    r = cli(
        "verify", tmp_path / "o", "--recursive", "--trust", tmp_path / "k.key.pub",
        "--tsa-ca", tsa.root_pem, "--require-timestamp",
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    # --public-only in the workers: loopback is refused, at once and for good.
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(urls) + "\n", encoding="utf-8")
    r = cli("batch", lst, "--out", tmp_path / "p", "--public-only", "--json")
    assert r.code == 1
    results = [json.loads(line) for line in r.out.splitlines()][:-1]
    assert {(x["kind"], x["attempts"]) for x in results} == {("refused-address", 1)}
    assert sum(s.hits.values()) == 3


def test_verify_recursive_on_a_terminal_shows_live_counts_and_each_failure(tmp_path, batch_site):
    import pty

    s = batch_site()
    urls = "\n".join(s.url(f"/page/{i}") for i in range(3))
    results = list(capture_many(io.StringIO(urls), out=tmp_path / "a", options=FAST))
    victim = Path(results[1].package) / "evidence" / "manifest.json"
    victim.write_bytes(victim.read_bytes().replace(b"page", b"PAGE", 1))
    master, replica = pty.openpty()
    argv = [sys.executable, "-m", "evidence.cli", "verify", str(tmp_path / "a"), "--recursive"]
    proc = subprocess.Popen(argv, stdin=replica, stdout=replica, stderr=replica)
    os.close(replica)
    screen = _read_terminal(master)
    assert proc.wait(timeout=60) == 1
    text = screen.decode("utf-8", "replace")
    assert "failed 1  intact-untrusted 2  left 0" in text and "ETA" in text
    # Each package that is not verified is printed as it finishes (wrapped at 80 columns).
    assert f"failed     {results[1].package}" in text.replace("\r\n", "")


def test_the_batch_process_itself_never_loads_the_http_stack(batch_site, tmp_path):
    # The scheduler starts workers and reads their claims; only workers fetch.
    # A top-level import in a capture module once pulled requests, urllib3 and
    # the fetcher into it: 5 MiB more and slower start-up for every batch.
    site = batch_site()
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{site.url(f'/page/{i}')}\n" for i in range(3)))
    probe = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('LOADED', sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('requests', 'urllib3', 'playwright', 'yt_dlp')"
        " or m == 'evidence.capturing.fetcher')))\n"
        f"sys.argv = ['evidence', 'batch', {str(urls)!r}, '--out', {str(tmp_path / 'out')!r},"
        " '--workers', '2']\n"
        "runpy.run_module('evidence.cli', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 captured" in proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout

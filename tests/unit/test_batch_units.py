"""evidence.batch and evidence.queue pieces that need no server: task checks, ids, CSV cells."""

from __future__ import annotations

import io
import math
import uuid

import pytest

from evidence.batch import (
    BatchResult,
    _csv_cell,
    _write_csv,
    find_packages,
    read_list,
    task_id_for,
)
from evidence.capturing import CaptureOptions
from evidence.errors import PackageError
from evidence.queue import TaskRefusedError, check_task, redact_url

TASK = str(uuid.uuid4())
URL = "https://example.org/"


def test_task_ids_are_deterministic_per_run_url_and_attempt():
    assert task_id_for("r", URL, 1) == task_id_for("r", URL, 1)
    assert len({task_id_for("r", URL, 1), task_id_for("r", URL, 2), task_id_for("s", URL, 1)}) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([URL, {"options": {"ca_bundle": "/etc/passwd"}}], "not allowed"),
        ([URL, {"options": {"unsafe_insecure": True}}], "not allowed"),
        ([URL, {"options": {"user_agent": "x"}}], "not allowed"),
        # Only the worker decides whether it captures with a browser.
        ([URL, {"options": {"browser": False}}], "not allowed"),
        ([URL, {"browser": True}], "unknown request fields"),
        ([URL, {"out": "/tmp/x"}], "unknown request fields"),
        ([URL, {}, "/tmp/x"], "exactly a URL"),
        ([URL], "exactly a URL"),
        (["file:///etc/passwd", {}], "bad URL"),
        ([URL, {"options": {"deadline": "10"}}], "must be a number"),
        ([URL, {"options": {"deadline": True}}], "must be a number"),
        ([URL, {"options": {"deadline": math.inf}}], "out of range"),
        ([URL, {"options": {"max_redirects": -1}}], "out of range"),
        ([URL, {"options": {"max_redirects": 2.5}}], "integer"),
        ([URL, {"options": {"requisites": 1}}], "true or false"),
        ([URL, {"final": "yes"}], "boolean"),
        ([URL, {"labels": {"case": 7}}], "labels"),
        ([URL, {"labels": {str(i): "x" for i in range(40)}}], "labels"),
        (["x" * 9000, {}], "too long"),
    ],
)
def test_forged_tasks_are_refused(args, message):
    with pytest.raises(TaskRefusedError, match=message):
        check_task(TASK, args, CaptureOptions())


def test_a_task_id_must_be_a_uuid():
    for bad in ("../../etc", "", None, TASK.upper()):
        with pytest.raises(TaskRefusedError, match="UUID"):
            check_task(bad, [URL, {}], CaptureOptions())


def test_a_task_can_only_tighten_the_workers_options():
    worker = CaptureOptions(public_only=True, deadline=30, requisites=False)
    url, options, final, labels = check_task(
        TASK,
        [
            URL,
            {
                "options": {
                    "public_only": False,
                    "requisites": True,
                    "deadline": 1000,
                    "max_redirects": 3,
                },
                "final": False,
                "labels": {"case": "C-1"},
            },
        ],
        worker,
    )
    assert url == URL and final is False and labels == {"case": "C-1"}
    assert options.public_only is True
    assert options.requisites is False
    assert options.deadline == 30
    assert options.max_redirects == 3


def test_redact_url_hides_the_password_only():
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("amqp://user:pw@host//") == "amqp://user:***@host//"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_batch_result_from_json_is_strict():
    good = BatchResult(url=URL, status="captured", attempts=2, labels={"a": "b"}).to_json()
    assert BatchResult.from_json(good).labels == {"a": "b"}
    for bad in ([], {"status": "captured"}, {**good, "attempts": "2"}, {**good, "url": 5}):
        with pytest.raises(PackageError):
            BatchResult.from_json(bad)


def test_csv_cells_that_would_run_as_formulas_are_neutralised(tmp_path):
    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _csv_cell("https://x/") == "https://x/"
    path = tmp_path / "r.csv"
    _write_csv(path, [BatchResult(url=URL, status="failed", error="@SUM(A1)", labels={"n": "+1"})])
    text = path.read_text(encoding="utf-8")
    assert "'@SUM(A1)" in text and "'+1" in text


def test_find_packages_skips_hidden_directories_and_symlinks(tmp_path, sealed_package):
    import shutil

    shutil.copytree(sealed_package, tmp_path / "a" / sealed_package.name)
    shutil.copytree(sealed_package, tmp_path / ".hidden" / sealed_package.name)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert find_packages(tmp_path) == [tmp_path / "a" / sealed_package.name]
    with pytest.raises(PackageError):
        find_packages(tmp_path / "missing")


def test_list_from_a_stream_and_a_bom(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_bytes(b"\xef\xbb\xbfhttps://example.org/a\n")
    assert [i.url for i in read_list(lst).items] == ["https://example.org/a"]
    assert len(read_list(io.StringIO("https://a.example/\n\n# c\n")).items) == 1


class OnlyInThisProcess:
    """Pickles here; a worker process cannot load it (its module is not on its path)."""


def test_worker_processes_that_cannot_start_are_one_usage_error(tmp_path):
    from evidence.batch import BatchItem, ProcessExecutor
    from evidence.errors import UsageError

    executor = ProcessExecutor(2, tmp_path, {"options": OnlyInThisProcess()})
    try:
        executor.submit(BatchItem(url=URL, line=1), TASK, final=True)
        with pytest.raises(UsageError, match="could not start"):
            for _ in range(60):
                executor.wait(1.0)
    finally:
        executor.close()
    assert not list(tmp_path.iterdir())


def test_arguments_that_cannot_go_to_another_process_fall_back_to_threads(tmp_path):
    from evidence.batch import LocalExecutor, _local_executor

    class Local:
        pass

    executor = _local_executor(1, tmp_path, {"options": Local()})
    try:
        assert isinstance(executor, LocalExecutor)
    finally:
        executor.close()

"""Batch capture that survives crashes, batch verification, and archive listings.

Three public functions (docs/batch.md)::

    capture_many(LIST, out=DIR, ...)   captures every URL of a list, yields results as they finish
    verify_many(DIR, trust=...)        verifies every package under a directory, in parallel
    list_packages(DIR)                 one entry per package, read from the manifests

How a batch survives a crash. The run's state is a SQLite database (WAL mode)
under ``DIR/.evidence-batch/``; the main thread is its only writer. Every
attempt at a URL has a deterministic *task id* (run, URL, attempt number).
One attempt is :func:`capture_one`, which local workers and Celery workers
(:mod:`evidence.queue`) share:

1. a *claim* file for the task id already exists: the attempt finished
   before (perhaps in a process that was killed); finish placing its package
   and return what the claim records;
2. capture into ``.evidence-batch/incoming/<task id>/<random>/`` (hidden, so
   never counted as a package);
3. a transient answer (5xx, 429) that will be retried is discarded there;
4. claim the task: write the claim under a temporary name and ``link`` it to
   ``claims/<task id>.json``, which fails if another process claimed first
   (then this copy is discarded and theirs is returned);
5. rename the package into ``DIR`` and log it in ``DIR``'s ledger if it has
   one (the capture went to the staging directory, which has no ledger);
6. write ``claims/<task id>.placed``.

A ``kill -9`` anywhere leaves either no claim (the attempt is simply run
again) or a claim whose package step 1 puts in place: each URL ends with
exactly one package.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import queue
import secrets
import shutil
import sqlite3
import threading
import time
import typing
import urllib.parse
import uuid
from pathlib import Path

import attrs

from evidence import clock
from evidence.errors import CaptureError, EvidenceError, PackageError, StorageError, UsageError
from evidence.manifest import MAX_LABEL_CHARS, MAX_LABELS

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.capturing import CaptureOptions, CaptureResult, Operator
    from evidence.keys import Keyring
    from evidence.verifying import Report

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_DIR",
    "BatchList",
    "BatchResult",
    "ListProblem",
    "PackageEntry",
    "capture_many",
    "capture_one",
    "find_packages",
    "list_packages",
    "read_list",
    "verify_many",
]

STATE_DIR = ".evidence-batch"
STATE_DB = "state.sqlite"
# Caps on what a list can make us hold: it is often pasted from a spreadsheet
# someone else filled in.
MAX_LIST_BYTES = 64 * 1024 * 1024
MAX_LINE_CHARS = 8192
# Statuses worth asking again later; any other answer (404 included) is final.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Failure kinds that may pass later; invalid URLs, refused addresses, TLS
# failures, limits and full disks will not.
TRANSIENT_KINDS = frozenset({"timeout", "refused", "dns", "http", "proxy"})
_TASK_NAMESPACE = uuid.UUID("6f1c2a44-6c1e-4d0b-9a57-0e5b7d2f3a10")
MAX_WALK_DEPTH = 16


# --- lists -------------------------------------------------------------------


@attrs.frozen
class ListProblem:
    """A line of a list that was skipped, and why."""

    line: int
    text: str
    reason: str


@attrs.frozen
class BatchItem:
    """One URL to capture, with the caller's labels (the list's other CSV columns)."""

    url: str
    line: int
    labels: typing.Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class BatchList:
    """A parsed list: the URLs in order, duplicates removed, and the lines skipped."""

    items: tuple[BatchItem, ...]
    problems: tuple[ListProblem, ...]
    duplicates: int

    @property
    def digest(self) -> str:
        """SHA-256 of the URLs in order: the same list resumes the same run."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.url.encode("utf-8", "surrogatepass") + b"\n")
        return h.hexdigest()


def _read_text(source: str | os.PathLike[str] | typing.TextIO) -> str:
    if not isinstance(source, (str, os.PathLike)):
        data = source.read(MAX_LIST_BYTES + 1)
        if len(data) > MAX_LIST_BYTES:
            raise UsageError(f"the list is larger than {MAX_LIST_BYTES} bytes")
        return data
    try:
        with open(source, "rb") as fh:
            raw = fh.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the list {source}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_LIST_BYTES:
        raise UsageError(f"{source}: larger than {MAX_LIST_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source}: not UTF-8 text (byte {exc.start})") from exc


def _looks_like_csv(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            header = next(csv.reader([stripped]))
        except csv.Error:
            return False
        return any(h.strip().lower() == "url" for h in header)
    return False


def read_list(source: str | os.PathLike[str] | typing.TextIO) -> BatchList:
    """Parse a list of URLs: a text file (one URL a line, ``#`` comments, blank
    lines) or a CSV whose header has a ``url`` column (other columns become labels).

    Invalid lines are reported with their line number and skipped, never fatal;
    duplicates are kept once (the first occurrence).

    Raises:
        UsageError: the list cannot be read, is not UTF-8, or is too large.
    """
    from evidence.capturing import validate_url

    text = _read_text(source)
    items: list[BatchItem] = []
    problems: list[ListProblem] = []
    seen: set[str] = set()
    duplicates = 0

    def add(url: str, line: int, labels: dict[str, str]) -> None:
        nonlocal duplicates
        if len(url) > MAX_LINE_CHARS:
            problems.append(ListProblem(line, url[:80], f"longer than {MAX_LINE_CHARS} characters"))
            return
        try:
            url = validate_url(url)
        except CaptureError as exc:
            problems.append(ListProblem(line, url[:200], exc.cause))
            return
        if url in seen:
            duplicates += 1
            return
        seen.add(url)
        items.append(BatchItem(url=url, line=line, labels=labels))

    if _looks_like_csv(text):
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
        body = [
            (n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")
        ]
        try:
            rows = list(csv.reader(io.StringIO("\n".join(line for _, line in body))))
        except csv.Error as exc:
            raise UsageError(f"the CSV list cannot be read: {exc}") from exc
        if len(rows) != len(body):
            # A quoted field spanning lines: keep going, line numbers become approximate.
            body = body[: len(rows)]
        header = [h.strip() for h in rows[0]]
        url_col = [h.lower() for h in header].index("url")
        for (number, _), row in zip(body[1:], rows[1:], strict=False):
            if len(row) <= url_col or not row[url_col].strip():
                problems.append(ListProblem(number, ",".join(row)[:200], "no url in this row"))
                continue
            labels = {
                header[i][:MAX_LABEL_CHARS]: value[:MAX_LABEL_CHARS]
                for i, value in enumerate(row[: MAX_LABELS + 1])
                if i != url_col and i < len(header) and header[i] and value
            }
            add(row[url_col], number, labels)
    else:
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            add(stripped, number, {})
    return BatchList(items=tuple(items), problems=tuple(problems), duplicates=duplicates)


# --- one attempt -------------------------------------------------------------


@attrs.frozen
class BatchResult:
    """What became of one URL.

    Attributes:
        url: the URL as listed.
        status: ``captured`` (a package was written) or ``failed`` (none was).
        package: the package directory, or "" when none was written.
        package_id: its id.
        manifest_sha256: SHA-256 of its ``manifest.json``.
        http_status: the HTTP status of the page, 0 when there was none.
        error: why no package was written, or a note (e.g. "HTTP 503 after 3 attempts").
        kind: the :data:`~evidence.errors.CAPTURE_ERROR_KINDS` of a failure.
        attempts: attempts made in this run.
        labels: the list's other columns for this URL.
        signers: key ids that signed the package.
        task_id: the id of the attempt that gave this result.
        retry: True when the attempt's answer was transient and was discarded.
    """

    url: str
    status: str
    package: str = ""
    package_id: str = ""
    manifest_sha256: str = ""
    http_status: int = 0
    error: str = ""
    kind: str = ""
    attempts: int = 1
    labels: typing.Mapping[str, str] = attrs.field(factory=dict)
    signers: tuple[str, ...] = ()
    task_id: str = ""
    retry: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "captured"

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "url": self.url,
            "status": self.status,
            "package": self.package,
            "package_id": self.package_id,
            "manifest_sha256": self.manifest_sha256,
            "http_status": self.http_status,
            "error": self.error,
            "kind": self.kind,
            "attempts": self.attempts,
            "labels": dict(self.labels),
            "signers": list(self.signers),
            "task_id": self.task_id,
            "retry": self.retry,
        }

    @classmethod
    def from_json(cls, doc: typing.Any) -> BatchResult:
        """Rebuild from :meth:`to_json` output (a claim file or a task's result); strict."""
        if not isinstance(doc, dict):
            raise PackageError("a batch result is not a JSON object")
        try:
            return cls(
                url=_s(doc["url"]),
                status=_s(doc["status"]),
                package=_s(doc.get("package", "")),
                package_id=_s(doc.get("package_id", "")),
                manifest_sha256=_s(doc.get("manifest_sha256", "")),
                http_status=_i(doc.get("http_status", 0)),
                error=_s(doc.get("error", "")),
                kind=_s(doc.get("kind", "")),
                attempts=_i(doc.get("attempts", 1)),
                labels={_s(k): _s(v) for k, v in dict(doc.get("labels", {})).items()},
                signers=tuple(_s(s) for s in doc.get("signers", [])),
                task_id=_s(doc.get("task_id", "")),
                retry=bool(doc.get("retry", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"a batch result is malformed: {exc}") from exc


def _s(value: typing.Any) -> str:
    if not isinstance(value, str) or len(value) > 4 * MAX_LINE_CHARS:
        raise ValueError("expected a string")
    return value


def _i(value: typing.Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def task_id_for(run_id: str, url: str, attempt: int) -> str:
    """The deterministic id of one attempt: the same run, URL and attempt give the same id."""
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{run_id}\n{attempt}\n{url}"))


def _state_dir(out: Path) -> Path:
    return out / STATE_DIR


def _claim_path(out: Path, task_id: str) -> Path:
    if not _is_uuid(task_id):
        raise UsageError(f"not a task id: {task_id!r}")
    return _state_dir(out) / "claims" / f"{task_id}.json"


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except (ValueError, TypeError, AttributeError):
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_claim(path: Path) -> BatchResult | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(256 * 1024)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return BatchResult.from_json(json.loads(data))
    except ValueError as exc:
        raise StorageError(f"{path}: not a valid claim: {exc}") from exc


def _write_claim(path: Path, result: BatchResult) -> bool:
    """Create the claim atomically with its content; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
    try:
        with open(tmp, "xb") as fh:
            fh.write(json.dumps(result.to_json(), ensure_ascii=True).encode("ascii"))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _place(out: Path, claim: Path, result: BatchResult) -> BatchResult:
    """Steps 5 and 6: the claimed package into ``out``, into the ledger, then marked placed."""
    placed = claim.with_suffix(".placed")
    final = out / result.package_id
    if not placed.exists():
        staged = _state_dir(out) / "incoming" / result.task_id
        if not final.exists():
            found = [p for p in staged.glob(f"*/{result.package_id}") if p.is_dir()]
            if not found:
                raise StorageError(
                    f"task {result.task_id}: claimed package {result.package_id} is missing"
                )
            os.rename(found[0], final)
            _fsync_dir(out)
        from evidence.ledger import append_if_present

        # capture() logged nothing: it wrote to the staging directory, which
        # has no ledger. Logging the same package twice is a no-op.
        append_if_present(out, final)
        placed.touch()
        shutil.rmtree(staged, ignore_errors=True)
    return attrs.evolve(result, package=str(final))


def capture_one(
    url: str,
    *,
    out: str | os.PathLike[str],
    task_id: str,
    options: CaptureOptions | None = None,
    operator: Operator | None = None,
    sign_with: typing.Sequence[Ed25519PrivateKey] = (),
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    discard_transient: bool = False,
    labels: typing.Mapping[str, str] | None = None,
    seal_operator_to: typing.Sequence[str] = (),
) -> BatchResult:
    """One attempt at ``url`` under ``task_id``; safe to repeat after a crash (module docstring).

    Never raises for a URL that cannot be captured: the result says ``failed``.

    Raises:
        StorageError: the output or state directory cannot be written.
        UsageError: ``task_id`` is not a UUID, or a capture argument is unusable.
    """
    from evidence.capturing import capture

    root = Path(out)
    claim = _claim_path(root, task_id)
    labels = dict(labels or {})
    previous = _read_claim(claim)
    if previous is not None:
        return _place(root, claim, previous)
    staging = _state_dir(root) / "incoming" / task_id / secrets.token_hex(6)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise StorageError(f"cannot create {staging}: {exc.strerror or exc}") from exc
    try:
        try:
            got: CaptureResult = capture(
                url,
                out=staging,
                options=options,
                operator=operator,
                sign_with=sign_with,
                tsa_urls=tsa_urls,
                tsa_roots=tsa_roots,
                labels=labels or None,
                seal_operator_to=seal_operator_to,
            )
        except CaptureError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.parent.rmdir()
            if exc.kind == "disk":
                raise StorageError(f"cannot write in {root}: {exc.cause}") from exc
            return BatchResult(
                url=url,
                status="failed",
                error=exc.cause,
                kind=exc.kind,
                labels=labels,
                task_id=task_id,
                retry=exc.kind in TRANSIENT_KINDS,
            )
        transient = got.status in TRANSIENT_STATUSES
        if transient and discard_transient:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.parent.rmdir()
            return BatchResult(
                url=url,
                status="failed",
                http_status=got.status,
                error=f"HTTP {got.status}",
                kind="http-status",
                labels=labels,
                task_id=task_id,
                retry=True,
            )
        result = BatchResult(
            url=url,
            status="captured",
            package=str(root / got.package_id),
            package_id=got.package_id,
            manifest_sha256=got.manifest_sha256,
            http_status=got.status,
            error=f"HTTP {got.status}" if transient else "",
            labels=labels,
            signers=got.signers,
            task_id=task_id,
        )
        if not _write_claim(claim, result):
            # Another process (a redelivered task) finished this attempt first.
            shutil.rmtree(staging, ignore_errors=True)
            other = _read_claim(claim)
            if other is None:
                raise StorageError(f"{claim} vanished")
            return _place(root, claim, other)
        return _place(root, claim, result)
    except OSError as exc:
        raise StorageError(f"cannot write in {root}: {exc.strerror or exc}") from exc


# --- the run's state -----------------------------------------------------------


class _State:
    """The SQLite state of the runs in one output directory (main thread only)."""

    def __init__(self, out: Path) -> None:
        state_dir = _state_dir(out)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot use {state_dir}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock)
            raise UsageError(f"another batch is running in {out}") from exc
        try:
            self.db = sqlite3.connect(state_dir / STATE_DB, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(
                """
                CREATE TABLE IF NOT EXISTS runs(
                    run TEXT PRIMARY KEY, digest TEXT, started TEXT, finished TEXT);
                CREATE TABLE IF NOT EXISTS items(
                    run TEXT, url TEXT, line INTEGER, labels TEXT, status TEXT,
                    attempts INTEGER, task_id TEXT, result TEXT, updated TEXT,
                    PRIMARY KEY(run, url));
                """
            )
        except sqlite3.Error as exc:
            self.close()
            raise StorageError(f"the batch state in {state_dir} cannot be used: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        with contextlib.suppress(OSError):
            os.close(self._lock)

    def run_for(self, batch_list: BatchList, new_run: bool) -> tuple[str, bool]:
        """The unfinished run of the same list (resumed), or a new one."""
        digest = batch_list.digest
        if not new_run:
            row = self.db.execute(
                "SELECT run FROM runs WHERE digest=? AND finished IS NULL "
                "ORDER BY started DESC LIMIT 1",
                (digest,),
            ).fetchone()
            if row is not None:
                return str(row[0]), True
        run = clock.now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, NULL)", (run, digest, clock.now_iso())
            )
            self.db.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, 'pending', 0, '', '', ?)",
                [
                    (run, i.url, i.line, json.dumps(dict(i.labels)), clock.now_iso())
                    for i in batch_list.items
                ],
            )
        return run, False

    def rows(self, run: str) -> list[tuple[str, int, dict[str, str], str, int, str, str]]:
        out = []
        for url, line, labels, status, attempts, task_id, result in self.db.execute(
            "SELECT url, line, labels, status, attempts, task_id, result FROM items "
            "WHERE run=? ORDER BY line",
            (run,),
        ):
            out.append((url, line, json.loads(labels), status, attempts, task_id, result))
        return out

    def update(
        self, run: str, url: str, status: str, attempts: int, task_id: str, result: str
    ) -> None:
        self.db.execute(
            "UPDATE items SET status=?, attempts=?, task_id=?, result=?, updated=? "
            "WHERE run=? AND url=?",
            (status, attempts, task_id, result, clock.now_iso(), run, url),
        )

    def finish(self, run: str) -> None:
        self.db.execute("UPDATE runs SET finished=? WHERE run=?", (clock.now_iso(), run))


# --- executors: where attempts run ---------------------------------------------


class Executor(typing.Protocol):
    """Runs attempts: local threads here, Celery workers in :mod:`evidence.queue`."""

    def submit(self, item: BatchItem, task_id: str, final: bool) -> None: ...

    def wait(self, timeout: float) -> list[tuple[str, BatchResult | BaseException]]:
        """Finished attempts as (task id, result or error); empty after ``timeout``."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """A pool of daemon threads calling :func:`capture_one`.

    Daemon threads: on Ctrl-C the process leaves without waiting for running
    captures; their temporary directories are removed on the next run.
    """

    def __init__(self, workers: int, out: Path, capture_kwargs: dict[str, typing.Any]) -> None:
        self._jobs: queue.Queue[tuple[BatchItem, str, bool] | None] = queue.Queue()
        self._done: queue.Queue[tuple[str, BatchResult | BaseException]] = queue.Queue()
        self._out = out
        self._kwargs = capture_kwargs
        self._threads = [
            threading.Thread(target=self._work, name=f"evidence-batch-{n}", daemon=True)
            for n in range(workers)
        ]
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            item, task_id, final = job
            outcome: BatchResult | BaseException
            try:
                outcome = capture_one(
                    item.url,
                    out=self._out,
                    task_id=task_id,
                    discard_transient=not final,
                    labels=item.labels,
                    **self._kwargs,
                )
            except BaseException as exc:  # handed to the main thread, which decides
                outcome = exc
            self._done.put((task_id, outcome))

    def submit(self, item: BatchItem, task_id: str, final: bool) -> None:
        self._jobs.put((item, task_id, final))

    def wait(self, timeout: float) -> list[tuple[str, BatchResult | BaseException]]:
        try:
            got = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                got.append(self._done.get_nowait())
            except queue.Empty:
                return got

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


# --- the batch -----------------------------------------------------------------


def host_of(url: str) -> str:
    """The host (and port) a URL's politeness limits count against."""
    parts = urllib.parse.urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or ''}"


@attrs.define
class BatchRun:
    """A batch in progress: what the caller's progress display reads.

    Attributes:
        run_id: the run's id (resumed runs keep theirs).
        resumed: True when an unfinished run of the same list was resumed.
        total: URLs in the list (after duplicates and invalid lines).
        skipped: results of URLs finished before this invocation (resume).
        running: URL being captured per task id, right now.
        problems: lines of the list that were skipped.
        duplicates: duplicate lines dropped.
        csv_path: ``DIR/batch-<run>.csv``, written when the batch ends.
    """

    run_id: str
    resumed: bool
    total: int
    skipped: list[BatchResult]
    problems: tuple[ListProblem, ...]
    duplicates: int
    csv_path: Path
    running: dict[str, str] = attrs.field(factory=dict)
    waiting: int = 0


def capture_many(
    source: str | os.PathLike[str] | typing.TextIO | BatchList,
    *,
    out: str | os.PathLike[str],
    options: CaptureOptions | None = None,
    operator: Operator | None = None,
    sign_with: typing.Sequence[Ed25519PrivateKey] = (),
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    workers: int = 4,
    per_host: int = 2,
    delay: float = 0.0,
    retries: int = 2,
    backoff: float = 2.0,
    new_run: bool = False,
    executor: Executor | None = None,
    on_start: typing.Callable[[BatchRun], None] | None = None,
    seal_operator_to: typing.Sequence[str] = (),
) -> typing.Iterator[BatchResult]:
    """Capture every URL of a list into ``out``, yielding each URL's final result as it finishes.

    Run it again after a crash (or Ctrl-C, or ``kill -9``) with the same list
    and ``out``: URLs already captured are skipped, the rest are retried.

    Args:
        source: a list file, an open text stream, or a :class:`BatchList`.
        out: the archive directory (its state lives in ``out/.evidence-batch/``).
        options, operator, sign_with, tsa_urls, tsa_roots: as for :func:`evidence.capture`.
        workers: captures at once.
        per_host: captures of one host at once (host and port of the listed URL).
        delay: seconds between the starts of two captures of one host.
        retries: further attempts after a transient failure (timeouts, refused
            connections, 5xx and 429 answers); never after a 404 or an invalid URL.
        backoff: seconds before the first retry, doubled for each next one.
        new_run: start a new run even if one of the same list is unfinished.
        executor: where attempts run (default: ``workers`` local threads).
        on_start: called with the :class:`BatchRun` once the state is read and
            after every change (an attempt started or finished), for progress.
        seal_operator_to: as for :func:`evidence.capture` (checked before
            anything starts; with a Celery executor each worker seals with its own).

    Raises:
        UsageError: bad arguments, an unreadable list, or another batch running in ``out``.
        StorageError: the state or a package cannot be written (the batch stops;
            run it again to resume).
    """
    if workers < 1 or per_host < 1 or retries < 0 or delay < 0 or backoff < 0:
        raise UsageError("workers and per_host must be >= 1; retries, delay, backoff >= 0")
    if seal_operator_to:
        from evidence.sealing import check_recipients

        seal_operator_to = check_recipients(seal_operator_to)
        if operator is None:
            raise UsageError("seal_operator_to needs an operator name or organization to seal")
    batch_list = source if isinstance(source, BatchList) else read_list(source)
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {root}: {exc.strerror or exc}") from exc
    state = _State(root)
    own_executor = executor is None
    try:
        run_id, resumed = state.run_for(batch_list, new_run)
        # Attempts that died before claiming left staging directories; nothing
        # else writes here while we hold the lock (Celery workers only write
        # under their own task ids, which a resumed run re-sends).
        if own_executor:
            _clean_staging(root)
        pending: collections.deque[tuple[BatchItem, int, float]] = collections.deque()
        skipped: list[BatchResult] = []
        for url, line, labels, status, _attempts, _task, result in state.rows(run_id):
            if status == "done":
                skipped.append(BatchResult.from_json(json.loads(result)))
            else:
                pending.append((BatchItem(url=url, line=line, labels=labels), 0, 0.0))
        run = BatchRun(
            run_id=run_id,
            resumed=resumed,
            total=len(batch_list.items) if not resumed else len(skipped) + len(pending),
            skipped=skipped,
            problems=batch_list.problems,
            duplicates=batch_list.duplicates,
            csv_path=root / f"batch-{run_id}.csv",
        )
        run.waiting = len(pending)
        if executor is None:
            executor = LocalExecutor(
                workers,
                root,
                {
                    "options": options,
                    "operator": operator,
                    "sign_with": sign_with,
                    "tsa_urls": tsa_urls,
                    "tsa_roots": tsa_roots,
                    "seal_operator_to": seal_operator_to,
                },
            )
        if on_start is not None:
            on_start(run)
        yield from _schedule(
            state, run, executor, pending, workers, per_host, delay, retries, backoff, on_start
        )
        if all(r.ok for r in _results(state, run_id)):
            state.finish(run_id)
        _write_csv(run.csv_path, _results(state, run_id))
    finally:
        if own_executor and executor is not None:
            executor.close()
        state.close()


def _schedule(
    state: _State,
    run: BatchRun,
    executor: Executor,
    pending: collections.deque[tuple[BatchItem, int, float]],
    workers: int,
    per_host: int,
    delay: float,
    retries: int,
    backoff: float,
    on_change: typing.Callable[[BatchRun], None] | None,
) -> typing.Iterator[BatchResult]:
    by_host: collections.Counter[str] = collections.Counter()
    next_start: dict[str, float] = {}
    in_flight: dict[str, tuple[BatchItem, int]] = {}
    while pending or in_flight:
        now = time.monotonic()
        soonest = now + 1.0
        launched = False
        for _ in range(len(pending)):
            if len(in_flight) >= workers:
                break
            item, attempt, not_before = entry = pending.popleft()
            host = host_of(item.url)
            ready_at = max(not_before, next_start.get(host, 0.0))
            if by_host[host] >= per_host or ready_at > now:
                if ready_at > now:
                    soonest = min(soonest, ready_at)
                pending.append(entry)
                continue
            attempt += 1
            task_id = task_id_for(run.run_id, item.url, attempt)
            state.update(run.run_id, item.url, "running", attempt, task_id, "")
            executor.submit(item, task_id, final=attempt > retries)
            in_flight[task_id] = (item, attempt)
            by_host[host] += 1
            next_start[host] = now + delay
            run.running[task_id] = item.url
            run.waiting = len(pending)
            launched = True
        if launched and on_change is not None:
            on_change(run)
        for task_id, outcome in executor.wait(max(0.01, soonest - time.monotonic())):
            if task_id not in in_flight:
                continue  # a late duplicate
            item, attempt = in_flight.pop(task_id)
            by_host[host_of(item.url)] -= 1
            run.running.pop(task_id, None)
            if isinstance(outcome, BaseException):
                if isinstance(outcome, EvidenceError) and not isinstance(
                    outcome, (StorageError, UsageError)
                ):
                    outcome = BatchResult(
                        url=item.url, status="failed", error=str(outcome), kind="other"
                    )
                else:
                    raise outcome
            result = attrs.evolve(outcome, url=item.url, attempts=attempt, labels=item.labels)
            if result.retry and attempt <= retries:
                wait = backoff * (2 ** (attempt - 1))
                logger.info("retrying %s in %.1fs: %s", item.url, wait, result.error)
                state.update(run.run_id, item.url, "pending", attempt, task_id, "")
                pending.append((item, attempt, time.monotonic() + wait))
                run.waiting = len(pending)
                continue
            if result.retry and result.status == "failed" and attempt > 1:
                result = attrs.evolve(result, error=f"{result.error} after {attempt} attempts")
            state.update(
                run.run_id,
                item.url,
                "done" if result.ok else "failed",
                attempt,
                task_id,
                json.dumps(result.to_json(), ensure_ascii=True),
            )
            run.waiting = len(pending)
            if on_change is not None:
                on_change(run)
            yield result


def _results(state: _State, run_id: str) -> list[BatchResult]:
    out = []
    for url, _line, labels, status, attempts, _task, result in state.rows(run_id):
        if result:
            out.append(BatchResult.from_json(json.loads(result)))
        else:
            out.append(BatchResult(url=url, status=status, attempts=attempts, labels=labels))
    return out


def _clean_staging(root: Path) -> None:
    incoming = _state_dir(root) / "incoming"
    claims = _state_dir(root) / "claims"
    with contextlib.suppress(OSError):
        for entry in os.scandir(incoming):
            if not (claims / f"{entry.name}.json").exists():
                shutil.rmtree(entry.path, ignore_errors=True)


CSV_COLUMNS = (
    "url",
    "package",
    "status",
    "error",
    "manifest_sha256",
    "http_status",
    "attempts",
    "signers",
)


def _csv_cell(text: str) -> str:
    # A cell that starts like a formula would run in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _write_csv(path: Path, results: typing.Sequence[BatchResult]) -> None:
    labels = sorted({k for r in results for k in r.labels})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *labels])
    for r in results:
        writer.writerow(
            [
                _csv_cell(v)
                for v in (
                    r.url,
                    r.package,
                    r.status,
                    r.error,
                    r.manifest_sha256,
                    str(r.http_status or ""),
                    str(r.attempts),
                    " ".join(r.signers),
                    *(r.labels.get(k, "") for k in labels),
                )
            ]
        )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


# --- reading an archive: find, list, verify ----------------------------------------


def find_packages(root: str | os.PathLike[str]) -> list[Path]:
    """Every finished package under ``root`` (itself included), sorted.

    Hidden and temporary directories (names starting with ``.``) and symbolic
    links are never entered; a package's own directories are not searched.
    """
    from evidence.package import is_package

    start = Path(root)
    if not start.is_dir():
        raise PackageError(f"{start}: no such directory")
    found: list[Path] = []

    def walk(path: Path, depth: int) -> None:
        if is_package(path):
            found.append(path)
            return
        if depth >= MAX_WALK_DEPTH:
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            walk(Path(entry.path), depth + 1)

    walk(start, 0)
    return found


def verify_many(
    root: str | os.PathLike[str] | typing.Sequence[str | os.PathLike[str]],
    *,
    trust: Keyring | typing.Sequence[str | os.PathLike[str]],
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    require_timestamp: bool = False,
    workers: int = 4,
) -> typing.Iterator[tuple[Path, Report]]:
    """Verify every package under ``root`` (or each path of a list) in parallel.

    Yields (package path, report) as each finishes; like :func:`evidence.verify`
    it never raises for bad package content.

    Raises:
        PackageError: ``root`` is not a directory.
        UsageError: a trusted key lies inside one of the packages.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from evidence.keys import Keyring
    from evidence.verifying import verify
    from evidence.verifying.policy import refuse_inside_package

    if isinstance(root, (str, os.PathLike)):
        paths = find_packages(root)
    else:
        paths = [Path(p) for p in root]
    if not isinstance(trust, Keyring):
        for p in paths:
            refuse_inside_package(str(p), [str(t) for t in trust], "trusted key")
        trust = Keyring.from_paths([str(t) for t in trust])
    keyring = trust
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(
                verify,
                p,
                trust=keyring,
                tsa_roots=tsa_roots,
                require_timestamp=require_timestamp,
            ): p
            for p in paths
        }
        for future in as_completed(futures):
            yield futures[future], future.result()


@attrs.frozen
class PackageEntry:
    """One package as its manifest describes it (unverified: ``evidence verify`` checks it).

    Attributes:
        path, package_id, created, url, final_url, http_status: from the manifest
            (the URLs are the site's text: show them through ``display.safe``).
        signatures: signature files present (not checked).
        timestamps: timestamp tokens present (not checked).
        error: why the manifest could not be read ("" when it could).
    """

    path: str
    package_id: str
    created: str = ""
    url: str = ""
    final_url: str = ""
    http_status: int = 0
    signatures: int = 0
    timestamps: int = 0
    error: str = ""

    def to_json(self) -> dict[str, typing.Any]:
        return attrs.asdict(self)


def _count_files(directory: Path, suffix: str) -> int:
    try:
        return sum(
            1
            for e in os.scandir(directory)
            if e.name.endswith(suffix) and e.is_file(follow_symlinks=False)
        )
    except OSError:
        return 0


def list_packages(
    root: str | os.PathLike[str], *, url_contains: str | None = None
) -> list[PackageEntry]:
    """One entry per package under ``root``, in capture order, read from the manifests.

    Raises:
        PackageError: ``root`` is not a directory.
    """
    from evidence.manifest import Manifest
    from evidence.package import read_manifest_bytes

    entries = []
    for path in find_packages(root):
        try:
            manifest = Manifest.from_bytes(read_manifest_bytes(path))
        except EvidenceError as exc:
            entries.append(PackageEntry(path=str(path), package_id=path.name, error=str(exc)))
            continue
        info = manifest.capture
        if info is None:
            entries.append(
                PackageEntry(path=str(path), package_id=path.name, error="no capture record")
            )
            continue
        entry = PackageEntry(
            path=str(path),
            package_id=manifest.package_id,
            created=manifest.created,
            url=info.requested_url,
            final_url=info.final_url,
            http_status=info.status,
            signatures=_count_files(path / "evidence" / "signatures", ".sig"),
            timestamps=_count_files(path / "evidence" / "timestamps", ".tsr"),
        )
        if url_contains is not None and url_contains not in entry.url + " " + entry.final_url:
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.created, e.package_id))
    return entries

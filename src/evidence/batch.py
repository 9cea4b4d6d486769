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
4. claim the task: write the claim under a temporary name, fsync it together
   with the staging directory (which makes step 2's final rename durable),
   and ``link`` it to ``claims/<task id>.json``, which fails if another
   process claimed first (then this copy is discarded and theirs is returned);
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
import selectors
import shutil
import signal
import sqlite3
import sys
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

    from evidence.capturing import BrowserOptions, CaptureOptions, CaptureResult, Operator
    from evidence.capturing.options import MediaOptions
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
    "check_before_any_url",
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


# The batch's own directories (incoming/, the state directory) are made once
# and need fsyncing once per process, not in every capture's round.
_synced_once: set[Path] = set()


def _once(directory: Path) -> list[Path]:
    """``[directory]`` until an fsync of it has succeeded (see :func:`_synced`), then ``[]``."""
    return [] if directory in _synced_once else [directory]


def _synced(directories: typing.Iterable[Path]) -> None:
    _synced_once.update(directories)


def _write_claim(path: Path, result: BatchResult, sync_first: typing.Sequence[Path] = ()) -> bool:
    """Create the claim atomically with its content; False if it already exists.

    ``sync_first``: directories to fsync before the claim appears, together
    with the claim's content (one round of fsyncs instead of two).
    """
    from evidence.package import fsync_paths

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
    try:
        with open(tmp, "xb") as fh:
            fh.write(json.dumps(result.to_json(), ensure_ascii=True).encode("ascii"))
        fsync_paths([tmp, *sync_first])
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        # claims/ itself may be new (the batch's first claim): its entry too.
        state = _once(path.parent.parent)
        fsync_paths([path.parent, *state])
        _synced(state)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _place(out: Path, claim: Path, result: BatchResult, package: Path | None = None) -> BatchResult:
    """Steps 5 and 6: the claimed package into ``out``, into the ledger, then marked placed.

    ``package``: where this process staged it; found under the task's
    staging directory when not given (a claim left by an earlier process).
    """
    placed = claim.with_suffix(".placed")
    final = out / result.package_id
    if not placed.exists():
        staged = _state_dir(out) / "incoming" / result.task_id
        if not final.exists():
            found = (
                [package]
                if package is not None
                else [p for p in staged.glob(f"*/{result.package_id}") if p.is_dir()]
            )
            if not found:
                raise StorageError(
                    f"task {result.task_id}: claimed package {result.package_id} is missing"
                )
            os.rename(found[0], final)
            from evidence.package import fsync_dir

            fsync_dir(out)
        from evidence.ledger import append_if_present

        # capture() logged nothing: it wrote to the staging directory, which
        # has no ledger. Logging the same package twice is a no-op.
        append_if_present(out, final)
        placed.touch()
        _remove_staging(staged, package)
    return attrs.evolve(result, package=str(final))


def _remove_staging(staged: Path, package: Path | None) -> None:
    """Remove the task's staging directory once its package is placed.

    The package came from ``package``'s parent, now empty: two ``rmdir``
    calls instead of a walk. Anything else left there (an earlier attempt of
    the same task, killed) is walked and removed.
    """
    if package is not None:
        with contextlib.suppress(OSError):
            package.parent.rmdir()
            staged.rmdir()
            return
    shutil.rmtree(staged, ignore_errors=True)


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
    browser: bool | BrowserOptions = False,
    seal_operator_to: typing.Sequence[str] = (),
    media: bool | MediaOptions = False,
) -> BatchResult:
    """One attempt at ``url`` under ``task_id``; safe to repeat after a crash (module docstring).

    ``browser`` is passed to :func:`evidence.capture`: the page is loaded in
    its own Chromium, which is gone when this returns.

    Never raises for a URL that cannot be captured: the result says ``failed``.

    Raises:
        StorageError: the output or state directory cannot be written.
        UsageError: ``task_id`` is not a UUID, or a capture argument is unusable.
    """
    from evidence.capturing import capture
    from evidence.package import deferred_out_dir_sync

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
            # The rename that completes the package in the staging directory
            # is made durable together with the claim (see _write_claim).
            with deferred_out_dir_sync() as unsynced:
                got: CaptureResult = capture(
                    url,
                    out=staging,
                    options=options,
                    operator=operator,
                    sign_with=sign_with,
                    tsa_urls=tsa_urls,
                    tsa_roots=tsa_roots,
                    labels=labels or None,
                    browser=browser,
                    seal_operator_to=seal_operator_to,
                    media=media,
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
        # The staging directory and its parents were made with mkdir for this
        # attempt: their entries are made durable in the same round, so a claim
        # never outlives the path to its package (ext4's ordered journal would
        # keep them; POSIX does not promise it).
        incoming = _once(staging.parent.parent)
        claimed = _write_claim(claim, result, [*unsynced, staging.parent, *incoming])
        _synced(incoming)  # reached only when the fsyncs succeeded
        if not claimed:
            # Another process (a redelivered task) finished this attempt first.
            shutil.rmtree(staging, ignore_errors=True)
            other = _read_claim(claim)
            if other is None:
                raise StorageError(f"{claim} vanished")
            return _place(root, claim, other)
        return _place(root, claim, result, Path(got.path))
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
            # NORMAL, not FULL: in WAL mode a crash of this process loses
            # nothing, and a power cut can lose only the last updates. That
            # is safe because the claims, not this database, say which
            # attempts finished: a resumed run repeats attempt 1 of every URL
            # not marked done, and the claim of an attempt that did finish
            # returns its package instead of capturing again.
            self.db.execute("PRAGMA synchronous=NORMAL")
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


# Worker processes. Captures spend most of their CPU in Python (HTTP parsing,
# WARC records, hashing, the manifest), so threads sharing one interpreter
# cannot use a second core; and a browser capture drives its own Chromium,
# which is simplest to bound and to clean up per process. A worker process
# runs its share of the captures in threads (one capture, so one Chromium,
# with a browser); the parent alone writes the state database.
#
# The protocol, over the child's standard input and a duplicate of its
# standard output (its own fd 1 then points at stderr, so nothing a library
# prints can corrupt it):
#   parent -> child: 4-byte length + pickle of the capture arguments, once
#                    (parent to its own child; the child trusts its parent),
#                    then one JSON job a line: {"url", "task", "final", "labels"};
#   child -> parent: JSON lines only (the child handles hostile pages, so the
#                    parent never unpickles what a child sends):
#                    {"t": "ready"}, {"t": "done", "task", "result"},
#                    {"t": "error", "task", "kind", "message"},
#                    {"t": "log", "level", "name", "message"}.
# A third pipe, which the parent never writes to, tells the child its parent
# is there: when it ends (the parent closed it, or died, even by kill -9) the
# child kills every process it started (Chromium) and exits at once. The
# parent reads every child's answers with one selector in its own thread, and
# each of the child's threads reads its own next job: a result and the next
# job pass through no other thread (under load, every hand-over between
# threads waits for a core).

_MAX_WORKER_LINE = 4 * 1024 * 1024
_WORKER_COMMAND = "from evidence.batch import _worker_main; _worker_main()"
_READ_CHUNK = 256 * 1024


def _portable_kwargs(kwargs: dict[str, typing.Any]) -> bytes:
    """The capture arguments as bytes a child can load (keys as raw bytes, certificates as DER).

    Raises:
        TypeError: an argument cannot be sent to another process.
    """
    import pickle

    from cryptography.hazmat.primitives.serialization import Encoding

    doc = dict(kwargs)
    doc["sign_with"] = [k.private_bytes_raw() for k in doc.get("sign_with") or ()]
    doc["tsa_roots"] = [c.public_bytes(Encoding.DER) for c in doc.get("tsa_roots") or ()]
    # Manifest parts hold read-only mappings, which pickle refuses: their JSON travels.
    if doc.get("operator") is not None:
        doc["operator"] = doc["operator"].to_json()
    try:
        return pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(str(exc)) from exc


def _load_kwargs(data: bytes) -> dict[str, typing.Any]:
    import pickle

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.manifest import Operator

    doc: dict[str, typing.Any] = pickle.loads(data)  # noqa: S301 - from our parent (see above)
    doc["sign_with"] = [Ed25519PrivateKey.from_private_bytes(k) for k in doc["sign_with"]]
    doc["tsa_roots"] = [x509.load_der_x509_certificate(c) for c in doc["tsa_roots"]]
    if doc.get("operator") is not None:
        doc["operator"] = Operator.from_json(doc["operator"], "operator")
    return doc


def _descendants(root: int) -> list[int]:
    """Pids of every living descendant of ``root`` (Linux ``/proc``; empty elsewhere)."""
    parents: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            parents[int(entry)] = int(stat.rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: set[int] = set()
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if (ppid == root or ppid in found) and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def _kill_descendants() -> None:
    # The whole tree is listed before anything is killed: a killed parent's
    # children would otherwise be re-parented and escape the search.
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class _WorkerLog(logging.Handler):
    """Hands log records to the parent, which logs them under the same name."""

    def __init__(self, send: typing.Callable[[dict[str, typing.Any]], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not stop a capture
            message = str(record.msg)
        self._send({"t": "log", "level": record.levelno, "name": record.name, "message": message})


def _worker_main() -> None:
    """A batch worker process (started by :class:`ProcessExecutor`; see the protocol above)."""
    results = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)
    lock = threading.Lock()

    def send(doc: dict[str, typing.Any]) -> None:
        line = json.dumps(doc, ensure_ascii=True)
        with lock:
            results.write(line + "\n")
            results.flush()

    stdin = sys.stdin.buffer
    size = int.from_bytes(stdin.read(4), "big")
    setup = _load_kwargs(stdin.read(size))
    out = Path(setup.pop("out"))
    level = int(setup.pop("log_level"))
    threads = int(setup.pop("threads"))
    root_logger = logging.getLogger()
    root_logger.handlers[:] = [_WorkerLog(send)]
    root_logger.setLevel(level)
    alive = int(sys.argv[1])

    def watch_parent() -> None:
        # The parent never writes here: this read ends when it closes its end
        # (the batch is over or interrupted) or dies, even by kill -9.
        while os.read(alive, 1):
            pass
        stop()

    def stop() -> None:
        # Stop now, with whatever this process started (a Chromium).
        _kill_descendants()
        os._exit(0)

    threading.Thread(target=watch_parent, name="evidence-batch-parent", daemon=True).start()
    import evidence.capturing

    evidence.capturing.preload()  # loaded before the first job, not during it

    read_lock = threading.Lock()

    def work() -> None:
        while True:
            # Each thread reads its own next job: no hand-over between threads.
            with read_lock:
                line = stdin.readline(_MAX_WORKER_LINE)
            if not line:
                stop()
            job = json.loads(line)
            task_id = job["task"]
            try:
                result = capture_one(
                    job["url"],
                    out=out,
                    task_id=task_id,
                    discard_transient=not job["final"],
                    labels=job["labels"],
                    **setup,
                )
            except StorageError as exc:
                send({"t": "error", "task": task_id, "kind": "storage", "message": str(exc)})
            except UsageError as exc:
                send({"t": "error", "task": task_id, "kind": "usage", "message": str(exc)})
            except EvidenceError as exc:
                send({"t": "error", "task": task_id, "kind": "evidence", "message": str(exc)})
            except Exception as exc:  # a bug: one URL fails, the batch goes on
                logger.exception("batch worker: %s failed", job["url"])
                send({"t": "error", "task": task_id, "kind": "crash", "message": repr(exc)[:500]})
            else:
                send({"t": "done", "task": task_id, "result": result.to_json()})

    def preload_ledger() -> None:
        # Needed only once a capture has its page (is there a ledger to log
        # it in?): loaded while the first pages are on their way, not after.
        import evidence.ledger  # noqa: F401

    for n in range(threads - 1):
        threading.Thread(target=work, name=f"evidence-batch-{n}", daemon=True).start()
    threading.Thread(target=preload_ledger, name="evidence-batch-preload", daemon=True).start()
    send({"t": "ready"})
    work()


@attrs.define
class _Worker:
    proc: typing.Any  # subprocess.Popen[bytes]
    slots: int
    ready: bool = False
    tasks: dict[str, str] = attrs.Factory(dict)  # task id -> URL, in this process now
    alive: bool = True
    alive_fd: int = -1  # our end of the pipe that tells the process we are here
    buffer: bytes = b""

    @property
    def free(self) -> bool:
        return self.alive and len(self.tasks) < self.slots


class ProcessExecutor:
    """Worker processes running :func:`capture_one` (the default executor).

    ``workers`` captures run at once, spread over ``processes`` processes
    (default: one per CPU core, at most ``workers``), each running its share
    in threads: processes add cores, threads hide network latency. With a
    browser each process runs exactly one capture, so one Chromium, at a time.
    Processes are started as work arrives. When the parent stops (the batch
    ends, Ctrl-C, or ``kill -9``), each process sees the end of its standard
    input, kills what it started (a Chromium) and exits; temporary
    directories left behind are removed on the next run.

    Raises:
        TypeError: a capture argument cannot be sent to another process.
    """

    def __init__(
        self,
        workers: int,
        out: Path,
        capture_kwargs: dict[str, typing.Any],
        *,
        processes: int | None = None,
    ) -> None:
        if capture_kwargs.get("browser") not in (None, False):
            processes = workers
        elif processes is None:
            processes = min(workers, os.cpu_count() or 1)
        self._processes = max(1, min(processes, workers))
        self._slots = -(-workers // self._processes)
        self._setup = _portable_kwargs(
            {
                **capture_kwargs,
                "out": str(out),
                "log_level": logging.getLogger("evidence").getEffectiveLevel(),
                "threads": self._slots,
            }
        )
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._backlog: collections.deque[tuple[BatchItem, str, bool]] = collections.deque()

    def _start(self) -> _Worker:
        import subprocess

        alive_r, alive_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_COMMAND, str(alive_r)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(alive_r,),
                # Its own session: a Ctrl-C on the terminal reaches the parent
                # only, which then stops the workers by closing their pipes.
                start_new_session=True,
            )
        except OSError as exc:
            os.close(alive_w)
            raise UsageError(f"cannot start a batch worker process: {exc.strerror or exc}") from exc
        finally:
            os.close(alive_r)
        worker = _Worker(proc, self._slots, alive_fd=alive_w)
        self._workers.append(worker)
        output = typing.cast("typing.IO[bytes]", proc.stdout)
        self._selector.register(output.fileno(), selectors.EVENT_READ, worker)
        stdin = typing.cast("typing.IO[bytes]", proc.stdin)
        try:
            stdin.write(len(self._setup).to_bytes(4, "big") + self._setup)
            stdin.flush()
        except OSError:
            pass  # it died at once: its end of output says so
        return worker

    def _read(self, worker: _Worker) -> list[tuple[str, BatchResult | BaseException]]:
        """What ``worker`` wrote since the last call (the selector says there is some)."""
        fd = worker.proc.stdout.fileno()
        chunk = os.read(fd, _READ_CHUNK)
        got: list[tuple[str, BatchResult | BaseException]] = []
        if not chunk:
            self._selector.unregister(fd)
            return self._handle(worker, {"t": "exit"})
        *lines, worker.buffer = (worker.buffer + chunk).split(b"\n")
        if len(worker.buffer) > _MAX_WORKER_LINE:
            worker.buffer = b""  # no line is this long: drop it
        for line in lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                got.extend(self._handle(worker, doc))
        return got

    def _send(self, worker: _Worker, item: BatchItem, task_id: str, final: bool) -> bool:
        job = {"url": item.url, "task": task_id, "final": final, "labels": dict(item.labels)}
        try:
            worker.proc.stdin.write(json.dumps(job, ensure_ascii=True).encode("ascii") + b"\n")
            worker.proc.stdin.flush()
        except OSError:
            return False  # it died: _read reports its exit, and the job goes to another
        worker.tasks[task_id] = item.url
        return True

    def _dispatch(self) -> None:
        while self._backlog:
            # The least busy process, so captures spread over the cores.
            free = sorted((w for w in self._workers if w.free), key=lambda w: len(w.tasks))
            if (not free or free[0].tasks) and sum(
                w.alive for w in self._workers
            ) < self._processes:
                free = [self._start()]
            if not free:
                return
            item, task_id, final = self._backlog.popleft()
            if not self._send(free[0], item, task_id, final):
                free[0].alive = False
                self._backlog.appendleft((item, task_id, final))

    def submit(self, item: BatchItem, task_id: str, final: bool) -> None:
        self._backlog.append((item, task_id, final))
        self._dispatch()

    def wait(self, timeout: float) -> list[tuple[str, BatchResult | BaseException]]:
        deadline = time.monotonic() + timeout
        got: list[tuple[str, BatchResult | BaseException]] = []
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self._selector.get_map():
                ready = self._selector.select(remaining)
            else:
                time.sleep(remaining)
                ready = []
            for key, _ in ready:
                got.extend(self._read(key.data))
            self._dispatch()
            if got or remaining <= 0:
                return got

    def _handle(
        self, worker: _Worker, doc: dict[str, typing.Any]
    ) -> list[tuple[str, BatchResult | BaseException]]:
        kind = doc.get("t")
        if kind == "log":
            logging.getLogger(str(doc.get("name", __name__))).log(
                int(doc.get("level", logging.WARNING)), "%s", doc.get("message", "")
            )
            return []
        if kind == "ready":
            worker.ready = True
            return []
        if kind == "exit":
            worker.alive = False
            for close in (worker.proc.stdin.close, lambda: os.close(worker.alive_fd)):
                with contextlib.suppress(OSError):
                    close()
            code = worker.proc.wait()
            # Exited by itself before it was ready: it cannot start (and the
            # next would not either). Killed by a signal (the OOM killer, an
            # operator): like a death while working, its URLs are tried again.
            if not worker.ready and code >= 0:
                raise UsageError(
                    f"a batch worker process could not start (exit status {code}); "
                    "its error is printed above"
                )
            lost, worker.tasks = worker.tasks, {}
            return [
                (
                    task,
                    BatchResult(
                        url=url,
                        status="failed",
                        error=f"the worker process died (exit status {code})",
                        kind="worker",
                        task_id=task,
                        retry=True,
                    ),
                )
                for task, url in lost.items()
            ]
        task = doc.get("task")
        if not isinstance(task, str) or task not in worker.tasks:
            return []  # not something this process was given: ignored
        url = worker.tasks.pop(task)
        if kind == "done":
            try:
                return [(task, BatchResult.from_json(doc.get("result")))]
            except PackageError as exc:
                return [
                    (task, BatchResult(url=url, status="failed", error=str(exc), kind="worker"))
                ]
        message = str(doc.get("message", ""))
        errors = {"storage": StorageError, "usage": UsageError, "evidence": EvidenceError}
        error = errors.get(str(doc.get("kind")))
        if error is not None:
            return [(task, error(message))]
        return [
            (
                task,
                BatchResult(
                    url=url, status="failed", error=f"worker error: {message}", kind="worker"
                ),
            )
        ]

    def close(self) -> None:
        for w in self._workers:
            if not w.alive:
                continue  # its pipes were closed when it exited
            for close in (w.proc.stdin.close, lambda w=w: os.close(w.alive_fd)):
                with contextlib.suppress(OSError):
                    close()
        for w in self._workers:
            try:
                w.proc.wait(timeout=10)
            except Exception:
                with contextlib.suppress(OSError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait()
            with contextlib.suppress(OSError):
                w.proc.stdout.close()
        self._workers.clear()
        self._selector.close()


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


def check_before_any_url(
    browser: bool | BrowserOptions,
    media: bool | MediaOptions,
    seal_operator_to: typing.Sequence[str],
    operator: Operator | None,
) -> tuple[str, ...]:
    """Check once, before any URL, what every capture of a batch or worker needs,
    so that a missing Chromium or yt-dlp is one error, not one per URL.

    Returns:
        The checked seal recipients.

    Raises:
        UsageError: no Playwright or Chromium for ``browser``, no yt-dlp for
            ``media``, a bad recipient, or recipients with no operator to seal.
    """
    if browser is not False:
        from evidence.capturing.browser import BrowserPlan
        from evidence.capturing.options import BrowserOptions

        BrowserPlan.check(browser if isinstance(browser, BrowserOptions) else BrowserOptions())
    if media is not False:
        from evidence.capturing.media import MediaPlan
        from evidence.capturing.options import MediaOptions

        MediaPlan.prepare(media if isinstance(media, MediaOptions) else MediaOptions())
    if not seal_operator_to:
        return ()
    from evidence.sealing import check_recipients

    recipients = check_recipients(seal_operator_to)
    if operator is None:
        raise UsageError("seal_operator_to needs an operator name or organization to seal")
    return recipients


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
    browser: bool | BrowserOptions = False,
    seal_operator_to: typing.Sequence[str] = (),
    media: bool | MediaOptions = False,
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
        executor: where attempts run (default: :class:`ProcessExecutor`:
            worker processes, ``workers`` captures at once).
        on_start: called with the :class:`BatchRun` once the state is read and
            after every change (an attempt started or finished), for progress.
        browser: ``True`` or a :class:`~evidence.capturing.BrowserOptions`: load
            each page in headless Chromium (as :func:`evidence.capture`); each
            worker process runs one Chromium at a time, so at most ``workers``
            at once. Playwright and Chromium are checked once, before any URL.
        seal_operator_to: as for :func:`evidence.capture` (checked before
            anything starts; with a Celery executor each worker seals with its own).
        media: ``True`` or a :class:`~evidence.capturing.MediaOptions`: also
            capture each page's video or audio with yt-dlp (as
            :func:`evidence.capture`; docs/media.md). yt-dlp is checked once,
            before any URL.

    Raises:
        UsageError: bad arguments, an unreadable list, another batch running in
            ``out``, ``browser`` without Playwright or Chromium, or ``media``
            without yt-dlp.
        StorageError: the state or a package cannot be written (the batch stops;
            run it again to resume).
    """
    if workers < 1 or per_host < 1 or retries < 0 or delay < 0 or backoff < 0:
        raise UsageError("workers and per_host must be >= 1; retries, delay, backoff >= 0")
    seal_operator_to = check_before_any_url(browser, media, seal_operator_to, operator)
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
        for url, line, labels, status, attempts, _task, result in state.rows(run_id):
            if status == "done":
                skipped.append(BatchResult.from_json(json.loads(result)))
                continue
            # An attempt may have finished (claimed) after the last update
            # the database kept: resume from it, so its package is placed
            # rather than a second one captured.
            claimed = _last_claimed(root, run_id, url, max(attempts, retries + 1))
            item = BatchItem(url=url, line=line, labels=labels)
            pending.append((item, max(claimed - 1, 0), 0.0))
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
            executor = _local_executor(
                workers,
                root,
                {
                    "options": options,
                    "operator": operator,
                    "sign_with": sign_with,
                    "tsa_urls": tsa_urls,
                    "tsa_roots": tsa_roots,
                    "browser": browser,
                    "seal_operator_to": seal_operator_to,
                    "media": media,
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


def _last_claimed(root: Path, run_id: str, url: str, attempts: int) -> int:
    """The highest attempt (up to ``attempts``) at ``url`` that has a claim, else 0."""
    for attempt in range(attempts, 0, -1):
        if _claim_path(root, task_id_for(run_id, url, attempt)).exists():
            return attempt
    return 0


def _local_executor(workers: int, out: Path, kwargs: dict[str, typing.Any]) -> Executor:
    """Worker processes, or threads when an argument cannot be sent to another process."""
    try:
        return ProcessExecutor(workers, out, kwargs)
    except TypeError as exc:
        logger.warning("capturing in threads of this process: %s", exc)
        return LocalExecutor(workers, out, kwargs)


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

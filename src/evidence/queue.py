"""Batch capture on Celery workers (optional extra: ``pip install 'evidence-archive[queue]'``).

The submitter (``evidence batch LIST --queue URL``) runs the same scheduler as
a local batch (:func:`evidence.batch.capture_many`) with a
:class:`CeleryExecutor`; workers (``evidence worker``) run
:func:`evidence.batch.capture_one`, so claims make every attempt idempotent.

Security rules (the broker is a network service; treat every message as forged):

- JSON only: pickle is never accepted, in either direction.
- A task carries a URL and a small allowlist of capture options
  (:data:`ALLOWED_OPTIONS`), checked by type and range; any other key, a
  path, or a task id that is not a UUID makes the worker refuse the task and
  report it. An option can only tighten the worker's own settings: limits
  are clamped to the worker's, ``public_only`` can be turned on, never off.
  The proxy is the worker's own (``evidence worker --proxy``): a task that
  names ``proxy`` or ``record_proxy_address`` is refused, so a broker message
  can neither set nor unset the route a capture takes.
- Private keys never travel: each worker signs with its own ``--key``; the
  result tells the submitter the key ids.
- The operator, and whether and to whom it is sealed, are the worker's own
  (``--operator-name``, ``--seal-operator-to``): a task carries neither, so a
  forged message cannot unseal a worker's identity or seal it to its own key.
- ``acks_late`` + ``task_reject_on_worker_lost``: a worker killed mid-capture
  leaves its message unacknowledged, and the broker redelivers it (after
  ``redeliver_after`` seconds on Redis) to another worker.
- Broker URLs are shown only through :func:`redact_url`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import typing
import urllib.parse
from pathlib import Path

import attrs

from evidence.batch import BatchItem, BatchResult, capture_one
from evidence.errors import EvidenceError, UsageError
from evidence.manifest import MAX_LABEL_CHARS, MAX_LABELS

if typing.TYPE_CHECKING:
    from celery import Celery
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence.capturing import BrowserOptions, CaptureOptions, Operator
    from evidence.capturing.options import MediaOptions

logger = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_OPTIONS",
    "TASK_NAME",
    "CeleryExecutor",
    "TaskRefusedError",
    "check_task",
    "make_app",
    "redact_url",
    "run_worker",
]

TASK_NAME = "evidence.capture"
QUEUE_NAME = "evidence"
INSTALL_HINT = "the queue needs Celery: pip install 'evidence-archive[queue]'"
# Option name -> the type a task may give. Numbers are clamped to the worker's own.
ALLOWED_OPTIONS: typing.Mapping[str, type] = {
    "deadline": float,
    "connect_timeout": float,
    "read_timeout": float,
    "max_response_bytes": int,
    "max_redirects": int,
    "max_requisites": int,
    "max_requisite_bytes": int,
    "requisites_deadline": float,
    "requisites": bool,
    "public_only": bool,
}
# Not a capture option: the submitter captures through a proxy and asks that
# every worker does too. A worker without its own --proxy refuses such a task
# rather than capture from its own address; a task can never set the route.
REQUIRE_PROXY = "require_proxy"
_REQUEST_KEYS = frozenset({"options", "final", "labels"})
MAX_URL_CHARS = 8192


class TaskRefusedError(EvidenceError):
    """A task message asked for something a worker never does."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and output)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable broker URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _celery() -> typing.Any:
    try:
        import celery
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return celery


def make_app(url: str, *, redeliver_after: float = 900.0) -> Celery:
    """The Celery app for broker and result backend ``url`` (``redis://`` or ``amqp://``).

    Args:
        url: the broker URL; with Redis it is the result backend too.
        redeliver_after: seconds after which Redis hands an unacknowledged
            task (its worker died) to another worker. Longer than any capture
            (a capture still running then is run twice; its claim keeps one package).
    """
    celery = _celery()
    backend = url if url.startswith(("redis://", "rediss://")) else "rpc://"
    app = celery.Celery("evidence", broker=url, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE_NAME,
        broker_transport_options={
            "visibility_timeout": redeliver_after,
            # Look for tasks of dead workers every few seconds (kombu's default
            # sweep is every 10 x 10 s), so redelivery follows the timeout closely.
            "unacked_restore_interval": max(1, min(10, int(redeliver_after / 3))),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": redeliver_after},
        result_expires=7 * 86400,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_track_started=False,
    )
    app.task(name=TASK_NAME, bind=True)(_capture_task)
    return app


# --- the worker side -------------------------------------------------------------


@attrs.frozen
class _WorkerConfig:
    out: Path
    options: CaptureOptions
    operator: Operator | None
    sign_with: tuple[Ed25519PrivateKey, ...]
    tsa_urls: tuple[str, ...]
    tsa_roots: tuple[x509.Certificate, ...]
    browser: bool | BrowserOptions = False
    seal_operator_to: tuple[str, ...] = ()
    media: bool | MediaOptions = False


_worker: _WorkerConfig | None = None


def _number(name: str, value: typing.Any, kind: type, cap: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TaskRefusedError(f"option {name} must be a number")
    if kind is int and not isinstance(value, int):
        raise TaskRefusedError(f"option {name} must be an integer")
    if not math.isfinite(value) or value < 0 or (value == 0 and kind is float):
        raise TaskRefusedError(f"option {name} is out of range")
    return min(value, cap)


def check_task(
    task_id: typing.Any, args: typing.Sequence[typing.Any], worker_options: CaptureOptions
) -> tuple[str, CaptureOptions, bool, dict[str, str]]:
    """Validate a task message against the allowlist; the URL, options, final flag and labels.

    Raises:
        TaskRefusedError: anything not allowed, of the wrong type, or malformed.
    """
    from evidence.batch import _is_uuid
    from evidence.capturing import validate_url
    from evidence.errors import CaptureError

    if not isinstance(task_id, str) or not _is_uuid(task_id):
        raise TaskRefusedError("the task id is not a UUID")
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], dict):
        raise TaskRefusedError("a task carries exactly a URL and a request object")
    url, request = args
    if len(url) > MAX_URL_CHARS:
        raise TaskRefusedError("the URL is too long")
    try:
        url = validate_url(url)
    except CaptureError as exc:
        raise TaskRefusedError(f"bad URL: {exc.cause}") from exc
    extra = set(request) - _REQUEST_KEYS
    if extra:
        raise TaskRefusedError(f"unknown request fields: {', '.join(sorted(map(str, extra)))}")
    options = request.get("options", {})
    final = request.get("final", True)
    labels = request.get("labels", {})
    if not isinstance(options, dict) or not isinstance(final, bool):
        raise TaskRefusedError("options must be an object and final a boolean")
    options = dict(options)
    require_proxy = options.pop(REQUIRE_PROXY, False)
    if not isinstance(require_proxy, bool):
        raise TaskRefusedError(f"option {REQUIRE_PROXY} must be true or false")
    if require_proxy and worker_options.proxy is None:
        raise TaskRefusedError(
            "the submitter captures through a proxy and this worker has no --proxy: "
            "refused rather than captured from the worker's own address"
        )
    unknown = set(options) - set(ALLOWED_OPTIONS)
    if unknown:
        raise TaskRefusedError(
            f"options not allowed in a task: {', '.join(sorted(map(str, unknown)))}"
        )
    changes: dict[str, typing.Any] = {}
    for name, value in options.items():
        kind = ALLOWED_OPTIONS[name]
        current = getattr(worker_options, name)
        if kind is bool:
            if not isinstance(value, bool):
                raise TaskRefusedError(f"option {name} must be true or false")
            # Only tightening: requisites off, public_only on.
            changes[name] = (current and value) if name == "requisites" else (current or value)
        else:
            changes[name] = kind(_number(name, value, kind, current))
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise TaskRefusedError("labels must be an object of at most 32 strings")
    for k, v in labels.items():
        if not isinstance(v, str) or len(k) > MAX_LABEL_CHARS or len(v) > MAX_LABEL_CHARS:
            raise TaskRefusedError("labels must be short strings")
    try:
        options_now = attrs.evolve(worker_options, **changes)
    except UsageError as exc:
        # e.g. public_only turned on for a worker whose proxy resolves names.
        raise TaskRefusedError(f"options not usable on this worker: {exc}") from exc
    return url, options_now, final, dict(labels)


def _capture_task(
    task: typing.Any, *args: typing.Any, **kwargs: typing.Any
) -> dict[str, typing.Any]:
    """The Celery task. Never raises: a refused or failed task returns a failed result."""
    config = _worker
    task_id = getattr(task.request, "id", None)
    url = args[0] if args and isinstance(args[0], str) else ""
    if config is None:
        raise RuntimeError("this process is not an evidence worker")
    try:
        if kwargs:
            raise TaskRefusedError(f"unexpected keyword fields: {', '.join(sorted(kwargs))}")
        url, options, final, labels = check_task(task_id, args, config.options)
        result = capture_one(
            url,
            out=config.out,
            task_id=str(task_id),
            options=options,
            operator=config.operator,
            sign_with=config.sign_with,
            tsa_urls=config.tsa_urls,
            tsa_roots=config.tsa_roots,
            discard_transient=not final,
            labels=labels,
            browser=config.browser,
            seal_operator_to=config.seal_operator_to,
            media=config.media,
        )
    except TaskRefusedError as exc:
        from evidence.display import safe

        logger.warning("refused task %s: %s", safe(str(task_id)), safe(str(exc)))
        result = BatchResult(
            url=url[:MAX_URL_CHARS],
            status="failed",
            error=f"task refused: {exc}",
            kind="refused-task",
        )
    except EvidenceError as exc:
        logger.warning("task %s failed: %s", task_id, exc)
        result = BatchResult(
            url=url[:MAX_URL_CHARS], status="failed", error=str(exc), kind="worker"
        )
    return result.to_json()


def run_worker(
    url: str,
    *,
    out: str | os.PathLike[str],
    options: CaptureOptions,
    operator: Operator | None = None,
    sign_with: typing.Sequence[Ed25519PrivateKey] = (),
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
    concurrency: int = 2,
    redeliver_after: float = 900.0,
    name: str | None = None,
    browser: bool | BrowserOptions = False,
    seal_operator_to: typing.Sequence[str] = (),
    media: bool | MediaOptions = False,
) -> None:
    """Run a worker until it is stopped (SIGTERM or Ctrl-C: warm shutdown).

    ``operator`` and ``seal_operator_to`` are this worker's own, as for
    :func:`evidence.capture`; no task can change them. ``browser`` (``True``
    or :class:`~evidence.capturing.BrowserOptions`) makes every capture of
    this worker a browser capture, each in its own Chromium (so at most
    ``concurrency`` at once); only the worker decides this, never a task.
    Playwright and Chromium are checked here, at start. ``media`` likewise
    makes every capture also record the page's video or audio (yt-dlp,
    checked at start); a task cannot turn it on or off.

    Raises:
        UsageError: Celery, or (with ``browser``) Playwright or Chromium, is
            missing; ``seal_operator_to`` without an operator.
    """
    global _worker
    from evidence.batch import check_before_any_url

    seal_operator_to = check_before_any_url(browser, media, seal_operator_to, operator)
    _worker = _WorkerConfig(
        out=Path(out),
        options=options,
        operator=operator,
        sign_with=tuple(sign_with),
        tsa_urls=tuple(tsa_urls),
        tsa_roots=tuple(tsa_roots),
        browser=browser,
        seal_operator_to=tuple(seal_operator_to),
        media=media,
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    app = make_app(url, redeliver_after=redeliver_after)
    argv = [
        "worker",
        "--pool=threads",  # captures wait on the network; threads share the loaded key
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        f"--queues={QUEUE_NAME}",
    ]
    if name:
        argv.append(f"--hostname={name}")
    app.worker_main(argv)


# --- the submitter side -------------------------------------------------------


class CeleryExecutor:
    """Sends attempts as Celery tasks (deterministic ids) and collects their results."""

    def __init__(self, url: str, options: dict[str, typing.Any], *, poll: float = 0.2) -> None:
        self._app = make_app(url)
        self._options = options
        self._poll = poll
        self._pending: dict[str, typing.Any] = {}

    def submit(self, item: BatchItem, task_id: str, final: bool) -> None:
        request = {"options": self._options, "final": final, "labels": dict(item.labels)}
        try:
            self._pending[task_id] = self._app.send_task(
                TASK_NAME, args=[item.url, request], task_id=task_id, queue=QUEUE_NAME
            )
        except Exception as exc:  # kombu raises its own and socket errors
            raise UsageError(f"cannot send tasks to the broker: {type(exc).__name__}") from exc

    def wait(self, timeout: float) -> list[tuple[str, BatchResult | BaseException]]:
        deadline = time.monotonic() + timeout
        while True:
            done: list[tuple[str, BatchResult | BaseException]] = []
            for task_id, async_result in list(self._pending.items()):
                try:
                    if not async_result.ready():
                        continue
                    value = async_result.get(timeout=5, propagate=False)
                except Exception as exc:  # a broker outage: the task is asked again later
                    raise UsageError(f"lost the result backend: {type(exc).__name__}") from exc
                del self._pending[task_id]
                try:
                    done.append((task_id, BatchResult.from_json(value)))
                except EvidenceError:
                    done.append(
                        (
                            task_id,
                            BatchResult(
                                url="", status="failed", error="worker error", kind="worker"
                            ),
                        )
                    )
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(self._poll, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self._pending.clear()

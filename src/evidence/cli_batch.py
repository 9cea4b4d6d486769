"""``evidence batch``, ``worker``, ``list`` and ``verify --recursive`` (docs/batch.md).

Wired into ``evidence.cli.build_parser`` by :func:`add_batch_parser`; ``cmd_verify``
hands ``--recursive`` to :func:`cmd_verify_recursive`. Heavy imports happen in
the handlers. The live display uses ``rich`` (the ``batch`` extra) when stderr
is a terminal; otherwise, and with ``--json``, one line per result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import typing

from evidence.cli_common import (
    add_operator_options,
    add_proxy_options,
    int_at_least,
    operator_option,
    proxy_option,
)
from evidence.cli_common import load_signing_key as _load_signing_key
from evidence.cli_common import positive_float as _positive_float
from evidence.cli_common import print_json as _print_json
from evidence.cli_common import tsa_roots as _tsa_roots
from evidence.display import safe

if typing.TYPE_CHECKING:
    from evidence.batch import BatchResult, BatchRun
    from evidence.capturing import CaptureOptions

__all__ = ["add_batch_parser", "cmd_verify_recursive"]


def _err(message: str) -> None:
    print(f"evidence: error: {safe(message)}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"evidence: {message}", file=sys.stderr, flush=True)


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0: {text!r}")
    return value


def _json_line(doc: object) -> None:
    import json

    print(json.dumps(doc, ensure_ascii=True), flush=True)


# --- shared capture options ---------------------------------------------------------

_NUMERIC = (
    ("--deadline", "deadline", _positive_float, "total seconds per URL"),
    ("--max-redirects", "max_redirects", int_at_least(0), "redirect hops to follow"),
    ("--max-requisites", "max_requisites", int_at_least(0), "requisite URLs to fetch at most"),
    ("--requisites-deadline", "requisites_deadline", _positive_float, "seconds for requisites"),
)


def _add_capture_options(p: argparse.ArgumentParser, *, worker: bool) -> None:
    p.add_argument(
        "--key", action="append", default=[], metavar="PATH", help="sign with this private key"
    )
    whose = "this worker's own: " if worker else ""
    add_operator_options(p, whose)
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CA certificates to trust")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--user-agent", help="User-Agent header to send")
    p.add_argument(
        "--public-only", action="store_true", help="refuse non-public destinations (recorded)"
    )
    p.add_argument("--no-requisites", action="store_true", help="capture only the pages")
    add_proxy_options(p)
    for flag, dest, kind, text in _NUMERIC:
        p.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    p.add_argument("--tsa", action="append", default=[], metavar="URL", help="RFC 3161 TSA")
    p.add_argument("--tsa-ca", action="append", default=[], metavar="ROOT.pem", help="TSA root")
    from evidence.cli_browser import add_browser_options

    add_browser_options(
        p.add_argument_group(
            "browser capture (docs/browser.md); one Chromium per worker process at a time"
        )
    )
    from evidence.cli_common import size
    from evidence.cli_media import add_media_options

    add_media_options(p, size)


def _options(args: argparse.Namespace) -> CaptureOptions:
    from evidence.capturing import CaptureOptions
    from evidence.errors import UsageError

    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise UsageError(f"--ca-bundle {args.ca_bundle}: no such file")
    kwargs: dict[str, typing.Any] = {
        dest: getattr(args, dest) for _, dest, _, _ in _NUMERIC if getattr(args, dest) is not None
    }
    if args.user_agent:
        kwargs["user_agent"] = args.user_agent
    return CaptureOptions(
        ca_bundle=args.ca_bundle,
        unsafe_insecure=args.insecure,
        requisites=not args.no_requisites,
        public_only=args.public_only,
        proxy=proxy_option(args),
        record_proxy_address=args.record_proxy_address,
        # One connection at a time per capture, so --per-host bounds the
        # connections a batch opens to a host (docs/batch.md, politeness).
        requisite_workers=1,
        **kwargs,
    )


def _task_options(args: argparse.Namespace) -> dict[str, typing.Any]:
    """What a queued task may carry: the allowlisted options the user set."""
    from evidence.queue import REQUIRE_PROXY

    doc: dict[str, typing.Any] = {
        dest: getattr(args, dest) for _, dest, _, _ in _NUMERIC if getattr(args, dest) is not None
    }
    if args.no_requisites:
        doc["requisites"] = False
    if args.public_only:
        doc["public_only"] = True
    if proxy_option(args) is not None:
        # The route is each worker's own, but none may capture without one.
        doc[REQUIRE_PROXY] = True
    return doc


# --- progress -----------------------------------------------------------------------


class _Plain:
    """One line per result (not a terminal, or --json)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, run: BatchRun) -> None:
        pass

    def result(self, r: BatchResult) -> None:
        if self.as_json:
            _json_line({"type": "result", **r.to_json()})
        elif r.ok:
            note = f" ({safe(r.error)})" if r.error else ""
            print(f"captured {safe(r.url)} -> {safe(r.package)}{note}", flush=True)
        else:
            print(f"FAILED   {safe(r.url)}: {safe(r.error)}", flush=True)


class _Live:
    """A live table on stderr: done / failed / running / left, rate, ETA, each worker's URL."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.done = self.failed = 0
        self.start = time.monotonic()
        self.run: BatchRun | None = None

    def __enter__(self) -> _Live:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _render(self) -> typing.Any:
        from rich.table import Table
        from rich.text import Text

        run = self.run
        running = dict(run.running) if run else {}
        left = (run.waiting if run else 0) + len(running)
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = (self.done + self.failed) / elapsed
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        table = Table(show_header=False, box=None)
        table.add_row(
            Text(
                f"done {self.done}  failed {self.failed}  running {len(running)}  "
                f"left {left}  {rate * 60:.1f}/min  ETA {eta}"
            )
        )
        for url in list(running.values())[:16]:
            # Text(), not markup: a URL is the list author's text.
            table.add_row(Text("  " + safe(url)))
        return table

    def update(self, run: BatchRun) -> None:
        self.run = run
        self.live.update(self._render())

    def result(self, r: BatchResult) -> None:
        from rich.text import Text

        if r.ok:
            self.done += 1
        else:
            self.failed += 1
            self.console.print(Text(f"FAILED {safe(r.url)}: {safe(r.error)}"))
        if self.run is not None:
            self.live.update(self._render())


class _VerifyLive:
    """``verify --recursive`` on a terminal: counts per outcome, left, rate and ETA;
    every package that is not verified is printed above it as it finishes."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.total = total
        self.counts: dict[str, int] = {}
        self.start = time.monotonic()

    def __enter__(self) -> _VerifyLive:
        self.live.__enter__()
        self.live.update(self._render())
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _render(self) -> typing.Any:
        from rich.text import Text

        done = sum(self.counts.values())
        left = self.total - done
        rate = done / max(time.monotonic() - self.start, 1e-6)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        parts = "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return Text(f"{parts or 'checking'}  left {left}  {rate * 60:.1f}/min  ETA {eta}")

    def result(self, outcome: str, path: str) -> None:
        from rich.text import Text

        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome != "verified":
            self.console.print(Text(f"{outcome:<10} {safe(path)}"))
        self.live.update(self._render())


def _display(as_json: bool) -> typing.Any:
    if as_json or not sys.stderr.isatty():
        return _Plain(as_json)
    try:
        import rich  # noqa: F401
    except ImportError:
        _note("plain output: pip install 'evidence-archive[batch]' for a live display")
        return _Plain(as_json)
    return _Live()


# --- batch ---------------------------------------------------------------------------


def cmd_batch(args: argparse.Namespace) -> int:
    from evidence.batch import capture_many, read_list
    from evidence.cli_browser import browser_option
    from evidence.cli_media import media_option
    from evidence.errors import UsageError

    options = _options(args)
    keys = [_load_signing_key(k) for k in args.key]
    roots = _tsa_roots(args.tsa_ca)
    operator, seal_to = operator_option(args)
    batch_list = read_list(sys.stdin if args.list == "-" else args.list)
    for problem in batch_list.problems:
        _note(f"line {problem.line} skipped: {safe(problem.reason)}: {safe(problem.text)}")
    if batch_list.duplicates:
        _note(f"{batch_list.duplicates} duplicate line(s) captured once")
    executor = None
    browser: typing.Any = False
    media: typing.Any = False
    if args.queue:
        from evidence.queue import CeleryExecutor, redact_url

        browser_flags = (args.browser, args.chromium, args.viewport, args.wait, args.no_scroll)
        if any(browser_flags) or args.max_browser_requests or args.browser_memory:
            # A task cannot turn the browser on or off: each worker decides.
            raise UsageError(
                "with --queue, browser options are the workers' own: "
                "start them with 'evidence worker --browser'"
            )
        if args.media or args.max_media_bytes is not None:
            raise UsageError(
                "with --queue, media capture is the workers' own: "
                "start them with 'evidence worker --media'"
            )
        if keys or args.tsa:
            _note("with --queue, each worker signs and timestamps with its own --key and --tsa")
        if options.proxy is not None:
            # A task never carries a proxy: a broker message must not choose the route.
            _note(
                "with --queue, each worker captures through its own --proxy, not this one; "
                "a worker without --proxy refuses these tasks"
            )
        if operator is not None or seal_to:
            # A task message never carries the operator: a forged one could
            # otherwise name someone else, or lift a worker's seal.
            _note(
                "with --queue, each worker records its own --operator-name/--operator-org "
                "and --seal-operator-to; the ones given here are not sent"
            )
        _note(f"sending tasks to {safe(redact_url(args.queue))}")
        executor = CeleryExecutor(args.queue, _task_options(args))
    else:
        # Checked once, before any URL: a missing Chromium (or yt-dlp) is one
        # error, not one per URL.
        browser = browser_option(args)
        media = media_option(args)
    display = _display(args.json)
    results: list[BatchResult] = []
    run_box: list[BatchRun] = []

    def on_change(run: BatchRun) -> None:
        if not run_box:
            run_box.append(run)
            if run.resumed:
                _note(
                    f"resuming run {run.run_id}: {len(run.skipped)} of {run.total} "
                    "already captured, skipped"
                )
        display.update(run)

    with display:
        for result in capture_many(
            batch_list,
            out=args.out,
            options=options,
            operator=operator,
            sign_with=keys,
            tsa_urls=args.tsa,
            tsa_roots=roots,
            workers=args.workers,
            per_host=args.per_host,
            delay=args.delay,
            retries=args.retries,
            backoff=args.backoff,
            new_run=args.new_run,
            executor=executor,
            on_start=on_change,
            browser=browser,
            media=media,
            seal_operator_to=seal_to,
        ):
            results.append(result)
            display.result(result)
    run = run_box[0] if run_box else None
    everything = [*(run.skipped if run else []), *results]
    ok = sum(1 for r in everything if r.ok)
    failed = len(everything) - ok
    summary = {
        "type": "summary",
        "run": run.run_id if run else "",
        "captured": ok,
        "failed": failed,
        "skipped_already_captured": len(run.skipped) if run else 0,
        "invalid_lines": len(batch_list.problems),
        "duplicates": batch_list.duplicates,
        "csv": str(run.csv_path) if run else "",
    }
    if args.json:
        _json_line(summary)
    else:
        _note(
            f"{ok} captured, {failed} failed, {summary['skipped_already_captured']} from an "
            f"earlier attempt, {len(batch_list.problems)} invalid lines; "
            f"report: {safe(summary['csv'])}"
        )
    return 1 if failed else 0


# --- worker ----------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    from evidence.cli_browser import browser_option
    from evidence.cli_media import media_option
    from evidence.queue import redact_url, run_worker

    options = _options(args)
    # The worker alone decides whether it captures with a browser: no task can
    # change it. Checked at start, not at the first task.
    browser = browser_option(args)
    media = media_option(args)
    keys = [_load_signing_key(k) for k in args.key]
    roots = _tsa_roots(args.tsa_ca)
    operator, seal_to = operator_option(args)
    if not keys:
        _note("no --key: this worker's packages are unsigned")
    _note(f"worker for {safe(redact_url(args.queue))}, writing to {safe(args.out)}")
    run_worker(
        args.queue,
        out=args.out,
        options=options,
        operator=operator,
        sign_with=keys,
        tsa_urls=args.tsa,
        tsa_roots=roots,
        seal_operator_to=seal_to,
        concurrency=args.concurrency,
        redeliver_after=args.redeliver_after,
        name=args.name,
        browser=browser,
        media=media,
    )
    return 0


# --- list and verify --recursive ----------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from evidence.batch import list_packages

    entries = list_packages(args.dir, url_contains=args.url)
    if args.json:
        _print_json([e.to_json() for e in entries])
        return 0
    for e in entries:
        if e.error:
            print(f"{safe(e.package_id)}  UNREADABLE: {safe(e.error)}", flush=True)
            continue
        print(
            f"{safe(e.package_id)}  {safe(e.created)}  {safe(e.url)}  HTTP {e.http_status}  "
            f"{'signed' if e.signatures else 'unsigned'}  "
            f"{'timestamped' if e.timestamps else 'no timestamp'}",
            flush=True,
        )
    _note(f"{len(entries)} package(s); signatures and timestamps are NOT checked here")
    return 0


def cmd_verify_recursive(args: argparse.Namespace) -> int:
    """``evidence verify DIR --recursive``: every package under each DIR, in parallel."""
    import csv
    import io

    from evidence.batch import find_packages, verify_many
    from evidence.errors import UsageError
    from evidence.keys import Keyring
    from evidence.verifying.policy import refuse_inside_package

    if args.inclusion or args.custody_anchor:
        raise UsageError("--inclusion and --custody-anchor check one package, not --recursive")
    paths = [p for d in args.packages for p in find_packages(d)]
    for p in paths:
        refuse_inside_package(str(p), args.trust, "trusted key")
        refuse_inside_package(str(p), args.tsa_ca, "TSA root")
    keyring = Keyring.from_paths(args.trust)
    roots = _tsa_roots(args.tsa_ca)
    counts: dict[str, int] = {}
    rows: list[dict[str, typing.Any]] = []
    worst = 0
    severity = {1: 3, 2: 2, 3: 1, 0: 0}
    live = None
    if not args.json and sys.stderr.isatty() and sys.stdout.isatty() and paths:
        try:
            live = _VerifyLive(len(paths))
        except ImportError:
            _note("plain output: pip install 'evidence-archive[batch]' for a live display")
    with live if live is not None else contextlib.nullcontext():
        for path, report in verify_many(
            paths,
            trust=keyring,
            tsa_roots=roots,
            require_timestamp=args.require_timestamp,
            workers=args.workers,
        ):
            code = report.exit_code
            counts[report.outcome.value] = counts.get(report.outcome.value, 0) + 1
            worst = max(worst, code, key=lambda c: severity.get(c, 3))
            failed = [c.name for c in report.failures()]
            rows.append(
                {
                    "package": str(path),
                    "outcome": report.outcome.value,
                    "exit_code": code,
                    "failed_checks": failed,
                }
            )
            if live is not None:
                live.result(report.outcome.value, str(path))
            elif not args.json:
                print(f"{report.outcome.value:<10} {safe(str(path))}", flush=True)
    rows.sort(key=lambda r: r["package"])
    if args.json:
        _print_json({"packages": rows, "summary": counts})
    else:
        width = max([len("total"), *(len(k) for k in counts)]) + 2
        for outcome, n in sorted(counts.items()):
            print(f"{outcome:<{width}}{n:>6}", flush=True)
        print(f"{'total':<{width}}{len(rows):>6}", flush=True)
    if args.report:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["package", "outcome", "exit_code", "failed_checks"])
        for r in rows:
            writer.writerow(
                [r["package"], r["outcome"], r["exit_code"], " ".join(r["failed_checks"])]
            )
        with open(args.report, "x", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
    if not rows:
        raise UsageError("no package found under " + ", ".join(args.packages))
    return worst


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """The options ``evidence verify`` gains for ``--recursive``."""
    p.add_argument(
        "--recursive",
        action="store_true",
        help="verify every package under each directory, in parallel (docs/batch.md)",
    )
    p.add_argument(
        "--workers", type=int_at_least(1), default=4, help="with --recursive: packages at once (4)"
    )
    p.add_argument(
        "--report", metavar="FILE.csv", help="with --recursive: write every verdict to a new CSV"
    )


# --- parser -----------------------------------------------------------------------------


def add_batch_parser(sub: typing.Any) -> None:
    """Add ``batch``, ``worker`` and ``list`` to the ``evidence`` subcommands."""
    p = sub.add_parser("batch", help="capture a list of URLs; run it again to resume")
    p.add_argument("list", metavar="LIST", help="text file (one URL a line) or CSV; - for stdin")
    p.add_argument("--out", default="archives", help="output directory (default: archives)")
    p.add_argument(
        "--workers", type=int_at_least(1), default=4, help="captures at once (default: 4)"
    )
    p.add_argument(
        "--per-host",
        type=int_at_least(1),
        default=2,
        help="captures of one host at once (default: 2)",
    )
    p.add_argument(
        "--delay",
        type=_nonneg_float,
        default=0.0,
        metavar="SECONDS",
        help="between two captures of one host (default: 0)",
    )
    p.add_argument(
        "--retries",
        type=int_at_least(0),
        default=2,
        help="retries after a transient failure (default: 2)",
    )
    p.add_argument(
        "--backoff",
        type=_nonneg_float,
        default=2.0,
        metavar="SECONDS",
        help="wait before the first retry, doubled each time (default: 2)",
    )
    p.add_argument(
        "--new-run", action="store_true", help="start afresh even if this list's run is unfinished"
    )
    p.add_argument("--queue", metavar="URL", help="send captures to Celery workers at this broker")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    _add_capture_options(p, worker=False)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("worker", help="run a Celery worker that captures queued URLs")
    p.add_argument("--queue", required=True, metavar="URL", help="broker URL (redis://...)")
    p.add_argument("--out", required=True, help="output directory (shared storage)")
    p.add_argument(
        "--concurrency", type=int_at_least(1), default=2, help="captures at once (default: 2)"
    )
    p.add_argument(
        "--redeliver-after",
        type=_positive_float,
        default=900.0,
        metavar="SECONDS",
        help="hand a dead worker's task to another after this long (default: 900)",
    )
    p.add_argument("--name", help="worker name (default: Celery's)")
    _add_capture_options(p, worker=True)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("list", help="one line per package under a directory (unverified)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--url", metavar="SUBSTRING", help="only packages whose URL contains this")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

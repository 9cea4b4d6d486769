"""What to fetch: the page with its redirect chain, then its requisites.

:func:`fetch_chain` follows redirects itself (every hop is its own exchange,
so every hop is evidence) and never writes; the :class:`Crawl` decides what
to fetch next, runs requisites on a thread pool, and hands every exchange to
the one :class:`~evidence.capturing.record.Recorder`. Why a chain stopped is
a typed :class:`HopFailure`, never a sentence to search for words.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
import typing
import urllib.parse
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import attrs

from evidence.capturing.fetcher import Exchange, Fetcher
from evidence.capturing.requisites import (
    Found,
    charset_of,
    css_urls,
    decode_body,
    html_requisites,
    page_title,
)
from evidence.errors import CaptureError
from evidence.manifest import ExchangeInfo, Hop, LimitHit, Refusal, RequisiteFailure, Requisites

if typing.TYPE_CHECKING:
    from evidence.capturing.options import CaptureOptions
    from evidence.capturing.record import Recorder

logger = logging.getLogger(__name__)

__all__ = ["Chain", "ChainStop", "Crawl", "CrawlResult", "HopFailure", "fetch_chain"]

_PARSE_TYPES = ("text/html", "application/xhtml+xml", "text/css")


class ChainStop(enum.Enum):
    """Why a redirect chain ended before a final response."""

    FETCH_FAILED = "fetch-failed"  # no response from this hop (see ``capture_kind``)
    UNSUPPORTED_SCHEME = "unsupported-scheme"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    DEADLINE = "deadline"


@attrs.frozen
class HopFailure:
    """A chain that stopped early: why, in words, and the fetch error kind if any."""

    stop: ChainStop
    message: str
    capture_kind: str | None = None  # CaptureError.kind for FETCH_FAILED

    @property
    def refused_address(self) -> bool:
        """True when ``public_only`` refused the destination."""
        return self.capture_kind == "refused-address"


@attrs.frozen
class Chain:
    """A redirect chain fetched for one URL (possibly cut short)."""

    url: str
    exchanges: tuple[Exchange, ...]
    hops: tuple[Hop, ...]
    failure: HopFailure | None


def fetch_chain(
    fetcher: Fetcher, url: str, *, deadline: float, max_redirects: int, spool_dir: str
) -> Chain:
    """Fetch ``url`` and follow its redirects (runs on any thread; writes nothing)."""
    exchanges: list[Exchange] = []
    hops: list[Hop] = []

    def stop(failure: HopFailure) -> Chain:
        if hops:
            hops[-1] = attrs.evolve(hops[-1], error=failure.message)
        return Chain(url, tuple(exchanges), tuple(hops), failure)

    current = url
    while True:
        try:
            ex = fetcher.fetch(current, deadline=deadline, spool_dir=spool_dir)
        except CaptureError as exc:
            if exc.kind == "disk":
                # Our own disk is full: the whole capture fails, not this hop.
                for done in exchanges:
                    done.response_file.close()
                raise
            return stop(HopFailure(ChainStop.FETCH_FAILED, exc.cause, exc.kind))
        exchanges.append(ex)
        location = ex.header("Location")
        if not (300 <= ex.status < 400 and location):
            return Chain(url, tuple(exchanges), tuple(hops), None)
        target = urllib.parse.urljoin(ex.url, location.strip())
        hops.append(Hop(url=ex.url, status=ex.status, location=target))
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            return stop(
                HopFailure(
                    ChainStop.UNSUPPORTED_SCHEME, f"unsupported scheme {scheme!r}, not followed"
                )
            )
        if len(hops) > max_redirects:
            return stop(
                HopFailure(
                    ChainStop.TOO_MANY_REDIRECTS,
                    f"more than {max_redirects} redirects, not followed",
                )
            )
        if time.monotonic() >= deadline:
            return stop(HopFailure(ChainStop.DEADLINE, "deadline reached before this hop"))
        current = target


@attrs.frozen
class CrawlResult:
    """Everything the crawl learned, ready for sealing."""

    page: ExchangeInfo
    redirects: tuple[Hop, ...]
    requisites: Requisites
    refused: tuple[Refusal, ...]
    limits_hit: tuple[LimitHit, ...]
    warnings: tuple[str, ...]
    title: str | None


def _discard(pending: typing.Iterable[Future[Chain]]) -> None:
    """Close the spool files of fetches that will never be recorded (the crawl failed)."""
    for future in pending:
        future.cancel()
    for future in pending:
        if future.cancelled():
            continue
        try:
            chain = future.result()
        except Exception:  # noqa: S112 - it failed on its own; nothing to close
            continue
        for ex in chain.exchanges:
            ex.response_file.close()


@attrs.frozen
class _Queued:
    found: Found
    found_in: str
    depth: int


class Crawl:
    """One capture's fetching: the page, then its requisites, all through ``recorder``."""

    def __init__(
        self, fetcher: Fetcher, recorder: Recorder, options: CaptureOptions, spool_dir: str
    ) -> None:
        self._fetcher = fetcher
        self._recorder = recorder
        self._options = options
        self._spool_dir = spool_dir
        self._warnings: list[str] = []
        self._limits: list[LimitHit] = []
        self._refused: list[Refusal] = []

    def run(self, url: str, deadline: float) -> CrawlResult:
        """Capture ``url`` and (when enabled) its requisites.

        Raises:
            CaptureError: the page gave no response at all.
        """
        chain = self._chain(url, deadline)
        if not chain.exchanges:
            failure = chain.failure
            raise CaptureError(
                url,
                failure.message if failure else "no response",
                (failure.capture_kind if failure else None) or "other",
            )
        for ex in chain.exchanges[:-1]:
            self._record(ex, "redirect")
        last = chain.exchanges[-1]
        text = self._text(last, for_title=True)
        page = self._record(last, "page")
        self._note_chain_failure(chain)
        is_html = "html" in (last.header("Content-Type") or "").lower()
        title = page_title(text) if text is not None and is_html else None
        requisites = self._requisites(chain.exchanges[-1], page, text)
        if page.status >= 400:
            self._warnings.insert(
                0, f"the server answered HTTP {page.status} {page.reason or ''}".rstrip()
            )
        return CrawlResult(
            page=page,
            redirects=chain.hops,
            requisites=requisites,
            refused=tuple(self._refused),
            limits_hit=tuple(self._limits),
            warnings=tuple(self._warnings),
            title=title,
        )

    # -- helpers -----------------------------------------------------------
    def _chain(self, url: str, deadline: float) -> Chain:
        return fetch_chain(
            self._fetcher,
            url,
            deadline=deadline,
            max_redirects=self._options.max_redirects,
            spool_dir=self._spool_dir,
        )

    def _record(self, ex: Exchange, role: str, found_in: str | None = None) -> ExchangeInfo:
        info = self._recorder.record(ex, role, found_in)
        if ex.truncated:
            limit = {"length": "max_response_bytes", "time": "deadline"}.get(
                ex.truncated, "disconnect"
            )
            self._limits.append(LimitHit(limit=limit, url=ex.url, detail=ex.truncated_detail))
            self._warnings.append(f"response from {ex.url} is incomplete: {ex.truncated_detail}")
        return info

    def _text(self, ex: Exchange, *, for_title: bool = False) -> str | None:
        """Decoded HTML/CSS text of a response, for requisites and the title (bounded)."""
        ctype = (ex.header("Content-Type") or "").split(";")[0].strip().lower()
        if not (self._options.requisites or (for_title and "html" in ctype)):
            return None
        if ctype not in _PARSE_TYPES or ex.status >= 300:
            return None
        result = decode_body(
            ex.response_file,
            header_length=ex.header_length,
            transfer_encoding=ex.header("Transfer-Encoding"),
            content_encoding=ex.header("Content-Encoding"),
        )
        if result.note and self._options.requisites:
            self._warnings.append(f"requisites of {ex.url}: {result.note}")
        return result.data.decode(charset_of(ex.header("Content-Type")), errors="replace")

    def _note_chain_failure(self, chain: Chain) -> None:
        failure = chain.failure
        if failure is None:
            return
        hop = chain.hops[-1] if chain.hops else None
        location = hop.location if hop else chain.url
        if failure.refused_address:
            self._refused.append(Refusal(url=location, reason=failure.message))
        max_redirects = self._options.max_redirects
        if failure.stop is ChainStop.TOO_MANY_REDIRECTS:
            self._limits.append(
                LimitHit(
                    limit="max_redirects",
                    url=hop.url if hop else chain.url,
                    detail=f"{max_redirects} hops",
                )
            )
            self._warnings.append(f"stopped after {max_redirects} redirects")
        elif failure.stop is ChainStop.UNSUPPORTED_SCHEME:
            self._warnings.append(f"redirect to {location} not followed: {failure.message}")
        elif failure.stop is ChainStop.DEADLINE:
            self._limits.append(LimitHit(limit="deadline", url=location, detail="before next hop"))
            self._warnings.append(f"deadline reached before following {location}")
        else:
            self._warnings.append(
                f"redirect target {location} could not be fetched: {failure.message}"
            )

    def _requisites(self, page_ex: Exchange, page: ExchangeInfo, text: str | None) -> Requisites:
        """Fetch requisites concurrently; record each exchange as it completes."""
        opts = self._options
        if not opts.requisites or text is None:
            return Requisites(enabled=opts.requisites)
        ctype = (page_ex.header("Content-Type") or "").lower()
        found = css_urls(text, page.url) if "css" in ctype else html_requisites(text, page.url)
        phase_deadline = time.monotonic() + opts.requisites_deadline
        seen: set[str] = {page.url}
        queue: collections.deque[_Queued] = collections.deque()
        failed: list[RequisiteFailure] = []

        def enqueue(items: typing.Iterable[Found], found_in: str, depth: int) -> None:
            for item in items:
                if item.kind == "iframe" and depth > 0:
                    continue  # one level of iframes: not the frames inside a frame
                url = urllib.parse.urldefrag(item.url)[0]
                if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                    continue
                if url in seen:
                    continue
                seen.add(url)
                queue.append(_Queued(Found(url, item.kind), found_in, depth))

        enqueue(found, page.url, 0)
        total_bytes = 0
        fetched = 0
        stopped: str | None = None
        pending: dict[Future[Chain], _Queued] = {}
        workers = max(1, opts.requisite_workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < workers and stopped is None:
                        if fetched + len(pending) >= opts.max_requisites:
                            stopped = "max_requisites"
                            break
                        if time.monotonic() >= phase_deadline:
                            stopped = "requisites_deadline"
                            break
                        entry = queue.popleft()
                        deadline = min(phase_deadline, time.monotonic() + opts.deadline)
                        pending[pool.submit(self._chain, entry.found.url, deadline)] = entry
                    if not pending:
                        break
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for future in done:
                        entry = pending.pop(future)
                        chain = future.result()
                        fetched += 1
                        last_text: str | None = None
                        last_ex: Exchange | None = None
                        for ex in chain.exchanges:
                            last_ex, last_text = ex, self._text(ex)
                            self._record(ex, "requisite", entry.found_in)
                            total_bytes += ex.response_length
                        error = None
                        if chain.failure is not None:
                            error = chain.failure.message
                            if chain.failure.refused_address:
                                self._refused.append(Refusal(url=entry.found.url, reason=error))
                        elif last_ex is not None and last_ex.status >= 400:
                            error = f"HTTP {last_ex.status}"
                        if error is not None:
                            failed.append(
                                RequisiteFailure(
                                    url=entry.found.url,
                                    kind=entry.found.kind,
                                    found_in=entry.found_in,
                                    error=error,
                                )
                            )
                        if total_bytes >= opts.max_requisite_bytes and stopped is None:
                            stopped = "max_requisite_bytes"
                        if last_ex is None or last_text is None:
                            continue
                        last_type = (last_ex.header("Content-Type") or "").lower()
                        if "css" in last_type:
                            enqueue(css_urls(last_text, last_ex.url), last_ex.url, entry.depth + 1)
                        elif entry.found.kind == "iframe" and entry.depth == 0:
                            enqueue(
                                html_requisites(last_text, last_ex.url),
                                last_ex.url,
                                entry.depth + 1,
                            )
            except BaseException:
                _discard(pending)
                raise
        limits: list[LimitHit] = []
        if stopped is not None:
            detail = {
                "max_requisites": f"{opts.max_requisites} requisites",
                "max_requisite_bytes": f"{opts.max_requisite_bytes} bytes",
                "requisites_deadline": f"{opts.requisites_deadline:g} s",
            }[stopped]
            hit = LimitHit(limit=stopped, url=page.url, detail=detail)
            limits.append(hit)
            self._limits.append(hit)
            self._warnings.append(
                f"requisite limit {stopped} ({detail}) reached; {len(queue)} not fetched"
            )
        if failed:
            self._warnings.append(f"{len(failed)} requisite(s) failed (see the manifest)")
        return Requisites(
            enabled=True,
            fetched=fetched,
            failed=tuple(failed),
            skipped=len(queue) if stopped is not None else 0,
            limits_hit=tuple(limits),
        )

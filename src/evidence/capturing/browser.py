"""Browser capture: what a reader saw, with the exact bytes behind it.

Headless Chromium, driven by Playwright (the optional extra
``evidence-archive[browser]``), loads the page through a
:class:`~evidence.capturing.proxy.RecordingProxy`, so every byte it received
was fetched and recorded by the same fetcher and recorder as plain capture.
Then it waits for the load and for network idle (capped), scrolls to the
bottom in steps so lazy content loads, goes back to the top, waits for fonts,
and makes the artefacts: a full-page PNG screenshot, a PDF print and the DOM
after scripts ran, stored as WARC ``resource`` records with ``urn:`` target
URIs.

Threat model notes:

* The page is hostile. Every Playwright call is bounded by what is left of
  the capture deadline; a watchdog kills the browser's processes at the
  deadline (plus a short grace) even when a script never yields, and every
  process this capture started is killed before it returns.
* No persistent profile (a fresh temporary one per launch, removed by
  Playwright), downloads refused, dialogs dismissed, pop-ups closed.
* Chromium's own services are switched off by flags and refused by the proxy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import threading
import time
import typing
import urllib.parse

import attrs

from evidence import clock
from evidence.capturing.crawl import CrawlResult
from evidence.capturing.options import BrowserOptions
from evidence.capturing.proxy import (
    InterceptionCA,
    ProxyFailure,
    RecordingProxy,
    is_browser_service,
)
from evidence.errors import CaptureError, UsageError
from evidence.manifest import (
    BrowserArtefact,
    BrowserFailure,
    BrowserInfo,
    ExchangeInfo,
    Hop,
    Refusal,
    RequisiteFailure,
    Requisites,
)

if typing.TYPE_CHECKING:
    from evidence.capturing.fetcher import Fetcher
    from evidence.capturing.record import Recorder

logger = logging.getLogger(__name__)

__all__ = [
    "BASE_FLAGS",
    "BrowserPlan",
    "find_chromium",
    "run_browser",
]

INSTALL_HINT = (
    "no Chromium found: install one with 'apt-get install chromium' (Debian/Ubuntu) "
    "or 'pip install evidence-archive[browser] && playwright install chromium', "
    "or give its path with --chromium PATH or EVIDENCE_CHROMIUM"
)
PLAYWRIGHT_HINT = "browser capture needs Playwright: pip install 'evidence-archive[browser]'"
_DEBIAN_WRAPPER = "/usr/bin/chromium"
_DEBIAN_BINARY = "/usr/lib/chromium/chromium"

# Flags that switch Chromium's own network services off before the proxy has
# to refuse them, and keep the run reproducible.
BASE_FLAGS: tuple[str, ...] = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--disable-features=OptimizationHints,Translate,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,"
    "CalculateNativeWinOcclusion,DialMediaRouteProvider",
    "--hide-scrollbars",
    "--mute-audio",
    # Loopback would otherwise skip the proxy (and go unrecorded).
    "--proxy-bypass-list=<-loopback>",
    # WebRTC would otherwise send UDP (STUN) straight from the browser to any
    # server a page names: past the recording proxy and any --proxy, showing
    # the operator's own address. Only proxied traffic is allowed.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)

# Scroll down one window at a time so lazy content loads, back to the top,
# then wait (capped) for images still loading: Playwright's "networkidle"
# fires once per navigation, so waiting for it again after scrolling would
# return at once.
_SCROLL_JS = """
async ([stepMs, maxSteps, imageWaitMs]) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let y = 0;
  for (let i = 0; i < maxSteps; i++) {
    const h = Math.max(document.body ? document.body.scrollHeight : 0,
                       document.documentElement.scrollHeight);
    if (y >= h) break;
    y += Math.max(window.innerHeight, 200);
    window.scrollTo(0, y);
    await sleep(stepMs);
  }
  window.scrollTo(0, 0);
  const pending = Array.from(document.images).filter((img) => !img.complete)
    .map((img) => new Promise((r) => { img.addEventListener("load", r);
                                       img.addEventListener("error", r); }));
  await Promise.race([Promise.all(pending), sleep(imageWaitMs)]);
  return y;
}
"""


def _playwright_browser() -> str | None:
    """The Chromium installed by ``playwright install chromium``, if any."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as pw:
            path = pw.chromium.executable_path
    except Exception:
        return None
    return path if path and os.access(path, os.X_OK) else None


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium binary to run, searched in the documented order.

    Raises:
        UsageError: none was found (the message says how to install one).
    """
    for candidate in (explicit, os.environ.get("EVIDENCE_CHROMIUM")):
        if candidate:
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                raise UsageError(f"Chromium not found or not executable: {candidate}")
            return _real_binary(candidate)
    if os.access(_DEBIAN_WRAPPER, os.X_OK):
        return _real_binary(_DEBIAN_WRAPPER)
    found = _playwright_browser()
    if found is None:
        raise UsageError(INSTALL_HINT)
    return found


def _real_binary(path: str) -> str:
    # Debian's /usr/bin/chromium is a shell script that adds its own flags and
    # prints a warning; the binary beside it is what we drive.
    if os.path.realpath(path) == _DEBIAN_WRAPPER and os.access(_DEBIAN_BINARY, os.X_OK):
        return _DEBIAN_BINARY
    return path


def _chromium_version(path: str) -> str:
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, timeout=20, check=False, text=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot run Chromium at {path}: {exc}") from exc
    version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not version:
        raise UsageError(f"cannot run Chromium at {path}: exit status {done.returncode}")
    return version[:200]


@attrs.frozen
class BrowserPlan:
    """What is fixed before the capture starts: binary, version, flags, CA."""

    options: BrowserOptions
    executable: str
    version: str
    flags: tuple[str, ...]
    ca: InterceptionCA
    token: str

    @staticmethod
    def check(options: BrowserOptions) -> str:
        """Make sure Playwright and a Chromium are there; returns the binary's path.

        Raises:
            UsageError: Playwright or Chromium is missing (the message says how to install).
        """
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError as exc:
            raise UsageError(PLAYWRIGHT_HINT) from exc
        return find_chromium(options.chromium)

    @classmethod
    def prepare(cls, options: BrowserOptions) -> BrowserPlan:
        """Find Playwright and Chromium and make the interception CA.

        Raises:
            UsageError: Playwright or Chromium is missing.
        """
        executable = cls.check(options)
        version = _chromium_version(executable)
        ca = InterceptionCA()
        token = os.urandom(8).hex()
        flags = (
            *BASE_FLAGS,
            f"--ignore-certificate-errors-spki-list={ca.spki_pin}",
            # Unknown to Chromium and ignored by it: lets us find (and kill)
            # exactly the processes this capture started.
            f"--evidence-capture={token}",
        )
        return cls(options, executable, version, flags, ca, token)

    def warcinfo_fields(self) -> list[tuple[str, str]]:
        """Browser facts for the ``warcinfo`` record."""
        w, h = self.options.viewport
        return [
            ("browser", self.version),
            ("browser-flags", " ".join(self.flags)),
            ("browser-viewport", f"{w}x{h}"),
            ("interception-spki-sha256", self.ca.spki_pin),
        ]


@attrs.define
class _Run:
    final_url: str | None = None
    status: int | None = None
    chain: list[str] = attrs.Factory(list)
    title: str | None = None
    user_agent: str = ""
    screenshot: bytes | None = None
    pdf: bytes | None = None
    dom: bytes | None = None
    notes: list[str] = attrs.Factory(list)
    completed: bool = False
    # URLs Playwright reported for the page and its workers, for the cross-check.
    seen: dict[str, None] = attrs.Factory(dict)


_MAX_SEEN = 20_000
_MAX_UNRECORDED = 200


def _saw(run: _Run, url: str) -> None:
    if len(run.seen) < _MAX_SEEN and url.startswith(("http://", "https://")):
        run.seen.setdefault(url.split("#", 1)[0], None)


def _our_processes(token: str) -> list[int]:
    """Pids of the browser processes carrying ``token``, and all their descendants."""
    parents: dict[int, int] = {}
    roots: list[int] = []
    mark = f"--evidence-capture={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(b")", 1)[1].split()[1])
        if mark in cmdline.split(b"\0"):
            roots.append(pid)
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def _kill(token: str) -> int:
    pids = _our_processes(token)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def run_browser(
    plan: BrowserPlan,
    url: str,
    *,
    fetcher: Fetcher,
    recorder: Recorder,
    deadline: float,
    spool_dir: str,
) -> tuple[CrawlResult, BrowserInfo]:
    """Load ``url`` in Chromium through the recording proxy and record the artefacts.

    Raises:
        CaptureError: the page itself gave no response at all.
    """
    proxy = RecordingProxy(fetcher, recorder, deadline=deadline, spool_dir=spool_dir, ca=plan.ca)
    run = _Run()
    killed = threading.Event()

    def watchdog() -> None:
        killed.set()
        if _kill(plan.token):
            logger.warning("browser killed at the capture deadline")

    timer = threading.Timer(max(deadline - time.monotonic(), 0) + 2.0, watchdog)
    timer.daemon = True
    timer.start()
    try:
        _drive(plan, url, proxy.server, deadline, run)
    finally:
        timer.cancel()
        _kill(plan.token)
        proxy.close()
    if killed.is_set():
        run.completed = False
        run.notes.append("the browser was killed at the capture deadline; what arrived is kept")
    return _results(plan, url, run, proxy, recorder)


def _remaining_ms(deadline: float, cap: float | None = None) -> float:
    left = deadline - time.monotonic()
    if cap is not None:
        left = min(left, cap)
    return max(left, 0.0) * 1000


def _drive(plan: BrowserPlan, url: str, proxy_server: str, deadline: float, run: _Run) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    opts = plan.options
    width, height = opts.viewport
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=plan.executable,
                args=[*plan.flags, f"--proxy-server={proxy_server}"],
                timeout=_remaining_ms(deadline, 60),
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
            try:
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    accept_downloads=False,
                    java_script_enabled=True,
                )
                page = context.new_page()
                page.on("dialog", lambda d: _quietly(d.dismiss))
                context.on("page", lambda p: _popup(p, page, run))
                context.on("request", lambda r: _saw(run, r.url))
                _steps(page, url, deadline, opts, run)
            finally:
                with contextlib.suppress(PlaywrightError):
                    browser.close()
    except PlaywrightError as exc:
        run.notes.append(f"browser stopped: {str(exc).splitlines()[0][:300]}")


def _quietly(action: typing.Callable[[], object]) -> None:
    from playwright.sync_api import Error as PlaywrightError

    with contextlib.suppress(PlaywrightError):
        action()


def _popup(popup: typing.Any, main: typing.Any, run: _Run) -> None:
    if popup is main:
        return
    run.notes.append(f"pop-up closed: {popup.url[:500]}")
    _quietly(popup.close)


def _steps(page: typing.Any, url: str, deadline: float, opts: BrowserOptions, run: _Run) -> None:
    from playwright.sync_api import Error as PlaywrightError

    try:
        response = page.goto(url, wait_until="load", timeout=_remaining_ms(deadline))
    except PlaywrightError as exc:
        run.notes.append(f"page did not finish loading: {str(exc).splitlines()[0][:300]}")
        response = None
    if response is not None:
        request = response.request
        chain = [request.url]
        previous = request.redirected_from
        while previous is not None and len(chain) < 50:
            chain.append(previous.url)
            previous = previous.redirected_from
        run.chain = list(reversed(chain))
        run.final_url = response.url
        run.status = response.status

    def step(name: str, action: typing.Callable[[], object]) -> object:
        if deadline - time.monotonic() <= 0:
            run.notes.append(f"{name}: skipped, capture deadline reached")
            return None
        try:
            return action()
        except PlaywrightError as exc:
            run.notes.append(f"{name}: {str(exc).splitlines()[0][:300]}")
            return None

    idle = opts.network_idle_timeout
    step(
        "network idle",
        lambda: page.wait_for_load_state("networkidle", timeout=_remaining_ms(deadline, idle)),
    )
    if opts.scroll:
        image_wait = int(min(idle, 5.0, max(deadline - time.monotonic(), 0)) * 1000)
        step("scroll", lambda: page.evaluate(_SCROLL_JS, [100, 60, image_wait]))
    step("fonts", lambda: page.evaluate("document.fonts.ready.then(() => true)"))
    if opts.wait > 0:
        step("wait", lambda: page.wait_for_timeout(_remaining_ms(deadline, opts.wait)))
    ua = step("user agent", lambda: page.evaluate("navigator.userAgent"))
    run.user_agent = ua if isinstance(ua, str) else ""
    title = step("title", page.title)
    run.title = title[:1000] if isinstance(title, str) and title else None
    if opts.screenshot:
        shot = step(
            "screenshot",
            lambda: page.screenshot(
                full_page=True, type="png", timeout=_remaining_ms(deadline), animations="disabled"
            ),
        )
        run.screenshot = shot if isinstance(shot, bytes) else None
    if opts.dom:
        dom = step("DOM", page.content)
        run.dom = dom.encode("utf-8") if isinstance(dom, str) else None
    if opts.pdf:
        pdf = step("PDF", lambda: page.pdf(print_background=True))
        run.pdf = pdf if isinstance(pdf, bytes) else None
    run.completed = not run.notes


def _results(
    plan: BrowserPlan, url: str, run: _Run, proxy: RecordingProxy, recorder: Recorder
) -> tuple[CrawlResult, BrowserInfo]:
    exchanges = recorder.exchanges
    chain = run.chain or [url]
    # Mark the navigation's own exchanges: every hop a redirect, the last the page.
    marked: list[ExchangeInfo] = []
    for position, hop_url in enumerate(chain):
        for index, info in enumerate(exchanges):
            if info.url == hop_url and info.role == "browser" and info.method == "GET":
                role = "page" if position == len(chain) - 1 else "redirect"
                exchanges[index] = attrs.evolve(info, role=role)
                marked.append(exchanges[index])
                break
    page = next((e for e in marked if e.role == "page"), None)
    if page is None:
        failure = next((f for f in proxy.failures if f.url in chain), None)
        if failure is not None:
            raise CaptureError(url, failure.error, failure.kind)
        raise CaptureError(url, "the browser received no response for the page", "other")
    hops = tuple(
        Hop(url=e.url, status=e.status, location=chain[i + 1])
        for i, e in enumerate(marked)
        if e.role == "redirect" and i + 1 < len(chain)
    )
    date = clock.now_iso()
    artefacts: list[BrowserArtefact] = []
    for kind, data, content_type in (
        ("screenshot", run.screenshot, "image/png"),
        ("pdf", run.pdf, "application/pdf"),
        ("dom", run.dom, "text/html; charset=utf-8"),
    ):
        if data is None:
            continue
        target = f"urn:{kind}:{page.url}"
        record_id = recorder.record_resource(
            target, content_type, data, date=date, refers_to=page.response_record
        )
        artefacts.append(
            BrowserArtefact(
                kind=kind,
                target_uri=target,
                record=record_id,
                content_type=content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    failures = tuple(_failure(f) for f in proxy.failures)
    warnings = [*run.notes]
    # Cross-check: everything the browser says the page requested is either
    # recorded or a listed failure. Browser-internal requests never appear in
    # Playwright's events, so a page request to a blocked host shows up here.
    accounted = {e.url for e in exchanges} | {f.url for f in proxy.failures}
    unrecorded = [u for u in run.seen if u not in accounted]
    blocked_for_page = [u for u in unrecorded if is_browser_service(_host(u))]
    if blocked_for_page:
        warnings.append(
            f"{len(blocked_for_page)} request(s) of the page went to a browser-service host "
            "and were blocked"
        )
    if len(unrecorded) > len(blocked_for_page):
        warnings.append(
            f"{len(unrecorded) - len(blocked_for_page)} request(s) the browser reported "
            "have no recorded exchange (see capture.browser.unrecorded)"
        )
    if page.status >= 400:
        warnings.insert(0, f"the server answered HTTP {page.status} {page.reason or ''}".rstrip())
    if proxy.failures:
        warnings.append(f"{len(proxy.failures)} request(s) of the page got no response")
    w, h = plan.options.viewport
    browser_info = BrowserInfo(
        name="chromium",
        version=plan.version,
        executable=plan.executable,
        flags=plan.flags,
        viewport=f"{w}x{h}",
        user_agent=run.user_agent,
        interception_spki_sha256=plan.ca.spki_pin,
        completed=run.completed,
        artefacts=tuple(artefacts),
        failed=failures,
        blocked=len(proxy.blocked),
        unrecorded=tuple(unrecorded[:_MAX_UNRECORDED]),
        notes=tuple(run.notes),
    )
    crawl = CrawlResult(
        page=page,
        redirects=hops,
        requisites=Requisites(
            enabled=True,
            fetched=sum(1 for e in exchanges if e.role == "browser"),
            failed=tuple(
                RequisiteFailure(url=f.url, kind=f.kind, error=f.error) for f in proxy.failures
            ),
        ),
        refused=tuple(
            Refusal(url=f.url, reason=f.error)
            for f in proxy.failures
            if f.kind == "refused-address"
        ),
        limits_hit=(),
        warnings=tuple(warnings),
        title=run.title,
    )
    return crawl, browser_info


def _host(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _failure(f: ProxyFailure) -> BrowserFailure:
    return BrowserFailure(url=f.url, method=f.method, kind=f.kind, error=f.error)


def have_chromium() -> bool:
    """True when a Chromium can be found (for tests and ``doctor``-style checks)."""
    try:
        find_chromium()
    except UsageError:
        return False
    return True

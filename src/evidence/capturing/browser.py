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
* No persistent profile: an off-the-record context in a fresh temporary
  profile, removed by Playwright, or by us when the browser had to be
  killed; downloads refused, dialogs dismissed, pop-ups closed.
* Chromium's own services are switched off by flags and refused by the proxy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
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
    CountingFetcher,
    InterceptionCA,
    ProxyFailure,
    RecordingProxy,
    is_browser_service,
)
from evidence.errors import CaptureError, UsageError
from evidence.manifest import (
    BrowserArtefact,
    BrowserDownload,
    BrowserFailure,
    BrowserInfo,
    BrowserLog,
    ExchangeInfo,
    Hop,
    LimitHit,
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

_JS_HEAP_MB = 512

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
    # Memory bounds for hostile pages: a JavaScript heap that grows without
    # end makes its renderer fail (the capture keeps what arrived), and a
    # page cannot spawn renderer processes without end. The watchdog also
    # kills the browser when its processes together hold more than
    # BrowserOptions.max_browser_memory_mb.
    f"--js-flags=--max-old-space-size={_JS_HEAP_MB}",
    "--renderer-process-limit=4",
    # Loopback would otherwise skip the proxy (and go unrecorded).
    "--proxy-bypass-list=<-loopback>",
    # WebRTC would otherwise send UDP (STUN) straight from the browser to any
    # server a page names: past the recording proxy and any --proxy, showing
    # the operator's own address. Only proxied traffic is allowed.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)

# Scroll down one window at a time so lazy content loads, back to the top,
# then wait (capped) for images still loading. The scroll runs while the page
# settles towards network idle (Playwright's "networkidle": 500 ms without
# requests, once per navigation), not after it: requests the scroll starts
# postpone idle, so the two waits overlap instead of adding up. If the page
# grew while it settled, the rest of it is scrolled afterwards. Python drives
# the steps and Playwright times them, never the page's own timers: a page
# that replaces setTimeout or document.fonts cannot make a step wait forever.
_SCROLL_STEP_MS = 50
# The share of the time left that the load event may take; the rest is for
# the waits and the snapshot.
_LOAD_SHARE = 0.5
_SCROLL_MAX_STEPS = 60
_HEIGHT_JS = """
() => Math.max(document.body ? document.body.scrollHeight : 0,
               document.documentElement.scrollHeight)
"""
_IMAGES_DONE_JS = "() => Array.from(document.images).every((img) => img.complete)"
_FONTS_DONE_JS = "() => document.fonts.status === 'loaded'"
_FONTS_WAIT = 5.0


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


# Version strings by (path, size, mtime): asking the binary costs a process start.
_VERSIONS: dict[tuple[str, int, int], str] = {}


def _chromium_version(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"cannot run Chromium at {path}: {exc}") from exc
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _VERSIONS:
        _VERSIONS[key] = _ask_version(path)
    return _VERSIONS[key]


def _ask_version(path: str) -> str:
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


# Caps on what the browser's log keeps: a hostile page controls all of it.
# Past MAX_LOG_REQUESTS the log stops listening to network events: each one
# costs the driver thread time, and a page requesting forever would otherwise
# starve the steps that make the snapshot.
MAX_LOG_REQUESTS = 2_000
MAX_CONSOLE_MESSAGES = 1_000
MAX_PAGE_ERRORS = 200
MAX_EVENTS = 100  # pop-ups, downloads, dialogs each
MAX_TEXT_CHARS = 2_000
MAX_URL_CHARS = 4_096
# Failures listed in the manifest at most (all of them are counted).
MAX_LISTED_FAILURES = 1_000
LOG_FORMAT = "evidence-browser-log/1"
LOG_CONTENT_TYPE = "application/json"
_MAX_UNRECORDED = 200
_MEMORY_POLL = 0.5
_PROFILE_PREFIX = "playwright_chromiumdev_profile-"
_KILL_GRACE = 2.0


class _Log:
    """What the browser reported about the page, bounded, in the order it came.

    Fed by Playwright events on the driver thread. Every text is the page's
    (hostile) text, kept as data; lists stop at their caps and count the rest.
    """

    def __init__(self) -> None:
        # Called once per list ("requests", "console", "page_errors") when it
        # is full, to stop listening to its events.
        self.when_full: typing.Callable[[str], None] | None = None
        # Set when the capture's request cap is reached: the request list then
        # counts as full too (the page is requesting without end).
        self.capped = threading.Event()
        self.console: list[dict[str, typing.Any]] = []
        self.page_errors: list[dict[str, typing.Any]] = []
        self.requests: list[dict[str, typing.Any]] = []
        self.popups: list[str] = []
        self.downloads: list[dict[str, typing.Any]] = []
        self.dialogs: list[dict[str, typing.Any]] = []
        self.dropped: dict[str, int] = dict.fromkeys(
            ("console", "page_errors", "requests", "popups", "downloads", "dialogs"), 0
        )
        self.cut = 0
        # Entries of requests still in flight, by Playwright's Request object
        # (the API hands out one object per request); forgotten once finished.
        self._open: dict[object, dict[str, typing.Any]] = {}

    def _text(self, value: object, limit: int = MAX_TEXT_CHARS) -> str:
        text = value if isinstance(value, str) else str(value)
        if len(text) > limit:
            self.cut += 1
            return text[:limit]
        return text

    def _room(self, kind: str, items: list[typing.Any], cap: int) -> bool:
        if len(items) < cap:
            return True
        if not self.dropped[kind] and self.when_full is not None:
            self.when_full(kind)
        self.dropped[kind] += 1
        return False

    def request(self, request: typing.Any) -> None:
        cap = len(self.requests) if self.capped.is_set() else MAX_LOG_REQUESTS
        if not self._room("requests", self.requests, cap):
            return
        entry: dict[str, typing.Any] = {
            "method": self._text(request.method, 20),
            "url": self._text(request.url, MAX_URL_CHARS),
            "resource_type": self._text(request.resource_type, 40),
            "navigation": bool(request.is_navigation_request()),
            "by_service_worker": request.service_worker is not None,
            "status": None,
            "from_service_worker": False,
            "failure": None,
        }
        self.requests.append(entry)
        self._open[request] = entry

    def response(self, response: typing.Any) -> None:
        entry = self._open.get(response.request)
        if entry is not None:
            entry["status"] = response.status
            entry["from_service_worker"] = bool(response.from_service_worker)

    def finished(self, request: typing.Any) -> None:
        self._open.pop(request, None)

    def failed(self, request: typing.Any) -> None:
        entry = self._open.pop(request, None)
        if entry is not None:
            entry["failure"] = self._text(request.failure or "failed", 300)

    def console_message(self, message: typing.Any) -> None:
        if not self._room("console", self.console, MAX_CONSOLE_MESSAGES):
            return
        location = message.location if isinstance(message.location, dict) else {}
        self.console.append(
            {
                "level": self._text(message.type, 40),
                "text": self._text(message.text),
                "url": self._text(location.get("url") or "", MAX_URL_CHARS),
                "line": location.get("lineNumber"),
                "column": location.get("columnNumber"),
            }
        )

    def page_error(self, error: typing.Any) -> None:
        if not self._room("page_errors", self.page_errors, MAX_PAGE_ERRORS):
            return
        err = getattr(error, "error", error)
        self.page_errors.append(
            {
                "name": self._text(getattr(err, "name", "") or "", 200),
                "message": self._text(getattr(err, "message", None) or str(err)),
                "stack": self._text(getattr(err, "stack", "") or ""),
            }
        )

    def popup(self, url: str) -> None:
        if self._room("popups", self.popups, MAX_EVENTS):
            self.popups.append(self._text(url, MAX_URL_CHARS))

    def download(self, url: str, filename: str) -> None:
        if self._room("downloads", self.downloads, MAX_EVENTS):
            self.downloads.append(
                {
                    "url": self._text(url, MAX_URL_CHARS),
                    "suggested_filename": self._text(filename, 500),
                    "state": "refused",
                }
            )

    def dialog(self, kind: str, message: str) -> None:
        if self._room("dialogs", self.dialogs, MAX_EVENTS):
            self.dialogs.append(
                {
                    "type": self._text(kind, 40),
                    "message": self._text(message),
                    "action": "dismissed",
                }
            )

    def to_bytes(self, page_url: str) -> bytes:
        """The log record's JSON (docs/browser.md); ASCII, so hostile text stays data."""
        document = {
            "format": LOG_FORMAT,
            "page": page_url,
            "console": self.console,
            "page_errors": self.page_errors,
            "requests": self.requests,
            "popups": [{"url": u, "action": "closed"} for u in self.popups],
            "downloads": self.downloads,
            "dialogs": self.dialogs,
            "dropped": self.dropped,
            "texts_cut": self.cut,
        }
        return json.dumps(document, ensure_ascii=True, indent=1).encode("ascii") + b"\n"


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
    log: _Log = attrs.Factory(_Log)
    # Why the watchdog killed the browser ("deadline", "memory"), if it did.
    killed: list[str] = attrs.Factory(list)
    crashed: bool = False
    deadline_hit: bool = False
    # Profile directories of browser processes that had to be killed.
    profiles: set[str] = attrs.Factory(set)


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


def _memory_kib(pids: typing.Iterable[int]) -> int:
    """Proportional resident memory (PSS) of ``pids`` together, in KiB.

    PSS shares pages between the processes that map them, so Chromium's
    shared libraries are not counted once per process.
    """
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def _profile_dirs(pids: typing.Iterable[int]) -> set[str]:
    """The temporary profile directories (``--user-data-dir``) Playwright gave ``pids``."""
    found: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        for arg in args:
            if arg.startswith(b"--user-data-dir="):
                path = os.fsdecode(arg.partition(b"=")[2])
                # Only Playwright's own temporary profiles, never a user's.
                if os.path.isabs(path) and os.path.basename(path).startswith(_PROFILE_PREFIX):
                    found.add(path)
    return found


def _kill(token: str) -> set[str]:
    """Kill every process of this capture's browser; returns their profile directories."""
    pids = _our_processes(token)
    profiles = _profile_dirs(pids)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return profiles


def _watch(
    token: str,
    deadline: float,
    memory_kib: int,
    stop: threading.Event,
    killed: list[str],
    profiles: set[str],
) -> None:
    """Kill the browser at the deadline (plus a grace) or when it holds too much memory."""
    while True:
        left = deadline + _KILL_GRACE - time.monotonic()
        if left <= 0:
            reason = "deadline"
            break
        if stop.wait(min(left, _MEMORY_POLL)):
            return
        if _memory_kib(_our_processes(token)) > memory_kib:
            reason = "memory"
            break
    killed.append(reason)
    profiles.update(_kill(token))
    logger.warning("browser killed: %s", reason)


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
        CaptureError: the page itself gave no response at all, or (``disk``) a
            response was lost to our own full disk.
    """
    run = _Run()
    counting = CountingFetcher(
        fetcher, plan.options.max_requests, run.log.capped, "browser capture"
    )
    proxy = RecordingProxy(
        # The proxy only calls fetch(); the counter passes the rest through.
        typing.cast("Fetcher", counting),
        recorder,
        deadline=deadline,
        spool_dir=spool_dir,
        ca=plan.ca,
    )
    stop = threading.Event()
    watchdog = threading.Thread(
        target=_watch,
        args=(
            plan.token,
            deadline,
            plan.options.max_browser_memory_mb * 1024,
            stop,
            run.killed,
            run.profiles,
        ),
        name="evidence-browser-watchdog",
        daemon=True,
    )
    watchdog.start()
    try:
        _drive(plan, url, proxy.server, deadline, run)
    finally:
        stop.set()
        watchdog.join()
        run.profiles.update(_kill(plan.token))
        proxy.close()
        # Playwright removes the browser's temporary profile when the browser
        # closes, not when it was killed; then we do, once no process of it
        # is left to write into it.
        for profile in run.profiles:
            shutil.rmtree(profile, ignore_errors=True)
    proxy.raise_disk_failure(url)
    # Past the deadline, some step was cut short (or skipped) even when
    # Playwright's own timeouts ended it before the watchdog had to.
    run.deadline_hit = time.monotonic() >= deadline
    if run.killed:
        run.completed = False
        what = {
            "deadline": "at the capture deadline",
            "memory": f"above {plan.options.max_browser_memory_mb} MiB of memory",
        }[run.killed[0]]
        run.notes.append(f"the browser was killed {what}; what arrived is kept")
    return _results(plan, url, run, proxy, recorder, counting)


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
    log = run.log
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
                # An off-the-record context: the page's cache, cookies and
                # storage stay in memory. Typed Any: events are subscribed by
                # name from a table below, which Playwright's per-event
                # overloads cannot check.
                context: typing.Any = browser.new_context(
                    viewport={"width": width, "height": height},
                    accept_downloads=False,
                    java_script_enabled=True,
                )
                listeners: dict[str, list[tuple[str, typing.Callable[[typing.Any], None]]]] = {
                    "requests": [
                        ("request", log.request),
                        ("response", log.response),
                        ("requestfinished", log.finished),
                        ("requestfailed", log.failed),
                    ],
                    "console": [("console", log.console_message)],
                    "page_errors": [("weberror", log.page_error)],
                }
                for pairs in listeners.values():
                    for event, listener in pairs:
                        context.on(event, listener)

                def stop_listening(kind: str) -> None:
                    # Every event costs the driver thread time; a full list needs none.
                    logger.debug("browser log: %s full, no longer listened to", kind)
                    for event, listener in listeners.get(kind, ()):
                        context.remove_listener(event, listener)

                log.when_full = stop_listening
                context.on("dialog", lambda d: _dialog(d, log))
                page = context.new_page()
                page.on("download", lambda d: log.download(d.url, d.suggested_filename))
                page.on("crash", lambda _: _crashed(run))
                context.on("page", lambda p: _popup(p, page, log))
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


def _crashed(run: _Run) -> None:
    # Out of memory (the heap cap) or a renderer bug: nothing more to wait for.
    run.crashed = True
    run.notes.append("the page's renderer crashed (out of memory?)")


def _dialog(dialog: typing.Any, log: _Log) -> None:
    log.dialog(dialog.type, dialog.message)
    _quietly(dialog.dismiss)


def _popup(popup: typing.Any, main: typing.Any, log: _Log) -> None:
    if popup is main:
        return
    # Listed and closed; what it loaded went through the proxy like the rest.
    log.popup(popup.url)
    popup.on("download", lambda d: log.download(d.url, d.suggested_filename))
    _quietly(popup.close)


def _steps(page: typing.Any, url: str, deadline: float, opts: BrowserOptions, run: _Run) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    # The page's response may take the whole deadline; its load event may
    # not: a page whose load never comes (an image that never ends, a
    # navigation cut short by a download) still gets its snapshot.
    try:
        response = page.goto(url, wait_until="commit", timeout=_remaining_ms(deadline))
    except PlaywrightError as exc:
        run.notes.append(f"page did not load: {str(exc).splitlines()[0][:300]}")
        response = None
    if response is not None:
        load_wait = max(deadline - time.monotonic(), 0) * _LOAD_SHARE
        try:
            page.wait_for_load_state("load", timeout=load_wait * 1000)
        except PlaywrightError as exc:
            run.notes.append(f"page did not finish loading: {str(exc).splitlines()[0][:300]}")
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
        if run.crashed:
            run.notes.append(f"{name}: skipped, the page crashed")
            return None
        began = time.monotonic()
        try:
            return action()
        except PlaywrightError as exc:
            run.notes.append(f"{name}: {str(exc).splitlines()[0][:300]}")
            return None
        finally:
            logger.debug("browser step %s took %.3f s", name, time.monotonic() - began)

    idle = opts.network_idle_timeout

    step_height = opts.viewport[1]

    def height() -> float:
        value = page.evaluate(_HEIGHT_JS)
        return float(value) if isinstance(value, int | float) else 0.0

    def scroll(start: int) -> int:
        y = start
        for _ in range(_SCROLL_MAX_STEPS):
            if deadline - time.monotonic() <= 0 or y >= height():
                break
            y += step_height
            page.evaluate("(y) => window.scrollTo(0, y)", y)
            page.wait_for_timeout(_SCROLL_STEP_MS)
        page.evaluate("() => window.scrollTo(0, 0)")
        # Images still loading, at most a few seconds; a page that never
        # finishes one still gets its snapshot.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(_IMAGES_DONE_JS, timeout=_remaining_ms(deadline, min(idle, 5.0)))
        return y

    done = step("scroll", lambda: scroll(0)) if opts.scroll else None
    scrolled = done if isinstance(done, int) else 0
    step(
        "network idle",
        lambda: page.wait_for_load_state("networkidle", timeout=_remaining_ms(deadline, idle)),
    )
    if opts.scroll:
        grown = step("page height", height)
        if isinstance(grown, float) and grown > scrolled + step_height:
            step("scroll", lambda: scroll(scrolled))

    def fonts() -> None:
        # Playwright's timeout, not the page's promise: a page can replace
        # document.fonts with one that never settles. Fonts still loading
        # after a few seconds are not worth the snapshot.
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(_FONTS_DONE_JS, timeout=_remaining_ms(deadline, _FONTS_WAIT))

    step("fonts", fonts)
    if opts.wait > 0:
        step("wait", lambda: page.wait_for_timeout(_remaining_ms(deadline, opts.wait)))
    facts = step("user agent", lambda: page.evaluate("[navigator.userAgent, document.title]"))
    ua, title = facts if isinstance(facts, list) and len(facts) == 2 else ("", None)
    run.user_agent = ua[:1000] if isinstance(ua, str) else ""
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
    plan: BrowserPlan,
    url: str,
    run: _Run,
    proxy: RecordingProxy,
    recorder: Recorder,
    counting: CountingFetcher,
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
    log = run.log
    log_bytes = log.to_bytes(page.url)
    log_target = f"urn:browser-log:{page.url}"
    log_record = recorder.record_resource(
        log_target,
        LOG_CONTENT_TYPE,
        log_bytes,
        date=date,
        refers_to=page.response_record,
        record_type="metadata",
    )
    browser_log = BrowserLog(
        record=log_record,
        target_uri=log_target,
        content_type=LOG_CONTENT_TYPE,
        size=len(log_bytes),
        sha256=hashlib.sha256(log_bytes).hexdigest(),
        console_messages=len(log.console),
        page_errors=len(log.page_errors),
        requests=len(log.requests),
        dropped=sum(log.dropped.values()),
    )
    failures = list(proxy.failures)
    warnings = [*run.notes]
    limits: list[LimitHit] = []
    # Cross-check: everything the browser says the page requested is either
    # recorded or a listed failure. Browser-internal requests never appear in
    # Playwright's events, so a page request to a blocked host shows up here.
    # A request a service worker answered never reached the network: the
    # worker's own requests (listed too) are what was fetched.
    accounted = {e.url for e in exchanges} | {f.url for f in failures}
    missing: dict[str, None] = {}
    for entry in log.requests:
        address = entry["url"].split("#", 1)[0]
        if (
            entry["from_service_worker"]
            or not address.startswith(("http://", "https://"))
            or address in accounted
        ):
            continue
        if entry["status"] is None and not is_browser_service(_host(address)):
            # No response reached the browser: still waiting when the
            # capture ended (a long-poll, an event stream: the proxy was still
            # fetching it), or given up by the browser itself before it
            # reached the proxy. A recorded failure, not a gap.
            failure = entry["failure"]
            failures.append(
                ProxyFailure(
                    url=address,
                    method=entry["method"],
                    kind="browser" if failure else "timeout",
                    error=f"the browser gave up: {failure}"
                    if failure
                    else "no complete response before the capture ended",
                )
            )
            accounted.add(address)
            continue
        missing.setdefault(address, None)
    unrecorded = list(missing)
    blocked_for_page = [u for u in unrecorded if is_browser_service(_host(u))]
    if blocked_for_page:
        warnings.append(
            f"{len(blocked_for_page)} request(s) of the page went to a browser-service host "
            "and were blocked"
        )
    if len(unrecorded) > len(blocked_for_page):
        warnings.append(
            f"{len(unrecorded) - len(blocked_for_page)} request(s) the browser reported "
            "have no recorded exchange (see capture.browser.unrecorded and the browser log)"
        )
    if log.dropped["requests"]:
        warnings.append(
            f"the browser log lists the first {len(log.requests)} requests; later ones "
            "were not listed or cross-checked"
        )
    if page.status >= 400:
        warnings.insert(0, f"the server answered HTTP {page.status} {page.reason or ''}".rstrip())
    if failures:
        warnings.append(f"{len(failures)} request(s) of the page got no response")
    if counting.refused:
        limits.append(
            LimitHit(
                limit="browser_requests",
                url=page.url,
                detail=f"{counting.refused} request(s) past {plan.options.max_requests} refused",
            )
        )
        warnings.append(
            f"the page made more than {plan.options.max_requests} requests; "
            f"{counting.refused} later one(s) were refused, not fetched"
        )
    if "deadline" in run.killed:
        limits.append(LimitHit(limit="deadline", url=page.url, detail="browser killed"))
    elif run.deadline_hit:
        limits.append(LimitHit(limit="deadline", url=page.url, detail="browser steps cut short"))
    if "memory" in run.killed:
        limits.append(
            LimitHit(
                limit="browser_memory",
                url=page.url,
                detail=f"above {plan.options.max_browser_memory_mb} MiB, browser killed",
            )
        )
    for info in exchanges:
        if info.truncated and len(limits) < MAX_LISTED_FAILURES:
            limit = {"length": "max_response_bytes", "time": "deadline"}.get(
                info.truncated, "disconnect"
            )
            limits.append(
                LimitHit(limit=limit, url=info.url, detail=f"truncated: {info.truncated}")
            )
    if len(failures) > MAX_LISTED_FAILURES:
        warnings.append(
            f"only the first {MAX_LISTED_FAILURES} of {len(failures)} failures are listed"
        )
        failures = failures[:MAX_LISTED_FAILURES]
    by_url = {e.url: e for e in exchanges}
    downloads = tuple(
        BrowserDownload(
            url=d["url"],
            filename=d["suggested_filename"] or None,
            state=d["state"],
            record=by_url[d["url"]].response_record if d["url"] in by_url else None,
        )
        for d in log.downloads
    )
    if downloads:
        warnings.append(f"{len(downloads)} download(s) started by the page were refused")
    if log.popups:
        warnings.append(f"{len(log.popups)} pop-up(s) opened by the page were closed")
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
        failed=tuple(_failure(f) for f in failures),
        blocked=proxy.blocked_total,
        unrecorded=tuple(unrecorded[:_MAX_UNRECORDED]),
        notes=tuple(run.notes),
        log=browser_log,
        popups=tuple(log.popups),
        downloads=downloads,
    )
    crawl = CrawlResult(
        page=page,
        redirects=hops,
        requisites=Requisites(
            enabled=True,
            fetched=sum(1 for e in exchanges if e.role == "browser"),
            failed=tuple(RequisiteFailure(url=f.url, kind=f.kind, error=f.error) for f in failures),
        ),
        refused=tuple(
            Refusal(url=f.url, reason=f.error) for f in failures if f.kind == "refused-address"
        ),
        limits_hit=tuple(limits),
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

"""Media capture: the video or audio on a page, with every byte it came in.

yt-dlp (the optional extra ``evidence-archive[media]``), used as a library,
finds the media on the page (direct files, HTML5 ``<video>``/``<audio>``,
HLS, DASH, and the sites it has extractors for) and downloads it. All of its
HTTP(S) traffic goes through a :class:`~evidence.capturing.proxy.RecordingProxy`,
so every playlist, manifest and segment is fetched by the one fetcher and
written by the one recorder, like every other exchange: exact bytes, server
IP, TLS chain. What yt-dlp then wrote (the media file, merged by ffmpeg when
the best format needs it, and subtitles) is stored as WARC ``resource``
records, with a bounded JSON of what yt-dlp knew about it.

How yt-dlp is run, and why:

* Its proxy is ours; the hop from yt-dlp to our loopback proxy skips
  certificate checks (yt-dlp has no CA option), because the proxy checks the
  real server's certificate itself with the capture's trust settings.
* Only its native downloaders do network I/O (HLS and DASH too, live streams
  included): ffmpeg or another program would fetch around the recorder. ffmpeg
  only merges files already downloaded.
* No cache directory, no configuration files (the library reads none), no
  cookies or netrc, no update check, no X-Forwarded-For faking, one download
  at a time (so the byte budget holds), files named by us in a temporary
  directory inside the package being built.

Threat model notes: the page, the site and everything yt-dlp reports are
hostile. Every failure of yt-dlp becomes a warning (its text passes through
:func:`evidence.display.safe` when shown); the capture of the page stands. The
byte budget (``max_media_bytes``) is enforced by the proxy on the bytes
received, not by yt-dlp; the capture deadline stops new requests and cuts
transfers in flight; a live stream ends at whichever comes first and what
arrived is kept, marked incomplete. Info JSON is built from a short list of
fields, each bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import shutil
import signal
import tempfile
import threading
import time
import typing

import attrs

from evidence import clock
from evidence.capturing.options import MediaOptions
from evidence.capturing.proxy import CountingFetcher, RecordingProxy
from evidence.errors import UsageError
from evidence.manifest import MediaFile, MediaInfo, MediaItem

if typing.TYPE_CHECKING:
    from evidence.capturing.fetcher import Fetcher
    from evidence.capturing.record import Recorder

logger = logging.getLogger(__name__)

__all__ = [
    "INSTALL_HINT",
    "MAX_INFO_JSON_BYTES",
    "NO_MEDIA",
    "MediaPlan",
    "bounded_info",
    "run_media",
]

NO_MEDIA = "no media found on the page"
INSTALL_HINT = "media capture needs yt-dlp: pip install 'evidence-archive[media]'"
# The info JSON stored per item, at most.
MAX_INFO_JSON_BYTES = 256 * 1024
_MAX_TEXT = 4096
_MAX_DESCRIPTION = 64 * 1024
_MAX_FORMATS = 8
_MAX_SUBTITLES = 20
_MAX_SUBTITLE_BYTES = 16 * 1024**2
_MAX_WARNINGS = 50
_MAX_FAILURES_NOTED = 5
# Seconds yt-dlp may run past the deadline (merging, closing files) before
# it is abandoned and its proxy closed.
_GRACE = 10.0

# The fields of yt-dlp's info dict kept, per item and per chosen format.
_ITEM_FIELDS = (
    "id",
    "title",
    "uploader",
    "uploader_id",
    "uploader_url",
    "channel",
    "channel_id",
    "upload_date",
    "timestamp",
    "release_date",
    "duration",
    "view_count",
    "like_count",
    "webpage_url",
    "original_url",
    "extractor",
    "extractor_key",
    "is_live",
    "was_live",
    "live_status",
    "format_id",
    "format",
    "ext",
    "width",
    "height",
    "fps",
    "vcodec",
    "acodec",
    "tbr",
    "abr",
    "vbr",
    "protocol",
    "license",
)
_FORMAT_FIELDS = (
    "format_id",
    "format_note",
    "url",
    "manifest_url",
    "protocol",
    "ext",
    "width",
    "height",
    "fps",
    "vcodec",
    "acodec",
    "tbr",
    "abr",
    "vbr",
    "asr",
    "filesize",
    "language",
)


def _bounded_value(value: object, limit: int = _MAX_TEXT) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else None
    if isinstance(value, float):
        return value if value == value and abs(value) < 1e15 else None
    if isinstance(value, str):
        return value[:limit]
    return None


def bounded_info(info: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
    """What is kept of yt-dlp's info dict: named fields, each bounded.

    Dropped on purpose: the lists of every format offered, thumbnails, HTTP
    headers (they may carry cookies), and anything not in the lists above.
    The result serialises to at most :data:`MAX_INFO_JSON_BYTES`.
    """
    out: dict[str, typing.Any] = {}
    for name in _ITEM_FIELDS:
        value = _bounded_value(info.get(name))
        if value is not None:
            out[name] = value
    description = info.get("description")
    if isinstance(description, str):
        out["description"] = description[:_MAX_DESCRIPTION]
    chosen = info.get("requested_formats") or ([info] if info.get("format_id") else ())
    formats: list[dict[str, typing.Any]] = []
    if isinstance(chosen, list | tuple):
        for fmt in list(chosen)[:_MAX_FORMATS]:
            if isinstance(fmt, dict):
                kept = {k: _bounded_value(fmt.get(k)) for k in _FORMAT_FIELDS}
                formats.append({k: v for k, v in kept.items() if v is not None})
    if formats:
        out["formats_chosen"] = formats
    subtitles = info.get("requested_subtitles")
    if isinstance(subtitles, dict):
        out["subtitles"] = sorted(str(k)[:64] for k in list(subtitles)[:_MAX_SUBTITLES])
    while len(_dump(out)) > MAX_INFO_JSON_BYTES and out.get("description"):
        out["description"] = out["description"][: len(out["description"]) // 2]
    for limit in (512, 64):
        if len(_dump(out)) <= MAX_INFO_JSON_BYTES:
            break
        out = {k: v[:limit] if isinstance(v, str) else v for k, v in out.items()}
        if formats:
            out["formats_chosen"] = [
                {k: v[:limit] if isinstance(v, str) else v for k, v in f.items()} for f in formats
            ]
    return out


def _dump(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=True, indent=2, sort_keys=True).encode("ascii") + b"\n"


@attrs.frozen
class MediaPlan:
    """Checked before the capture starts: yt-dlp is there, and whether ffmpeg is."""

    options: MediaOptions
    version: str
    ffmpeg: str | None

    @classmethod
    def prepare(cls, options: MediaOptions) -> MediaPlan:
        """Raises UsageError for unusable options, or (with the install hint)
        when yt-dlp is missing."""
        if not isinstance(options.max_media_bytes, int) or options.max_media_bytes <= 0:
            raise UsageError("max_media_bytes must be a positive number of bytes")
        if not isinstance(options.max_items, int) or options.max_items < 1:
            raise UsageError("max_items must be at least 1")
        if not isinstance(options.max_requests, int) or options.max_requests < 1:
            raise UsageError("max_requests must be at least 1")
        try:
            import yt_dlp.version
        except ImportError as exc:
            raise UsageError(INSTALL_HINT) from exc
        return cls(options=options, version=yt_dlp.version.__version__, ffmpeg=_ffmpeg(options))

    def warcinfo_fields(self) -> list[tuple[str, str]]:
        """Media facts for the ``warcinfo`` record."""
        # Whether ffmpeg was there, not its path: a path can name the
        # operator's account (docs/media.md).
        fields = [("media-tool", f"yt-dlp/{self.version}")]
        fields.append(("media-ffmpeg", "available" if self.ffmpeg else "none"))
        # The formats chosen are known only after the download, when this
        # record is long written: they are in capture.media and the info JSON.
        fields.append(("media-format-selector", self.format_selector))
        return fields

    @property
    def format_selector(self) -> str:
        """The yt-dlp format selector this capture uses."""
        return self.options.format or ("bv*+ba/b" if self.ffmpeg else "b")


def _ffmpeg(options: MediaOptions) -> str | None:
    """The ffmpeg used for merging, or None (then single-file formats only)."""
    location = options.ffmpeg
    if location is None:
        return shutil.which("ffmpeg")
    if os.path.isdir(location):
        candidate = os.path.join(location, "ffmpeg")
        return candidate if os.access(candidate, os.X_OK) else None
    return location if os.access(location, os.X_OK) else None


class _Logger:
    """yt-dlp's logger: debug and info dropped, warnings and errors kept (bounded).

    Local paths in its messages (the package being built sits in the
    operator's archive directory, often under their home) are replaced by
    placeholders before anything is kept: they can name the operator.
    """

    def __init__(self, paths: typing.Sequence[tuple[str, str]] = ()) -> None:
        self.messages: list[str] = []
        home = os.path.expanduser("~")
        # Longest first, so a path inside another is replaced whole.
        self._paths = sorted(
            [*paths, *([(home, "~")] if home not in ("", "/") else [])],
            key=lambda p: len(p[0]),
            reverse=True,
        )

    def redact(self, text: str) -> str:
        for path, placeholder in self._paths:
            text = text.replace(path, placeholder)
        return text

    def _keep(self, msg: str) -> None:
        if any(noise in msg for noise in _NOISE):
            return
        if len(self.messages) < _MAX_WARNINGS:
            text = str(msg).removeprefix("ERROR: ").removeprefix("WARNING: ")
            text = self.redact(text.split("; please report this issue", 1)[0].strip())
            self.messages.append(text[:500])

    def debug(self, msg: str) -> None:
        logger.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        logger.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        self._keep(msg)

    def error(self, msg: str) -> None:
        self._keep(msg)


class _Watch:
    """What yt-dlp reported while it ran: items seen, files written."""

    def __init__(self) -> None:
        self.items: list[dict[str, typing.Any]] = []
        self.live: set[str] = set()
        self.files: dict[str, str] = {}  # path -> item id

    def item(self, info: dict[str, typing.Any]) -> None:
        # A shallow copy: yt-dlp later pops keys from the dict it passed.
        info = dict(info)
        key = str(info.get("id"))
        for index, seen in enumerate(self.items):
            if str(seen.get("id")) == key:
                self.items[index] = info
                return
        self.items.append(info)


def _postprocessors(watch: _Watch) -> list[tuple[typing.Any, str]]:
    from yt_dlp.postprocessor.common import PostProcessor

    class NotLive(PostProcessor):  # type: ignore[misc]  # yt-dlp is untyped
        """yt-dlp hands live streams to ffmpeg, which would fetch around the
        recorder; marked not live, the native downloader takes them (the
        segments listed when asked), and the manifest says it was live."""

        def run(self, info: dict[str, typing.Any]) -> tuple[list[str], dict[str, typing.Any]]:
            if info.get("is_live"):
                watch.live.add(str(info.get("id")))
                info["is_live"] = False
            watch.item(info)
            return [], info

    class Chosen(PostProcessor):  # type: ignore[misc]  # yt-dlp is untyped
        def run(self, info: dict[str, typing.Any]) -> tuple[list[str], dict[str, typing.Any]]:
            watch.item(info)
            return [], info

    return [(NotLive(), "pre_process"), (Chosen(), "before_dl"), (Chosen(), "after_move")]


def _params(
    plan: MediaPlan, proxy: str, workdir: str, log: _Logger, deadline: float, user_agent: str
) -> dict[str, typing.Any]:
    opts = plan.options
    fmt = plan.format_selector
    return {
        "proxy": proxy,
        # Only the loopback hop to our proxy; the proxy checks the server.
        "nocheckcertificate": True,
        "cachedir": False,
        "cookiefile": None,
        "cookiesfrombrowser": None,
        "usenetrc": False,
        "logger": log,
        "quiet": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "warn_when_outdated": False,
        "paths": {"home": workdir, "temp": workdir},
        # Our own file names: never a name the site chose.
        "outtmpl": {"default": "%(autonumber)05d.%(ext)s", "subtitle": "%(autonumber)05d.%(ext)s"},
        "restrictfilenames": True,
        "overwrites": True,
        "noplaylist": True,
        "playlistend": opts.max_items,
        "format": fmt,
        "external_downloader": {"default": "native"},
        # yt-dlp's HLS downloader hands a stream with features it lacks
        # (SAMPLE-AES; AES-128 without pycryptodomex) to ffmpeg, whatever
        # the setting above; ffmpeg then fetches by itself, and honours the
        # operator's no_proxy, around the recorder, --public-only and
        # --proxy. As a downloader, ffmpeg may read local files only: such a
        # stream fails (its playlist is recorded). Merging is not affected.
        "external_downloader_args": {"ffmpeg_i": ["-protocol_whitelist", "file,crypto,data"]},
        "hls_prefer_native": True,
        "concurrent_fragment_downloads": 1,
        "ffmpeg_location": plan.ffmpeg or _empty_dir(workdir),
        "geo_bypass": False,
        "socket_timeout": max(min(30.0, deadline - time.monotonic()), 1.0),
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "file_access_retries": 0,
        # A missing fragment ends the download (what arrived is kept): going
        # on would ask for every remaining fragment of an endless stream.
        "skip_unavailable_fragments": False,
        "writesubtitles": opts.subtitles,
        # yt-dlp puts the language into the file name unchecked: a page's
        # <track srclang="../x"> (or one of 300 letters) made it refuse or
        # fail the whole download. Such tracks are skipped, never the video.
        "subtitleslangs": [_SAFE_LANGUAGE],
        "writeinfojson": False,
        "writethumbnail": False,
        "check_formats": False,
        "live_from_start": False,
        "wait_for_video": None,
        "http_headers": {"User-Agent": user_agent},
    }


def _empty_dir(workdir: str) -> str:
    """A directory with no ffmpeg in it: yt-dlp then finds none, and says nothing."""
    path = os.path.join(workdir, ".no-ffmpeg")
    os.makedirs(path, exist_ok=True)
    return path


# The subtitle languages asked for (a regular expression yt-dlp matches whole).
_SAFE_LANGUAGE = r"(?!\.)[^/\\\x00-\x1f\x7f]{1,32}"

# yt-dlp messages that say nothing about the capture.
_NOISE = ("[generic] Falling back on generic information extractor",)


def run_media(
    plan: MediaPlan,
    url: str,
    *,
    fetcher: Fetcher,
    recorder: Recorder,
    deadline: float,
    spool_dir: str,
    user_agent: str,
    refers_to: str | None = None,
) -> tuple[MediaInfo, list[str]]:
    """Run yt-dlp on ``url`` through a recording proxy; store what it wrote.

    Returns:
        The manifest's media part and warnings for the capture. Never raises
        for anything yt-dlp or the site did.

    Raises:
        CaptureError: (``disk``) a response was lost to our own full disk.
    """
    warnings: list[str] = []
    watch = _Watch()
    workdir = tempfile.mkdtemp(prefix=".media-", dir=spool_dir)
    package_root = os.path.dirname(os.path.abspath(spool_dir))
    log = _Logger([(os.path.abspath(workdir), "<media dir>"), (package_root, "<package>")])
    counting = CountingFetcher(
        fetcher, plan.options.max_requests, threading.Event(), "media capture"
    )
    proxy = RecordingProxy(
        typing.cast("Fetcher", counting),
        recorder,
        deadline=deadline,
        spool_dir=spool_dir,
        role="media",
        max_total_bytes=plan.options.max_media_bytes,
    )
    done = threading.Event()
    failed: list[str] = []

    def work() -> None:
        try:
            _download(plan, url, proxy.server, workdir, log, watch, deadline, user_agent)
        except Exception as exc:  # any yt-dlp failure is a warning, never a crash
            from yt_dlp.utils import DownloadError

            # yt-dlp has already logged a DownloadError's message.
            logged = isinstance(exc, DownloadError)
            failed.append("" if logged else log.redact(f"{type(exc).__name__}: {exc}")[:500])
        finally:
            done.set()

    worker = threading.Thread(target=work, name="evidence-media", daemon=True)
    try:
        worker.start()
        completed = done.wait(max(deadline - time.monotonic(), 0) + _GRACE)
    finally:
        # Also on Ctrl-C: nothing more is fetched or recorded.
        proxy.close()
    if completed:
        _collect_leaks()
    else:
        _kill_helpers(os.path.abspath(workdir))
    try:
        # Our own full disk is not the site's doing: the capture fails.
        proxy.raise_disk_failure(url)
        notes = list(dict.fromkeys(log.messages + [f for f in failed if f]))
        unsupported = any(n.startswith("Unsupported URL") for n in notes)
        if counting.refused:
            notes.append(
                f"the media request limit ({plan.options.max_requests}) was reached; "
                f"{counting.refused} later request(s) were refused, not fetched"
            )
        for failure in proxy.failures[:_MAX_FAILURES_NOTED]:
            notes.append(f"no response for {failure.url[:_MAX_TEXT]}: {failure.error}")
        if proxy.failures_total > _MAX_FAILURES_NOTED:
            notes.append(f"{proxy.failures_total - _MAX_FAILURES_NOTED} more request(s) failed")
        cut = bool(counting.refused)
        if proxy.budget_hit:
            cut = True
            notes.append(
                f"the media byte limit ({plan.options.max_media_bytes} bytes) was reached; "
                "what arrived is kept"
            )
        timed_out = any(f.kind == "timeout" for f in proxy.failures) or any(
            e.role == "media" and e.truncated == "time" for e in recorder.exchanges
        )
        if timed_out or time.monotonic() >= deadline:
            cut = True
            notes.append("the capture deadline cut the media download; what arrived is kept")
        items: list[MediaItem] = []
        if completed:
            items = _store(url, recorder, watch, workdir, refers_to, notes, cut=cut)
        else:
            # Its files may still be changing: what it received is in the
            # WARC; a file it was still writing is not evidence of anything.
            notes.append(
                "yt-dlp was still running at the capture deadline and was abandoned; "
                "its files were not stored (the responses it received are recorded)"
            )
        if not items and completed and (unsupported or not notes):
            # yt-dlp's generic extractor says "Unsupported URL" for a page
            # without media: not an error, and said once, plainly.
            notes = [n for n in notes if not n.startswith("Unsupported URL")]
            notes.append(NO_MEDIA)
        elif not items:
            notes.append("no media file was written")
        if plan.ffmpeg is None:
            notes.insert(
                0,
                "ffmpeg was not found: a single-file format was chosen "
                "(formats that need merging were skipped)",
            )
        warnings.extend(f"media: {n}" for n in notes if n != NO_MEDIA)
    finally:
        # Always: nothing of yt-dlp's may stay inside the package. An
        # abandoned yt-dlp finds its directory gone.
        shutil.rmtree(workdir, ignore_errors=True)
    info = MediaInfo(
        tool="yt-dlp",
        version=plan.version,
        ffmpeg=plan.ffmpeg is not None,
        format_selector=plan.format_selector,
        max_media_bytes=plan.options.max_media_bytes,
        received_bytes=proxy.body_bytes,
        requests=sum(1 for e in recorder.exchanges if e.role == "media"),
        failed_requests=proxy.failures_total,
        completed=(
            completed
            and not failed
            and not proxy.budget_hit
            and not counting.refused
            and all(i.complete for i in items)
        ),
        items=tuple(items),
        notes=tuple(notes),
    )
    return info, warnings


def _kill_helpers(workdir: str) -> None:
    """Kill the programs an abandoned yt-dlp started on our files (ffmpeg
    merging): they would outlive the capture, even the command.

    Only our own children that name a file in ``workdir`` are killed: other
    captures in this process (their Chromium, their ffmpeg) are left alone.
    Linux ``/proc``; elsewhere nothing is found.
    """
    me = os.getpid()
    marker = workdir.encode() + b"/"
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                parent = int(fh.read().rsplit(b")", 1)[1].split()[1])
            if parent != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read(1 << 20).split(b"\0")
            if any(marker in arg for arg in argv):
                os.kill(int(entry), signal.SIGKILL)
                logger.debug("killed pid %s, started by the abandoned yt-dlp", entry)
        except (OSError, ValueError, IndexError):
            continue


def _collect_leaks() -> None:
    """Close what yt-dlp left open on its error paths (a response socket, a
    ``.part`` file), now, quietly: they would otherwise be closed whenever the
    collector runs, with a ResourceWarning about code that is not ours.

    ``warnings.catch_warnings`` is process-wide: while the collector runs,
    a ResourceWarning from another thread is dropped too. Nothing else is.
    """
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _no_plugins(log: _Logger) -> None:
    """Keep yt-dlp from loading plugins: code from the operator's config
    directories (or anything on ``sys.path`` named ``yt_dlp_plugins``) would
    run inside the capture and could change what is fetched and recorded."""
    try:
        import yt_dlp.globals as ytg
    except ImportError:  # pragma: no cover - an older yt-dlp without plugin globals
        return
    if not ytg.all_plugins_loaded.value:
        ytg.plugin_dirs.value = []
    elif ytg.plugin_ies.value or ytg.plugin_pps.value:
        log.warning("yt-dlp plugins loaded earlier by other code in this process were active")


def _download(
    plan: MediaPlan,
    url: str,
    proxy: str,
    workdir: str,
    log: _Logger,
    watch: _Watch,
    deadline: float,
    user_agent: str,
) -> None:
    import yt_dlp

    params = _params(plan, proxy, workdir, log, deadline, user_agent)
    _no_plugins(log)
    with yt_dlp.YoutubeDL(params) as ydl:
        for pp, when in _postprocessors(watch):
            ydl.add_post_processor(pp, when=when)

        def hook(status: dict[str, typing.Any]) -> None:
            info = status.get("info_dict") or {}
            for key in ("filename", "tmpfilename"):
                name = status.get(key)
                if isinstance(name, str):
                    watch.files.setdefault(name, str(info.get("id")))

        ydl.add_progress_hook(hook)
        ydl.extract_info(url, download=True)


def _content_type(name: str) -> str:
    base = name.removesuffix(".part")
    ext = os.path.splitext(base)[1].lower()
    known = {
        ".mp4": "video/mp4",
        ".m4a": "audio/mp4",
        ".m4v": "video/mp4",
        ".webm": "video/webm",
        ".mkv": "video/x-matroska",
        ".ts": "video/mp2t",
        ".mp3": "audio/mpeg",
        ".ogg": "audio/ogg",
        ".opus": "audio/ogg",
        ".wav": "audio/wav",
        ".vtt": "text/vtt",
        ".srt": "application/x-subrip",
    }
    return known.get(ext) or mimetypes.guess_type(base)[0] or "application/octet-stream"


def _is_mpeg_ts(head: bytes) -> bool:
    """MPEG-TS: a sync byte opening each 188-byte packet."""
    return len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47


def _files_of(workdir: str) -> list[str]:
    """Media and subtitle files yt-dlp left, partial ones included; our names only."""
    out = []
    for entry in sorted(os.listdir(workdir)):
        path = os.path.join(workdir, entry)
        if entry.endswith((".ytdl", ".temp")) or "-Frag" in entry or entry.startswith("."):
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        out.append(entry)
    return out


def _store(
    url: str,
    recorder: Recorder,
    watch: _Watch,
    workdir: str,
    refers_to: str | None,
    notes: list[str],
    *,
    cut: bool,
) -> list[MediaItem]:
    """Store what yt-dlp left in ``workdir``, one item per file number."""
    # Our outtmpl numbers files per item: 00001.mp4, 00001.en.vtt, 00001.mp4.part.
    groups: dict[str, list[str]] = {}
    for name in _files_of(workdir):
        groups.setdefault(name.split(".", 1)[0], []).append(name)
    infos = {str(i.get("id")): i for i in watch.items}
    by_number = _numbers(watch, workdir)
    date = clock.now_iso()
    items: list[MediaItem] = []
    for position, (number, files) in enumerate(sorted(groups.items()), 1):
        info = infos.get(by_number.get(number, ""))
        if info is None:
            info = watch.items[position - 1] if len(watch.items) >= position else {}
        # Target URIs are built from the URL we were given, never from what
        # yt-dlp read on the page (it is in the info JSON).
        base = f"{url}#{position}" if len(groups) > 1 else url
        store = _Storer(recorder, workdir, date, refers_to)
        media_names = [f for f in files if not _is_subtitle(f)]
        for name in media_names:
            suffix = "" if len(media_names) == 1 else f"#{name}"
            store.file(name, "media", f"urn:media:{base}{suffix}")
        for name in [f for f in files if _is_subtitle(f)]:
            if os.path.getsize(os.path.join(workdir, name)) > _MAX_SUBTITLE_BYTES:
                notes.append(f"subtitles {name} over {_MAX_SUBTITLE_BYTES} bytes: not stored")
                continue
            lang = _language(name)
            store.file(name, "subtitles", f"urn:media-subtitles:{lang}:{base}", language=lang)
        kept = bounded_info(info)
        store.info(f"{number}.info.json", f"urn:media-info:{base}", _dump(kept))
        items.append(
            MediaItem(
                url=url,
                id=_text(kept.get("id")),
                title=_text(kept.get("title")),
                extractor=_text(kept.get("extractor")),
                format_ids=_format_ids(kept),
                live=str(info.get("id")) in watch.live,
                complete=not cut and bool(media_names) and all(f.complete for f in store.stored),
                files=tuple(store.stored),
            )
        )
    return items


def _format_ids(kept: dict[str, typing.Any]) -> tuple[str, ...]:
    chosen = kept.get("formats_chosen") or []
    ids = tuple(str(f["format_id"]) for f in chosen if f.get("format_id") is not None)
    if not ids and isinstance(kept.get("format_id"), str):
        ids = tuple(kept["format_id"].split("+"))
    return ids


def _numbers(watch: _Watch, workdir: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, item_id in watch.files.items():
        with contextlib.suppress(ValueError):
            if os.path.dirname(os.path.abspath(path)) == os.path.abspath(workdir):
                out.setdefault(os.path.basename(path).split(".", 1)[0], item_id)
    return out


def _language(name: str) -> str:
    """The language tag in ``00001.<lang>.vtt``, reduced to letters, digits and dashes."""
    parts = name.split(".")
    tag = parts[1] if len(parts) >= 3 else ""
    tag = "".join(ch for ch in tag if ch.isascii() and (ch.isalnum() or ch in "-_"))[:32]
    return tag or "und"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_subtitle(name: str) -> bool:
    return name.endswith((".vtt", ".srt", ".ass", ".ttml", ".srv3", ".json3", ".lrc"))


class _Bounded:
    """Reads at most ``size`` bytes: what was hashed, even if the file grows."""

    def __init__(self, fh: typing.BinaryIO, size: int) -> None:
        self._fh = fh
        self._size = size
        self._left = size

    def tell(self) -> int:
        return self._size - self._left

    def seek(self, offset: int) -> int:
        self._fh.seek(offset)
        self._left = self._size - offset
        return offset

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n) if n else b""
        self._left -= len(data)
        return data


class _Storer:
    """Writes one item's files as resource records and keeps their manifest entries."""

    def __init__(self, recorder: Recorder, workdir: str, date: str, refers_to: str | None) -> None:
        self._recorder = recorder
        self._workdir = workdir
        self._date = date
        self._refers_to = refers_to
        self.stored: list[MediaFile] = []

    def file(self, name: str, kind: str, target: str, language: str | None = None) -> None:
        """Stream one file into a resource record: hashed first, then copied."""
        partial = name.endswith(".part")
        content_type = _content_type(name)
        fd = os.open(os.path.join(self._workdir, name), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            if _is_mpeg_ts(fh.read(189)):
                # An HLS download yt-dlp could not remux (no ffmpeg) keeps
                # its .mp4 name; the type says what the bytes are.
                content_type = "video/mp2t"
            fh.seek(0)
            digest = hashlib.sha256()
            size = 0
            while piece := fh.read(1 << 20):
                digest.update(piece)
                size += len(piece)
            fh.seek(0)
            record = self._recorder.record_resource_file(
                target,
                content_type,
                typing.cast(typing.BinaryIO, _Bounded(fh, size)),
                size=size,
                sha256=digest.digest(),
                date=self._date,
                refers_to=self._refers_to,
            )
        self.stored.append(
            MediaFile(
                kind=kind,
                target_uri=target,
                record=record,
                name=name,
                content_type=content_type,
                size=size,
                sha256=digest.hexdigest(),
                language=language,
                complete=not partial,
            )
        )

    def info(self, name: str, target: str, data: bytes) -> None:
        """The item's bounded info JSON."""
        record = self._recorder.record_resource(
            target, "application/json", data, date=self._date, refers_to=self._refers_to
        )
        self.stored.append(
            MediaFile(
                kind="info",
                target_uri=target,
                record=record,
                name=name,
                content_type="application/json",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )

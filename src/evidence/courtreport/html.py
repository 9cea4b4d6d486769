"""The court report as one self-contained HTML document.

The same HTML is what a browser shows and what WeasyPrint renders to PDF/A.
It loads nothing: no scripts, no links to other resources, the one image (a
screenshot) inline as a ``data:`` URI, and a Content-Security-Policy that
forbids every fetch a browser could attempt anyway.

Threat model: everything that came from the captured site or the package
(titles, URLs, headers, certificate names, custody notes and actors, file
names, key ids, package ids) is attacker-controlled. Each such value goes
through :func:`_t`: :func:`evidence.display.safe` first (control, bidi and
invisible characters become visible marks such as ``⟪U+202E⟫``, overlong
values are cut with a note), then :func:`html.escape`. URLs are also shown in
a left-to-right isolate, so right-to-left text inside a URL cannot reorder
the text around it. Our own fixed sentences are written here, never taken
from the package.
"""

from __future__ import annotations

import base64
import html
import re
import typing

from evidence.courtreport.facts import MediaDetails, PackageFacts
from evidence.display import safe
from evidence.sealing import operator_text
from evidence.verifying.report import Outcome, Status

if typing.TYPE_CHECKING:
    from evidence.manifest import BrowserInfo, CertificateInfo, Manifest, MediaInfo, MediaItem

__all__ = ["VERDICT_WORDS", "render_html"]

# A value longer than this is cut, with a note saying how much was left out.
MAX_VALUE = 600
MAX_URL = 1000
_PLAIN_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")
# Rows shown at most per table a package controls (redirects, requisites, DNS...).
MAX_ROWS = 200
# Notes shown at most per list of notes (browser, media).
MAX_NOTES = 50
# Media files given a by-hand command at most.
MAX_BY_HAND_MEDIA = 20
_HEX64 = re.compile(r"[0-9a-f]{64}")

# What each browser artefact is, in words, by kind.
_ARTEFACT_WORDS = {
    "screenshot": "Screenshot of the whole page, as the browser drew it",
    "pdf": "The page printed to PDF by the browser",
    "dom": "The page's HTML after its scripts ran (the DOM)",
    "log": "The browser's log: requests, console messages, page errors, pop-ups, downloads",
}
# What each media file is, in words, by kind.
_MEDIA_KIND_WORDS = {
    "media": "video/audio",
    "subtitles": "subtitles",
    "info": "what yt-dlp read about the item (JSON)",
}
# The info JSON's fields, in words.
_DETAIL_WORDS = {
    "uploader": "Uploader (the site's words)",
    "channel": "Channel (the site's words)",
    "duration": "Duration (seconds, as the site gave it)",
    "upload_date": "Upload date (the site's words, YYYYMMDD)",
    "webpage_url": "Page of the item (as yt-dlp gave it from the site)",
}

VERDICT_WORDS = {
    Outcome.VERIFIED: "VERIFIED",
    Outcome.FAILED: "FAILED",
    Outcome.UNTRUSTED: "INTACT BUT NOT TRUSTED",
    Outcome.NOT_A_PACKAGE: "FAILED: NOT AN EVIDENCE PACKAGE",
}
_VERDICT_CLASS = {
    Outcome.VERIFIED: "ok",
    Outcome.FAILED: "fail",
    Outcome.UNTRUSTED: "warn",
    Outcome.NOT_A_PACKAGE: "fail",
}
_STATUS_CLASS = {
    Status.PASS: "ok",
    Status.FAIL: "fail",
    Status.WARN: "warn",
    Status.NOT_CHECKED: "nc",
}

# What each check proves, and what it does not, by check name (or prefix before ":").
_MEANING: dict[str, tuple[str, str]] = {
    "package": (
        "Whether the path given is a finished evidence package.",
        "Nothing about its contents.",
    ),
    "io": (
        "Whether every file could be read.",
        "Nothing about the contents of files that could not be read.",
    ),
    "layout": (
        "Every file is a regular file in a place the format allows, so nothing is hidden "
        "among the evidence.",
        "That the files' contents are right (later checks do that).",
    ),
    "extra-files": (
        "Names files beside the package that are outside the seal.",
        "Anything about those files: they are not evidence and were not checked.",
    ),
    "bag.tags": (
        "The BagIt tag files, including manifest.json, match the SHA-256 values listed "
        "in tagmanifest-sha256.txt.",
        "Who made them: the tag manifest is not signed (the signature check is).",
    ),
    "signatures": (
        "Whether any signature is present.",
        "Who captured the page: an unsigned package names nobody.",
    ),
    "signature": (
        "The holder of this private key signed these exact bytes of manifest.json.",
        "Who holds that key: that link comes from how you obtained the key, not from the package.",
    ),
    "manifest": (
        "manifest.json is a strictly valid format-1 manifest, read only after its "
        "signature was checked.",
        "That what it states about the capture is true beyond what the other checks test.",
    ),
    "bag.sealed": (
        "What BagIt tools show (bag-info and both checksum lists) is exactly what the "
        "signed manifest implies.",
        "Anything the manifest itself does not state.",
    ),
    "payload": (
        "Every payload file (the WARC) has the size and SHA-256 the signed manifest "
        "gives: it is bit for bit what was sealed.",
        "When it was sealed (a timestamp does that) or that the server told the truth.",
    ),
    "warc": (
        "Every WARC record is where the signed inventory says, with its digests: the "
        "recorded bytes are what the server sent, as received by the capturing machine.",
        "That the page's content is true, or that others saw the same page.",
    ),
    "timestamps": (
        "Whether a trusted RFC 3161 timestamp is present (and, if required, verifies).",
        "Without one, nothing independent fixes when the manifest existed.",
    ),
    "timestamp": (
        "An independent time-stamping authority saw this exact manifest.json no later "
        "than its genTime.",
        "When the page was captured before that, who captured it, or that the page told the truth.",
    ),
    "custody": (
        "The chain-of-custody log is intact: every event links to the one before, "
        "times are in order, and signatures on events are valid.",
        "That no event was cut from its end, unless an anchor held elsewhere was given; "
        "nor that the notes are true.",
    ),
}

_CSS = """
@page { size: A4; margin: 16mm 15mm 18mm 15mm;
  @bottom-left { content: "evidence court report"; font-size: 7.5pt; color: #555; }
  @bottom-right { content: "page " counter(page) " of " counter(pages);
    font-size: 7.5pt; color: #555; } }
html { font-family: "DejaVu Sans", "Noto Sans CJK SC", "Noto Sans", sans-serif;
  font-size: 9pt; line-height: 1.35; color: #111; }
body { margin: 0; }
h1 { font-size: 15pt; margin: 0 0 2mm 0; }
h2 { font-size: 12pt; margin: 6mm 0 2mm 0; border-bottom: 1px solid #999; }
h3 { font-size: 10pt; margin: 4mm 0 1mm 0; }
h4 { font-size: 9pt; margin: 3mm 0 1mm 0; }
p { margin: 1mm 0 2mm 0; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; margin: 1mm 0 3mm 0; }
th, td { border: 0.5pt solid #bbb; padding: 1mm 1.5mm; vertical-align: top; text-align: left;
  overflow-wrap: anywhere; word-wrap: break-word; }
th { background: #eee; }
table.facts th { width: 30%; }
table.files tr { break-inside: avoid; }
.mono, pre, code { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f4f4f4;
  border: 0.5pt solid #ccc; padding: 2mm; margin: 1mm 0 3mm 0; }
.url { direction: ltr; overflow-wrap: anywhere; }
.verdict { border: 1.5pt solid; padding: 2.5mm 3mm; margin: 2mm 0 3mm 0; }
.verdict .word { font-size: 20pt; font-weight: bold; }
.ok { color: #0a5a0a; }
.fail { color: #a00000; }
.warn { color: #8a5a00; }
.verdict.ok { border-color: #0a5a0a; }
.verdict.fail { border-color: #a00000; }
.verdict.warn { border-color: #8a5a00; }
.nc { color: #444; }
td.status { font-weight: bold; }
.small { font-size: 7.5pt; color: #333; }
.shot { text-align: center; margin: 2mm 0; }
.shot img { max-width: 100%; max-height: 95mm; border: 0.5pt solid #888; }
.package { break-before: page; }
.claims { color: #8a5a00; }
"""


def _t(value: object, limit: int = MAX_VALUE) -> str:
    """A value from a package or a site: made visible and harmless, cut, then escaped."""
    return html.escape(safe(value, max_length=limit), quote=True)


def _opt(value: object, limit: int = MAX_VALUE, missing: str = "not recorded") -> str:
    if value is None or value == "":
        return f'<span class="nc">{missing}</span>'
    return _t(value, limit)


def _url(value: object) -> str:
    if value is None or value == "":
        return '<span class="nc">not recorded</span>'
    return f'<span class="url mono" dir="ltr">{_t(value, MAX_URL)}</span>'


def _words(value: object) -> str:
    """Free text from the site (a title, a note): isolated so its direction stays its own."""
    if value is None or value == "":
        return '<span class="nc">none</span>'
    return f"<bdi>{_t(value)}</bdi>"


def _row(label: str, value: str) -> str:
    return f"<tr><th>{label}</th><td>{value}</td></tr>"


def _url_table(intro: str, urls: typing.Sequence[str]) -> str:
    """``intro`` (our own HTML), then a one-column table of at most MAX_ROWS URLs."""
    rows = "".join(f"<tr><td>{_url(u)}</td></tr>" for u in urls[:MAX_ROWS])
    more = len(urls) - MAX_ROWS
    tail = f"<p class='small'>{more} more not shown.</p>" if more > 0 else ""
    return f"{intro}<table><tr><th>URL</th></tr>{rows}</table>{tail}"


def _meaning(check_name: str) -> tuple[str, str]:
    key = check_name if check_name in _MEANING else check_name.split(":", 1)[0]
    return _MEANING.get(key, ("A check of the package.", "Anything beyond what its result says."))


def _signers(facts: PackageFacts) -> str:
    if not facts.signers:
        return '<span class="fail">no valid signature</span>'
    parts = []
    for s in facts.signers:
        who = f" ({_t(s.name)}, your key file)" if s.name else ""
        trust = "a key you trust" if s.trusted else "valid, but NOT a key you trust"
        parts.append(f'<span class="mono">{_t(s.key_id)}</span>{who}: {trust}')
    return "<br>".join(parts)


def _tsa_time(facts: PackageFacts) -> str:
    verified = [t for t in facts.timestamps if t.status is Status.PASS and t.gen_time]
    if verified:
        return "<br>".join(
            f"{_t(t.gen_time)} (UTC), by {_opt(t.tsa)}; verified against a TSA root you trust"
            for t in verified
        )
    if facts.timestamps:
        return (
            '<span class="warn">present, but no token verified against a TSA root you trust</span>'
        )
    return '<span class="nc">no timestamp</span>'


def _verdict_box(facts: PackageFacts) -> str:
    v = facts.verification
    cls = _VERDICT_CLASS[v.outcome]
    return (
        f'<div class="verdict {cls}"><div class="word">{VERDICT_WORDS[v.outcome]}</div>'
        f"<div>{_t(v.verdict, 2000)}</div></div>"
    )


def _page_one(facts: PackageFacts, number: int | None) -> str:
    v = facts.verification
    m = facts.manifest
    cap = m.capture if m is not None else None
    s = v.subject
    out = [f'<section class="package" id="package-{number or 1}">' if number else "<section>"]
    heading = f"Package {number}: " if number else ""
    out.append(f"<h1>{heading}Court report on a web evidence package</h1>")
    out.append(_verdict_box(facts))
    rows = [
        _row("URL as captured", _url(cap.requested_url if cap else s.requested_url if s else None)),
        _row("Final URL", _url(cap.final_url if cap else s.final_url if s else None)),
        _row("HTTP status", _opt(cap.status if cap else s.status if s else None)),
        _row(
            "Capture time (UTC)",
            _opt(cap.started if cap else s.captured_at if s else None)
            + (f" to {_t(cap.ended)}" if cap else ""),
        ),
        _row("Timestamp authority's time", _tsa_time(facts)),
        _row("Signed by", _signers(facts)),
        _row(
            "SHA-256 of manifest.json", f'<span class="mono">{_opt(facts.manifest_sha256)}</span>'
        ),
        _row(
            f"SHA-256 of the WARC ({_opt(facts.warc_path)})",
            f'<span class="mono">{_opt(facts.warc_sha256)}</span>',
        ),
        _row("Package id", f'<span class="mono">{_opt(v.package_id)}</span>'),
        _row(
            "Verified at (UTC)",
            f"{_opt(v.verified_at)} with evidence {_opt(v.software_version)}",
        ),
    ]
    if cap is not None and cap.title:
        rows.insert(2, _row("Page title (the page's own words)", _words(cap.title)))
    out.append(f'<table class="facts">{"".join(rows)}</table>')
    if facts.screenshot is not None and facts.screenshot_type is not None:
        data = base64.b64encode(facts.screenshot).decode("ascii")
        out.append(
            f'<div class="shot"><img alt="screenshot of the captured page" '
            f'src="data:{facts.screenshot_type};base64,{data}"></div>'
            '<p class="small">The screenshot, scaled to fit. The full image is attached '
            "to the PDF version of this report, and stored in the package's WARC.</p>"
        )
    if v.outcome is not Outcome.VERIFIED:
        out.append(
            '<p class="claims">Facts above are what the package claims; the verdict says '
            "whether those claims can be relied on.</p>"
        )
    out.append("</section>")
    return "".join(out)


def _cert_rows(certs: typing.Sequence[CertificateInfo]) -> str:
    rows = []
    for i, c in enumerate(certs[:20]):
        rows.append(
            f"<tr><td>{i}</td><td>{_opt(c.subject)}<br><span class='small'>issued by "
            f"{_opt(c.issuer)}</span></td><td>{_opt(c.not_before)}<br>to {_opt(c.not_after)}</td>"
            f'<td class="mono">{_opt(c.sha256)}</td></tr>'
        )
    return (
        "<table><tr><th style='width:6%'>#</th><th style='width:40%'>Subject / issuer</th>"
        "<th style='width:20%'>Valid (UTC)</th><th>SHA-256 fingerprint</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _count(value: int) -> str:
    """A count or size from the package, with thousands separators."""
    return html.escape(f"{value:,}")


def _notes(notes: typing.Sequence[str], label: str) -> str:
    out = [f"<p class='warn'>{label}: {_words(n)}</p>" for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        out.append(f"<p class='small'>{len(notes) - MAX_NOTES} more not shown.</p>")
    return "".join(out)


def _browser_name(b: BrowserInfo) -> str:
    """ "Chromium 156.0…" (the version names the browser) or "name version"."""
    if b.version.lower().startswith(b.name.lower()):
        return _t(b.version)
    return f"{_t(b.name)} {_t(b.version)}"


def _browser(b: BrowserInfo, tls_checked: bool) -> str:
    """The browser that opened the page, the files it made, and what it could not do."""
    # Imported here: only reports on browser captures need it (and its imports).
    from evidence.extract import artefact_file_name

    checked = (
        "the servers' own certificates were checked by the capturing machine"
        if tls_checked
        else "the servers' own certificates were NOT checked (captured with --insecure)"
    )
    out = [
        "<h3>Opened in a real web browser</h3>",
        f"<p>The page was opened in a real web browser, {_browser_name(b)}, "
        "the way a reader would open it: its scripts ran, and what the browser displayed "
        "was kept as the files listed below. Every request the browser made went through "
        "the capturing software's recording proxy, so each response it used is in the WARC "
        "exactly as the server sent it, and the browser was given only recorded bytes. "
        "For HTTPS, the browser trusted only a key made for this capture (its pin is below); "
        f"{checked}.</p>",
    ]
    if b.completed:
        out.append("<p class='ok'>The browser capture completed.</p>")
    else:
        out.append(
            "<p class='warn'>The browser capture did NOT complete: the notes and warnings "
            "below say what is missing.</p>"
        )
    log = b.log
    rows = [
        _row("Browser", _browser_name(b)),
        _row("Window size (viewport)", _opt(b.viewport)),
        _row("User agent the browser sent", _opt(b.user_agent)),
        _row(
            "Interception key pin",
            f'<span class="mono">{_opt(b.interception_spki_sha256)}</span>'
            "<br><span class='small'>base64 SHA-256 of the only key the browser trusted for "
            "HTTPS; that key was made in memory for this capture and never stored</span>",
        ),
        _row(
            "Browser-service requests blocked",
            f"{_count(b.blocked)}<br><span class='small'>the browser's own traffic (updates, "
            "safe browsing...), refused and not recorded: not part of the page</span>",
        ),
    ]
    if log is not None:
        rows.append(
            _row(
                "Browser log",
                f"{_count(log.requests)} request(s) reported, {_count(log.console_messages)} "
                f"console message(s), {_count(log.page_errors)} page error(s)"
                + (f"; {_count(log.dropped)} entries left out at its caps" if log.dropped else ""),
            )
        )
    out.append(f'<table class="facts">{"".join(rows)}</table>')
    made = list(b.artefacts)
    entries = [
        (a.kind, a.content_type, a.size, a.sha256, a.record, a.target_uri) for a in made[:MAX_ROWS]
    ]
    if log is not None:
        entries.append(("log", log.content_type, log.size, log.sha256, log.record, log.target_uri))
    if entries:
        out.append(
            "<p>Files the browser made, each stored in the WARC as its own record. "
            "<code>evidence extract PACKAGE DIR</code> writes them into DIR under the names "
            "shown (it checks each record against the sealed inventory first); the SHA-256 "
            "of each written file must be the one here.</p>"
            "<table class='files'><tr><th style='width:30%'>What it is</th>"
            "<th style='width:16%'>Type, size "
            "(bytes)</th><th style='width:16%'>File from evidence extract</th>"
            "<th>SHA-256 and WARC record</th></tr>"
        )
        for kind, ctype, size, sha, record, target in entries:
            what = _ARTEFACT_WORDS.get(kind) or f"a browser file of kind {_t(kind)}"
            name = artefact_file_name(kind)
            out.append(
                f"<tr><td>{what}</td><td>{_t(ctype)}<br>{_count(size)}</td>"
                f"<td class='mono'>{html.escape(name) if name else '-'}</td>"
                f"<td class='mono'>{_t(sha)}<br><span class='small'>{_t(record)}<br>"
                f"{_url(target)}</span></td></tr>"
            )
        out.append("</table>")
        if len(made) > MAX_ROWS:
            out.append(f"<p class='small'>{len(made) - MAX_ROWS} more not shown.</p>")
    if b.failed:
        out.append(
            "<p>Requests the browser made that got no response (the proxy answered them "
            "with an error, so nothing of theirs is in the WARC):</p>"
            "<table><tr><th style='width:9%'>Method</th><th>URL</th>"
            "<th style='width:12%'>Kind</th><th style='width:30%'>Error</th></tr>"
        )
        for f in b.failed[:MAX_ROWS]:
            out.append(
                f"<tr><td>{_t(f.method)}</td><td>{_url(f.url)}</td><td>{_t(f.kind)}</td>"
                f"<td>{_t(f.error)}</td></tr>"
            )
        out.append("</table>")
        if len(b.failed) > MAX_ROWS:
            out.append(f"<p class='small'>{len(b.failed) - MAX_ROWS} more not shown.</p>")
    if b.unrecorded:
        out.append(
            _url_table(
                "<p class='warn'>Requests the browser reported that are neither recorded nor "
                "listed as failed:</p>",
                b.unrecorded,
            )
        )
    if b.popups:
        out.append(
            _url_table(
                "<p>Pop-up windows the page opened (closed at once; what they requested "
                "before closing is recorded like the rest):</p>",
                b.popups,
            )
        )
    if b.downloads:
        out.append(
            "<p>Downloads the page started (refused: the browser saved nothing; when the "
            "server had already sent the file, its response is in the WARC):</p>"
            "<table><tr><th>URL</th><th style='width:25%'>File name the server suggested</th>"
            "<th style='width:22%'>State</th></tr>"
        )
        for d in b.downloads[:MAX_ROWS]:
            kept = (
                f"<br><span class='small'>response recorded: {_t(d.record)}</span>"
                if d.record
                else ""
            )
            out.append(
                f"<tr><td>{_url(d.url)}</td><td>{_words(d.filename)}</td>"
                f"<td>{_t(d.state)}{kept}</td></tr>"
            )
        out.append("</table>")
    out.append(_notes(b.notes, "Browser note"))
    return "".join(out)


def _media_item(number: int, item: MediaItem, details: MediaDetails | None) -> str:
    from evidence.extract import media_file_names

    rows = [
        _row("Title (the site's words)", _words(item.title)),
        _row("Found on", _url(item.url)),
    ]
    if details is not None:
        for name, value in details.values:
            shown = _url(value) if name == "webpage_url" else _words(value)
            rows.append(_row(_DETAIL_WORDS.get(name, html.escape(name)), shown))
    rows.append(
        _row(
            "Read by",
            f"yt-dlp extractor {_opt(item.extractor)}; item id {_opt(item.id)}; format(s) "
            + (", ".join(_t(f, 100) for f in item.format_ids[:20]) or "not recorded"),
        )
    )
    why = []
    if item.live:
        why.append("a live stream: recorded for as long as the capture's limits allowed")
    if any(not f.complete for f in item.files):
        why.append("a file was cut short and is stored as it arrived")
    if not any(f.kind == "media" for f in item.files):
        why.append("no video or audio file was stored")
    if item.complete:
        state = "<span class='ok'>complete</span>"
    else:
        state = "<span class='warn'>INCOMPLETE: what arrived is kept</span>"
    if why:
        state += f" ({'; '.join(why)})"
    if not item.complete:
        state += ". The media notes below say why (a byte limit, the deadline, a request limit)."
    rows.append(_row("Download", state))
    out = [f"<h4>Item {number}</h4><table class='facts'>{''.join(rows)}</table>"]
    if details is not None and details.values:
        out.append(
            "<p class='small'>Uploader, channel, duration, dates and the item's page are quoted "
            "from the item's info JSON stored in the WARC (SHA-256 "
            f"<span class='mono'>{html.escape(details.sha256)}</span>): what the site said, "
            "as yt-dlp read it, not proof of who made the recording.</p>"
        )
    if item.files:
        names = media_file_names(item, number)
        out.append(
            "<table class='files'><tr><th style='width:18%'>File</th>"
            "<th style='width:18%'>Type, size "
            "(bytes)</th><th style='width:17%'>File from evidence extract</th>"
            "<th>SHA-256 and WARC record</th></tr>"
        )
        for f, name in list(zip(item.files, names, strict=True))[:MAX_ROWS]:
            what = _MEDIA_KIND_WORDS.get(f.kind) or f"kind {_t(f.kind)}"
            if f.language:
                what += f", language {_t(f.language, 40)}"
            if not f.complete:
                what += "<br><span class='warn'>cut short: stored as it arrived</span>"
            out.append(
                f"<tr><td>{what}</td><td>{_t(f.content_type)}<br>{_count(f.size)}</td>"
                f"<td class='mono'>{html.escape(name)}</td>"
                f"<td class='mono'>{_t(f.sha256)}<br><span class='small'>{_t(f.record)}<br>"
                f"{_url(f.target_uri)}</span></td></tr>"
            )
        out.append("</table>")
        if len(item.files) > MAX_ROWS:
            out.append(f"<p class='small'>{len(item.files) - MAX_ROWS} more not shown.</p>")
    return "".join(out)


def _media(media: MediaInfo, details: typing.Mapping[str, MediaDetails]) -> str:
    """Each video or audio item, its stored files, and how to get them out."""
    ffmpeg = (
        "ffmpeg was available (used only on the downloaded files, to merge separate video "
        "and audio into one file or to change the container)"
        if media.ffmpeg
        else "ffmpeg was not available, so only formats that need no merging were chosen"
    )
    out = [
        "<h3>Video and audio</h3>",
        f"<p>After the page, {_t(media.tool)} {_t(media.version)}, a widely used open-source "
        "downloader, was run on it to find and download its video and audio. Every request it "
        "made went through the same recording proxy, so each playlist and segment it received "
        "is in the WARC exactly as received; the files it wrote from them are stored as their "
        f"own records, listed below with their SHA-256. {ffmpeg}.</p>",
    ]
    if media.completed:
        out.append("<p class='ok'>The media capture completed.</p>")
    else:
        out.append(
            "<p class='warn'>The media capture did NOT complete: see each item and the notes "
            "below.</p>"
        )
    rows = [
        _row("Format chosen by", f"<span class='mono'>{_t(media.format_selector, 200)}</span>"),
        _row(
            "Bytes received for media",
            f"{_count(media.received_bytes)} of at most {_count(media.max_media_bytes)}",
        ),
        _row(
            "Requests made for media",
            f"{_count(media.requests)} recorded, {_count(media.failed_requests)} failed",
        ),
    ]
    out.append(f'<table class="facts">{"".join(rows)}</table>')
    if not media.items:
        out.append("<p>No video or audio file was stored.</p>")
    for number, item in enumerate(media.items[:MAX_ROWS], 1):
        info = next((f for f in item.files if f.kind == "info"), None)
        out.append(_media_item(number, item, details.get(info.record) if info else None))
    if len(media.items) > MAX_ROWS:
        out.append(f"<p class='small'>{len(media.items) - MAX_ROWS} more items not shown.</p>")
    if media.items:
        out.append(
            "<p><b>Getting the files out.</b> <code>evidence extract PACKAGE DIR</code> writes "
            "each item's files into <code>DIR/media/</code> under the names shown above (the "
            "item's number, never a name from the site) and lists them in "
            "<code>DIR/index.json</code>; it checks each record against the sealed inventory "
            "first. <code>sha256sum DIR/media/*</code> then gives the SHA-256 values above. "
            "The files play in any player that reads their type (VLC, ffplay). Without our "
            "software, see “How to check this without our software” below.</p>"
        )
    out.append(_notes(media.notes, "Media note"))
    return "".join(out)


def _captured(m: Manifest | None, details: typing.Mapping[str, MediaDetails] | None = None) -> str:
    out = ["<h2>What was captured</h2>"]
    if m is None or m.capture is None:
        out.append("<p>The manifest cannot be read, so nothing about the capture can be shown.</p>")
        return "".join(out)
    cap = m.capture
    out.append('<p class="small">As stated in the signed manifest.</p>')
    if cap.redirects:
        out.append(
            "<h3>Redirect chain</h3><table><tr><th style='width:8%'>Status</th>"
            "<th>URL</th><th>Location</th></tr>"
        )
        for hop in cap.redirects[:MAX_ROWS]:
            err = (
                f"<br><span class='fail'>not followed: {_t(hop.error)}</span>" if hop.error else ""
            )
            out.append(
                f"<tr><td>{_t(hop.status)}</td><td>{_url(hop.url)}</td>"
                f"<td>{_url(hop.location)}{err}</td></tr>"
            )
        out.append("</table>")
        if len(cap.redirects) > MAX_ROWS:
            out.append(f"<p class='small'>{len(cap.redirects) - MAX_ROWS} more not shown.</p>")
    rows = [
        _row("Server IP", f'<span class="mono">{_opt(cap.server_ip)}</span>'),
        _row("User agent", _opt(cap.user_agent)),
    ]
    if cap.network is not None:
        # Through a proxy the server's address was never seen; say so rather
        # than leave an empty field to be read as an omission.
        rows.insert(1, _row("Network", _t(cap.network.describe())))
    rows.append(_row("Operator", _opt(operator_text(m.operator))))
    if m.software is not None:
        sw = m.software
        libs = ", ".join(f"{_t(k)} {_opt(v)}" for k, v in sorted(sw.libraries.items())[:40])
        rows.append(
            _row(
                "Software",
                f"{_t(sw.name)} {_t(sw.version)}; Python {_opt(sw.python)} "
                f"({_opt(sw.implementation)}); {_opt(sw.openssl)}; {_opt(sw.platform)}"
                + (f"<br><span class='small'>{libs}</span>" if libs else ""),
            )
        )
    if m.options:
        opts = ", ".join(f"{_t(k)}={_t(v, 200)}" for k, v in sorted(m.options.items())[:60])
        rows.append(_row("Capture options", f'<span class="small">{opts}</span>'))
    out.append(f'<table class="facts">{"".join(rows)}</table>')
    if cap.browser is not None:
        insecure = (m.options or {}).get("tls_verification") is False or (
            cap.tls is not None and not cap.tls.verified
        )
        out.append(_browser(cap.browser, tls_checked=not insecure))
    if cap.media is not None:
        out.append(_media(cap.media, details or {}))
    if cap.dns:
        out.append(
            "<h3>DNS answers</h3><table><tr><th style='width:35%'>Host</th><th>Answers</th></tr>"
        )
        for host in sorted(cap.dns)[:MAX_ROWS]:
            answers = ", ".join(_t(a) for a in cap.dns[host][:50])
            out.append(f"<tr><td>{_url(host)}</td><td class='mono'>{answers}</td></tr>")
        out.append("</table>")
    tls = cap.tls
    if tls is not None:
        verified = "verified" if tls.verified else "NOT verified (captured with --insecure)"
        out.append(
            f"<h3>TLS</h3><p>{_opt(tls.protocol)}, {_opt(tls.cipher)}; the server's certificate "
            f"was {verified} by the capturing machine.</p>"
        )
        if tls.certificates:
            out.append(_cert_rows(tls.certificates))
        if tls.chain_file:
            out.append(f"<p class='small'>Chain stored in {_t(tls.chain_file)}.</p>")
    else:
        out.append("<h3>TLS</h3><p>Plain HTTP: no TLS certificate.</p>")
    req = cap.requisites
    if req is not None:
        state = "fetched" if req.enabled else "not fetched (disabled)"
        out.append(
            f"<h3>Page requisites</h3><p>Images, styles and scripts: {state}; "
            f"{req.fetched} fetched, {len(req.failed)} failed, {req.skipped} skipped.</p>"
        )
        if req.failed:
            out.append("<table><tr><th>Failed requisite</th><th style='width:35%'>Error</th></tr>")
            for f in req.failed[:MAX_ROWS]:
                out.append(f"<tr><td>{_url(f.url)}</td><td>{_t(f.error)}</td></tr>")
            out.append("</table>")
    if m.exchanges:
        out.append(
            f"<h3>Exchanges recorded ({len(m.exchanges)})</h3><table><tr>"
            "<th style='width:8%'>Status</th><th style='width:12%'>Role</th><th>URL</th>"
            "<th style='width:14%'>Bytes</th></tr>"
        )
        for e in m.exchanges[:MAX_ROWS]:
            cut = (
                f"<br><span class='warn'>truncated: {_t(e.truncated)}</span>" if e.truncated else ""
            )
            if e.interim is not None:
                codes = ", ".join(str(code) for code in e.interim.statuses)
                cut += (
                    f"<br><span class='small'>The server first sent interim responses "
                    f"({_t(codes)}), kept in their own WARC record.</span>"
                )
            out.append(
                f"<tr><td>{_t(e.status)}</td><td>{_t(e.role)}</td><td>{_url(e.url)}{cut}</td>"
                f"<td>{_t(e.response_bytes)}</td></tr>"
            )
        out.append("</table>")
    for w in cap.warnings[:50]:
        out.append(f"<p class='warn'>Capture warning: {_t(w)}</p>")
    return "".join(out)


def _checks(facts: PackageFacts) -> str:
    v = facts.verification
    out = [
        "<h2>Every verification check, in the order run</h2>",
        "<table><tr><th style='width:11%'>Result</th><th style='width:40%'>Check and finding</th>"
        "<th>What it proves, and what it does not</th></tr>",
    ]
    for c in v.checks:
        proves, not_proves = _meaning(c.name)
        details = "".join(
            f"<br><span class='small'>- {_t(d.text, 400)}</span>" for d in c.details[:20]
        )
        more = max(0, len(c.details) - 20) + c.not_listed
        if more:
            details += f"<br><span class='small'>- and {more} more not listed</span>"
        out.append(
            f"<tr><td class='status {_STATUS_CLASS[c.status]}'>{html.escape(c.status.value)}</td>"
            f"<td><b>{_t(c.title)}</b>: {_t(c.summary)}{details}</td>"
            f"<td>{proves} <i>It does not prove:</i> {not_proves}</td></tr>"
        )
    out.append("</table>")
    for note in v.notes:
        out.append(f"<p class='small'>{_t(note, 2000)}</p>")
    if facts.problems:
        out.append("<h3>While preparing this report</h3>")
        out.extend(f"<p class='warn'>{_t(p)}</p>" for p in facts.problems[:50])
    return "".join(out)


def _custody(facts: PackageFacts) -> str:
    out = ["<h2>Chain of custody</h2>"]
    if not facts.custody:
        out.append("<p>The package has no custody log.</p>")
        return "".join(out)
    status = "not checked"
    try:
        status = facts.verification.check("custody").status.value
    except KeyError:
        pass
    out.append(
        f"<p>As recorded in evidence/custody.jsonl; the custody check above: "
        f"<b>{html.escape(status)}</b>. Each hash is the SHA-256 of the event's line, "
        "the value another holder can keep as an anchor.</p>"
    )
    out.append(
        "<table><tr><th style='width:4%'>#</th><th style='width:16%'>Time (UTC)</th>"
        "<th style='width:11%'>Event</th><th style='width:12%'>Actor</th>"
        "<th style='width:17%'>Signer (key id)</th><th>Note</th>"
        "<th style='width:17%'>Hash</th></tr>"
    )
    for row in facts.custody:
        e = row.event
        if e is None:
            out.append(
                f"<tr><td>{row.number}</td><td colspan='5' class='fail'>unreadable line: "
                f"{_t('; '.join(row.problems))}</td><td class='mono'>{row.sha256}</td></tr>"
            )
            continue
        problems = "".join(f"<br><span class='fail'>{_t(p)}</span>" for p in row.problems)
        out.append(
            f"<tr><td>{_opt(e.seq, missing='?')}</td><td>{_opt(e.time)}</td>"
            f"<td>{_opt(e.event)}</td><td>{_words(e.actor) if e.actor else '-'}</td>"
            f"<td class='mono'>{_opt(e.key_id, missing='unsigned')}</td>"
            f"<td>{_words(e.note) if e.note else '-'}{problems}</td>"
            f"<td class='mono'>{row.sha256}</td></tr>"
        )
    out.append("</table>")
    out.extend(f"<p class='warn'>{_t(p)}</p>" for p in facts.custody_problems)
    return "".join(out)


def _media_by_hand(facts: PackageFacts) -> list[str]:
    """warcio commands writing each stored video/audio file out of the WARC, with its hash.

    Only values that need no quoting reach the command: the WARC path must be
    plain, offsets are integers from the inventory, digests 64 hex digits.
    """
    m = facts.manifest
    media = m.capture.media if m is not None and m.capture is not None else None
    warc = facts.warc_path
    if media is None or m is None or not warc or not _PLAIN_PATH.fullmatch(warc):
        return []
    offsets = {r.id: r.offset for r in m.records if r.type == "resource"}
    commands = []
    for item in media.items:
        for f in item.files:
            offset = offsets.get(f.record)
            if f.kind == "media" and offset is not None and _HEX64.fullmatch(f.sha256):
                commands.append(
                    f"warcio extract --payload {warc} {int(offset)} | sha256sum"
                    f"   # expect {f.sha256}"
                )
    if not commands:
        return []
    lines = [
        "",
        "# each stored video/audio file, written out of the WARC by its offset",
        "# (warcio: pip install warcio; put '> video.mp4' in place of '| sha256sum' to keep it)",
    ]
    lines += commands[:MAX_BY_HAND_MEDIA]
    if len(commands) > MAX_BY_HAND_MEDIA:
        lines.append(f"# and {len(commands) - MAX_BY_HAND_MEDIA} more: offsets in warc.records")
    return lines


def _by_hand(facts: PackageFacts) -> str:
    # Commands are meant to be pasted into a shell, so only names that need no
    # quoting appear in them: the label and attachment names are restricted
    # to ASCII letters, digits and "._-" (facts._SAFE_NAME), a WARC path must
    # match _PLAIN_PATH, and digests are our own hex. Anything else is left
    # out of the commands rather than quoted.
    label = facts.label
    lines = [
        f"cd {label}                      # the package directory",
        "sha256sum -c manifest-sha256.txt      # every payload file: OK",
        "sha256sum -c tagmanifest-sha256.txt   # tag files and evidence/manifest.json: OK",
        "bagit.py --validate .                 # '. is valid'",
    ]
    if facts.manifest_sha256:
        lines.append(f'echo "{facts.manifest_sha256}  evidence/manifest.json" | sha256sum -c')
    if facts.warc_sha256 and facts.warc_path and _PLAIN_PATH.fullmatch(facts.warc_path):
        lines.append(f'echo "{facts.warc_sha256}  {facts.warc_path}" | sha256sum -c')
    lines += _media_by_hand(facts)
    sigs = [a for a in facts.attachments if a.source.startswith("evidence/signatures/")]
    for a in sigs:
        kid = a.source.rsplit("/", 1)[-1].removesuffix(".sig")
        lines += [
            "",
            "# KEY.pub: the signer's public key, obtained from the signer (never from the package)",
            f"openssl pkey -pubin -in KEY.pub -outform DER | sha256sum   # expect {kid}",
            "openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin \\",
            f"    -in evidence/manifest.json -sigfile {a.source}",
            "# -> Signature Verified Successfully",
        ]
    tsrs = [a for a in facts.attachments if a.source.endswith(".tsr")]
    for a in tsrs:
        lines += [
            "",
            "# TSA-ROOT.pem: the time-stamping authority's root, obtained from the TSA",
            f"openssl ts -verify -data evidence/manifest.json -in {a.source} -CAfile TSA-ROOT.pem",
            "# -> Verification: OK",
        ]
    pdf = [
        "pdfdetach -saveall REPORT.pdf     # (poppler) or: qpdf --show-attachment=NAME REPORT.pdf"
    ]
    manifest_name = f"{label}_manifest.json"
    if facts.manifest_sha256:
        pdf.append(f'echo "{facts.manifest_sha256}  {manifest_name}" | sha256sum -c')
    for a in sigs:
        pdf += [
            "openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin \\",
            f"    -in {manifest_name} -sigfile {a.name}",
        ]
    for a in tsrs:
        pdf.append(f"openssl ts -verify -data {manifest_name} -in {a.name} -CAfile TSA-ROOT.pem")
    rows = "".join(
        f"<tr><td class='mono'>{_t(a.name)}</td><td>{_t(a.description)}</td>"
        f"<td class='mono'>{a.sha256}</td></tr>"
        for a in facts.attachments
    )
    return (
        "<h2>How to check this without our software</h2>"
        "<p>With standard tools only (GNU coreutils, OpenSSL 1.1.1 or later, bagit-python), "
        "from a copy of the package. The expected values are this package's own:</p>"
        f"<pre>{html.escape(chr(10).join(lines))}</pre>"
        "<p>The PDF version of this report carries the proofs as attachments, byte for "
        "byte as the package holds them; the seal can be re-checked from the PDF alone:</p>"
        f"<pre>{html.escape(chr(10).join(pdf))}</pre>"
        "<h3>Proofs attached to the PDF</h3><table><tr><th style='width:34%'>Attachment</th>"
        f"<th>What it is</th><th style='width:36%'>SHA-256</th></tr>{rows}</table>"
    )


def _methodology(facts: PackageFacts) -> str:
    m = facts.manifest
    cap = m.capture if m is not None else None
    sw = m.software if m is not None else None
    op = operator_text(m.operator) if m is not None else None
    signer = ", ".join(s.key_id[:16] + "…" for s in facts.signers)
    stamps = "; ".join(f"{t.gen_time} ({t.status.value})" for t in facts.timestamps if t.gen_time)
    events = ", ".join(sorted({r.event.event for r in facts.custody if r.event and r.event.event}))
    tech = "nothing recorded"
    browser = cap.browser if cap is not None else None
    media = cap.media if cap is not None else None
    if cap is not None:
        certs = len(cap.tls.certificates or ()) if cap.tls is not None else 0
        tls = (
            f"TLS {_opt(cap.tls.protocol)} with {certs} certificate(s)"
            if cap.tls is not None
            else "no TLS (plain HTTP)"
        )
        tech = f"DNS answers for {len(cap.dns)} host(s); {tls}"
    rows = [
        (
            "The online information's address (URL)",
            _url(cap.requested_url) if cap else _opt(None),
            "capture.requested_url, final_url, redirects",
        ),
        (
            "Date and time of collection (UTC)",
            _opt(cap.started if cap else None) + (f"; timestamp: {_t(stamps)}" if stamps else ""),
            "capture.started, ended; RFC 3161 tokens",
        ),
        (
            "Who collected it",
            f"operator: {_opt(op)}; signing key: {_opt(signer, missing='none')}",
            "operator; signatures/",
        ),
        (
            "Tools used, with versions",
            _opt(
                ", ".join(
                    [f"{sw.name} {sw.version}, Python {sw.python}, {sw.openssl}"]
                    + ([f"browser {browser.version}"] if browser else [])
                    + ([f"media {media.tool} {media.version}"] if media else [])
                )
                if sw
                else None
            ),
            "software"
            + (", capture.browser" if browser else "")
            + (", capture.media" if media else ""),
        ),
        (
            "Hash values of what was collected",
            f"SHA-256: manifest {_opt(facts.manifest_sha256)}, WARC {_opt(facts.warc_sha256)}"
            + ("; each browser file and media file: listed above" if browser or media else ""),
            "files, warc.records (one SHA-256 per record)"
            + (", capture.browser.artefacts" if browser else "")
            + (", capture.media.items" if media else ""),
        ),
        (
            "Technical data of the source",
            f"server IP {_opt(cap.server_ip if cap else None)}; {tech}",
            "capture.server_ip, dns, tls",
        ),
        (
            "Preservation steps and chain of custody",
            _opt(events, missing="no custody log"),
            "custody.jsonl (hash-chained, signed events)",
        ),
    ]
    body = "".join(
        f"<tr><td>{a}</td><td class='small'>{b}</td><td class='mono'>{c}</td></tr>"
        for a, b, c in rows
    )
    return (
        "<h2>Methodology mapping</h2>"
        "<p>What the Berkeley Protocol on Digital Open Source Investigations (OHCHR and the "
        "Human Rights Center, UC Berkeley) asks an investigator to record when collecting "
        "online information, and where this package records it.</p>"
        "<table><tr><th style='width:28%'>To record</th><th>In this package</th>"
        f"<th style='width:26%'>Manifest field / file</th></tr>{body}</table>"
    )


def _package_body(facts: PackageFacts, number: int | None) -> str:
    return "".join(
        [
            _page_one(facts, number),
            '<section class="package">',
            _captured(facts.manifest, facts.media_details),
            _checks(facts),
            _custody(facts),
            _by_hand(facts),
            _methodology(facts),
            "</section>",
        ]
    )


def _summary(case: typing.Sequence[PackageFacts], generated: str) -> str:
    counts: dict[Outcome, int] = {}
    for f in case:
        counts[f.verification.outcome] = counts.get(f.verification.outcome, 0) + 1
    worst = (
        Outcome.FAILED
        if counts.get(Outcome.FAILED) or counts.get(Outcome.NOT_A_PACKAGE)
        else Outcome.UNTRUSTED
        if counts.get(Outcome.UNTRUSTED)
        else Outcome.VERIFIED
    )
    tally = ", ".join(f"{n} {VERDICT_WORDS[o]}" for o, n in counts.items())
    rows = []
    for i, f in enumerate(case, 1):
        s = f.verification.subject
        o = f.verification.outcome
        rows.append(
            f"<tr><td>{i}</td><td class='{_VERDICT_CLASS[o]}'><b>{VERDICT_WORDS[o]}</b></td>"
            f"<td>{_url(s.requested_url if s else None)}</td>"
            f"<td>{_opt(s.captured_at if s else None)}</td>"
            f"<td class='mono'>{_opt(f.verification.package_id)}</td></tr>"
        )
    return (
        "<section><h1>Court report: case of "
        f"{len(case)} web evidence packages</h1>"
        f'<div class="verdict {_VERDICT_CLASS[worst]}"><div class="word">'
        f"{'ALL VERIFIED' if worst is Outcome.VERIFIED else 'NOT ALL VERIFIED'}</div>"
        f"<div>{html.escape(tally)}.</div></div>"
        f"<p>Report made {html.escape(generated)} (UTC). One section per package follows, "
        "each starting with its own verdict.</p>"
        "<table><tr><th style='width:5%'>#</th><th style='width:18%'>Verdict</th><th>URL</th>"
        "<th style='width:20%'>Captured (UTC)</th><th style='width:25%'>Package id</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def render_html(case: typing.Sequence[PackageFacts], *, generated: str, software: str) -> str:
    """The whole report as one HTML document (a case summary first when several packages).

    Args:
        case: the packages, in the order given.
        generated: when the report is made (UTC, ISO 8601).
        software: the version of evidence making it.
    """
    if len(case) == 1:
        body = _package_body(case[0], None)
        title = f"Court report: {VERDICT_WORDS[case[0].verification.outcome]}"
    else:
        body = _summary(case, generated) + "".join(
            _package_body(f, i) for i, f in enumerate(case, 1)
        )
        title = f"Court report: {len(case)} packages"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">"
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(title)}</title>"
        f'<meta name="generator" content="evidence {_t(software)}">'
        f"<style>{_CSS}</style></head><body>{body}"
        f"<p class='small'>Made {html.escape(generated)} (UTC) by evidence {_t(software)}.</p>"
        "</body></html>\n"
    )

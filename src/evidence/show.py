"""Readable summaries of a package (``evidence show``, ``evidence custody show``).

Reads; never verifies. A summary reports what the manifest *claims*; only
``evidence verify`` says whether those claims hold, and the text says so.

Everything here is read from a package someone else may have made, so:

- files are read only when they are regular files (no links, FIFOs or
  devices) and only up to a bound (:func:`evidence.package.read_package_file`);
- every manifest field is reached through the accessors ``_dict``, ``_list``,
  ``_int`` and ``_text``, so an odd type (``tls: "x"``, ``redirects: ["x"]``,
  DNS answers as numbers) shows as-is instead of crashing;
- every string shown to a person goes through :func:`evidence.display.safe`
  and stands on its own line, so escape sequences, bidi overrides and line
  breaks from a server or a package show as visible marks.
"""

from __future__ import annotations

import hashlib
import os
import typing
from pathlib import Path

import attrs

from evidence.custody import CUSTODY_PATH, MAX_LOG_BYTES, parse_log
from evidence.display import safe
from evidence.manifest import Manifest
from evidence.package import (
    MANIFEST_PATH,
    MAX_MANIFEST_BYTES,
    read_package_file,
    regular_file_names,
    require_package,
)

__all__ = ["custody_listing", "describe", "describe_custody", "summary"]

# Shown at most, so a hostile manifest cannot flood a terminal.
MAX_LISTED = 200

JSONDict = dict[str, typing.Any]


# --- bounded reading --------------------------------------------------------


# --- defensive accessors (the lead ports these to the typed manifest) -------


def _dict(value: object) -> JSONDict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[typing.Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object, default: str = "-") -> str:
    """Any value as one line of safe text; ``default`` for None or an empty string."""
    if value is None or value == "":
        return default
    return safe(value)


# --- show -------------------------------------------------------------------


def _exchange(entry: object) -> JSONDict:
    e = _dict(entry)
    keys = ("url", "role", "status", "server_ip", "started", "response_bytes", "truncated")
    out = {k: e.get(k) for k in keys}
    out["interim"] = _interim(e)
    return out


def _interim(e: JSONDict) -> list[typing.Any] | None:
    """The status codes of the interim (1xx) responses before the answer, or None."""
    interim = e.get("interim")
    return _list(_dict(interim).get("statuses")) if interim is not None else None


def summary(path: str | os.PathLike[str]) -> JSONDict:
    """A JSON-ready summary of a package's manifest and attachments.

    Raises:
        PackageError: not a package, its manifest is not valid, or a file
            that must be read is a link, a FIFO or too large.
    """
    root = require_package(path)
    raw = read_package_file(root, MANIFEST_PATH, MAX_MANIFEST_BYTES)
    manifest = Manifest.from_bytes(raw)
    # The typed model has already refused fields of the wrong type; the
    # accessors below stay defensive all the same (a summary must never crash).
    data = manifest.to_json()
    cap = _dict(data.get("capture"))
    custody = read_package_file(root, CUSTODY_PATH, MAX_LOG_BYTES, missing_ok=True)
    operator = data.get("operator")
    return {
        "package": str(root),
        "package_id": manifest.package_id,
        "created": manifest.created,
        "operator": operator if isinstance(operator, dict) else None,
        "sealed_operator": _sealed_summary(manifest),
        "labels": _dict(data.get("labels")),
        "requested_url": cap.get("requested_url"),
        "final_url": cap.get("final_url"),
        "title": cap.get("title"),
        "status": cap.get("status"),
        "started": cap.get("started"),
        "ended": cap.get("ended"),
        "server_ip": cap.get("server_ip"),
        "network": (
            manifest.capture.network.describe()
            if manifest.capture is not None and manifest.capture.network is not None
            else None
        ),
        "tls": cap.get("tls") if isinstance(cap.get("tls"), dict) else None,
        "redirects": _list(cap.get("redirects")),
        "limits_hit": _list(cap.get("limits_hit")),
        "warnings": _list(cap.get("warnings")),
        "dns": _dict(cap.get("dns")),
        "requisites": cap.get("requisites") if isinstance(cap.get("requisites"), dict) else None,
        "browser": cap.get("browser") if isinstance(cap.get("browser"), dict) else None,
        "media": cap.get("media") if isinstance(cap.get("media"), dict) else None,
        "certificate_chains": _dict(data.get("certificate_chains")),
        "options": data.get("options") if isinstance(data.get("options"), dict) else None,
        "exchanges": [_exchange(e) for e in _list(data.get("exchanges"))],
        "custody_events": custody.count(b"\n") if custody else 0,
        "timestamps": regular_file_names(root / "evidence" / "timestamps", ".tsr"),
        "files": data["files"],
        "records": len(manifest.records),
        "signatures": [
            name.removesuffix(".sig")
            for name in regular_file_names(root / "evidence" / "signatures", ".sig")
        ],
        "software": data.get("software") if isinstance(data.get("software"), dict) else None,
    }


def _sealed_summary(manifest: Manifest) -> JSONDict | None:
    """A sealed operator's recipients and any structural problem (never the plaintext)."""
    from evidence.errors import SealError
    from evidence.sealing import inspect_sealed

    sealed = manifest.operator.sealed if manifest.operator is not None else None
    if sealed is None:
        return None
    problem = None
    try:
        inspect_sealed(sealed)
    except SealError as exc:
        problem = str(exc)
    return {"format": sealed.format, "recipients": list(sealed.recipients), "problem": problem}


def _limited(items: list[typing.Any], lines: list[str], label: str) -> list[typing.Any]:
    if len(items) > MAX_LISTED:
        lines.append(f"{label:<12} ({len(items) - MAX_LISTED} more not shown; see --json)")
    return items[:MAX_LISTED]


def describe(info: JSONDict) -> str:
    """Human-readable text for a :func:`summary`; every package string shown safely."""
    lines = [
        f"Package      {_text(info.get('package_id'))}",
        f"Location     {_text(info.get('package'))}",
        f"Created      {_text(info.get('created'))} (UTC)",
        f"URL          {_text(info.get('requested_url'))}",
    ]
    if info.get("final_url") != info.get("requested_url"):
        lines.append(f"Final URL    {_text(info.get('final_url'))}")
    if info.get("title"):
        # The site's own words: shown safely, cut if long, and labelled as such.
        lines.append(f"Page title   {_text(info.get('title'))} (as the page gave it)")
    lines.append(f"Status       HTTP {_text(info.get('status'))}")
    lines.append(f"Captured     {_text(info.get('started'))} to {_text(info.get('ended'))}")
    lines.append(f"Server IP    {_text(info.get('server_ip'))}")
    if info.get("network"):
        lines.append(f"Network      {_text(info.get('network'))}")
    dns = _dict(info.get("dns"))
    for host in sorted(dns, key=str)[:MAX_LISTED]:
        answers = dns[host]
        shown = ", ".join(_text(a) for a in _list(answers)) if isinstance(answers, list) else None
        lines.append(f"DNS          {_text(host)} -> {shown or _text(answers)}")
    lines.extend(_tls_lines(info.get("tls")))
    labels = _dict(info.get("labels"))
    for name in sorted(labels, key=str)[:MAX_LISTED]:
        lines.append(f"Label        {_text(name)}: {_text(labels[name])}")
    op = _dict(info.get("operator"))
    sealed = _dict(info.get("sealed_operator"))
    if sealed:
        recipients = _list(sealed.get("recipients"))
        lines.append(
            f"Operator     sealed to {len(recipients)} recipient(s) "
            "(open with 'evidence unseal PACKAGE --identity KEY')"
        )
        for recipient in recipients[:MAX_LISTED]:
            lines.append(f"  sealed to  {_text(recipient)}")
        if sealed.get("problem"):
            lines.append(f"  problem    {_text(sealed.get('problem'))}")
    elif op:
        lines.append(f"Operator     {_text(op.get('name'))} / {_text(op.get('organization'))}")
    for hop in _limited(_list(info.get("redirects")), lines, "Redirects"):
        h = _dict(hop)
        if not h:
            lines.append(f"Redirect     {_text(hop)}")
            continue
        lines.append(f"Redirect     {_text(h.get('status'))} {_text(h.get('url'))}")
        lines.append(f"          -> {_text(h.get('location'))}")
        if h.get("error"):
            lines.append(f"             not followed: {_text(h.get('error'))}")
    req = _dict(info.get("requisites"))
    if req:
        state = "on" if req.get("enabled") else "off"
        failed = _list(req.get("failed"))
        lines.append(
            f"Requisites   {state}: {_text(req.get('fetched'), '0')} fetched, "
            f"{len(failed)} failed, {_text(req.get('skipped'), '0')} skipped"
        )
        for item in failed[:20]:
            f = _dict(item)
            lines.append(f"  failed     {_text(f.get('url') if f else item)}")
            if f:
                lines.append(f"             {_text(f.get('error'))}")
    lines.extend(_browser_lines(info.get("browser")))
    lines.extend(_media_lines(info.get("media")))
    lines.append("Exchanges")
    for ex in _limited(_list(info.get("exchanges")), lines, "Exchanges"):
        e = _dict(ex)
        cut = f", truncated ({_text(e.get('truncated'))})" if e.get("truncated") else ""
        role = f"[{_text(e.get('role'))}] " if e.get("role") else ""
        lines.append(f"  {_text(e.get('status'))}  {role}{_text(e.get('url'))}")
        lines.append(
            f"       {_text(e.get('response_bytes'))} bytes from {_text(e.get('server_ip'))}{cut}"
        )
        interim = e.get("interim")
        if interim is not None:
            codes = ", ".join(_text(code) for code in _list(interim)[:8]) or "-"
            lines.append(f"       after interim responses {codes} (kept in their own record)")
    lines.append("Files")
    for f in _list(info.get("files")):
        fd = _dict(f)
        lines.append(
            f"  {_text(fd.get('path'))}  {_text(fd.get('size'))} bytes  "
            f"sha256 {_text(fd.get('sha256'))}"
        )
    lines.append(f"WARC records {_text(info.get('records'))}")
    sigs = [_text(s) for s in _list(info.get("signatures"))]
    lines.append(f"Signatures   {'none' if not sigs else sigs[0]}")
    lines.extend(f"             {s}" for s in sigs[1:])
    stamps = [_text(s) for s in _list(info.get("timestamps"))]
    lines.append(f"Timestamps   {', '.join(stamps) if stamps else 'none'}")
    lines.append(
        f"Custody      {_text(info.get('custody_events'), '0')} event(s) "
        "(evidence custody show PACKAGE)"
    )
    warnings = info.get("warnings")
    for w in _limited(_list(warnings), lines, "Warnings"):
        lines.append(f"Warning      {_text(w)}")
    if warnings is not None and not isinstance(warnings, list):
        lines.append(f"Warning      {_text(warnings)}")
    lines.append("")
    lines.append("This shows what the manifest claims. Run 'evidence verify' to check it.")
    return "\n".join(lines)


def _browser_lines(browser: object) -> list[str]:
    """A browser capture's browser, its artefacts (screenshot, PDF, DOM) and its log."""
    b = _dict(browser)
    if not b:
        return []
    state = "complete" if b.get("completed") is True else "INCOMPLETE (see warnings)"
    lines = [
        f"Browser      {_text(b.get('version'))}, viewport {_text(b.get('viewport'))}, {state}",
        f"User agent   {_text(b.get('user_agent'))}",
    ]
    for item in _list(b.get("artefacts"))[:MAX_LISTED]:
        a = _dict(item)
        lines.append(
            f"Artefact     {_text(a.get('kind'))}: {_text(a.get('content_type'))}, "
            f"{_text(a.get('size'))} bytes, record {_text(a.get('record'))}"
        )
    log = _dict(b.get("log"))
    if log:
        lines.append(
            f"Browser log  {_text(log.get('requests'), '0')} request(s), "
            f"{_text(log.get('console_messages'), '0')} console message(s), "
            f"{_text(log.get('page_errors'), '0')} page error(s), "
            f"{_text(log.get('size'))} bytes, record {_text(log.get('record'))}"
        )
    for popup in _list(b.get("popups"))[:MAX_LISTED]:
        lines.append(f"Pop-up       closed: {_text(popup)}")
    for item in _list(b.get("downloads"))[:MAX_LISTED]:
        d = _dict(item)
        kept = " (response recorded)" if d.get("record") else ""
        lines.append(
            f"Download     {_text(d.get('state'))}: {_text(d.get('url'))}, "
            f"file name {_text(d.get('filename'))}{kept}"
        )
    failed = _list(b.get("failed"))
    if failed or b.get("blocked"):
        lines.append(
            f"Browser      {len(failed)} request(s) without a response, "
            f"{_text(b.get('blocked'), '0')} browser-service request(s) blocked"
        )
    return lines


def _media_lines(media: object) -> list[str]:
    """A media capture's tool and each item with its stored files."""
    m = _dict(media)
    if not m:
        return []
    state = "complete" if m.get("completed") is True else "INCOMPLETE (see warnings)"
    lines = [
        f"Media        {_text(m.get('tool'))} {_text(m.get('version'))}, "
        f"{_text(m.get('requests'), '0')} request(s), "
        f"{_text(m.get('received_bytes'), '0')} bytes received, {state}"
    ]
    items = _list(m.get("items"))
    if not items:
        lines.append("Media        no media stored")
    for item in items[:MAX_LISTED]:
        it = _dict(item)
        formats = ", ".join(_text(f) for f in _list(it.get("format_ids"))[:20]) or "-"
        flags = "" if it.get("complete") is True else " (INCOMPLETE: what arrived)"
        if it.get("live") is True:
            flags += " (live stream)"
        lines.append(f"  item       {_text(it.get('url'))}{flags}")
        if it.get("title"):
            lines.append(f"  title      {_text(it.get('title'))} (as the site gave it)")
        lines.append(f"  formats    {formats}")
        for entry in _list(it.get("files"))[:MAX_LISTED]:
            f = _dict(entry)
            lines.append(
                f"  {_text(f.get('kind')):<10} {_text(f.get('name'))}: "
                f"{_text(f.get('content_type'))}, {_text(f.get('size'))} bytes, "
                f"record {_text(f.get('record'))}"
            )
    for note in _list(m.get("notes"))[:20]:
        lines.append(f"  note       {_text(note)}")
    return lines


def _tls_lines(tls: object) -> list[str]:
    t = _dict(tls)
    if not t:
        return [] if not tls else [f"TLS          {_text(tls)}"]
    verified = "verified" if t.get("verified") is True else "NOT verified (--insecure)"
    lines = [
        f"TLS          {_text(t.get('protocol'))} {_text(t.get('cipher'))}, certificate {verified}",
        f"Certificate  sha256 {_text(t.get('certificate_sha256'))}",
    ]
    for i, cert in enumerate(_list(t.get("certificates"))[:20]):
        c = _dict(cert)
        lines.append(f"  chain[{i}]  {_text(c.get('subject') if c else cert)}")
        if not c:
            continue
        lines.append(f"             issued by {_text(c.get('issuer'))}")
        lines.append(
            f"             valid {_text(c.get('not_before'))} to {_text(c.get('not_after'))}"
        )
        names = _list(c.get("san"))
        if names:
            lines.append(f"             names {', '.join(_text(n) for n in names[:8])}")
    if t.get("chain_file"):
        complete = "" if t.get("chain_complete") else " (leaf only: chain unavailable)"
        lines.append(f"  stored in  {_text(t.get('chain_file'))}{complete}")
    return lines


# --- custody show -------------------------------------------------------------


def custody_listing(root: Path) -> JSONDict:
    """The custody log as read, line by line, for listing; nothing is checked.

    A line that is not an event (not JSON, too long) is listed as unreadable
    with its line number, and a field of the wrong type is named among the
    line's problems; neither stops the listing. Signatures are NOT checked
    here: only ``evidence verify`` checks links and signatures.

    Raises:
        PackageError: the log is a link, a FIFO, or larger than the bound.
    """
    raw = read_package_file(root, CUSTODY_PATH, MAX_LOG_BYTES, missing_ok=True) or b""
    log = parse_log(raw)
    events: list[JSONDict] = []
    unreadable: list[JSONDict] = []
    for line in log.lines:
        if line.event is None:
            unreadable.append({"line": line.number, "reason": "; ".join(line.problems)})
        else:
            events.append(
                {
                    "line": line.number,
                    "event": attrs.asdict(line.event),
                    "problems": list(line.problems),
                }
            )
    complete = raw.endswith(b"\n")
    last = (raw[:-1] if complete else raw).rsplit(b"\n", 1)[-1] if raw else None
    return {
        "package": str(root),
        "events": events,
        "unreadable": unreadable,
        "problems": list(log.problems),
        "ends_without_newline": bool(raw) and not complete,
        "head": hashlib.sha256(last).hexdigest() if last is not None else None,
        "signatures_checked": False,
    }


def describe_custody(listing: JSONDict) -> str:
    """Text for :func:`custody_listing`: one event per line, full key ids, all shown safely."""
    lines: list[str] = []
    events = _list(listing.get("events"))
    unreadable = {u["line"]: u["reason"] for u in _list(listing.get("unreadable"))}
    if not events and not unreadable:
        lines.append(f"{_text(listing.get('package'))}: no custody log")
    by_line = {item["line"]: _dict(item.get("event")) for item in events}
    item_problems = {item["line"]: item.get("problems") for item in events}
    for number in sorted([*by_line, *unreadable]):
        if number in unreadable:
            lines.append(f"line {number}: UNREADABLE ({_text(unreadable[number])})")
            continue
        e = by_line[number]
        seq = _int(e.get("seq"))
        label = f"{seq:>3}." if seq is not None else f"{_text(e.get('seq'), '?'):>3}."
        actor = f" by {_text(e.get('actor'))}" if e.get("actor") else ""
        lines.append(f"{label} {_text(e.get('time'))}  {_text(e.get('event'))}{actor}")
        if e.get("key_id") is not None or e.get("signature") is not None:
            lines.append(f"      claims a signature by key {_text(e.get('key_id'))} (not checked)")
        if e.get("note"):
            lines.append(f"      note: {_text(e.get('note'))}")
        for problem in _list(item_problems.get(number)):
            lines.append(f"      problem: {_text(problem)}")
    if listing.get("ends_without_newline"):
        lines.append("The log does not end with a newline (truncated?).")
    head = listing.get("head")
    if head:
        lines.append("")
        lines.append(f"Head (SHA-256 of the last line): {head}")
        lines.append(
            "Give this to the next holder or a third party: 'evidence verify --custody-anchor "
            "HEAD' then detects events cut from the end."
        )
    lines.append(
        "This lists the log; signatures and links are NOT checked here. "
        "Run 'evidence verify' to check them."
    )
    return "\n".join(lines)

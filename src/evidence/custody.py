"""Chain of custody: ``evidence/custody.jsonl``, an append-only, hash-chained log.

Each line is one event, a JSON object serialised canonically (sorted keys, no
spaces, UTF-8)::

    {"actor": "...", "event": "transferred", "key_id": "...", "note": "...",
     "prev": "<sha256 hex>", "seq": 3, "signature": "<base64>", "time": "...Z"}

``prev`` is the SHA-256 of the previous line's bytes (without its newline);
for the first event it is the SHA-256 of ``evidence/manifest.json``, which
ties the log to this package. Removing, reordering or editing any event
breaks the chain. A signed event carries ``key_id`` and ``signature``: Ed25519
over the canonical serialisation of the event *without* the ``signature``
field.

What it cannot prove: the last holder can cut events off the end, since
nothing after them links to them. A later signature or timestamp over the log
(or a copy of the log held by someone else) anchors it; see docs/custody.md.

This module makes and parses lines; it never writes. Adding an event to a
package is :func:`evidence.attach.append_event`. The first event,
``captured``, is made by the capture and can never be appended later.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import typing
from pathlib import Path

import attrs

from evidence.clock import now_iso, parse_iso
from evidence.errors import CustodyError, EvidenceError, PackageError
from evidence.manifest import strict_loads
from evidence.package import read_package_file

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


__all__ = [
    "APPENDABLE_EVENTS",
    "CUSTODY_PATH",
    "EVENTS",
    "FIRST_EVENTS",
    "CustodyEvent",
    "CustodyLog",
    "LogLine",
    "make_event",
    "parse_log",
    "read_events",
    "split_lines",
]

CUSTODY_PATH = "evidence/custody.jsonl"
EVENTS = (
    "captured",
    "signed",
    "timestamped",
    "countersigned",
    "copied",
    "transferred",
    "exported",
    "checked",
    "reported",
    "imported",
)
# ``captured`` is the first event only, made by the capture itself: nobody
# may add it to an existing log.
# ``imported`` is the first event of a package made by ``evidence import`` from
# a foreign WACZ: like ``captured``, it starts a log and is never appended.
FIRST_EVENTS = ("captured", "imported")
APPENDABLE_EVENTS = tuple(e for e in EVENTS if e not in FIRST_EVENTS)
MAX_LOG_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
MAX_NOTE_CHARS = 4000
# A listing parses at most this many lines and says how many it left out.
MAX_LISTED_EVENTS = 10_000
# Clocks of different holders disagree a little; more than this backwards is a failure.
CLOCK_TOLERANCE = _dt.timedelta(minutes=5)
_FIELDS = {"seq", "event", "time", "actor", "note", "prev", "key_id", "signature"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _canonical(obj: dict[str, typing.Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def make_event(
    *,
    prev_line: bytes | None,
    manifest: bytes,
    seq: int,
    event: str,
    note: str = "",
    actor: str | None = None,
    key: Ed25519PrivateKey | None = None,
    when: str | None = None,
) -> bytes:
    """One canonical custody line (without newline), chained to ``prev_line``.

    Raises:
        CustodyError: unknown event type, a ``captured`` event that is not
            the first of the log, or a note longer than 4000 characters.
    """
    if event not in EVENTS:
        raise CustodyError(f"unknown custody event {event!r}; use one of {', '.join(EVENTS)}")
    if event in FIRST_EVENTS and (seq != 1 or prev_line is not None):
        raise CustodyError(f"{event!r} is only the first event of a log, made with the package")
    if len(note) > MAX_NOTE_CHARS:
        raise CustodyError(f"custody note is longer than {MAX_NOTE_CHARS} characters")
    prev_bytes = prev_line if prev_line is not None else manifest
    body: dict[str, typing.Any] = {
        "seq": seq,
        "event": event,
        "time": when or now_iso(),
        "actor": actor,
        "note": note,
        "prev": hashlib.sha256(prev_bytes).hexdigest(),
    }
    if key is not None:
        # Imported here, not for a cycle (keys never imports custody) but so that
        # `evidence --help`, which reads EVENTS, does not load cryptography.
        from evidence.keys import key_id

        body["key_id"] = key_id(key.public_key())
        body["signature"] = base64.b64encode(key.sign(_canonical(body))).decode("ascii")
    return _canonical(body)


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a custody log's bytes, without their newlines.

    Raises:
        PackageError: the data does not end with a newline (a cut-off log).
    """
    if data and not data.endswith(b"\n"):
        raise PackageError(f"{CUSTODY_PATH} does not end with a newline (truncated?)")
    return data.split(b"\n")[:-1] if data else []


def read_events(root: Path) -> list[bytes]:
    """The raw lines of a package's custody log (empty when there is none).

    The log is read like every other package file: a regular file, never
    through a link, at most :data:`MAX_LOG_BYTES`.

    Raises:
        PackageError: the log is a link, FIFO or device, too large, or
            unreadable, or it does not end with a newline.
    """
    data = read_package_file(root, CUSTODY_PATH, MAX_LOG_BYTES, missing_ok=True)
    return split_lines(data) if data is not None else []


# ---------------------------------------------------------------------------
# Parsing for listings: never raises, reports each line's problems.
# ---------------------------------------------------------------------------


@attrs.frozen
class CustodyEvent:
    """The fields of one custody line, typed. A field is None when absent or of the wrong type."""

    seq: int | None
    event: str | None
    time: str | None
    actor: str | None
    note: str | None
    prev: str | None
    key_id: str | None
    signature: str | None

    @property
    def signed(self) -> bool:
        """True when the line carries a signature (checked only by verification, never here)."""
        return self.signature is not None or self.key_id is not None


@attrs.frozen
class LogLine:
    """One line of a custody log as found: ``event`` is None when it is not an event at all."""

    number: int  # 1-based line number in the file
    raw: bytes
    event: CustodyEvent | None
    problems: tuple[str, ...]


@attrs.frozen
class CustodyLog:
    """A custody log parsed for listing. Nothing here is verified: no chain, no signatures."""

    lines: tuple[LogLine, ...]
    problems: tuple[str, ...]  # about the file: a cut-off last line, lines not listed

    @property
    def events(self) -> tuple[CustodyEvent, ...]:
        """The lines that are readable events, in file order."""
        return tuple(line.event for line in self.lines if line.event is not None)


def _field(
    obj: dict[str, typing.Any],
    name: str,
    kind: type,
    problems: list[str],
    *,
    optional: bool = True,
) -> typing.Any:
    value = obj.get(name)
    if value is None:
        if not optional or name not in obj:
            if not optional:
                problems.append(f"{name} is missing")
        return None
    # bool is an int in Python; a sequence number of ``true`` is not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        # The value is quoted (bounded) so a listing shows what the line claims.
        shown = json.dumps(value, ensure_ascii=True)[:80]
        problems.append(f"{name} is {type(value).__name__}, not {kind.__name__}: {shown}")
        return None
    return value


def _parse_line(number: int, raw: bytes) -> LogLine:
    problems: list[str] = []
    if not raw:
        return LogLine(number, raw, None, ("empty line",))
    if len(raw) > MAX_LINE_BYTES:
        return LogLine(number, b"", None, (f"line longer than {MAX_LINE_BYTES} bytes",))
    try:
        obj = strict_loads(raw, what=f"custody line {number}", max_bytes=MAX_LINE_BYTES)
    except EvidenceError as exc:
        return LogLine(number, raw, None, (str(exc),))
    if not isinstance(obj, dict):
        return LogLine(number, raw, None, ("not a custody event object",))
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    seq = _field(obj, "seq", int, problems, optional=False)
    event = _field(obj, "event", str, problems, optional=False)
    when = _field(obj, "time", str, problems, optional=False)
    actor = _field(obj, "actor", str, problems)
    note = _field(obj, "note", str, problems)
    prev = _field(obj, "prev", str, problems, optional=False)
    kid = _field(obj, "key_id", str, problems)
    signature = _field(obj, "signature", str, problems)
    if seq is not None and seq != number:
        problems.append(f"sequence number {seq}, expected {number}")
    if event is not None and event not in EVENTS:
        problems.append("unknown event type")
    if when is not None and parse_iso(when) is None:
        problems.append("time is not in the package time format")
    if prev is not None and not _HEX64.fullmatch(prev):
        problems.append("prev is not a SHA-256 hex digest")
    if kid is not None and not _HEX64.fullmatch(kid):
        problems.append("key_id is not 64 lowercase hex digits")
    if (kid is None) != (signature is None):
        problems.append("a signature needs both key_id and signature")
    return LogLine(
        number,
        raw,
        CustodyEvent(seq, event, when, actor, note, prev, kid, signature),
        tuple(problems),
    )


def parse_log(data: bytes, *, max_lines: int = MAX_LISTED_EVENTS) -> CustodyLog:
    """Parse a custody log's bytes for listing; never raises for bad content.

    Each line becomes a :class:`LogLine` with its own problems (not JSON,
    not an object, a field of the wrong type, a missing ``seq``...). Only
    the first ``max_lines`` lines are parsed; the rest are counted. This
    checks shape only: links, order and signatures are checked by
    verification, never by a listing.
    """
    problems: list[str] = []
    if len(data) > MAX_LOG_BYTES:
        return CustodyLog((), (f"{CUSTODY_PATH} is larger than {MAX_LOG_BYTES} bytes",))
    chunks = data.split(b"\n") if data else []
    if chunks and chunks[-1] == b"":
        chunks.pop()
    elif chunks:
        problems.append("the last line does not end with a newline (truncated?)")
    if len(chunks) > max_lines:
        problems.append(f"{len(chunks) - max_lines} more line(s) not listed")
        chunks = chunks[:max_lines]
    lines = tuple(_parse_line(n, raw) for n, raw in enumerate(chunks, 1))
    return CustodyLog(lines, tuple(problems))

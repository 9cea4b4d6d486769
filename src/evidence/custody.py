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
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import typing
from pathlib import Path

from evidence.errors import CustodyError, PackageError

if typing.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


__all__ = [
    "CUSTODY_PATH",
    "EVENTS",
    "append_event",
    "make_event",
    "read_events",
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
)
MAX_LOG_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024
# Clocks of different holders disagree a little; more than this backwards is a failure.
CLOCK_TOLERANCE = _dt.timedelta(minutes=5)
_FIELDS = {"seq", "event", "time", "actor", "note", "prev", "key_id", "signature"}


def _canonical(obj: dict[str, typing.Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    """One canonical custody line (without newline), chained to ``prev_line``."""
    from evidence.keys import key_id

    if event not in EVENTS:
        raise CustodyError(f"unknown custody event {event!r}; use one of {', '.join(EVENTS)}")
    if len(note) > 4000:
        raise CustodyError("custody note is longer than 4000 characters")
    prev_bytes = prev_line if prev_line is not None else manifest
    body: dict[str, typing.Any] = {
        "seq": seq,
        "event": event,
        "time": when or _now(),
        "actor": actor,
        "note": note,
        "prev": hashlib.sha256(prev_bytes).hexdigest(),
    }
    if key is not None:
        body["key_id"] = key_id(key.public_key())
        body["signature"] = base64.b64encode(key.sign(_canonical(body))).decode("ascii")
    return _canonical(body)


def read_events(root: Path) -> list[bytes]:
    """The raw lines of a package's custody log (empty when there is none)."""
    path = root / CUSTODY_PATH
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        data = fh.read(MAX_LOG_BYTES + 1)
    if len(data) > MAX_LOG_BYTES:
        raise PackageError(f"{CUSTODY_PATH} is larger than {MAX_LOG_BYTES} bytes")
    if data and not data.endswith(b"\n"):
        raise PackageError(f"{CUSTODY_PATH} does not end with a newline (truncated?)")
    return data.split(b"\n")[:-1] if data else []


def append_event(
    package: str | os.PathLike[str],
    *,
    event: str,
    note: str = "",
    actor: str | None = None,
    key: Ed25519PrivateKey | None = None,
) -> dict[str, typing.Any]:
    """Append one event to a package's custody log; returns it as a dict.

    The file is rewritten through a temporary name and renamed, so a crash
    leaves either the old log or the new one. ``manifest.json`` is never touched.
    """
    from evidence.package import attachment_dir, require_package, write_file_atomic
    from evidence.signing import read_manifest_bytes

    root = require_package(package)
    manifest = read_manifest_bytes(root)
    lines = read_events(root)
    line = make_event(
        prev_line=lines[-1] if lines else None,
        manifest=manifest,
        seq=len(lines) + 1,
        event=event,
        note=note,
        actor=actor,
        key=key,
    )
    try:
        target = attachment_dir(root, "evidence") / "custody.jsonl"
        if target.is_symlink():
            raise PackageError(f"{target} is a symbolic link; refusing to write through it")
        write_file_atomic(target, b"".join(x + b"\n" for x in [*lines, line]))
    except OSError as exc:
        raise PackageError(f"cannot write {CUSTODY_PATH}: {exc.strerror or exc}") from exc
    return typing.cast("dict[str, typing.Any]", json.loads(line))

"""The only code that adds to an existing package: signatures, timestamps, custody events.

Everything here is an *attachment* (see docs/format.md): it goes under
``evidence/`` beside ``manifest.json``, never touches the manifest or the tag
manifest, and keeps the bag valid. The crypto and formats are pure functions
elsewhere (:mod:`evidence.signing`, :mod:`evidence.timestamping`,
:mod:`evidence.custody`); this module reads the package, calls them, and
writes the result atomically.

A package may come from someone else, so it is read the way the verifier
reads it: regular files only, never through a symbolic link, never a FIFO or
a device, and bounded in size (:func:`evidence.package.read_package_file`).
Writing refuses symbolic links on the way (:func:`evidence.package.attachment_dir`).
"""

from __future__ import annotations

import json
import os
import stat
import typing
from pathlib import Path

from evidence.custody import (
    CUSTODY_PATH,
    MAX_LISTED_EVENTS,
    MAX_LOG_BYTES,
    CustodyEvent,
    make_event,
    parse_log,
    split_lines,
)
from evidence.errors import CustodyError, SigningError, StorageError
from evidence.keys import key_id
from evidence.package import (
    ATTACHMENT_DIRS,
    attachment_dir,
    read_manifest_bytes,
    read_package_file,
    require_package,
    write_file_atomic,
)
from evidence.signing import SIGNATURE_SIZE, attachments_for
from evidence.timestamping import TimestampToken, request_timestamp, token_attachments

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["MAX_APPEND_EVENTS", "add_timestamp", "append_event", "sign_package"]


# The most lines a custody log may have for an event to be appended to it:
# the number a listing parses, and far more than any real chain of custody.
MAX_APPEND_EVENTS = MAX_LISTED_EVENTS
# Events that record a signature over the manifest by their key.
_SIGNATURE_EVENTS = ("captured", "signed", "countersigned")


def _write_error(where: object, exc: OSError) -> StorageError:
    return StorageError(f"cannot write into {where}: {exc.strerror or exc}")


def _log_for_append(root: Path) -> tuple[list[bytes], tuple[CustodyEvent, ...]]:
    """The custody log's lines and events, checked before anything is added to the package.

    Raises:
        PackageError: the log is unsafe to read (a link, FIFO, device,
            directory, too large) or cut off.
        CustodyError: it has more than :data:`MAX_APPEND_EVENTS` lines or
            does not parse as a custody log; appending would only bury that.
    """
    data = read_package_file(root, CUSTODY_PATH, MAX_LOG_BYTES, missing_ok=True)
    if data is None:
        return [], ()
    # Count before splitting: 16 MiB of one-byte lines would be millions of objects.
    if data.count(b"\n") > MAX_APPEND_EVENTS:
        raise CustodyError(
            f"{CUSTODY_PATH} has more than {MAX_APPEND_EVENTS} lines; refusing to append to it"
        )
    lines = split_lines(data)
    log = parse_log(data, max_lines=MAX_APPEND_EVENTS)
    problems = [*log.problems, *(f"line {x.number}: {p}" for x in log.lines for p in x.problems)]
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CustodyError(
            f"{CUSTODY_PATH} is not a valid custody log ({problems[0]}{more}); "
            "refusing to append to it"
        )
    return lines, log.events


def _check_log_writable(root: Path) -> None:
    try:
        attachment_dir(root, "evidence")
    except OSError as exc:
        raise _write_error(root, exc) from exc


def sign_package(
    package: str | os.PathLike[str],
    private_key: Ed25519PrivateKey,
    *,
    actor: str | None = None,
    note: str = "",
) -> str:
    """Add (or re-add, identically) this key's signature to a package. Returns the key id.

    A new signature also appends a custody event, ``signed`` for the first
    signature and ``countersigned`` when others exist, signed by the same key.

    The custody log is checked first, so a signature is never written
    without its event; signing again with a signature already present adds
    the event if the log lacks it (an earlier run that failed half way).

    Raises:
        PackageError: not a package, or a file in it is unsafe to read
            (a link, FIFO, device, or too large).
        CustodyError: the custody log cannot be appended to (see :func:`append_event`).
        StorageError: the signature cannot be written.
        SigningError: a different signature by this key is already present.
    """
    root = require_package(package)
    manifest = read_manifest_bytes(root)
    kid = key_id(private_key.public_key())
    # Preflight: the event must be appendable before the signature exists.
    _lines, events = _log_for_append(root)
    _check_log_writable(root)
    recorded = any(e.key_id == kid and e.event in _SIGNATURE_EVENTS for e in events)
    files = attachments_for(manifest, private_key)
    sig_rel = f"evidence/signatures/{kid}.sig"
    pub_rel = f"evidence/keys/{kid}.pub"
    try:
        sig_dir = attachment_dir(root, "evidence/signatures")
        attachment_dir(root, "evidence/keys")
    except OSError as exc:
        raise _write_error(root, exc) from exc
    # Read back at most a little more than a signature: a larger file differs anyway.
    existing = read_package_file(root, sig_rel, 4 * SIGNATURE_SIZE, missing_ok=True)
    if existing is not None:
        # Ed25519 is deterministic: the same key over the same bytes gives
        # the same signature, so an existing file is either identical or
        # was tampered with. Never overwrite silently.
        if existing != files[sig_rel]:
            raise SigningError(f"{root / sig_rel} exists and differs; refusing to replace it")
        if recorded:
            return kid
    pattern = ATTACHMENT_DIRS["evidence/signatures"]
    try:
        others = [
            entry.name
            for entry in os.scandir(sig_dir)
            if pattern.match(entry.name)
            and entry.name != f"{kid}.sig"
            and stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
        ]
        if existing is None:
            write_file_atomic(root / pub_rel, files[pub_rel])
            write_file_atomic(root / sig_rel, files[sig_rel], exclusive=True)
        else:
            # The signature is there but its event is not: an earlier run
            # stopped between the two. Complete it (the key file too).
            write_file_atomic(root / pub_rel, files[pub_rel])
    except OSError as exc:
        raise _write_error(root, exc) from exc
    append_event(
        root,
        event="countersigned" if others else "signed",
        note=note or f"signed manifest.json with key {kid}",
        actor=actor,
        key=private_key,
    )
    return kid


def add_timestamp(
    package: str | os.PathLike[str],
    tsa_url: str,
    *,
    roots: typing.Sequence[x509.Certificate] = (),
    timeout: float = 30.0,
    proxy: str | None = None,
) -> tuple[TimestampToken, str]:
    """Timestamp an existing package's manifest; returns the token and its stored path.

    With ``proxy`` (a ``socks5h://``, ``socks5://``, ``http://`` or
    ``https://`` URL) the TSA is reached through that proxy only, never
    directly, as a capture through a proxy reaches its TSA (docs/trust-model.md).

    The response is checked on receipt (see
    :func:`evidence.timestamping.request_timestamp`); a refused response is
    an error and nothing is stored. A ``timestamped`` custody event follows.

    Raises:
        PackageError: not a package, or its manifest or custody log is unsafe to read.
        CustodyError: the custody log cannot be appended to (see :func:`append_event`).
        TimestampError: the TSA is unreachable, refuses, or its response fails a check.
        StorageError: the token cannot be written.
    """
    from evidence.capturing.upstream import ProxyURL

    proxy_url = ProxyURL.parse(proxy) if proxy is not None else None
    root = require_package(package)
    manifest = read_manifest_bytes(root)
    # Preflight, as for signing: no token is stored unless its event can follow.
    _log_for_append(root)
    _check_log_writable(root)
    token = request_timestamp(manifest, tsa_url, roots=roots, timeout=timeout, proxy=proxy_url)
    try:
        ts_dir = attachment_dir(root, "evidence/timestamps")
        existing = {name.rsplit(".", 1)[0] for name in os.listdir(ts_dir)}
        files = token_attachments(token, existing)
        # The request first: a .tsr never appears without its .tsq.
        for rel in sorted(files, key=lambda r: not r.endswith(".tsq")):
            write_file_atomic(root / rel, files[rel], exclusive=True)
    except OSError as exc:
        raise _write_error(root, exc) from exc
    tsr = next(r for r in files if r.endswith(".tsr"))
    append_event(
        root,
        event="timestamped",
        note=f"RFC 3161 token {tsr} from {tsa_url}, genTime {token.gen_time.isoformat()}",
    )
    return token, tsr


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

    Raises:
        CustodyError: ``event`` is ``captured`` (only the capture makes that,
            as the first event), unknown, or its note is too long; or the
            log has more than :data:`MAX_APPEND_EVENTS` lines or does not
            parse as a custody log.
        PackageError: not a package, or its manifest or log is unsafe to
            read (a link, FIFO, device, too large, or cut off).
        StorageError: the log cannot be written.
    """
    if event in ("captured", "imported"):
        raise CustodyError(
            f"{event!r} is only the first event of a log, made with the package; "
            "it cannot be added to an existing package"
        )
    root = require_package(package)
    manifest = read_manifest_bytes(root)
    lines, _events = _log_for_append(root)
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
        attachment_dir(root, "evidence")
        write_file_atomic(root / CUSTODY_PATH, b"".join(x + b"\n" for x in [*lines, line]))
    except OSError as exc:
        raise _write_error(root, exc) from exc
    # The line is our own canonical JSON: a flat object of plain values.
    return typing.cast("dict[str, typing.Any]", json.loads(line))

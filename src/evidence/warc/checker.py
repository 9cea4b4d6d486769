"""Strict WARC reading: check a WARC file member by member against the signed inventory.

Every listed record must be one complete gzip member at its listed offset,
with its listed length and SHA-256, holding one WARC record whose headers
match the inventory and whose block and payload digests match its content
(the digest convention is described in :mod:`evidence.warc.writer`). The
file is read once, in chunks; hashing runs on a second thread; memory stays
bounded whatever the input.

Each record is parsed by a :class:`_RecordReader`, a small state machine
whose states are :class:`ReaderState`.
"""

from __future__ import annotations

import enum
import hashlib
import os
import queue
import threading
import typing
import zlib

import attrs

from evidence.warc.writer import parse_digest

__all__ = [
    "MAX_HTTP_HEADER_BYTES",
    "MAX_WARC_HEADER_BYTES",
    "ReaderState",
    "RecordCheck",
    "RecordLike",
    "WARCCheck",
    "check_warc",
    "find_http_header_end",
]

_CHUNK = 1 << 20

MAX_WARC_HEADER_BYTES = 256 * 1024
# http.client accepts up to 100 header lines of 64 KiB; allow that and more.
MAX_HTTP_HEADER_BYTES = 8 * 1024 * 1024
_OUT_CHUNK = 1 << 20


def find_http_header_end(buf: bytes | bytearray, start: int = 0) -> tuple[int | None, int]:
    """Find where an HTTP header block ends, the way http.client reads it.

    The first line is the status (or request) line; header lines follow until
    a line that is just CRLF or LF. Returns (end offset or None, where to
    resume scanning when more bytes arrive).
    """
    first = buf.find(b"\n", 0)
    if first < 0:
        return None, 0
    pos = max(first, start)
    while True:
        nxt = buf.find(b"\n", pos + 1)
        if nxt < 0:
            return None, pos
        if buf[pos + 1 : nxt + 1] in (b"\r\n", b"\n"):
            return nxt + 1, nxt
        pos = nxt


class RecordLike(typing.Protocol):
    """An inventory entry: a dict or a :class:`evidence.manifest.InventoryRecord`."""

    def get(self, key: str, default: typing.Any = None, /) -> typing.Any: ...


@attrs.frozen
class RecordCheck:
    """What was found in one WARC record."""

    index: int
    record_id: str | None
    problems: tuple[str, ...]


class ReaderState(enum.Enum):
    """Where a :class:`_RecordReader` is inside one decompressed WARC record."""

    HEAD = "head"  # collecting the WARC header block, up to CRLF CRLF
    BLOCK = "block"  # copying Content-Length bytes of record block to the digests
    TRAILER = "trailer"  # expecting exactly CRLF CRLF after the block
    BROKEN = "broken"  # a fatal problem was found; the rest is ignored


class _RecordReader:
    """Incremental parser/digester for one decompressed WARC record."""

    def __init__(
        self,
        expected: RecordLike,
        hasher: _HashWorker,
        block_key: typing.Hashable,
    ) -> None:
        self.expected = expected
        self.hasher = hasher
        self.block_key = block_key
        self.state = ReaderState.HEAD
        self.head = bytearray()
        self.headers: dict[str, str] = {}
        self.problems: list[str] = []
        self.block_left = 0
        self.block_algorithm: str | None = None
        self.block_expected: tuple[str, bytes] | None = None
        self.payload_key = ("payload", block_key[1]) if isinstance(block_key, tuple) else None
        self.payload_active = False  # hashing the payload on the worker
        self.payload_expected: tuple[str, bytes] | None = None
        self.http_prefix: bytearray | None = None
        self.http_scan = 0
        self.trailer = bytearray()
        self.extra = 0

    def _fail(self, msg: str) -> None:
        self.problems.append(msg)
        self.state = ReaderState.BROKEN

    def _parse_head(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._fail("WARC header is not valid UTF-8")
            return
        lines = text.split("\r\n")
        if "\n" in lines[0] and lines[0].startswith("WARC/"):
            self._fail("WARC header lines end in bare LF; the format requires CRLF")
            return
        if lines[0] not in ("WARC/1.1", "WARC/1.0"):
            self._fail(f"not a WARC record (first line {lines[0][:40]!r})")
            return
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._fail(f"malformed WARC header line {line[:60]!r}")
                return
            key = name.lower()
            if key in self.headers:
                self._fail(f"WARC header {name} appears twice")
                return
            self.headers[key] = value.strip()
        exp = self.expected
        for header, field in (
            ("warc-record-id", "id"),
            ("warc-type", "type"),
            ("warc-date", "date"),
            ("warc-target-uri", "target_uri"),
        ):
            want = exp.get(field)
            got = self.headers.get(header)
            if got is None and want is not None:
                self.problems.append(f"{header} is missing (the manifest lists {want!r})")
            elif got != want:
                self.problems.append(f"{header} is {got!r}, the manifest lists {want!r}")
        length_text = self.headers.get("content-length", "")
        if not length_text.isdigit() or len(length_text) > 18:
            self._fail(f"bad or missing Content-Length {length_text[:30]!r}")
            return
        self.block_left = int(length_text)
        self.block_expected = self._digest("warc-block-digest", required=True)
        if self.block_expected is not None:
            self.block_algorithm = self.block_expected[0]
        is_http = self.headers.get("content-type", "").lower().startswith("application/http")
        if is_http:
            self.payload_expected = self._digest(
                "warc-payload-digest", required=exp.get("type") in ("request", "response")
            )
            if self.payload_expected is not None:
                self.payload_active = True
                self.http_prefix = bytearray()
        self.state = ReaderState.BLOCK
        if self.block_left == 0:
            if self.block_algorithm is not None and self.block_expected is not None:
                self.hasher.feed(
                    self.block_key,
                    b"",
                    last=True,
                    algorithm=self.block_algorithm,
                    expected=self.block_expected[1],
                )
            self._end_payload()
            self.state = ReaderState.TRAILER

    def _digest(self, header: str, *, required: bool) -> tuple[str, bytes] | None:
        value = self.headers.get(header)
        if value is None:
            if required:
                self.problems.append(f"{header} is missing")
            return None
        parsed = parse_digest(value)
        if parsed is None:
            self.problems.append(f"{header} {value[:80]!r} cannot be parsed")
        return parsed

    def feed(self, chunk: bytes | memoryview) -> None:
        data = memoryview(chunk)  # slicing a memoryview copies nothing
        while data and self.state is not ReaderState.BROKEN:
            if self.state is ReaderState.HEAD:
                self.head.extend(data)
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head) > MAX_WARC_HEADER_BYTES:
                        self._fail(f"WARC header longer than {MAX_WARC_HEADER_BYTES} bytes")
                    return
                rest = bytes(self.head[end + 4 :])
                self._parse_head(bytes(self.head[:end]))
                self.head = bytearray()
                data = memoryview(rest)
            elif self.state is ReaderState.BLOCK:
                take = min(len(data), self.block_left)
                part, data = data[:take], data[take:]
                self.block_left -= take
                if self.block_algorithm is not None:
                    # Hashed on the worker thread; compared once it finishes.
                    self.hasher.feed(
                        self.block_key,
                        part,
                        last=self.block_left == 0,
                        algorithm=self.block_algorithm,
                        expected=self.block_expected[1] if self.block_expected else None,
                    )
                self._feed_payload(part)
                if self.block_left == 0:
                    self._end_payload()
                    self.state = ReaderState.TRAILER
            elif self.state is ReaderState.TRAILER:
                room = 4 - len(self.trailer)
                self.trailer.extend(data[:room])
                self.extra += max(len(data) - room, 0)
                return
            else:  # pragma: no cover - BROKEN exits the loop
                return

    def _feed_payload(self, part: memoryview) -> None:
        if not self.payload_active or self.payload_expected is None:
            return
        algorithm = self.payload_expected[0]
        if self.http_prefix is None:
            self.hasher.feed(self.payload_key, part, last=False, algorithm=algorithm)
            return
        self.http_prefix.extend(part)
        end, self.http_scan = find_http_header_end(self.http_prefix, self.http_scan)
        if end is not None:
            rest = bytes(self.http_prefix[end:])
            self.http_prefix = None
            self.hasher.feed(self.payload_key, rest, last=False, algorithm=algorithm)
        elif len(self.http_prefix) > MAX_HTTP_HEADER_BYTES:
            self.problems.append("HTTP header block too long to find the payload")
            self.payload_active = False
            self.http_prefix = None

    def _end_payload(self) -> None:
        """At the end of the block: finish the payload digest on the worker and compare."""
        if not self.payload_active or self.payload_expected is None:
            return
        # With no end of the HTTP header block, nothing was fed: the payload is empty.
        self.hasher.feed(
            self.payload_key,
            b"",
            last=True,
            algorithm=self.payload_expected[0],
            expected=self.payload_expected[1],
        )
        self.payload_active = False
        self.http_prefix = None

    def close(self) -> None:
        """Drop unfinished digests on the worker (a broken or cut record)."""
        if self.state in (ReaderState.BLOCK, ReaderState.BROKEN):
            if self.block_algorithm is not None:
                self.hasher.feed(self.block_key, b"", last=True, algorithm=self.block_algorithm)
            if self.payload_active and self.payload_expected is not None:
                self.hasher.feed(
                    self.payload_key, b"", last=True, algorithm=self.payload_expected[0]
                )

    def finish(self) -> list[str]:
        if self.state is ReaderState.HEAD:
            self.problems.append("record ends inside its WARC header")
        elif self.state is ReaderState.BLOCK:
            self.problems.append(
                f"record block is {self.block_left} bytes shorter than Content-Length"
            )
        elif self.state is ReaderState.TRAILER:
            if bytes(self.trailer) != b"\r\n\r\n" or self.extra:
                self.problems.append("record does not end with exactly CRLF CRLF after its block")
        # Block and payload digests are compared on the hashing thread.
        return self.problems


@attrs.frozen
class WARCCheck:
    """Result of checking a WARC file against its inventory."""

    file_sha256: str
    size: int
    checked: int  # inventory entries reached
    records: tuple[RecordCheck, ...]  # only records with problems
    problems: tuple[str, ...]  # file-level problems (gaps, trailing bytes, duplicates)
    # For the record ids asked for: (Content-Length, the block digest the
    # record states as (algorithm, raw digest) or None). The digest was
    # compared with the block; a mismatch is among ``records``.
    blocks: typing.Mapping[str, tuple[int, tuple[str, bytes] | None]] = attrs.field(factory=dict)


class _HashWorker:
    """Runs hash updates on a second thread, in order, keyed by what they digest.

    hashlib releases the GIL, so hashing the compressed bytes (the whole file
    and each member) and each record block overlaps with decompression and
    parsing on the calling thread. Small updates are batched so the queue sees
    about one item per MiB; the bounded queue keeps memory bounded. Digests
    are compared on the worker as they complete and only mismatches are kept,
    so memory does not grow with the number of records.
    """

    _BATCH = 1 << 20

    def __init__(self) -> None:
        self.mismatches: set[typing.Hashable] = set()
        self._file_hash = hashlib.sha256()
        self._queue: queue.Queue[list[_HashJob] | None] = queue.Queue(maxsize=8)
        self._batch: list[_HashJob] = []
        self._batch_size = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def feed(
        self,
        key: typing.Hashable,
        data: bytes | memoryview,
        *,
        last: bool,
        algorithm: str = "sha256",
        file: bool = False,
        expected: bytes | None = None,
    ) -> None:
        """Update digest ``key`` (and the file digest when ``file``) with ``data``.

        With ``last``, the digest is finished and compared with ``expected``
        (no expectation: just discarded).
        """
        self._batch.append((key, data, last, algorithm, file, expected))
        self._batch_size += len(data)
        if self._batch_size >= self._BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []
            self._batch_size = 0

    def _run(self) -> None:
        open_hashes: dict[typing.Hashable, typing.Any] = {}
        while (batch := self._queue.get()) is not None:
            for key, data, last, algorithm, file, expected in batch:
                if file:
                    self._file_hash.update(data)
                if key is None:
                    continue
                h = open_hashes.get(key)
                if h is None:
                    h = open_hashes[key] = hashlib.new(algorithm)
                h.update(data)
                if last:
                    del open_hashes[key]
                    if expected is not None and h.digest() != expected:
                        self.mismatches.add(key)

    def finish(self) -> str:
        """Wait for the thread; return the file's SHA-256 hex digest."""
        self._flush()
        self._queue.put(None)
        self._thread.join()
        return self._file_hash.hexdigest()


_HashJob = tuple[typing.Hashable, "bytes | memoryview", bool, str, bool, "bytes | None"]


def check_warc(
    path: str,
    inventory: typing.Sequence[RecordLike],
    blocks_of: typing.Collection[str] = frozenset(),
) -> WARCCheck:
    """Check a WARC file member by member against the manifest's inventory.

    For every listed record: the gzip member starts where listed, has the
    listed length and SHA-256, is one complete gzip member with a valid CRC
    and nothing after it, and holds one WARC record whose id, type, date and
    target match the inventory and whose block and payload digests match its
    content. Record ids must be unique and the file must hold nothing else.
    Reads the file once; memory stays bounded whatever the input.

    ``blocks_of``: record ids whose block length and stated block digest are
    returned in :attr:`WARCCheck.blocks` (for the manifest's artefact entries).
    """
    hasher = _HashWorker()
    blocks: dict[str, tuple[int, tuple[str, bytes] | None]] = {}
    file_problems: list[str] = []
    problems: dict[int, list[str]] = {}
    ids: dict[int, str | None] = {}
    seen_ids: set[str] = set()
    offset = 0
    size = 0
    checked = 0

    def note(index: int, rid: str | None, text: str) -> None:
        problems.setdefault(index, []).append(text)
        ids[index] = rid

    try:
        with open(path, "rb", buffering=_CHUNK) as fh:
            size = os.fstat(fh.fileno()).st_size
            for index, rec in enumerate(inventory):
                checked = index + 1
                rid = rec.get("id") if isinstance(rec.get("id"), str) else None
                if rid in seen_ids:
                    note(index, rid, f"record id {rid} is listed twice")
                if rid is not None:
                    seen_ids.add(rid)
                want_offset, length = rec.get("offset"), rec.get("length")
                if want_offset != offset:
                    note(
                        index,
                        rid,
                        f"listed at offset {want_offset}, but the previous record ends at {offset}",
                    )
                    file_problems.append(
                        "record inventory does not tile the file; later records not checked"
                    )
                    break
                if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
                    note(index, rid, f"bad member length {length!r}")
                    break
                want = blocks if rid is not None and rid in blocks_of else None
                for text in _check_member(fh, length, rec, hasher, index, want):
                    note(index, rid, text)
                offset += length
            # Hash whatever follows the last listed member, so the file digest is whole.
            fh.seek(min(offset, size))
            trailing = 0
            while chunk := fh.read(_CHUNK):
                hasher.feed(None, chunk, last=False, file=True)
                trailing += len(chunk)
            if trailing:
                file_problems.append(f"{trailing} bytes follow the last listed record")
    finally:
        file_sha256 = hasher.finish()
    keys = typing.cast("set[tuple[str, int]]", hasher.mismatches)  # ("member"|"block", index)
    for kind, index in sorted(keys):
        rid = inventory[index].get("id")
        if kind == "member":
            problems.setdefault(index, []).insert(0, "member SHA-256 differs from the manifest")
        else:
            note(index, rid, f"{kind} digest does not match the record content")
        ids[index] = rid if isinstance(rid, str) else None
    if not inventory:
        file_problems.append("the manifest lists no WARC records")
    records = tuple(RecordCheck(i, ids.get(i), tuple(problems[i])) for i in sorted(problems))
    return WARCCheck(file_sha256, size, checked, records, tuple(file_problems), blocks)


def _check_member(
    fh: typing.BinaryIO,
    length: int,
    rec: RecordLike,
    hasher: _HashWorker,
    index: int,
    blocks: dict[str, tuple[int, tuple[str, bytes] | None]] | None = None,
) -> list[str]:
    try:
        member_expected: bytes | None = bytes.fromhex(str(rec.get("sha256")))
    except ValueError:
        member_expected = b""  # matches no digest: an unreadable listing is a mismatch
    decomp = zlib.decompressobj(31)
    reader = _RecordReader(rec, hasher, ("block", index))
    problems: list[str] = []
    left = length
    corrupt = False
    ended_early = False
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            problems.append(f"file ends {left} bytes before the end of this member")
            hasher.feed(("member", index), b"", last=True, expected=member_expected)
            break
        left -= len(chunk)
        hasher.feed(("member", index), chunk, last=left == 0, file=True, expected=member_expected)
        if corrupt or ended_early:
            continue
        data = chunk
        try:
            while True:
                out = decomp.decompress(data, _OUT_CHUNK)
                reader.feed(out)
                if decomp.eof:
                    if decomp.unused_data:
                        ended_early = True
                    break
                data = decomp.unconsumed_tail
                # Output may still be pending inside zlib when the limit was hit.
                if not data and len(out) < _OUT_CHUNK:
                    break
        except zlib.error as exc:
            corrupt = True
            problems.append(f"gzip data is corrupt ({exc})")
    if ended_early or (decomp.eof and left > 0):
        problems.append("gzip member ends before its listed length (more than one member?)")
    if not corrupt and not ended_early and not decomp.eof:
        problems.append("gzip member is incomplete (truncated)")
    if not corrupt and decomp.eof:
        problems.extend(reader.finish())
    reader.close()
    length_text = reader.headers.get("content-length", "")
    if blocks is not None and length_text.isdigit() and len(length_text) <= 18:
        blocks[str(rec.get("id"))] = (int(length_text), reader.block_expected)
    return problems

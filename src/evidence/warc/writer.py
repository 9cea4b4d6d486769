"""WARC/1.1 writing: one gzip member per record, hashed while written.

We write WARC headers ourselves instead of through warcio's record builder,
because warcio re-parses and re-serialises the HTTP header block of response
records, which would break the promise that the block is byte-identical to
what the server sent. warcio stays the independent reader: the tests run
``warcio check`` on every WARC we produce.

Digest convention (see docs/format.md): ``WARC-Block-Digest`` is SHA-256 over
the whole record block; ``WARC-Payload-Digest`` is SHA-256 over the bytes that
follow the HTTP header block *as stored*, i.e. with chunked framing and
content-encoding kept. This is what ``warcio check`` computes; WARC 1.1 would
strip the transfer-encoding first, which would make the digest depend on a
decoder rather than on stored bytes.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import struct
import typing
import uuid
import zlib

import attrs

from evidence.threads import process_pool

__all__ = [
    "MemberInfo",
    "WARCWriter",
    "format_digest",
    "new_record_id",
    "parse_digest",
]

_CHUNK = 1 << 20
# Output pieces at least this big have their member digest computed on a
# second thread while this one computes the file digest and writes: hashlib
# releases the GIL, so a large record (a video) is hashed on two cores. The
# pool has a thread for each of several captures in one process (a batch
# worker's threads), which would otherwise wait on one another.
_PARALLEL_HASH = 256 * 1024
# A stored deflate block holds at most 65,535 bytes.
_STORED_MAX = 0xFFFF
# gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unix
# (what zlib writes for wbits=31).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"


def new_record_id() -> str:
    """A fresh ``<urn:uuid:...>`` WARC record id."""
    return f"<urn:uuid:{uuid.uuid4()}>"


def format_digest(digest: bytes) -> str:
    """``sha256:`` + base32, the form warcio and most WARC tools write."""
    return "sha256:" + base64.b32encode(digest).decode("ascii")


def parse_digest(value: str) -> tuple[str, bytes] | None:
    """Parse a WARC digest header value into (algorithm, raw digest).

    Accepts the encodings real tools write: base32 (upper or lower case,
    padded or not) and base16 (upper or lower case), with labels such as
    ``sha256``, ``SHA-256`` or ``sha1``. Returns None when it cannot be parsed.
    """
    if ":" not in value:
        return None
    label, _, encoded = value.strip().partition(":")
    algorithm = label.strip().lower().replace("-", "")
    sizes = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16}
    size = sizes.get(algorithm)
    if size is None:
        return None
    encoded = encoded.strip()
    raw: bytes | None = None
    if len(encoded) == size * 2:
        try:
            raw = base64.b16decode(encoded, casefold=True)
        except ValueError:
            raw = None
    if raw is None:
        padded = encoded.upper() + "=" * (-len(encoded) % 8)
        try:
            raw = base64.b32decode(padded)
        except ValueError:
            return None
    if len(raw) != size:
        return None
    return algorithm, raw


@attrs.frozen
class MemberInfo:
    """Where one record's gzip member sits in the WARC file."""

    record_id: str
    record_type: str
    target_uri: str | None
    date: str
    offset: int
    length: int
    sha256: str

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "id": self.record_id,
            "type": self.record_type,
            "target_uri": self.target_uri,
            "date": self.date,
            "offset": self.offset,
            "length": self.length,
            "sha256": self.sha256,
        }


class _StoredGzip:
    """A gzip member whose deflate stream is stored blocks only (level 0).

    The same bytes any inflater reads as zlib's level 0, made here with a
    CRC-32 and a copy: zlib's level-0 compressor still runs its matcher's
    bookkeeping over every byte (about 0.8 GB/s here, against 6 GB/s for
    CRC-32), and the stored form is used for exactly the big records
    (encoded video) where that matters. Same interface as
    ``zlib.compressobj`` for what :meth:`WARCWriter.write_record` needs.
    """

    def __init__(self) -> None:
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        if not self._started:
            parts.append(_GZIP_HEADER)
            self._started = True
        for start in range(0, len(view), _STORED_MAX):
            piece = view[start : start + _STORED_MAX]
            # BFINAL=0, BTYPE=00, then LEN and its one's complement.
            parts.append(struct.pack("<BHH", 0, len(piece), len(piece) ^ 0xFFFF))
            parts.append(piece)
        return b"".join(parts)

    def flush(self) -> bytes:
        head = b"" if self._started else _GZIP_HEADER
        # An empty final stored block, then CRC-32 and size mod 2**32.
        return (
            head
            + b"\x01\x00\x00\xff\xff"
            + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        )


def _check_header_value(name: str, value: str) -> None:
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"WARC header {name} must not contain CR, LF or NUL")


class WARCWriter:
    """Append records to a WARC file, each as its own gzip member.

    The whole file is hashed as it is written, so the payload checksum needs
    no second pass. Memory use is bounded by the copy chunk size.
    """

    def __init__(self, fileobj: typing.BinaryIO) -> None:
        self._out = fileobj
        self._offset = 0
        self._file_hash = hashlib.sha256()
        self.members: list[MemberInfo] = []
        # The error that left part of a member in the file: from then on the
        # file is not what ``members`` describes, so nothing more is written
        # and no digest is given (a caller that swallowed it cannot seal it).
        self._broken: BaseException | None = None

    @property
    def size(self) -> int:
        return self._offset

    def file_sha256(self) -> str:
        """The SHA-256 of everything written; raises OSError when a record
        could not be written whole (the file is then not worth sealing)."""
        self._check_intact()
        return self._file_hash.hexdigest()

    def _check_intact(self) -> None:
        broken = self._broken
        if broken is not None:
            code = broken.errno if isinstance(broken, OSError) and broken.errno else errno.EIO
            raise OSError(
                code, f"an earlier WARC record could not be written whole ({broken})"
            ) from broken

    def write_record(
        self,
        *,
        record_type: str,
        date: str,
        content_type: str,
        block: typing.BinaryIO | bytes,
        block_length: int,
        block_sha256: bytes,
        payload_sha256: bytes | None = None,
        target_uri: str | None = None,
        record_id: str | None = None,
        extra: typing.Sequence[tuple[str, str]] = (),
        level: int = 6,
    ) -> MemberInfo:
        """Write one record as one gzip member and return where it went.

        ``block`` is copied in chunks; its length and digests are given by the
        caller, who computed them while spooling it. ``level`` is the deflate
        level: 0 stores the block uncompressed inside valid gzip (for
        encoded video, which deflate cannot shrink and crawls through).
        """
        record_id = record_id or new_record_id()
        headers: list[tuple[str, str]] = [
            ("WARC-Type", record_type),
            ("WARC-Record-ID", record_id),
            ("WARC-Date", date),
        ]
        if target_uri is not None:
            headers.append(("WARC-Target-URI", target_uri))
        headers.extend(extra)
        headers.append(("Content-Type", content_type))
        headers.append(("WARC-Block-Digest", format_digest(block_sha256)))
        if payload_sha256 is not None:
            headers.append(("WARC-Payload-Digest", format_digest(payload_sha256)))
        headers.append(("Content-Length", str(block_length)))
        lines = ["WARC/1.1"]
        for name, value in headers:
            _check_header_value(name, value)
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self._check_intact()
        offset = self._offset
        try:
            length, sha256 = self._write_member(head, block, block_length, level)
        except BaseException as exc:
            self._broken = exc
            raise
        self._offset += length
        info = MemberInfo(
            record_id=record_id,
            record_type=record_type,
            target_uri=target_uri,
            date=date,
            offset=offset,
            length=length,
            sha256=sha256,
        )
        self.members.append(info)
        return info

    def _write_member(
        self, head: bytes, block: typing.BinaryIO | bytes, block_length: int, level: int
    ) -> tuple[int, str]:
        """Write one gzip member; returns its length and SHA-256 (hex)."""
        member_hash = hashlib.sha256()
        compressor: typing.Any = (
            _StoredGzip() if level == 0 else zlib.compressobj(level, zlib.DEFLATED, 31)
        )
        written = 0

        def emit(data: bytes) -> None:
            nonlocal written
            if not data:
                return
            if len(data) >= _PARALLEL_HASH:
                pending = process_pool("hash", 4).submit(member_hash.update, data)
                try:
                    self._file_hash.update(data)
                    self._out.write(data)
                finally:
                    pending.result()
            else:
                self._out.write(data)
                member_hash.update(data)
                self._file_hash.update(data)
            written += len(data)

        emit(compressor.compress(head))
        copied = 0
        if isinstance(block, bytes):
            emit(compressor.compress(block))
            copied = len(block)
        else:
            while True:
                chunk = block.read(_CHUNK)
                if not chunk:
                    break
                copied += len(chunk)
                emit(compressor.compress(chunk))
        if copied != block_length:
            raise ValueError(f"block length changed while writing ({copied} != {block_length})")
        emit(compressor.compress(b"\r\n\r\n"))
        emit(compressor.flush())
        return written, member_hash.hexdigest()

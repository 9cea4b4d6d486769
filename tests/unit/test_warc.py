from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import typing

import pytest

from evidence.warc import WARCWriter, find_http_header_end, format_digest, parse_digest

DIGEST = hashlib.sha256(b"x").digest()


def _text_record(**changes: typing.Any) -> dict[str, typing.Any]:
    """write_record's arguments for a one-byte text/plain resource, with ``changes``."""
    return {
        "record_type": "resource",
        "date": "2026-01-01T00:00:00Z",
        "content_type": "text/plain",
        "block": b"x",
        "block_length": 1,
        "block_sha256": DIGEST,
        **changes,
    }


SHA1 = hashlib.sha1(b"x").digest()


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + base64.b32encode(DIGEST).decode(),
        "sha256:" + base64.b32encode(DIGEST).decode().lower(),
        "sha256:" + base64.b32encode(DIGEST).decode().rstrip("="),
        "sha256:" + DIGEST.hex(),
        "sha256:" + DIGEST.hex().upper(),
        "SHA-256:" + DIGEST.hex(),
        "SHA256:" + base64.b32encode(DIGEST).decode(),
    ],
)
def test_parse_digest_encodings(value):
    assert parse_digest(value) == ("sha256", DIGEST)


def test_parse_sha1():
    assert parse_digest("sha1:" + base64.b32encode(SHA1).decode()) == ("sha1", SHA1)


@pytest.mark.parametrize("value", ["sha256", "md4:AAAA", "sha256:!!!", "sha256:AAAA", ""])
def test_parse_digest_rejects(value):
    assert parse_digest(value) is None


def test_format_digest_round_trip():
    assert parse_digest(format_digest(DIGEST)) == ("sha256", DIGEST)


@pytest.mark.parametrize(
    ("block", "end"),
    [
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", 25),
        (b"HTTP/1.1 200 OK\nA: b\n\nbody", 22),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 27),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n", None),
    ],
)
def test_find_http_header_end(block, end):
    assert find_http_header_end(block)[0] == end


def test_writer_rejects_header_injection():
    w = WARCWriter(io.BytesIO())
    with pytest.raises(ValueError, match="CR, LF"):
        w.write_record(**_text_record(target_uri="http://a/\r\nX: y"))


def test_writer_checks_block_length():
    w = WARCWriter(io.BytesIO())
    with pytest.raises(ValueError, match="block length"):
        w.write_record(**_text_record(block=io.BytesIO(b"xy")))


@pytest.mark.parametrize("wrong", ["block", "payload", "none"])
def test_check_warc_compares_block_and_payload_digests(tmp_path, wrong):
    from evidence.warc import check_warc

    block = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    good_block = hashlib.sha256(block).digest()
    good_payload = hashlib.sha256(b"body").digest()
    bad = hashlib.sha256(b"other").digest()
    path = tmp_path / "x.warc.gz"
    with open(path, "wb") as fh:
        w = WARCWriter(fh)
        w.write_record(
            record_type="response",
            date="2026-01-01T00:00:00Z",
            target_uri="http://a/",
            content_type="application/http;msgtype=response",
            block=block,
            block_length=len(block),
            block_sha256=bad if wrong == "block" else good_block,
            payload_sha256=bad if wrong == "payload" else good_payload,
        )
    result = check_warc(str(path), [m.to_json() for m in w.members])
    problems = [p for r in result.records for p in r.problems]
    if wrong == "none":
        assert problems == [] and result.checked == 1
    else:
        assert problems == [f"{wrong} digest does not match the record content"]


# --- issue 9: warc/ is a package, writer and checker apart ------------------


def test_public_names_are_re_exported_from_their_modules():
    import evidence.warc
    from evidence.warc import checker, writer

    assert evidence.warc.WARCWriter is writer.WARCWriter
    assert evidence.warc.MemberInfo is writer.MemberInfo
    assert evidence.warc.new_record_id is writer.new_record_id
    assert evidence.warc.check_warc is checker.check_warc
    assert evidence.warc.find_http_header_end is checker.find_http_header_end
    assert sorted(evidence.warc.__all__) == evidence.warc.__all__
    for name in evidence.warc.__all__:
        assert getattr(evidence.warc, name) is not None


def test_record_reader_walks_its_states_in_order():
    from evidence.warc.checker import ReaderState, _HashWorker, _RecordReader

    block = b"HTTP/1.1 200 OK\r\n\r\nbody"
    head = (
        "WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:1>\r\n"
        "WARC-Date: 2026-01-01T00:00:00Z\r\nContent-Type: application/http;msgtype=response\r\n"
        f"WARC-Block-Digest: {format_digest(hashlib.sha256(block).digest())}\r\n"
        f"WARC-Payload-Digest: {format_digest(hashlib.sha256(b'body').digest())}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    ).encode()
    expected = {"id": "<urn:uuid:1>", "type": "response", "date": "2026-01-01T00:00:00Z"}
    hasher = _HashWorker()
    reader = _RecordReader(expected, hasher, ("block", 0))
    seen = [reader.state]
    for piece in (head[:10], head[10:], block[:5], block[5:], b"\r\n\r\n"):
        reader.feed(piece)
        seen.append(reader.state)
    assert seen == [
        ReaderState.HEAD,
        ReaderState.HEAD,
        ReaderState.BLOCK,
        ReaderState.BLOCK,
        ReaderState.TRAILER,
        ReaderState.TRAILER,
    ]
    assert reader.finish() == []
    hasher.finish()
    assert not hasher.mismatches
    other = _HashWorker()
    broken = _RecordReader(expected, other, ("block", 1))
    broken.feed(b"NOT-WARC\r\n\r\n")
    assert broken.state is ReaderState.BROKEN
    assert "not a WARC record" in broken.problems[0]
    broken.close()
    other.finish()


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 3 * 1024 * 1024 + 7])
def test_stored_members_inflate_like_deflated_ones(tmp_path, size):
    """Level 0 is written by our own stored-block framing: every inflater
    (Python's zlib, Debian's gzip, warcio) must read it as the same record
    as a deflated member, and the member and file digests must be those of
    the bytes on disk (the big case is hashed on two threads)."""
    import gzip
    import os
    import subprocess
    import zlib

    block = os.urandom(size)
    digest = hashlib.sha256(block).digest()
    members = {}
    for level in (0, 6):
        path = tmp_path / f"l{level}.warc.gz"
        with open(path, "wb") as fh:
            w = WARCWriter(fh)
            info = w.write_record(
                record_type="resource",
                date="2026-01-01T00:00:00Z",
                target_uri="urn:test:x",
                record_id="<urn:uuid:00000000-0000-0000-0000-000000000000>",
                content_type="application/octet-stream",
                block=io.BytesIO(block),
                block_length=size,
                block_sha256=digest,
                level=level,
            )
        raw = path.read_bytes()
        assert info.length == len(raw)
        assert info.sha256 == hashlib.sha256(raw).hexdigest() == w.file_sha256()
        d = zlib.decompressobj(31)
        members[level] = d.decompress(raw) + d.flush()
        assert d.eof and not d.unused_data
        assert gzip.decompress(raw) == members[level]
        subprocess.run(["gzip", "-t", str(path)], check=True)
    assert members[0] == members[6]
    assert members[0].endswith(block + b"\r\n\r\n")
    # Stored means stored: the block's bytes are in the file as they are.
    assert size < 65536 or block[70000:80000] in (tmp_path / "l0.warc.gz").read_bytes()


@pytest.mark.parametrize("level", [0, 6])
def test_a_record_that_could_not_be_written_fails_the_writer_for_good(level):
    """A write error (here a real ENOSPC from /dev/full, on the two-thread
    path for level 0) leaves part of a member in the file. The writer must
    refuse to go on and must not give a file digest: a caller that swallowed
    the error (the recording proxy's threads do) would otherwise seal a WARC
    whose inventory does not describe it."""
    import errno
    import os

    block = os.urandom(2 * 1024 * 1024)
    digest = hashlib.sha256(block).digest()
    fields = {
        "record_type": "resource",
        "date": "2026-01-01T00:00:00Z",
        "target_uri": "urn:test:x",
        "content_type": "application/octet-stream",
        "block_length": len(block),
        "block_sha256": digest,
        "level": level,
    }
    fh = open("/dev/full", "wb")  # closing it fails too: closed quietly below
    w = WARCWriter(fh)
    with pytest.raises(OSError) as first:
        w.write_record(block=io.BytesIO(block), **fields)
    assert first.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as later:
        w.write_record(block=b"", **{**fields, "block_length": 0, "level": 6})
    assert later.value.errno == errno.ENOSPC, "a full disk stays a disk failure"
    with pytest.raises(OSError) as sealed:
        w.file_sha256()
    assert sealed.value.errno == errno.ENOSPC
    assert w.members == []
    with contextlib.suppress(OSError):
        fh.close()


def test_a_block_that_changed_length_fails_the_writer_for_good():
    """The length check fires after the block was written: that member is
    broken, so nothing may be written after it, nor the file digest given."""
    out = io.BytesIO()
    w = WARCWriter(out)
    with pytest.raises(ValueError, match="block length"):
        w.write_record(**_text_record(block=io.BytesIO(b"xy")))
    assert out.getvalue(), "part of the member is in the file"
    with pytest.raises(OSError):
        w.file_sha256()
    # A refused header (nothing written yet) leaves a writer that still works.
    fresh = WARCWriter(io.BytesIO())
    with pytest.raises(ValueError, match="CR, LF"):
        fresh.write_record(**_text_record(content_type="text/plain\r\nX: y"))
    fresh.write_record(**_text_record())
    assert len(fresh.file_sha256()) == 64

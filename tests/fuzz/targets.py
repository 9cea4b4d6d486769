"""Fuzz targets for every reader of hostile input. Each takes bytes and must only
return or raise the documented error, never crash, hang or grow without bound.

Driven by hypothesis in CI (tests/fuzz/test_fuzz.py) and by atheris for long
runs (tests/fuzz/atheris_fuzz.py); see docs/testing.md.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zlib

from evidence.capturing.requisites import css_urls, decode_body, html_requisites
from evidence.errors import ManifestError
from evidence.keys import Keyring
from evidence.manifest import Manifest
from evidence.timestamping import check_token, request_nonce
from evidence.verifying.custody import check_log
from evidence.verifying.verifier import _parse_checksum_file
from evidence.warc import check_warc

_MANIFEST = hashlib.sha256(b'{"format": "evidence-package/1"}').digest()


def _gz(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


_RECORD = (
    b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:1>\r\n"
    b"WARC-Date: 2026-01-01T00:00:00Z\r\nContent-Type: application/http;msgtype=response\r\n"
    b"WARC-Block-Digest: sha256:"
    + hashlib.sha256(b"HTTP/1.1 200 OK\r\n\r\nx").hexdigest().encode()
    + b"\r\nContent-Length: 20\r\n\r\nHTTP/1.1 200 OK\r\n\r\nx\r\n\r\n"
)


def fuzz_manifest(data: bytes) -> None:
    try:
        Manifest.from_bytes(data)
    except ManifestError:
        pass


def fuzz_warc(data: bytes) -> None:
    """Arbitrary WARC bytes against an inventory derived from the data itself."""
    with tempfile.NamedTemporaryFile(delete=False) as fh:
        fh.write(data)
        path = fh.name
    try:
        half = max(1, len(data) // 2)
        inventory = [
            {
                "id": "<urn:uuid:1>",
                "type": "response",
                "date": "2026-01-01T00:00:00Z",
                "target_uri": None,
                "offset": 0,
                "length": half,
                "sha256": "0" * 64,
            },
            {
                "id": "<urn:uuid:2>",
                "type": "request",
                "date": "x",
                "target_uri": "y",
                "offset": half,
                "length": max(1, len(data) - half),
                "sha256": "0" * 64,
            },
        ]
        check_warc(path, inventory)
    finally:
        os.unlink(path)


def fuzz_warc_member(data: bytes) -> None:
    """Arbitrary decompressed record content, correctly gzipped: exercises the record parser."""
    fuzz_warc(_gz(_RECORD[: len(data) % len(_RECORD)] + data))


def fuzz_token(data: bytes) -> None:
    check_token(data, _MANIFEST, roots=[])
    request_nonce(data)


def fuzz_custody(data: bytes) -> None:
    check_log(data.split(b"\n"), _MANIFEST, Keyring())


def fuzz_bag_manifest(data: bytes) -> None:
    _parse_checksum_file(data, "manifest-sha256.txt")


def fuzz_decode(data: bytes) -> None:
    encodings = ["gzip", "deflate", "gzip, gzip", "identity", "br", None]
    for te in (None, "chunked"):
        for ce in encodings[: 1 + data[0] % len(encodings)] if data else [None]:
            decode_body(
                io.BytesIO(data),
                header_length=0,
                transfer_encoding=te,
                content_encoding=ce,
                cap=1 << 20,
            )


def fuzz_html(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    html_requisites(text, "http://example.org/a/b.html")
    css_urls(text, "http://example.org/a/b.css")


TARGETS = {
    "manifest": fuzz_manifest,
    "warc": fuzz_warc,
    "warc-member": fuzz_warc_member,
    "token": fuzz_token,
    "custody": fuzz_custody,
    "bag-manifest": fuzz_bag_manifest,
    "decode": fuzz_decode,
    "html": fuzz_html,
}

"""Fuzz targets for every reader of hostile input. Each takes bytes and must only
return or raise the documented error, never crash, hang or grow without bound.

Driven by hypothesis in CI (tests/fuzz/test_fuzz.py) and by atheris for long
runs (tests/fuzz/atheris_fuzz.py); see docs/testing.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zlib
from pathlib import Path

from evidence.capturing.requisites import css_urls, decode_body, html_requisites, page_title
from evidence.custody import make_event
from evidence.display import safe
from evidence.errors import ManifestError
from evidence.keys import Keyring
from evidence.manifest import Manifest
from evidence.timestamping import check_token, request_nonce
from evidence.verifying.custody import check_log, custody_check
from evidence.verifying.policy import DEFAULT_LIMITS
from evidence.verifying.report import Check, Finding, Outcome, Report, Status, Subject
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


def fuzz_sealed_operator(data: bytes) -> None:
    """A sealed operator's blob: as raw text, and as armor around hostile age bytes."""
    import base64

    from evidence.errors import SealError
    from evidence.manifest import Operator, SealedOperator
    from evidence.sealing import inspect_sealed, operator_text

    b64 = base64.b64encode(b"age-encryption.org/v1\n" + data).decode()
    armored = "\n".join(
        [
            "-----BEGIN AGE ENCRYPTED FILE-----",
            *(b64[i : i + 64] for i in range(0, len(b64), 64)),
            "-----END AGE ENCRYPTED FILE-----",
        ]
    )
    for text in (data.decode("latin-1"), armored):
        sealed = SealedOperator(
            format="age", recipients=("age1x",) * (1 + len(data) % 3), ciphertext=text
        )
        try:
            inspect_sealed(sealed)
        except SealError:
            pass
        _assert_shown_safely(safe(operator_text(Operator(sealed=sealed))))


def fuzz_html(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    html_requisites(text, "http://example.org/a/b.html")
    css_urls(text, "http://example.org/a/b.css")


def _hostile_text(data: bytes) -> str:
    """Arbitrary text with control characters, escapes, bidi marks and lone surrogates."""
    return data.decode("utf-8", errors="surrogateescape")


_UNSAFE = {chr(c) for c in range(0x20)} | {"\x7f", "\x9b", "\u202e", "\u2066", "\u200b"}


def _assert_shown_safely(text: str) -> None:
    text.encode("utf-8")  # no lone surrogate reaches a terminal
    assert not (set(text) - {"\n"}) & _UNSAFE, repr(text)


def fuzz_display(data: bytes) -> None:
    out = safe(_hostile_text(data))
    _assert_shown_safely(out)
    assert "\n" not in out


def fuzz_title(data: bytes) -> None:
    text = _hostile_text(data)
    title = page_title("<title>" + text + "</title>" + text)
    if title is not None:
        _assert_shown_safely(safe(title))


def fuzz_report_text(data: bytes) -> None:
    """A report whose every package-supplied string is hostile renders one value per line."""
    text = _hostile_text(data)
    check = Check(
        "custody",
        "Chain of custody",
        Status.FAIL,
        "x",
        (Finding(text, path=text, record_id=text, expected=text, found=text), text),
    )
    report = Report(
        package=text,
        checks=(check,),
        outcome=Outcome.FAILED,
        package_id=text,
        untrusted_signers=(text,),
        subject=Subject(requested_url=text, final_url=text, status=200, captured_at=text),
    )
    _assert_shown_safely(report.to_text())
    json.loads(json.dumps(report.to_json(), ensure_ascii=True))


def fuzz_custody_strings(data: bytes) -> None:
    """Well-formed, chained custody events whose text fields are hostile."""
    text = _hostile_text(data)
    manifest = b'{"format": "evidence-package/1"}'
    first = make_event(prev_line=None, manifest=manifest, seq=1, event="captured", note="c")
    event = {
        "seq": 2,
        "event": "transferred",
        "time": text[:40],
        "actor": text,
        "note": text,
        "key_id": text[:64],
        "signature": text[:88],
        "prev": hashlib.sha256(first).hexdigest(),
    }
    line = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "evidence", "custody.jsonl")
        os.makedirs(os.path.dirname(log))
        body = first + b"\n" + line + b"\n"
        with open(log, "wb") as fh:
            fh.write(body)
        check = custody_check(
            Path(tmp),
            {"evidence/custody.jsonl": len(body)},
            hashlib.sha256(manifest).digest(),
            keyring=Keyring(),
            bundled={},
            declared=None,
            manifest_created=None,
            manifest_signers=(),
            anchors=(),
            limits=DEFAULT_LIMITS,
        )
    report = Report(package="p", checks=(check,), outcome=Outcome.FAILED)
    _assert_shown_safely(report.to_text())
    json.loads(json.dumps(report.to_json(), ensure_ascii=True))


def _hostile_manifest(text: str) -> dict:
    """A well-typed manifest in which every string a summary shows is ``text``."""
    tls = {
        "protocol": text,
        "cipher": text,
        "verified": True,
        "certificate_sha256": text,
        "chain_file": text,
        "chain_complete": False,
        "chain_note": text,
        "certificates": [{"sha256": text, "subject": text, "issuer": text, "san": [text]}],
    }
    return {
        "format": "evidence-package/1",
        "package_id": text,
        "created": text,
        "operator": {"name": text, "organization": text},
        "labels": {text: text},
        "capture": {
            "requested_url": text,
            "final_url": text + "x",
            "status": 404,
            "started": text,
            "ended": text,
            "server_ip": text,
            "tls": tls,
            "dns": {text: [text]},
            "redirects": [{"url": text, "status": 301, "location": text, "error": text}],
            "requisites": {
                "enabled": True,
                "failed": [{"url": text, "kind": text, "found_in": text, "error": text}],
            },
            "warnings": [text],
            "title": text,
        },
        "exchanges": [],
        "files": [{"path": text, "size": 1, "sha256": text}],
        "warc": {"path": text, "records": []},
    }


def fuzz_show(data: bytes) -> None:
    """`evidence show` of a package whose every displayed string is hostile."""
    from evidence.show import describe, summary

    text = _hostile_text(data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pkg"
        (root / "evidence").mkdir(parents=True)
        (root / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\n")
        raw = json.dumps(_hostile_manifest(text), ensure_ascii=True).encode()
        (root / "evidence" / "manifest.json").write_bytes(raw)
        try:
            info = summary(root)
        except ManifestError:
            return  # refused as a whole (e.g. a duplicate key): never shown
        _assert_shown_safely(describe(info))
        json.loads(json.dumps(info, ensure_ascii=True))


_ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "section", "h1", "h2", "h3", "div",
    "p", "table", "tr", "th", "td", "span", "b", "i", "br", "bdi", "pre", "img",
}  # fmt: skip


def fuzz_court_report(data: bytes) -> None:
    """The court report's HTML for a package whose every shown string is hostile."""
    import re

    from evidence.courtreport.facts import gather
    from evidence.courtreport.html import render_html
    from evidence.verifying import verify

    # Markup and escapes always, so every run tests escaping, not only rare inputs.
    text = "<img src=x onerror=1>\x1b[8m\u202e" + _hostile_text(data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pkg"
        (root / "evidence").mkdir(parents=True)
        (root / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\n")
        raw = json.dumps(_hostile_manifest(text), ensure_ascii=True).encode()
        (root / "evidence" / "manifest.json").write_bytes(raw)
        event = {"seq": 1, "event": text, "time": text, "actor": text, "note": text,
                 "key_id": text, "prev": text}  # fmt: skip
        line = json.dumps(event, ensure_ascii=True).encode()
        (root / "evidence" / "custody.jsonl").write_bytes(line + b"\n" + line[:-3])
        doc = render_html(
            [gather(root, verify(root, trust=[]))], generated="2026-01-01T00:00:00Z", software="x"
        )
    doc.encode("utf-8")
    assert not (set(doc) - {"\n"}) & _UNSAFE
    tags = {t.lower() for t in re.findall(r"<\s*/?\s*([A-Za-z0-9!]+)", doc)} - {"!doctype"}
    assert tags <= _ALLOWED_TAGS, tags - _ALLOWED_TAGS
    assert doc.count("<img") == 0  # no screenshot here, and the hostile one is text


def _template_wacz(signed_extra: dict[str, str] | None = None) -> bytes:
    """A small, valid, signed WACZ (anonymous P-384, raw r||s) to mutate."""
    import base64
    import zipfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from evidence.wacz import sign_hash_raw

    members = {
        "archive/data.warc.gz": _gz(_RECORD),
        "pages/pages.jsonl": b'{"format": "json-pages-1.0"}\n',
    }
    dp = json.dumps(
        {
            "profile": "data-package",
            "wacz_version": "1.1.1",
            "created": "2026-01-01T00:00:00Z",
            "resources": [
                {
                    "name": n,
                    "path": n,
                    "hash": "sha256:" + hashlib.sha256(d).hexdigest(),
                    "bytes": len(d),
                }
                for n, d in members.items()
            ],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(dp).hexdigest()
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = {
        "hash": digest,
        "created": "2026-01-01T00:00:00Z",
        "signature": base64.b64encode(sign_hash_raw(key, digest)).decode(),
        "publicKey": base64.b64encode(spki).decode(),
    }
    if signed_extra is not None:
        signed.update(signed_extra)
    dd = json.dumps({"path": "datapackage.json", "hash": digest, "signedData": signed}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in [
            *members.items(),
            ("datapackage.json", dp),
            ("datapackage-digest.json", dd),
        ]:
            method = zipfile.ZIP_STORED if name.startswith("archive/") else zipfile.ZIP_DEFLATED
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


_WACZ: list[bytes] = []


def _verify_wacz_bytes(data: bytes) -> None:
    from evidence.verifying.wacz import WACZLimits, WACZTrust, verify_wacz

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.wacz"
        path.write_bytes(data)
        report = verify_wacz(path, trust=WACZTrust(), limits=WACZLimits(member_bytes=1 << 20))
        assert report.outcome is not Outcome.VERIFIED
        _assert_shown_safely(report.to_text())
        json.dumps(report.to_json(), ensure_ascii=True)


def fuzz_wacz(data: bytes) -> None:
    """Arbitrary bytes as a WACZ file: a report, never an exception."""
    _verify_wacz_bytes(data)


def fuzz_wacz_mutation(data: bytes) -> None:
    """A valid signed WACZ with fuzz bytes spliced in: reaches the JSON and zip parsers."""
    if not _WACZ:
        _WACZ.append(_template_wacz())
    base = _WACZ[0]
    if not data:
        _verify_wacz_bytes(base)
        return
    at = int.from_bytes(data[:3], "big") % len(base)
    _verify_wacz_bytes(base[:at] + data[3:] + base[at + len(data[3:]) :])


def fuzz_wacz_signed_data(data: bytes) -> None:
    """Fuzz bytes as the certificates, token, key and signature of a signedData."""
    import base64

    b64 = base64.b64encode(data).decode()
    pem = "-----BEGIN CERTIFICATE-----\n" + b64 + "\n-----END CERTIFICATE-----\n"
    variant = data[0] % 3 if data else 0
    extra = [
        {"publicKey": b64, "signature": b64[: len(b64) // 2]},
        {"domain": "a.example", "domainCert": pem, "timeSignature": b64, "timestampCert": pem},
        {"domain": data.decode("latin-1"), "domainCert": data.decode("latin-1")},
    ][variant]
    _verify_wacz_bytes(_template_wacz(extra))


TARGETS = {
    "court-report": fuzz_court_report,
    "wacz": fuzz_wacz,
    "wacz-signed-data": fuzz_wacz_signed_data,
    "wacz-mutation": fuzz_wacz_mutation,
    "show": fuzz_show,
    "display": fuzz_display,
    "title": fuzz_title,
    "report-text": fuzz_report_text,
    "custody-strings": fuzz_custody_strings,
    "sealed-operator": fuzz_sealed_operator,
    "manifest": fuzz_manifest,
    "warc": fuzz_warc,
    "warc-member": fuzz_warc_member,
    "token": fuzz_token,
    "custody": fuzz_custody,
    "bag-manifest": fuzz_bag_manifest,
    "decode": fuzz_decode,
    "html": fuzz_html,
}

"""Exchanges into WARC records: the one recorder every capture strategy writes through.

Whatever asked for a URL (the page loop, the requisite scheduler, and later a
browser's recording proxy), the bytes reach the package the same way: a
request record and a response record holding exactly what was sent and
received, linked by ``WARC-Concurrent-To``, with the server's IP address; the
TLS chain as presented stored once per distinct chain under
``data/certificates/``; and one :class:`~evidence.manifest.ExchangeInfo` for
the manifest. :class:`Recorder` may be called from many threads; records are
written one at a time, in the order calls arrive.
"""

from __future__ import annotations

import hashlib
import os
import threading
import typing
import urllib.parse
import zlib

from evidence import clock
from evidence.capturing.fetcher import Exchange
from evidence.keys import pem_encode
from evidence.manifest import (
    FORMAT,
    CertificateInfo,
    ExchangeInfo,
    InterimInfo,
    Operator,
    PayloadFile,
    TLSInfo,
)
from evidence.software import software_versions
from evidence.warc import MemberInfo, WARCWriter, new_record_id

if typing.TYPE_CHECKING:
    from evidence.package import PackageWriter

__all__ = ["INTERIM_URN", "WARC_PATH", "Recorder", "certificate_info"]

WARC_PATH = "data/capture.warc.gz"
# Target URI prefix of the record holding an exchange's interim (1xx) responses.
INTERIM_URN = "urn:http-interim:"
# Media bodies whose first bytes deflate does not shrink by this much are
# stored (deflate level 0): encoded audio and video are already compressed,
# and deflating them costs about 8 MB/s of one core for under 2 % saved.
_SAMPLE_BYTES = 64 * 1024
_WORTH_DEFLATING = 0.95
_CHAIN_NOTE = "this Python could not give the chain as presented; only the leaf is stored"


def certificate_info(der: bytes) -> CertificateInfo:
    """Subject, issuer, validity, SANs and fingerprint of one DER certificate."""
    from cryptography import x509

    digest = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        info = CertificateInfo(
            sha256=digest,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            san=_san(cert),
        )
    except ValueError:
        return CertificateInfo(sha256=digest, error="unparseable certificate")
    return info


def _san(cert: typing.Any) -> tuple[str, ...]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(n.value) for n in san)


def deflate_level(fh: typing.BinaryIO, start: int, length: int) -> int:
    """6 when the middle of ``length`` bytes of ``fh`` from ``start`` deflates,
    else 0 (stored). The middle, not the start: an MP4 begins with tables
    that compress well, then holds the encoded media that does not."""
    if length < 4 * _SAMPLE_BYTES:
        return 6
    fh.seek(start + length // 2)
    sample = fh.read(_SAMPLE_BYTES)
    return 6 if len(zlib.compress(sample, 1)) < len(sample) * _WORTH_DEFLATING else 0


def warcinfo_block(
    created: str, operator: Operator | None, extra: typing.Sequence[tuple[str, str]] = ()
) -> bytes:
    """The ``warcinfo`` record's fields: software, formats, creation time, operator."""
    sw = software_versions()
    fields = [
        ("software", f"{sw.name}/{sw.version}"),
        ("format", "WARC File Format 1.1"),
        (
            "conformsTo",
            "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        ),
        ("evidence-format", FORMAT),
        ("python", sw.python or ""),
        ("openssl", sw.openssl or ""),
    ]
    fields.extend((f"library-{k}", v) for k, v in sw.libraries.items() if v)
    fields.append(("created", created))
    if operator is not None:
        if operator.sealed is not None:
            # Only that it is sealed, and to how many keys: never the identity.
            count = len(operator.sealed.recipients)
            fields.append(("operator-sealed", f"age, {count} recipient(s); see the manifest"))
        if operator.name:
            fields.append(("operator", operator.name))
        if operator.organization:
            fields.append(("operator-organization", operator.organization))
    fields.extend(extra)
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode("utf-8")


class Recorder:
    """Writes exchanges into one WARC inside a package being built.

    Args:
        pkg: the package under construction (chain files go into it).
        warc: the writer of ``data/capture.warc.gz``.
        created: the capture's reference time, for the ``warcinfo`` record.
        operator: who captured, when recorded.
        warcinfo_extra: more ``warcinfo`` fields (a browser capture's browser,
            flags, viewport and interception key pin).
    """

    def __init__(
        self,
        pkg: PackageWriter,
        warc: WARCWriter,
        created: str,
        operator: Operator | None,
        warcinfo_extra: typing.Sequence[tuple[str, str]] = (),
    ) -> None:
        self._pkg = pkg
        self._warc = warc
        self._lock = threading.Lock()
        self.exchanges: list[ExchangeInfo] = []
        self.dns: dict[str, tuple[str, ...]] = {}
        self.chains: dict[str, tuple[CertificateInfo, ...]] = {}
        self.chain_files: list[PayloadFile] = []
        block = warcinfo_block(created, operator, warcinfo_extra)
        self.warcinfo_id = warc.write_record(
            record_type="warcinfo",
            date=created,
            content_type="application/warc-fields",
            block=block,
            block_length=len(block),
            block_sha256=hashlib.sha256(block).digest(),
            extra=[("WARC-Filename", os.path.basename(WARC_PATH))],
        ).record_id

    @property
    def members(self) -> list[MemberInfo]:
        """Every record written so far, in file order."""
        return self._warc.members

    def record(self, ex: Exchange, role: str, found_in: str | None = None) -> ExchangeInfo:
        """Write one exchange (and closes its spool file); returns its manifest entry."""
        try:
            with self._lock:
                level = 6
                if role == "media":
                    level = deflate_level(
                        ex.response_file, ex.header_length, ex.response_length - ex.header_length
                    )
                ex.response_file.seek(0)
                request_id, response_id = self._write_pair(ex, level)
                interim = self._write_interim(ex, response_id)
                host = urllib.parse.urlsplit(ex.url).hostname or ""
                if ex.dns is not None and host not in self.dns:
                    self.dns[host] = tuple(ex.dns)
                info = ExchangeInfo(
                    url=ex.url,
                    role=role,
                    found_in=found_in,
                    method=ex.method,
                    status=ex.status,
                    reason=ex.reason,
                    started=clock.iso(ex.started),
                    ended=clock.iso(ex.ended),
                    server_ip=ex.server_ip,
                    server_port=ex.server_port,
                    dns_answers=tuple(ex.dns) if ex.dns is not None else None,
                    tls=self._tls(ex),
                    request_record=request_id,
                    response_record=response_id,
                    response_bytes=ex.response_length,
                    truncated=ex.truncated,
                    interim=interim,
                )
                self.exchanges.append(info)
                return info
        finally:
            ex.response_file.close()

    def record_resource(
        self,
        target_uri: str,
        content_type: str,
        data: bytes,
        *,
        date: str,
        refers_to: str | None = None,
        record_type: str = "resource",
    ) -> str:
        """Write one ``resource`` record (a browser artefact); returns its record id.

        ``target_uri`` must be a ``urn:`` URI, never the page's own URI, or
        replay tools would serve the artefact instead of the page;
        ``refers_to`` (a response record id) links it to the page.
        ``record_type`` ``"metadata"`` writes a ``metadata`` record instead
        (the browser's log: about the page, not a copy of something).
        """
        if not target_uri.startswith("urn:"):
            raise ValueError("resource records take urn: target URIs")
        if record_type not in ("resource", "metadata"):
            raise ValueError("record_resource writes resource or metadata records")
        extra = [("WARC-Warcinfo-ID", self.warcinfo_id)]
        if refers_to is not None:
            extra.append(("WARC-Refers-To", refers_to))
        digest = hashlib.sha256(data).digest()  # a resource's block is its payload
        with self._lock:
            return self._warc.write_record(
                record_type=record_type,
                date=date,
                target_uri=target_uri,
                content_type=content_type,
                block=data,
                block_length=len(data),
                block_sha256=digest,
                payload_sha256=digest if record_type == "resource" else None,
                extra=extra,
            ).record_id

    def record_resource_file(
        self,
        target_uri: str,
        content_type: str,
        fh: typing.BinaryIO,
        *,
        size: int,
        sha256: bytes,
        date: str,
        refers_to: str | None = None,
    ) -> str:
        """Like :meth:`record_resource`, streaming ``size`` bytes from ``fh``
        (a media file: never held in memory); ``sha256`` is their digest.
        ``fh`` must be seekable: its first bytes decide whether it is deflated."""
        if not target_uri.startswith("urn:"):
            raise ValueError("resource records take urn: target URIs")
        extra = [("WARC-Warcinfo-ID", self.warcinfo_id)]
        if refers_to is not None:
            extra.append(("WARC-Refers-To", refers_to))
        start = fh.tell()
        level = deflate_level(fh, start, size)
        fh.seek(start)
        with self._lock:
            return self._warc.write_record(
                record_type="resource",
                date=date,
                target_uri=target_uri,
                content_type=content_type,
                level=level,
                block=fh,
                block_length=size,
                block_sha256=sha256,
                payload_sha256=sha256,
                extra=extra,
            ).record_id

    def _write_pair(self, ex: Exchange, level: int = 6) -> tuple[str, str]:
        date = clock.iso(ex.started)
        req_block = ex.request_bytes
        head_end = req_block.find(b"\r\n\r\n")
        req_payload = req_block[head_end + 4 :] if head_end >= 0 else b""
        ip_header = [("WARC-IP-Address", ex.server_ip)] if ex.server_ip else []
        response_extra: list[tuple[str, str]] = [("WARC-Warcinfo-ID", self.warcinfo_id), *ip_header]
        if ex.truncated:
            response_extra.append(("WARC-Truncated", ex.truncated))
        response_id = new_record_id()
        req = self._warc.write_record(
            record_type="request",
            date=date,
            target_uri=ex.url,
            content_type="application/http;msgtype=request",
            block=req_block,
            block_length=len(req_block),
            block_sha256=hashlib.sha256(req_block).digest(),
            payload_sha256=hashlib.sha256(req_payload).digest(),
            extra=[
                ("WARC-Warcinfo-ID", self.warcinfo_id),
                *ip_header,
                ("WARC-Concurrent-To", response_id),
            ],
        )
        resp = self._warc.write_record(
            record_type="response",
            record_id=response_id,
            date=date,
            target_uri=ex.url,
            content_type="application/http;msgtype=response",
            block=ex.response_file,
            block_length=ex.response_length,
            block_sha256=ex.block_sha256,
            payload_sha256=ex.payload_sha256,
            extra=[*response_extra, ("WARC-Concurrent-To", req.record_id)],
            level=level,
        )
        return req.record_id, resp.record_id

    def _write_interim(self, ex: Exchange, response_id: str) -> InterimInfo | None:
        """The interim (1xx) responses before ``ex``'s answer, exactly as
        received, as one ``metadata`` record beside its response. Not a
        ``response`` record: replay tools would serve a 103 for the page."""
        if not ex.interim:
            return None
        record = self._warc.write_record(
            record_type="metadata",
            date=clock.iso(ex.started),
            target_uri=f"{INTERIM_URN}{ex.url}",
            content_type="application/http;msgtype=response",
            block=ex.interim,
            block_length=len(ex.interim),
            block_sha256=hashlib.sha256(ex.interim).digest(),
            extra=[("WARC-Warcinfo-ID", self.warcinfo_id), ("WARC-Concurrent-To", response_id)],
        )
        return InterimInfo(
            record=record.record_id, statuses=ex.interim_statuses, size=len(ex.interim)
        )

    def _tls(self, ex: Exchange) -> TLSInfo | None:
        if ex.tls is None:
            return None
        return TLSInfo(
            protocol=ex.tls.protocol,
            cipher=ex.tls.cipher,
            verified=ex.tls.verified,
            certificate_sha256=ex.tls.leaf_sha256,
            chain_file=self._chain_file(ex.tls.chain_der),
            chain_complete=ex.tls.chain_complete,
            chain_note=None if ex.tls.chain_complete else _CHAIN_NOTE,
        )

    def _chain_file(self, chain_der: tuple[bytes, ...]) -> str | None:
        """Store a chain once under ``data/certificates/`` (PEM); returns its path."""
        if not chain_der:
            return None
        digest = hashlib.sha256(b"".join(chain_der)).hexdigest()
        rel = f"data/certificates/{digest[:16]}.pem"
        if rel not in self.chains:
            path = self._pkg.path(rel)
            path.parent.mkdir(exist_ok=True)
            data = b"".join(pem_encode("CERTIFICATE", der) for der in chain_der)
            with open(path, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self.chain_files.append(
                PayloadFile(path=rel, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )
            self.chains[rel] = tuple(certificate_info(der) for der in chain_der)
        return rel

"""Capture a URL into a sealed evidence package.

(The package is named ``capturing`` so that ``evidence.capture`` can stay the
function users call.)

``capture()`` follows redirects itself (every hop is its own request/response
pair in the WARC), writes the WARC through :class:`evidence.warc.WARCWriter`,
builds the manifest, and hands everything to :class:`evidence.package.PackageWriter`
for an atomic rename into place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import platform
import ssl
import time
import typing
import urllib.parse
from importlib import metadata
from pathlib import Path

import attrs

if typing.TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence.capturing.fetcher import Exchange, Fetcher, FetchLimits
from evidence.errors import CaptureError, EvidenceError, PackageError
from evidence.manifest import FORMAT, dumps
from evidence.package import PackageWriter, make_package_id
from evidence.signing import attachments_for
from evidence.timestamping import request_timestamp, token_attachments
from evidence.warc import MemberInfo, WARCWriter, new_record_id

logger = logging.getLogger(__name__)

__all__ = ["CaptureOptions", "CaptureResult", "Operator", "capture", "software_versions"]

WARC_PATH = "data/capture.warc.gz"
DISTRIBUTION = "evidence-archive"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, typing.Any]:
    """The software that made a package: ours, Python, OpenSSL and libraries."""
    return {
        "name": DISTRIBUTION,
        "version": _version(DISTRIBUTION) or "unknown",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.system(),
        "openssl": ssl.OPENSSL_VERSION,
        "libraries": {
            name: _version(name)
            for name in ("attrs", "cryptography", "requests", "urllib3", "warcio")
        },
    }


def default_user_agent() -> str:
    return f"evidence-archive/{_version(DISTRIBUTION) or 'dev'} (web evidence capture)"


@attrs.frozen
class Operator:
    """Who ran the capture. Optional on purpose: some operators are at risk."""

    name: str | None = None
    organization: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {}
        if self.name:
            out["name"] = self.name
        if self.organization:
            out["organization"] = self.organization
        return out


@attrs.frozen(kw_only=True)
class CaptureOptions:
    """How to capture. Every limit has a default that is safe against hostile servers.

    Attributes:
        deadline: total seconds per URL, all redirect hops included.
        connect_timeout: seconds to establish one TCP connection.
        read_timeout: seconds to wait for any byte.
        max_response_bytes: body bytes recorded per response before it is cut
            and marked ``WARC-Truncated: length``.
        max_redirects: redirect hops followed.
        user_agent: the User-Agent sent.
        ca_bundle: PEM file of CA certificates to trust instead of the system's.
        unsafe_insecure: turn TLS certificate verification off (recorded).
    """

    deadline: float = 60.0
    connect_timeout: float = 15.0
    read_timeout: float = 30.0
    max_response_bytes: int = 2 * 1024**3
    max_redirects: int = 10
    user_agent: str = attrs.field(factory=default_user_agent)
    ca_bundle: str | None = None
    unsafe_insecure: bool = False

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "deadline_seconds": self.deadline,
            "connect_timeout_seconds": self.connect_timeout,
            "read_timeout_seconds": self.read_timeout,
            "max_response_bytes": self.max_response_bytes,
            "max_redirects": self.max_redirects,
            "user_agent": self.user_agent,
            "tls_verification": not self.unsafe_insecure,
            "ca_bundle": "custom" if self.ca_bundle else "system",
        }


@attrs.frozen
class CaptureResult:
    """What a capture produced.

    Attributes:
        path: the package directory.
        package_id: its id.
        url: the URL requested.
        final_url: the URL of the last response recorded.
        status: the HTTP status of the last response recorded.
        warnings: human-readable notes: error statuses, limits hit, hops not followed.
    """

    path: str
    package_id: str
    url: str
    final_url: str
    status: int
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, typing.Any]:
        return {
            "url": self.url,
            "package": self.path,
            "package_id": self.package_id,
            "final_url": self.final_url,
            "status": self.status,
            "warnings": list(self.warnings),
        }


def _iso(ts: _dt.datetime) -> str:
    return ts.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_url(url: str) -> str:
    """Return the URL if it is an absolute http(s) URL with a host; else raise CaptureError."""
    if any(ch in url for ch in "\r\n\t\x00 ") or not url.isprintable():
        raise CaptureError(url, "invalid URL: contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CaptureError(url, f"invalid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise CaptureError(
            url, f"unsupported scheme {scheme!r}: only http and https can be captured"
        )
    if not parts.hostname:
        raise CaptureError(url, "invalid URL: no host")
    return url


def _exchange_json(ex: Exchange, req: MemberInfo, resp: MemberInfo) -> dict[str, typing.Any]:
    tls = None
    if ex.tls is not None:
        tls = {
            "protocol": ex.tls.protocol,
            "cipher": ex.tls.cipher,
            "verified": ex.tls.verified,
            "certificate_sha256": ex.tls.leaf_sha256,
        }
    return {
        "url": ex.url,
        "method": ex.method,
        "status": ex.status,
        "reason": ex.reason,
        "started": _iso(ex.started),
        "ended": _iso(ex.ended),
        "server_ip": ex.server_ip,
        "server_port": ex.server_port,
        "dns_answers": list(ex.dns) if ex.dns is not None else None,
        "tls": tls,
        "request_record": req.record_id,
        "response_record": resp.record_id,
        "response_bytes": ex.response_length,
        "truncated": ex.truncated,
    }


def _warcinfo_block(created: str, operator: Operator | None) -> bytes:
    sw = software_versions()
    fields = [
        ("software", f"{sw['name']}/{sw['version']}"),
        ("format", "WARC File Format 1.1"),
        (
            "conformsTo",
            "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        ),
        ("evidence-format", FORMAT),
        ("python", sw["python"]),
        ("openssl", sw["openssl"]),
    ]
    fields.extend((f"library-{k}", v) for k, v in sw["libraries"].items() if v)
    fields.append(("created", created))
    if operator is not None:
        if operator.name:
            fields.append(("operator", operator.name))
        if operator.organization:
            fields.append(("operator-organization", operator.organization))
    for _, value in fields:
        if any(ch in value for ch in "\r\n"):
            raise CaptureError("-", "operator fields must not contain line breaks")
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode("utf-8")


def _write_exchange(
    warc: WARCWriter, ex: Exchange, warcinfo_id: str
) -> tuple[MemberInfo, MemberInfo]:
    date = _iso(ex.started)
    req_block = ex.request_bytes
    head_end = req_block.find(b"\r\n\r\n")
    req_payload = req_block[head_end + 4 :] if head_end >= 0 else b""
    ip_header = [("WARC-IP-Address", ex.server_ip)] if ex.server_ip else []
    response_id_extra: list[tuple[str, str]] = [("WARC-Warcinfo-ID", warcinfo_id), *ip_header]
    if ex.truncated:
        response_id_extra.append(("WARC-Truncated", ex.truncated))
    response_id = new_record_id()
    req = warc.write_record(
        record_type="request",
        date=date,
        target_uri=ex.url,
        content_type="application/http;msgtype=request",
        block=req_block,
        block_length=len(req_block),
        block_sha256=hashlib.sha256(req_block).digest(),
        payload_sha256=hashlib.sha256(req_payload).digest(),
        extra=[("WARC-Warcinfo-ID", warcinfo_id), *ip_header, ("WARC-Concurrent-To", response_id)],
    )
    try:
        resp = warc.write_record(
            record_type="response",
            record_id=response_id,
            date=date,
            target_uri=ex.url,
            content_type="application/http;msgtype=response",
            block=ex.response_file,
            block_length=ex.response_length,
            block_sha256=ex.block_sha256,
            payload_sha256=ex.payload_sha256,
            extra=[*response_id_extra, ("WARC-Concurrent-To", req.record_id)],
        )
    finally:
        ex.response_file.close()
    return req, resp


def capture(
    url: str,
    *,
    out: str | os.PathLike[str] = "archives",
    options: CaptureOptions | None = None,
    operator: Operator | None = None,
    sign_with: typing.Sequence[Ed25519PrivateKey] = (),
    tsa_urls: typing.Sequence[str] = (),
    tsa_roots: typing.Sequence[x509.Certificate] = (),
) -> CaptureResult:
    """Capture ``url`` into a new evidence package under ``out``.

    Args:
        url: an absolute http or https URL.
        out: the directory that receives the package (created if missing).
        options: limits and TLS settings; defaults are safe.
        operator: who captured, recorded only when given.
        sign_with: private keys that sign the manifest before the package is
            renamed into place, so a signed capture never appears unsigned.
        tsa_urls: RFC 3161 time-stamping authorities to ask for a token over the
            manifest. A TSA that fails does not lose the capture: the package
            is written without that token and a warning says so.
        tsa_roots: roots to check each token's chain on receipt; without them
            the chain is left for ``evidence verify --tsa-ca`` (and a warning says so).

    Returns:
        A :class:`CaptureResult` describing the package.

    Raises:
        CaptureError: no response at all could be recorded; no package is left behind.
        PackageError: the package could not be written.
    """
    options = options or CaptureOptions()
    validate_url(url)
    created = _dt.datetime.now(_dt.timezone.utc)
    package_id = make_package_id(url, created)
    fetcher = Fetcher(
        user_agent=options.user_agent,
        limits=FetchLimits(
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_response_bytes=options.max_response_bytes,
        ),
        ca_bundle=options.ca_bundle,
        unsafe_insecure=options.unsafe_insecure,
    )
    deadline = time.monotonic() + options.deadline
    try:
        with PackageWriter(out, package_id) as pkg:
            return _capture_into(
                pkg,
                url,
                created,
                deadline,
                fetcher,
                options,
                operator,
                sign_with,
                tsa_urls,
                tsa_roots,
            )
    finally:
        fetcher.close()


def _capture_into(
    pkg: PackageWriter,
    url: str,
    created: _dt.datetime,
    deadline: float,
    fetcher: Fetcher,
    options: CaptureOptions,
    operator: Operator | None,
    sign_with: typing.Sequence[Ed25519PrivateKey],
    tsa_urls: typing.Sequence[str],
    tsa_roots: typing.Sequence[x509.Certificate],
) -> CaptureResult:
    created_iso = _iso(created)
    warnings: list[str] = []
    limits_hit: list[dict[str, typing.Any]] = []
    exchanges: list[dict[str, typing.Any]] = []
    redirects: list[dict[str, typing.Any]] = []
    spool_dir = str(pkg.path("data"))
    warc_file = pkg.path(WARC_PATH)
    try:
        fh = open(warc_file, "xb")
    except OSError as exc:
        raise PackageError(f"cannot create {warc_file}: {exc}") from exc
    try:
        warc = WARCWriter(fh)
        info_block = _warcinfo_block(created_iso, operator)
        warcinfo = warc.write_record(
            record_type="warcinfo",
            date=created_iso,
            content_type="application/warc-fields",
            block=info_block,
            block_length=len(info_block),
            block_sha256=hashlib.sha256(info_block).digest(),
            extra=[("WARC-Filename", "capture.warc.gz")],
        )
        current = url
        last: Exchange | None = None
        hops = 0
        while True:
            try:
                ex = fetcher.fetch(current, deadline=deadline, spool_dir=spool_dir)
            except CaptureError as exc:
                if last is None:
                    raise
                warnings.append(f"redirect target {current} could not be fetched: {exc.cause}")
                redirects[-1]["error"] = exc.cause
                break
            req, resp = _write_exchange(warc, ex, warcinfo.record_id)
            exchanges.append(_exchange_json(ex, req, resp))
            last = ex
            if ex.truncated:
                limit = {"length": "max_response_bytes", "time": "deadline"}.get(
                    ex.truncated, "disconnect"
                )
                limits_hit.append({"limit": limit, "url": ex.url, "detail": ex.truncated_detail})
                warnings.append(f"response from {ex.url} is incomplete: {ex.truncated_detail}")
            location = ex.header("Location")
            if not (300 <= ex.status < 400 and location):
                break
            target = urllib.parse.urljoin(ex.url, location.strip())
            hop = {"url": ex.url, "status": ex.status, "location": target}
            redirects.append(hop)
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                hop["error"] = f"unsupported scheme {scheme!r}, not followed"
                warnings.append(f"redirect to {target} not followed: unsupported scheme {scheme!r}")
                break
            if hops >= options.max_redirects:
                limits_hit.append(
                    {
                        "limit": "max_redirects",
                        "url": ex.url,
                        "detail": f"{options.max_redirects} hops",
                    }
                )
                warnings.append(f"stopped after {options.max_redirects} redirects")
                break
            if time.monotonic() >= deadline:
                limits_hit.append({"limit": "deadline", "url": target, "detail": "before next hop"})
                warnings.append(f"deadline reached before following redirect to {target}")
                break
            hops += 1
            current = target
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()

    assert last is not None  # the first fetch either succeeded or raised
    if last.status >= 400:
        warnings.insert(0, f"the server answered HTTP {last.status} {last.reason}".rstrip())
    ended = _dt.datetime.now(_dt.timezone.utc)
    first = exchanges[0]
    page = exchanges[-1]
    manifest = {
        "format": FORMAT,
        "package_id": pkg.package_id,
        "created": created_iso,
        "software": software_versions(),
        "operator": operator.to_json() if operator else None,
        "options": options.to_json(),
        "capture": {
            "requested_url": url,
            "final_url": last.url,
            "status": last.status,
            "started": first["started"],
            "ended": _iso(ended),
            "server_ip": page["server_ip"],
            "tls": page["tls"],
            "user_agent": options.user_agent,
            "redirects": redirects,
            "limits_hit": limits_hit,
            "warnings": warnings,
        },
        "exchanges": exchanges,
        "files": [{"path": WARC_PATH, "size": warc.size, "sha256": warc.file_sha256()}],
        "warc": {"path": WARC_PATH, "records": [m.to_json() for m in warc.members]},
    }
    org = operator.organization if operator and operator.organization else None
    bag_info = [
        ("Bag-Software-Agent", f"{DISTRIBUTION} {software_versions()['version']}"),
        ("Bagging-Date", created.strftime("%Y-%m-%d")),
        ("External-Identifier", pkg.package_id),
        ("External-Description", f"Web evidence captured from {url}"),
    ]
    if org:
        bag_info.insert(0, ("Source-Organization", org))
    manifest_bytes = dumps(manifest)
    attachments: dict[str, bytes] = {}
    for key in sign_with:
        attachments.update(attachments_for(manifest_bytes, key))
    stems: set[str] = set()
    for tsa in tsa_urls:
        try:
            token = request_timestamp(manifest_bytes, tsa, roots=tsa_roots)
        except EvidenceError as exc:
            warnings.append(f"timestamp missing: {exc}; add it later with 'evidence timestamp'")
            continue
        files = token_attachments(token, stems)
        stems.update(Path(rel).stem for rel in files)
        attachments.update(files)
        if not token.chain_checked:
            warnings.append(
                f"timestamp from {tsa} stored; its chain is not checked yet (no --tsa-ca given)"
            )
    path = pkg.finish(
        manifest=manifest_bytes,
        payload=[(WARC_PATH, warc.file_sha256(), warc.size)],
        bag_info=bag_info,
        attachments=attachments,
    )
    logger.info("captured %s into %s", url, path)
    return CaptureResult(
        path=str(path),
        package_id=pkg.package_id,
        url=url,
        final_url=last.url,
        status=last.status,
        warnings=tuple(warnings),
    )

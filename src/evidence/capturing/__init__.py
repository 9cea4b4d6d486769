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

from evidence.capturing.fetcher import Exchange, Fetcher, FetchLimits, refuse_non_public
from evidence.capturing.requisites import (
    Found,
    charset_of,
    css_urls,
    decode_body,
    html_requisites,
)
from evidence.custody import CUSTODY_PATH, make_event
from evidence.errors import CaptureError, EvidenceError, PackageError
from evidence.keys import pem_encode
from evidence.manifest import FORMAT, dumps
from evidence.package import PackageWriter, fault_point, make_package_id
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
        requisites: also fetch what the page needs to be seen (images, CSS,
            scripts, fonts, media, one level of iframes), from any origin.
        max_requisites: requisite URLs fetched at most.
        max_requisite_bytes: total response bytes for all requisites.
        requisites_deadline: seconds for the whole requisite phase.
        requisite_workers: requisites fetched at once.
        public_only: refuse every destination that is not a public IP address
            (loopback, private, link-local, CGNAT, multicast, reserved, and
            IPv6 forms embedding them), checked on the address actually
            connected to, for the page, every redirect hop and every requisite.
    """

    deadline: float = 60.0
    connect_timeout: float = 15.0
    read_timeout: float = 30.0
    max_response_bytes: int = 2 * 1024**3
    max_redirects: int = 10
    user_agent: str = attrs.field(factory=default_user_agent)
    ca_bundle: str | None = None
    unsafe_insecure: bool = False
    requisites: bool = True
    max_requisites: int = 500
    max_requisite_bytes: int = 1024**3
    requisites_deadline: float = 120.0
    requisite_workers: int = 8
    public_only: bool = False

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
            "requisites": self.requisites,
            "max_requisites": self.max_requisites,
            "max_requisite_bytes": self.max_requisite_bytes,
            "requisites_deadline_seconds": self.requisites_deadline,
            "requisite_workers": self.requisite_workers,
            "public_only": self.public_only,
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


_PARSE_TYPES = ("text/html", "application/xhtml+xml", "text/css")


def _cert_details(der: bytes) -> dict[str, typing.Any]:
    """Subject, issuer, validity, SANs and fingerprint of one DER certificate."""
    from cryptography import x509 as _x509

    info: dict[str, typing.Any] = {"sha256": hashlib.sha256(der).hexdigest()}
    try:
        cert = _x509.load_der_x509_certificate(der)
    except ValueError:
        info["error"] = "unparseable certificate"
        return info
    info.update(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    try:
        san = cert.extensions.get_extension_for_class(_x509.SubjectAlternativeName).value
        info["san"] = [str(n.value) for n in san]
    except _x509.ExtensionNotFound:
        info["san"] = []
    return info


@attrs.frozen
class _Fetched:
    """A redirect chain fetched for one URL (possibly cut short by an error)."""

    url: str
    exchanges: tuple[Exchange, ...]
    error: str | None
    hops: tuple[dict[str, typing.Any], ...]


class _Capture:
    """State of one capture job: the package being built and what was recorded."""

    def __init__(
        self,
        pkg: PackageWriter,
        fetcher: Fetcher,
        options: CaptureOptions,
        created: _dt.datetime,
        operator: Operator | None,
    ) -> None:
        self.pkg = pkg
        self.fetcher = fetcher
        self.options = options
        self.created = created
        self.operator = operator
        self.spool_dir = str(pkg.path("data"))
        self.warnings: list[str] = []
        self.limits_hit: list[dict[str, typing.Any]] = []
        self.exchanges: list[dict[str, typing.Any]] = []
        self.dns: dict[str, list[str]] = {}
        self.chains: dict[str, list[dict[str, typing.Any]]] = {}
        self.payload: list[tuple[str, str, int]] = []
        self.warc: WARCWriter
        self.warcinfo_id = ""

    # -- recording ---------------------------------------------------------
    def _chain_file(self, ex: Exchange) -> str | None:
        if ex.tls is None or not ex.tls.chain_der:
            return None
        digest = hashlib.sha256(b"".join(ex.tls.chain_der)).hexdigest()
        rel = f"data/certificates/{digest[:16]}.pem"
        if rel not in self.chains:
            path = self.pkg.path(rel)
            path.parent.mkdir(exist_ok=True)
            data = b"".join(pem_encode("CERTIFICATE", der) for der in ex.tls.chain_der)
            with open(path, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self.payload.append((rel, hashlib.sha256(data).hexdigest(), len(data)))
            self.chains[rel] = [_cert_details(der) for der in ex.tls.chain_der]
        return rel

    def record(
        self, ex: Exchange, role: str, found_in: str | None = None
    ) -> tuple[dict[str, typing.Any], str | None]:
        """Write one exchange to the WARC; return its manifest entry and parseable text."""
        text = None
        try:
            text = self._parse_text(ex)
            ex.response_file.seek(0)
            req, resp = _write_exchange(self.warc, ex, self.warcinfo_id)
        finally:
            ex.response_file.close()
        host = urllib.parse.urlsplit(ex.url).hostname or ""
        if ex.dns is not None and host not in self.dns:
            self.dns[host] = list(ex.dns)
        tls = None
        if ex.tls is not None:
            tls = {
                "protocol": ex.tls.protocol,
                "cipher": ex.tls.cipher,
                "verified": ex.tls.verified,
                "certificate_sha256": ex.tls.leaf_sha256,
                "chain_file": self._chain_file(ex),
                "chain_complete": ex.tls.chain_complete,
            }
            if not ex.tls.chain_complete:
                tls["chain_note"] = (
                    "this Python could not give the chain as presented; only the leaf is stored"
                )
        entry = {
            "url": ex.url,
            "role": role,
            "found_in": found_in,
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
        self.exchanges.append(entry)
        if ex.truncated:
            limit = {"length": "max_response_bytes", "time": "deadline"}.get(
                ex.truncated, "disconnect"
            )
            self.limits_hit.append({"limit": limit, "url": ex.url, "detail": ex.truncated_detail})
            self.warnings.append(f"response from {ex.url} is incomplete: {ex.truncated_detail}")
        return entry, text

    def _parse_text(self, ex: Exchange) -> str | None:
        """Decoded HTML/CSS text of a response, for finding requisites (bounded)."""
        if not self.options.requisites:
            return None
        ctype = (ex.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in _PARSE_TYPES or ex.status >= 400 or 300 <= ex.status < 400:
            return None
        result = decode_body(
            ex.response_file,
            header_length=ex.header_length,
            transfer_encoding=ex.header("Transfer-Encoding"),
            content_encoding=ex.header("Content-Encoding"),
        )
        if result.note:
            self.warnings.append(f"requisites of {ex.url}: {result.note}")
        return result.data.decode(charset_of(ex.header("Content-Type")), errors="replace")

    # -- fetching ----------------------------------------------------------
    def fetch_chain(self, url: str, deadline: float) -> _Fetched:
        """Fetch ``url`` and follow its redirects (runs on any thread; writes nothing)."""
        exchanges: list[Exchange] = []
        hops: list[dict[str, typing.Any]] = []
        current = url
        while True:
            try:
                ex = self.fetcher.fetch(current, deadline=deadline, spool_dir=self.spool_dir)
            except CaptureError as exc:
                if hops:
                    hops[-1]["error"] = exc.cause
                return _Fetched(url, tuple(exchanges), exc.cause, tuple(hops))
            exchanges.append(ex)
            location = ex.header("Location")
            if not (300 <= ex.status < 400 and location):
                return _Fetched(url, tuple(exchanges), None, tuple(hops))
            target = urllib.parse.urljoin(ex.url, location.strip())
            hop: dict[str, typing.Any] = {"url": ex.url, "status": ex.status, "location": target}
            hops.append(hop)
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                hop["error"] = f"unsupported scheme {scheme!r}, not followed"
                return _Fetched(url, tuple(exchanges), hop["error"], tuple(hops))
            if len(hops) > self.options.max_redirects:
                hop["error"] = f"more than {self.options.max_redirects} redirects, not followed"
                return _Fetched(url, tuple(exchanges), hop["error"], tuple(hops))
            if time.monotonic() >= deadline:
                hop["error"] = "deadline reached before this hop"
                return _Fetched(url, tuple(exchanges), hop["error"], tuple(hops))
            current = target

    def run_page(
        self, url: str, deadline: float
    ) -> tuple[Exchange, list[dict[str, typing.Any]], str | None]:
        fetched = self.fetch_chain(url, deadline)
        if not fetched.exchanges:
            raise CaptureError(url, fetched.error or "no response")
        text = None
        for i, ex in enumerate(fetched.exchanges):
            last = i == len(fetched.exchanges) - 1
            _, text = self.record(ex, "page" if last else "redirect")
        hops = list(fetched.hops)
        for hop in hops:
            error = hop.get("error")
            if error is None:
                continue
            if "redirects" in error:
                self.limits_hit.append(
                    {
                        "limit": "max_redirects",
                        "url": hop["url"],
                        "detail": f"{self.options.max_redirects} hops",
                    }
                )
                self.warnings.append(f"stopped after {self.options.max_redirects} redirects")
            elif "scheme" in error:
                self.warnings.append(f"redirect to {hop['location']} not followed: {error}")
            elif "deadline" in error:
                self.limits_hit.append(
                    {"limit": "deadline", "url": hop["location"], "detail": "before next hop"}
                )
                self.warnings.append(f"deadline reached before following {hop['location']}")
            else:
                self.warnings.append(
                    f"redirect target {hop['location']} could not be fetched: {error}"
                )
        return fetched.exchanges[-1], hops, text

    def run_requisites(self, page: Exchange, text: str | None) -> dict[str, typing.Any]:
        """Fetch requisites concurrently; write each exchange as it completes."""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        opts = self.options
        summary: dict[str, typing.Any] = {
            "enabled": opts.requisites,
            "fetched": 0,
            "failed": [],
            "skipped": 0,
            "limits_hit": [],
        }
        if not opts.requisites or text is None:
            return summary
        ctype = (page.header("Content-Type") or "").lower()
        found = css_urls(text, page.url) if "css" in ctype else html_requisites(text, page.url)
        phase_deadline = time.monotonic() + opts.requisites_deadline
        seen: set[str] = {page.url}
        queue: list[tuple[Found, str, int]] = []  # (found, found_in, depth)

        def enqueue(items: typing.Iterable[Found], found_in: str, depth: int) -> None:
            for item in items:
                if item.kind == "iframe" and depth > 0:
                    continue  # one level of iframes: not the frames inside a frame
                url = urllib.parse.urldefrag(item.url)[0]
                if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                    continue
                if url in seen:
                    continue
                seen.add(url)
                queue.append((Found(url, item.kind), found_in, depth))

        enqueue(found, page.url, 0)
        total_bytes = 0
        count = 0
        stopped: str | None = None
        pending: dict[Future[_Fetched], tuple[Found, str, int]] = {}
        with ThreadPoolExecutor(max_workers=max(1, opts.requisite_workers)) as pool:
            while queue or pending:
                while queue and len(pending) < opts.requisite_workers and stopped is None:
                    if count >= opts.max_requisites:
                        stopped = "max_requisites"
                        break
                    if time.monotonic() >= phase_deadline:
                        stopped = "requisites_deadline"
                        break
                    entry = queue.pop(0)
                    count += 1
                    deadline = min(phase_deadline, time.monotonic() + opts.deadline)
                    pending[pool.submit(self.fetch_chain, entry[0].url, deadline)] = entry
                if stopped is not None and not pending:
                    break
                if not pending:
                    continue
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    item, found_in, depth = pending.pop(future)
                    fetched = future.result()
                    texts: list[tuple[Exchange, str | None]] = []
                    for ex in fetched.exchanges:
                        _, t = self.record(ex, "requisite", found_in)
                        texts.append((ex, t))
                        total_bytes += ex.response_length
                    summary["fetched"] += 1
                    if fetched.error is not None:
                        summary["failed"].append(
                            {
                                "url": item.url,
                                "kind": item.kind,
                                "found_in": found_in,
                                "error": fetched.error,
                            }
                        )
                    elif fetched.exchanges and fetched.exchanges[-1].status >= 400:
                        last = fetched.exchanges[-1]
                        summary["failed"].append(
                            {
                                "url": item.url,
                                "kind": item.kind,
                                "found_in": found_in,
                                "error": f"HTTP {last.status}",
                            }
                        )
                    if total_bytes >= opts.max_requisite_bytes and stopped is None:
                        stopped = "max_requisite_bytes"
                    ex_last, t_last = texts[-1] if texts else (None, None)
                    if ex_last is None or t_last is None:
                        continue
                    last_type = (ex_last.header("Content-Type") or "").lower()
                    if "css" in last_type:
                        enqueue(css_urls(t_last, ex_last.url), ex_last.url, depth + 1)
                    elif item.kind == "iframe" and depth == 0:
                        enqueue(html_requisites(t_last, ex_last.url), ex_last.url, depth + 1)
        if stopped is not None:
            summary["skipped"] = len(queue)
            detail = {
                "max_requisites": f"{opts.max_requisites} requisites",
                "max_requisite_bytes": f"{opts.max_requisite_bytes} bytes",
                "requisites_deadline": f"{opts.requisites_deadline:g} s",
            }[stopped]
            hit = {"limit": stopped, "url": page.url, "detail": detail}
            summary["limits_hit"].append(hit)
            self.limits_hit.append(hit)
            self.warnings.append(
                f"requisite limit {stopped} ({detail}) reached; {len(queue)} not fetched"
            )
        if summary["failed"]:
            self.warnings.append(f"{len(summary['failed'])} requisite(s) failed (see the manifest)")
        return summary


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
    """Capture ``url`` (and by default its page requisites) into a new package under ``out``.

    Args:
        url: an absolute http or https URL.
        out: the directory that receives the package (created if missing).
        options: limits, TLS and requisite settings; defaults are safe.
        operator: who captured, recorded only when given.
        sign_with: private keys that sign the manifest before the package is
            renamed into place, so a signed capture never appears unsigned.
            The first key also signs the "captured" custody event.
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
        pool_size=max(16, options.requisite_workers * 2),
        check_address=refuse_non_public if options.public_only else None,
    )
    deadline = time.monotonic() + options.deadline
    try:
        with PackageWriter(out, package_id) as pkg:
            job = _Capture(pkg, fetcher, options, created, operator)
            return _run(job, url, deadline, sign_with, tsa_urls, tsa_roots)
    finally:
        fetcher.close()


def _run(
    job: _Capture,
    url: str,
    deadline: float,
    sign_with: typing.Sequence[Ed25519PrivateKey],
    tsa_urls: typing.Sequence[str],
    tsa_roots: typing.Sequence[x509.Certificate],
) -> CaptureResult:
    pkg, options, operator = job.pkg, job.options, job.operator
    created_iso = _iso(job.created)
    warc_file = pkg.path(WARC_PATH)
    try:
        fh = open(warc_file, "xb")
    except OSError as exc:
        raise PackageError(f"cannot create {warc_file}: {exc}") from exc
    try:
        job.warc = WARCWriter(fh)
        info_block = _warcinfo_block(created_iso, operator)
        job.warcinfo_id = job.warc.write_record(
            record_type="warcinfo",
            date=created_iso,
            content_type="application/warc-fields",
            block=info_block,
            block_length=len(info_block),
            block_sha256=hashlib.sha256(info_block).digest(),
            extra=[("WARC-Filename", "capture.warc.gz")],
        ).record_id
        fault_point("warc-started")
        last, redirects, text = job.run_page(url, deadline)
        requisites = job.run_requisites(last, text)
        fh.flush()
        os.fsync(fh.fileno())
    finally:
        fh.close()

    if last.status >= 400:
        job.warnings.insert(0, f"the server answered HTTP {last.status} {last.reason}".rstrip())
    refused = [
        {"url": item.get("location") or item.get("url"), "reason": item["error"]}
        for item in [*redirects, *requisites["failed"]]
        if "not a public address" in str(item.get("error"))
    ]
    ended = _dt.datetime.now(_dt.timezone.utc)
    page = next(e for e in reversed(job.exchanges) if e["role"] == "page")
    page_tls = dict(page["tls"]) if page["tls"] else None
    if page_tls and page_tls.get("chain_file"):
        page_tls["certificates"] = job.chains[page_tls["chain_file"]]
    payload = [(WARC_PATH, job.warc.file_sha256(), job.warc.size), *job.payload]
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
            "started": job.exchanges[0]["started"],
            "ended": _iso(ended),
            "server_ip": page["server_ip"],
            "tls": page_tls,
            "dns": job.dns,
            "user_agent": options.user_agent,
            "redirects": redirects,
            "requisites": requisites,
            "refused": refused,
            "limits_hit": job.limits_hit,
            "warnings": job.warnings,
        },
        "certificate_chains": job.chains,
        # The log is written after the manifest (its first event hashes it), so
        # the manifest declares it: deleting the whole log then fails too.
        "custody_log": CUSTODY_PATH,
        "exchanges": job.exchanges,
        "files": [{"path": rel, "size": size, "sha256": digest} for rel, digest, size in payload],
        "warc": {"path": WARC_PATH, "records": [m.to_json() for m in job.warc.members]},
    }
    org = operator.organization if operator and operator.organization else None
    bag_info = [
        ("Bag-Software-Agent", f"{DISTRIBUTION} {software_versions()['version']}"),
        ("Bagging-Date", job.created.strftime("%Y-%m-%d")),
        ("External-Identifier", pkg.package_id),
        ("External-Description", f"Web evidence captured from {url}"),
    ]
    if org:
        bag_info.insert(0, ("Source-Organization", org))
    manifest_bytes = dumps(manifest)
    warnings = list(job.warnings)
    attachments: dict[str, bytes] = {}
    for key in sign_with:
        attachments.update(attachments_for(manifest_bytes, key))
    actor = None
    if operator is not None:
        actor = " / ".join(x for x in (operator.name, operator.organization) if x) or None
    lines = [
        make_event(
            prev_line=None,
            manifest=manifest_bytes,
            seq=1,
            event="captured",
            note=f"captured {url}",
            actor=actor,
            key=sign_with[0] if sign_with else None,
        )
    ]
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
        lines.append(
            make_event(
                prev_line=lines[-1],
                manifest=manifest_bytes,
                seq=len(lines) + 1,
                event="timestamped",
                note=f"RFC 3161 token from {tsa}, genTime {token.gen_time.isoformat()}",
                actor=actor,
            )
        )
        if not token.chain_checked:
            warnings.append(
                f"timestamp from {tsa} stored; its chain is not checked yet (no --tsa-ca given)"
            )
    attachments[CUSTODY_PATH] = b"".join(line + b"\n" for line in lines)
    path = pkg.finish(
        manifest=manifest_bytes, payload=payload, bag_info=bag_info, attachments=attachments
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

"""RFC 3161 trusted timestamps over the exact bytes of ``evidence/manifest.json``.

A token from a time-stamping authority (TSA) proves that the manifest existed
no later than the token's genTime. We ask for a SHA-256 imprint, a random
nonce and the TSA's certificate, check every response on receipt (status
granted, imprint, nonce, critical timeStamping EKU, and — when the caller
gives the TSA's root — signature and chain), and only then store the full
TimeStampResp (``.tsr``) and our request (``.tsq``, so the nonce can be
audited) under ``evidence/timestamps/``. A bad response is an error, never a
stored file. Verification of stored tokens lives in :mod:`evidence.verifying`.

This module is pure (bytes in, values out, plus the HTTP exchange with the
TSA); storing a token in an existing package is
:func:`evidence.attach.add_timestamp`.

Tokens are hostile input: every value read from one is bounded and every
parsing failure becomes a problem in :class:`TokenCheck`, never an exception.
Only the exceptions ``rfc3161-client`` (pinned below its next major version
in pyproject.toml) documents or raises are caught: ``ValueError`` from its
Rust parser and ``VerificationError`` from its verifier; anything else is a
bug to see, not a token to fail.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import re
import socket
import ssl
import time
import typing
import urllib.parse
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from evidence.display import safe
from evidence.errors import TimestampError

if typing.TYPE_CHECKING:
    import requests

    from evidence.capturing.upstream import ProxyURL

__all__ = [
    "MAX_ACCURACY_SECONDS",
    "MAX_TOKEN_BYTES",
    "MAX_TOKEN_CERTIFICATES",
    "TimestampError",
    "TimestampToken",
    "TokenCheck",
    "check_token",
    "load_tsa_roots",
    "request_nonce",
    "request_timestamp",
    "token_attachments",
    "token_name",
]

MAX_TOKEN_BYTES = 1024 * 1024
# A token's accuracy says genTime may be off by this much. Real TSAs give a
# second or less; a larger claim makes the timestamp meaningless, and an
# absurd one (2**62 s) would overflow date arithmetic downstream.
MAX_ACCURACY_SECONDS = 24 * 60 * 60
# A TSA sends its certificate and perhaps its chain; more is padding or an attack.
MAX_TOKEN_CERTIFICATES = 16
# What cryptography raises for a certificate or extension it cannot parse.
_CERT_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
_SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")


@attrs.frozen
class TimestampToken:
    """A checked timestamp response, ready to store."""

    tsa_url: str
    request: bytes
    response: bytes
    gen_time: _dt.datetime
    chain_checked: bool
    serial_number: int


@attrs.frozen
class TokenCheck:
    """What :func:`check_token` found. ``problems`` empty means the token holds."""

    gen_time: _dt.datetime | None
    accuracy_seconds: float
    chain_checked: bool
    problems: tuple[str, ...]
    tsa_subject: str | None
    nonce: int | None


def load_tsa_roots(paths: typing.Iterable[str | os.PathLike[str]]) -> list[x509.Certificate]:
    """Load PEM (one or several per file) or DER root certificates the caller trusts."""
    roots: list[x509.Certificate] = []
    for raw in paths:
        p = Path(raw)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise TimestampError(f"cannot read TSA root {p}: {exc.strerror}") from exc
        try:
            if b"-----BEGIN" in data:
                roots.extend(x509.load_pem_x509_certificates(data))
            else:
                roots.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise TimestampError(f"{p} is not a certificate") from exc
    return roots


def _leaf_certificate(response: typing.Any) -> tuple[x509.Certificate | None, str | None]:
    """The embedded certificate named by the single SignerInfo, or why there is none.

    The SignerInfo's issuer and serial number are covered by the signature;
    the certificates beside it are not. So exactly one embedded certificate
    may match: a second one with the same issuer and serial (an injected
    look-alike) makes the token ambiguous, and it is refused.

    Raises:
        ValueError: the token's SignedData or a certificate cannot be parsed.
    """
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        return None, f"the token has {len(infos)} signers; exactly one is expected"
    ders = list(response.signed_data.certificates)
    if len(ders) > MAX_TOKEN_CERTIFICATES:
        return (
            None,
            f"the token carries {len(ders)} certificates (at most {MAX_TOKEN_CERTIFICATES})",
        )
    signer = infos[0]
    matches = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == signer.issuer and cert.serial_number == signer.serial_number:
            matches.append(cert)
    if not matches:
        return None, "the token does not include the TSA's signing certificate"
    if len(matches) > 1:
        return None, (
            f"the token carries {len(matches)} different certificates with the signer's "
            "issuer and serial number (injected certificates?)"
        )
    return matches[0], None


def _accuracy_seconds(tst_info: typing.Any) -> float:
    """The token's accuracy in seconds (0 when absent). Raises ValueError when unreadable.

    rfc3161-client gives None for every field of an Accuracy whose seconds do
    not fit 128 bits; that, like an empty Accuracy, is returned as infinity so
    the caller refuses it instead of reading it as "exact".
    """
    acc = tst_info.accuracy
    if acc is None:
        return 0.0
    if acc.seconds is None and acc.millis is None and acc.micros is None:
        return math.inf
    seconds = acc.seconds or 0
    if seconds > MAX_ACCURACY_SECONDS:
        # Returned as is; the caller refuses it and never does date arithmetic with it.
        return float(seconds)
    return float(seconds) + (acc.millis or 0) / 1e3 + (acc.micros or 0) / 1e6


def _eku_problem(leaf: x509.Certificate) -> str | None:
    """Why the TSA certificate may not sign timestamps, or None."""
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return "the TSA certificate lacks the critical timeStamping key usage"
    except _CERT_ERRORS as exc:
        return f"the TSA certificate's extensions cannot be read ({exc})"
    if not eku.critical or ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        return "the TSA certificate lacks the critical timeStamping key usage"
    return None


def _status_text(response: typing.Any, status: int) -> str:
    from rfc3161_client import PKIStatus

    text = f"status {status}"
    if status in PKIStatus.__members__.values():
        text += f": {PKIStatus(status).name.lower().replace('_', ' ')}"
    try:
        # The TSA's own words: shown to a person, so made harmless and short.
        strings = [safe(x, max_length=200) for x in list(response.status_string)[:3]]
    except ValueError:
        strings = []
    return text + (f" ({'; '.join(strings)})" if strings else "")


def check_token(
    response_der: bytes,
    manifest_sha256: bytes,
    *,
    roots: typing.Sequence[x509.Certificate],
    expected_nonce: int | None = None,
) -> TokenCheck:
    """Check a stored or received TimeStampResp against SHA-256(manifest.json).

    Always: parses, status granted, imprint = SHA-256(manifest), nonce (when
    given), exactly one embedded certificate naming the signer, and its
    critical timeStamping EKU, accuracy at most :data:`MAX_ACCURACY_SECONDS`.
    With ``roots``: the signature and the chain to one of those roots,
    judged at genTime. Certificates inside the token are never trust anchors.

    Never raises for bad content: every problem is listed in the result.
    """
    from rfc3161_client import (
        PKIStatus,
        VerificationError,
        VerifierBuilder,
        decode_timestamp_response,
    )

    def unreadable(reason: str) -> TokenCheck:
        return TokenCheck(None, 0.0, False, (reason,), None, None)

    if len(response_der) > MAX_TOKEN_BYTES:
        return unreadable("token larger than 1 MiB")
    try:
        response = decode_timestamp_response(response_der)
        status = response.status
    except ValueError as exc:  # the Rust parser's only error for malformed DER
        return unreadable(f"not a readable RFC 3161 token ({exc})")
    if status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        # A refusal carries no token to read; say what the TSA said.
        return unreadable(f"the TSA did not grant the request ({_status_text(response, status)})")
    try:
        tst = response.tst_info
        gen_time = tst.gen_time
        imprint = tst.message_imprint
        nonce = tst.nonce
        accuracy = _accuracy_seconds(tst)
    except ValueError as exc:
        return unreadable(f"not a readable RFC 3161 token ({exc})")
    problems: list[str] = []
    if gen_time.tzinfo is None:
        gen_time = gen_time.replace(tzinfo=_dt.timezone.utc)
    if status != PKIStatus.GRANTED:
        problems.append(
            f"the TSA did not grant the request as asked ({_status_text(response, status)})"
        )
    if accuracy > MAX_ACCURACY_SECONDS:
        if math.isinf(accuracy):
            problems.append("the token's accuracy cannot be read (empty, or absurdly large)")
        else:
            problems.append(
                f"the token claims an accuracy of {accuracy:.0f} s, more than "
                f"{MAX_ACCURACY_SECONDS} s: it does not fix a time"
            )
        # Capped so that no caller's date arithmetic can overflow.
        accuracy = float(MAX_ACCURACY_SECONDS)
    if imprint.hash_algorithm != _SHA256_OID:
        problems.append("the imprint is not SHA-256")
    elif imprint.message != manifest_sha256:
        problems.append(
            "the token is for different data: its imprint is not SHA-256(manifest.json)"
        )
    if expected_nonce is not None and nonce != expected_nonce:
        problems.append("the nonce differs from the one requested")
    subject = None
    try:
        leaf, why = _leaf_certificate(response)
    except _CERT_ERRORS as exc:
        leaf, why = None, f"an embedded certificate is unreadable ({exc})"
    if leaf is None:
        problems.append(why or "the token does not include the TSA's signing certificate")
    else:
        try:
            subject = leaf.subject.rfc4514_string()
        except _CERT_ERRORS as exc:
            problems.append(f"the TSA certificate's subject cannot be read ({exc})")
        eku_problem = _eku_problem(leaf)
        if eku_problem:
            problems.append(eku_problem)
    chain_checked = False
    if roots and not problems:
        try:
            builder = VerifierBuilder()
            for root in roots:
                builder = builder.add_root_certificate(root)
            if expected_nonce is not None:
                builder = builder.nonce(expected_nonce)
            builder.build().verify(response, manifest_sha256)
            chain_checked = True
        except VerificationError as exc:
            problems.append(
                f"signature or certificate chain does not verify to a trusted root: {exc}"
            )
        except _CERT_ERRORS as exc:  # content the checks above could not see
            problems.append(f"token could not be verified ({exc})")
    return TokenCheck(gen_time, accuracy, chain_checked, tuple(problems), subject, nonce)


def _short_reason(text: str) -> str:
    """OpenSSL error stacks are long; keep the part a reader can act on."""
    m = re.search(r'data: "([^"]+)"', text)
    if m:
        return m.group(1)
    return text if len(text) <= 160 else text[:157] + "..."


def _network_cause(exc: BaseException) -> str:
    """One short human cause for a failed exchange with a TSA ("connection refused", ...)."""
    import requests
    import urllib3

    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 16:
        seen.append(cur)
        nested = [a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(cur, "reason", None)
        cur = (
            cur.__cause__
            or cur.__context__
            or (reason if isinstance(reason, BaseException) else None)
            or (nested[0] if nested else None)
        )
    from evidence.capturing.upstream import ProxyError

    for item in seen:
        if isinstance(item, ProxyError):
            return str(item)
    causes: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (socket.gaierror, "DNS lookup failed (no such host, or no resolver reachable)"),
        (ConnectionRefusedError, "connection refused"),
        (ConnectionResetError, "connection reset by the TSA"),
        (ssl.SSLCertVerificationError, "TLS certificate verification failed"),
        (ssl.SSLError, "TLS handshake failed"),
        (
            (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError, socket.timeout),
            "timed out",
        ),
        (requests.TooManyRedirects, "too many redirects"),
    ]
    for kinds, text in causes:
        if any(isinstance(item, kinds) for item in seen):
            return text
    # Name the innermost cause's type and message: better than a bare class name.
    root = seen[-1]
    return f"{type(root).__name__}: {str(root)[:200]}"


def _limit_next_read(raw: typing.Any, seconds: float) -> None:
    """Make the next recv on ``raw``'s (a urllib3 response) socket wait at most ``seconds``."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        sock.settimeout(max(seconds, 0.001))


def _tunnel_adapter(
    proxy: ProxyURL, deadline: float, timeout: float
) -> requests.adapters.HTTPAdapter:
    """A requests adapter whose every connection is a tunnel through ``proxy``."""
    import requests.adapters
    import urllib3
    import urllib3.connection
    import urllib3.exceptions

    from evidence.capturing.upstream import ProxyError, open_tunnel_to_any

    def tunnel(conn: urllib3.connection.HTTPConnection) -> socket.socket:
        host = conn._dns_host
        targets = [host]
        if not proxy.resolves_names:
            # socks5: this machine resolves the TSA's name; the proxy gets an
            # address, each in turn while the proxy says another may work.
            try:
                infos = socket.getaddrinfo(host.strip("[]"), conn.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise urllib3.exceptions.NameResolutionError(host, conn, exc) from exc
            targets = list(dict.fromkeys(str(info[4][0]) for info in infos))
        try:
            sock = open_tunnel_to_any(
                proxy, targets, conn.port, deadline=deadline, connect_timeout=timeout
            )
        except ProxyError as exc:
            raise urllib3.exceptions.NewConnectionError(conn, f"proxy: {exc}") from exc
        sock.settimeout(max(min(timeout, deadline - time.monotonic()), 0.001))
        return sock

    class _HTTP(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return tunnel(self)

    class _HTTPS(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return tunnel(self)

    class _HTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = _HTTP

    class _HTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = _HTTPS

    class _Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: typing.Any, **kwargs: typing.Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    return _Adapter(max_retries=0)


def request_timestamp(
    manifest: bytes,
    tsa_url: str,
    *,
    roots: typing.Sequence[x509.Certificate] = (),
    timeout: float = 30.0,
    ca_bundle: str | None = None,
    proxy: ProxyURL | None = None,
) -> TimestampToken:
    """Ask ``tsa_url`` for a token over ``manifest`` and check it on receipt.

    With ``proxy`` the TSA is reached only through that proxy, never
    directly (a capture made through a proxy must not reveal the operator's
    address to the TSA either).

    ``timeout`` bounds the connection and each wait for the response headers,
    and is the deadline for the whole body: a TSA that sends its body a byte
    at a time is cut off when it passes. (The header phase is bounded per
    read and by http.client's limits on header count and line length.)

    Raises:
        TimestampError: the TSA is unreachable, refuses, times out, or its
            response fails a check.
    """
    import requests
    import urllib3
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    scheme = urllib.parse.urlsplit(tsa_url).scheme.lower()
    if scheme not in ("http", "https"):
        raise TimestampError(f"TSA URL must be http or https: {tsa_url}")
    # The builder defaults to SHA-512 and its arguments are keyword-only;
    # cert_request() with no argument would turn the certificate request off.
    request = (
        TimestampRequestBuilder()
        .data(manifest)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    request_der = request.as_bytes()
    deadline = time.monotonic() + timeout
    session = requests.Session()
    session.trust_env = False
    if proxy is not None:
        adapter = _tunnel_adapter(proxy, deadline, timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    try:
        with session.post(
            tsa_url,
            data=request_der,
            headers={"Content-Type": "application/timestamp-query"},
            timeout=timeout,
            stream=True,
            verify=ca_bundle or True,
        ) as resp:
            if resp.status_code != 200:
                raise TimestampError(f"TSA {tsa_url} answered HTTP {resp.status_code}")
            # Read until EOF (or past the cap): one read() call may return
            # less than asked, which would truncate a token. read1() makes at
            # most one recv, each bounded by the time left, so a TSA dripping
            # its body cannot hold the exchange past the deadline.
            parts: list[bytes] = []
            total = 0
            while total <= MAX_TOKEN_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimestampError(
                        f"TSA {tsa_url} timed out: no complete response within {timeout:g} s"
                    )
                _limit_next_read(resp.raw, left)
                chunk = resp.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                parts.append(chunk)
                total += len(chunk)
            body = b"".join(parts)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        # Reading the body goes through urllib3 directly: its errors are not requests'.
        raise TimestampError(f"TSA {tsa_url} could not be reached: {_network_cause(exc)}") from exc
    finally:
        session.close()
    if len(body) > MAX_TOKEN_BYTES:
        raise TimestampError(f"TSA {tsa_url} sent more than {MAX_TOKEN_BYTES} bytes")
    result = check_token(
        body, hashlib.sha256(manifest).digest(), roots=roots, expected_nonce=request.nonce
    )
    if result.problems or result.gen_time is None:
        raise TimestampError(f"TSA {tsa_url} response refused: {'; '.join(result.problems)}")
    from rfc3161_client import decode_timestamp_response

    return TimestampToken(
        tsa_url=tsa_url,
        request=request_der,
        response=body,
        gen_time=result.gen_time,
        chain_checked=result.chain_checked,
        serial_number=decode_timestamp_response(body).tst_info.serial_number,
    )


def token_name(tsa_url: str, existing: typing.Iterable[str]) -> str:
    """A file stem like ``1-tsa.example.org`` that is not yet used."""
    host = urllib.parse.urlsplit(tsa_url).hostname or "tsa"
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", host)[:60].strip("._-") or "tsa"
    taken = set(existing)
    n = 1
    while f"{n}-{host}" in taken:
        n += 1
    return f"{n}-{host}"


def token_attachments(token: TimestampToken, existing: typing.Iterable[str]) -> dict[str, bytes]:
    """The ``.tsr``/``.tsq`` files for a token, keyed by package-relative path."""
    stem = token_name(token.tsa_url, existing)
    return {
        f"evidence/timestamps/{stem}.tsr": token.response,
        f"evidence/timestamps/{stem}.tsq": token.request,
    }


def request_nonce(request_der: bytes) -> int | None:
    """The nonce of a stored TimeStampReq, or None when it cannot be read.

    rfc3161-client parses requests only through its private ``_rust`` module
    (pinned below its next major version in pyproject.toml); its parser
    raises ``ValueError`` for malformed DER and nothing else we expect. Any
    other exception is a library change to notice, not a damaged request.
    """
    from rfc3161_client import _rust

    try:
        nonce = _rust.parse_timestamp_request(request_der).nonce
    except ValueError:  # a hostile or damaged .tsq is reported by the caller
        return None
    return nonce if isinstance(nonce, int) else None

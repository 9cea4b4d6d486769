"""RFC 3161 trusted timestamps over the exact bytes of ``evidence/manifest.json``.

A token from a time-stamping authority (TSA) proves that the manifest existed
no later than the token's genTime. We ask for a SHA-256 imprint, a random
nonce and the TSA's certificate, check every response on receipt (status
granted, imprint, nonce, critical timeStamping EKU, and — when the caller
gives the TSA's root — signature and chain), and only then store the full
TimeStampResp (``.tsr``) and our request (``.tsq``, so the nonce can be
audited) under ``evidence/timestamps/``. A bad response is an error, never a
stored file. Verification of stored tokens lives in :mod:`evidence.verifying`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import typing
import urllib.parse
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from evidence.errors import PackageError, TimestampError

__all__ = [
    "MAX_TOKEN_BYTES",
    "TimestampError",
    "TimestampToken",
    "add_timestamp",
    "check_token",
    "load_tsa_roots",
    "request_timestamp",
]

MAX_TOKEN_BYTES = 1024 * 1024
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


def _leaf_certificate(response: typing.Any) -> x509.Certificate | None:
    """The embedded certificate named by the SignerInfo (covered by the signature)."""
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        return None
    signer = infos[0]
    for der in response.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == signer.issuer and cert.serial_number == signer.serial_number:
            return cert
    return None


def _accuracy_seconds(tst_info: typing.Any) -> float:
    try:
        acc = tst_info.accuracy
    except (ValueError, AttributeError):
        return 0.0
    if acc is None:
        return 0.0
    return float(acc.seconds or 0) + (acc.millis or 0) / 1e3 + (acc.micros or 0) / 1e6


def check_token(
    response_der: bytes,
    manifest_sha256: bytes,
    *,
    roots: typing.Sequence[x509.Certificate],
    expected_nonce: int | None = None,
) -> TokenCheck:
    """Check a stored or received TimeStampResp against SHA-256(manifest.json).

    Always: parses, status granted, imprint = SHA-256(manifest), nonce (when
    given), the signing certificate's critical timeStamping EKU. With
    ``roots``: the signature and the chain to one of those roots, judged at
    genTime. Certificates inside the token are never trust anchors.
    """
    from rfc3161_client import (
        PKIStatus,
        VerificationError,
        VerifierBuilder,
        decode_timestamp_response,
    )

    problems: list[str] = []
    if len(response_der) > MAX_TOKEN_BYTES:
        return TokenCheck(None, 0.0, False, ("token larger than 1 MiB",), None, None)
    try:
        response = decode_timestamp_response(response_der)
        status = response.status
        tst = response.tst_info
        gen_time = tst.gen_time
        imprint = tst.message_imprint
        nonce = tst.nonce
    except Exception as exc:  # the Rust parser raises ValueError and others on garbage
        return TokenCheck(None, 0.0, False, (f"not a readable RFC 3161 token ({exc})",), None, None)
    if gen_time.tzinfo is None:
        gen_time = gen_time.replace(tzinfo=_dt.timezone.utc)
    if status != PKIStatus.GRANTED:
        problems.append(f"the TSA did not grant the request (status {status})")
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
        leaf = _leaf_certificate(response)
    except ValueError as exc:
        leaf = None
        problems.append(f"an embedded certificate is unreadable ({exc})")
    if leaf is None:
        problems.append("the token does not include the TSA's signing certificate")
    else:
        subject = leaf.subject.rfc4514_string()
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
            if not eku.critical or ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
                problems.append("the TSA certificate lacks the critical timeStamping key usage")
        except x509.ExtensionNotFound:
            problems.append("the TSA certificate lacks the critical timeStamping key usage")
    chain_checked = False
    if roots and not problems:
        builder = VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        if expected_nonce is not None:
            builder = builder.nonce(expected_nonce)
        try:
            builder.build().verify(response, manifest_sha256)
            chain_checked = True
        except VerificationError as exc:
            problems.append(
                f"signature or certificate chain does not verify to a trusted root: {exc}"
            )
        except Exception as exc:  # malformed token content reaching the Rust verifier
            problems.append(f"token could not be verified ({type(exc).__name__}: {exc})")
    return TokenCheck(
        gen_time, _accuracy_seconds(tst), chain_checked, tuple(problems), subject, nonce
    )


def _short_reason(text: str) -> str:
    """OpenSSL error stacks are long; keep the part a reader can act on."""
    m = re.search(r'data: "([^"]+)"', text)
    if m:
        return m.group(1)
    return text if len(text) <= 160 else text[:157] + "..."


def request_timestamp(
    manifest: bytes,
    tsa_url: str,
    *,
    roots: typing.Sequence[x509.Certificate] = (),
    timeout: float = 30.0,
    ca_bundle: str | None = None,
) -> TimestampToken:
    """Ask ``tsa_url`` for a token over ``manifest`` and check it on receipt.

    Raises:
        TimestampError: the TSA is unreachable, refuses, or its response fails a check.
    """
    import requests
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
    session = requests.Session()
    session.trust_env = False
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
            body = resp.raw.read(MAX_TOKEN_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise TimestampError(f"TSA {tsa_url} could not be reached: {type(exc).__name__}") from exc
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


def add_timestamp(
    package: str | os.PathLike[str],
    tsa_url: str,
    *,
    roots: typing.Sequence[x509.Certificate] = (),
    timeout: float = 30.0,
) -> tuple[TimestampToken, str]:
    """Timestamp an existing package's manifest; returns the token and its stored path."""
    from evidence.package import attachment_dir, require_package, write_file_atomic
    from evidence.signing import read_manifest_bytes

    root = require_package(package)
    manifest = read_manifest_bytes(root)
    token = request_timestamp(manifest, tsa_url, roots=roots, timeout=timeout)
    try:
        ts_dir = attachment_dir(root, "evidence/timestamps")
        existing = {p.stem for p in ts_dir.iterdir()}
        files = token_attachments(token, existing)
        # The request first: a .tsr never appears without its .tsq.
        for rel in sorted(files, key=lambda r: not r.endswith(".tsq")):
            write_file_atomic(root / rel, files[rel], exclusive=True)
    except OSError as exc:
        raise PackageError(f"cannot store the timestamp in {root}: {exc.strerror or exc}") from exc
    tsr = next(r for r in files if r.endswith(".tsr"))
    from evidence.custody import append_event

    append_event(
        root,
        event="timestamped",
        note=f"RFC 3161 token {tsr} from {tsa_url}, genTime {token.gen_time.isoformat()}",
    )
    return token, tsr


def request_nonce(request_der: bytes) -> int | None:
    """The nonce of a stored TimeStampReq, or None when it cannot be read."""
    try:
        from rfc3161_client import _rust

        parsed = _rust.parse_timestamp_request(request_der)
        nonce = parsed.nonce
        return nonce if isinstance(nonce, int) else None
    except Exception:  # a hostile or damaged .tsq is reported by the caller
        return None

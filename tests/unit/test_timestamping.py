"""evidence.timestamping: every receipt-check rejection, hostile tokens, unreachable TSAs.

Each rejection branch of :func:`check_token` gets its own response, served over
HTTP by a real local TSA (tests/tsa.py): `openssl ts -reply` where openssl can
make it, :meth:`LocalTSA.forge` (a TSTInfo built here, signed by the same TSA
key with `openssl cms`) where it cannot. A refused response is an error and
nothing is stored (#9, #10, #11).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import threading
import typing
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from evidence.attach import add_timestamp
from evidence.errors import TimestampError
from evidence.package import MANIFEST_PATH
from evidence.timestamping import (
    MAX_ACCURACY_SECONDS,
    MAX_TOKEN_CERTIFICATES,
    check_token,
    load_tsa_roots,
    request_nonce,
    request_timestamp,
)
from evidence.verifying import Outcome, verify

from tsa import LocalTSA, der_int, der_seq, make_tsa_cert

SHA512_OID = "2.16.840.1.101.3.4.2.3"
DATA = b'{"format": 1, "stand-in": "manifest bytes"}'


@pytest.fixture(scope="module")
def tsa() -> typing.Iterator[LocalTSA]:
    t = LocalTSA()
    yield t
    t.close()


@pytest.fixture
def serve(tsa: LocalTSA) -> typing.Iterator[typing.Callable[..., None]]:
    """Make the shared TSA answer with ``tsa.forge(query, **kwargs)``."""

    def set_forgery(**kwargs: typing.Any) -> None:
        tsa.responder = lambda query: tsa.forge(query, **kwargs)

    yield set_forgery
    tsa.responder = None


def refused(url: str, roots: typing.Sequence[x509.Certificate] = ()) -> str:
    with pytest.raises(TimestampError) as info:
        request_timestamp(DATA, url, roots=roots, timeout=10)
    assert "response refused" in str(info.value)
    return str(info.value)


def openssl_query(digest: bytes) -> bytes:
    return subprocess.run(
        ["openssl", "ts", "-query", "-digest", digest.hex(), "-sha256", "-cert"],
        capture_output=True,
        check=True,
    ).stdout


# --- the happy path, as a control for the forgeries -------------------------


def test_openssl_reply_and_a_forged_but_honest_reply_are_both_accepted(tsa, serve):
    roots = load_tsa_roots([tsa.root_pem])
    token = request_timestamp(DATA, tsa.url, roots=roots)
    assert token.chain_checked
    serve()  # forge with nothing changed: the forging itself is sound
    token = request_timestamp(DATA, tsa.url, roots=roots)
    assert token.chain_checked and request_nonce(token.request) is not None


# --- one fixture per rejection branch, served over HTTP ---------------------


def test_not_granted(package_copy):
    # A real `openssl ts -reply` that only accepts SHA-512 imprints rejects ours.
    picky = LocalTSA(digests="sha512")
    try:
        with pytest.raises(
            TimestampError, match=r"did not grant the request \(status 2: rejection"
        ):
            add_timestamp(package_copy, picky.url)
    finally:
        picky.close()
    assert not (package_copy / "evidence" / "timestamps").exists()


def test_wrong_imprint_algorithm(tsa, serve):
    serve(imprint_oid=SHA512_OID)
    assert "the imprint is not SHA-256" in refused(tsa.url)


def test_nonce_mismatch(tsa):
    # A real openssl reply, to the same imprint, for a request with another nonce.
    tsa.responder = lambda query: tsa.reply(openssl_query(hashlib.sha256(DATA).digest()))
    try:
        assert "the nonce differs from the one requested" in refused(tsa.url)
    finally:
        tsa.responder = None


def test_nonce_removed(tsa, serve):
    serve(nonce=None)
    assert "the nonce differs" in refused(tsa.url)


def test_no_leaf_certificate(tsa, serve):
    serve(include_signer=False)
    assert "does not include the TSA's signing certificate" in refused(tsa.url)


def test_no_timestamping_eku():
    plain = LocalTSA(eku_critical=None)  # openssl ts refuses such a signer: forge
    plain.responder = lambda query: plain.forge(query)
    try:
        message = refused(plain.url)
    finally:
        plain.close()
    assert "lacks the critical timeStamping key usage" in message


def test_injected_look_alike_signer_certificate(tsa, serve):
    """A second certificate with the signer's issuer and serial but another key and name."""
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    look_alike = make_tsa_cert(
        tsa.root, tsa.root_key, rogue_key, serial=tsa.cert.serial_number, cn="Look-alike TSA"
    )
    serve(extra_certs=[look_alike])
    assert "different certificates with the signer's issuer and serial" in refused(tsa.url)


def test_injected_padding_certificates(tsa, serve):
    extra = [make_tsa_cert(tsa.root, tsa.root_key, tsa.key) for _ in range(MAX_TOKEN_CERTIFICATES)]
    serve(extra_certs=extra)
    assert f"carries {MAX_TOKEN_CERTIFICATES + 1} certificates" in refused(tsa.url)


def test_injected_rogue_root_does_not_become_a_trust_anchor(tsa):
    """A self-signed TSA that ships its own root: refused when the caller's root is given."""
    rogue = LocalTSA(self_signed=True, include_chain=True)
    try:
        message = refused(rogue.url, roots=load_tsa_roots([tsa.root_pem]))
    finally:
        rogue.close()
    assert "does not verify to a trusted root" in message


# --- hostile tokens never crash checking ------------------------------------


def forged(tsa: LocalTSA, **kwargs: typing.Any) -> bytes:
    query = openssl_query(hashlib.sha256(DATA).digest())
    return tsa.forge(query, **kwargs)


@pytest.mark.parametrize(
    ("seconds", "problem"),
    [
        (2**62, f"accuracy of {2**62} s, more than {MAX_ACCURACY_SECONDS} s"),
        (2**200, "accuracy cannot be read"),
    ],
)
def test_absurd_accuracy_is_a_problem_not_an_overflow(tsa, seconds, problem):
    token = forged(tsa, accuracy=der_seq(der_int(seconds)))
    result = check_token(token, hashlib.sha256(DATA).digest(), roots=[])
    assert any(problem in p for p in result.problems), result.problems
    assert result.accuracy_seconds <= MAX_ACCURACY_SECONDS


def test_absurd_accuracy_in_a_package_fails_verification_without_a_traceback(
    tsa, package_copy, signer
):
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    token = tsa.forge(
        openssl_query(hashlib.sha256(manifest).digest()), accuracy=der_seq(der_int(2**62))
    )
    (package_copy / "evidence" / "timestamps").mkdir()
    (package_copy / "evidence" / "timestamps" / "1-x.tsr").write_bytes(token)
    report = verify(package_copy, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED
    assert "accuracy" in report.to_text()


def _patched_signer(tsa: LocalTSA, old: bytes, new: bytes) -> bytes:
    """The TSA's certificate with bytes replaced in place (its signature no longer matters)."""
    der_cert = tsa.cert.public_bytes(Encoding.DER)
    assert der_cert.count(old) == 1, "the bytes to patch are not unique"
    return der_cert.replace(old, new)


EKU_VALUE = bytes.fromhex("300a06082b06010505070308")  # SEQUENCE { id-kp-timeStamping }
SKI_OID = bytes.fromhex("0603551d0e")
EKU_OID = bytes.fromhex("0603551d25")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        # The subjectKeyIdentifier renamed to a second extendedKeyUsage.
        (SKI_OID, EKU_OID, "extensions cannot be read"),
        # The key purpose as an OCTET STRING instead of an OBJECT IDENTIFIER.
        (EKU_VALUE, EKU_VALUE[:2] + b"\x04" + EKU_VALUE[3:], "extensions cannot be read"),
    ],
    ids=["duplicated-extension", "malformed-eku"],
)
def test_hostile_certificate_in_the_token(tsa, old, new, problem):
    cert = x509.load_der_x509_certificate(_patched_signer(tsa, old, new))
    token = forged(tsa, include_signer=False, extra_certs=[cert])
    digest = hashlib.sha256(DATA).digest()
    for roots in ([], load_tsa_roots([tsa.root_pem])):
        result = check_token(token, digest, roots=roots)
        assert any(problem in p for p in result.problems), result.problems
        assert not result.chain_checked


def test_hostile_certificate_in_a_package_fails_verification(tsa, package_copy, signer):
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    cert = x509.load_der_x509_certificate(_patched_signer(tsa, SKI_OID, EKU_OID))
    token = tsa.forge(
        openssl_query(hashlib.sha256(manifest).digest()), include_signer=False, extra_certs=[cert]
    )
    (package_copy / "evidence" / "timestamps").mkdir()
    (package_copy / "evidence" / "timestamps" / "1-x.tsr").write_bytes(token)
    for roots in ([], [tsa.root_pem]):
        report = verify(package_copy, trust=[signer.pub], tsa_roots=roots)
        assert report.outcome is Outcome.FAILED, report.to_text()


def test_rejection_response_names_the_status(tsa):
    result = check_token(forged(tsa, status=2), hashlib.sha256(DATA).digest(), roots=[])
    assert result.problems == ("the TSA did not grant the request (status 2: rejection)",)


# --- request_nonce catches only what the parser raises ----------------------


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x03\x02\x01\x01", bytes(range(256))])
def test_request_nonce_of_damaged_requests_is_none(data):
    assert request_nonce(data) is None


def test_request_nonce_reads_openssl_requests():
    query = openssl_query(hashlib.sha256(DATA).digest())
    nonce = request_nonce(query)
    assert isinstance(nonce, int) and nonce > 0


def test_request_nonce_does_not_hide_programming_errors():
    with pytest.raises(TypeError):
        request_nonce("not bytes")  # type: ignore[arg-type]


# --- an unreachable TSA names the cause -------------------------------------


def test_connection_refused_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TimestampError, match="could not be reached: connection refused"):
        request_timestamp(DATA, f"http://127.0.0.1:{port}/tsa", timeout=5)


def test_timeout_is_named():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        with pytest.raises(TimestampError, match="could not be reached: timed out"):
            request_timestamp(DATA, f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=0.5)
    finally:
        for conn in accepted:
            conn.close()
        server.close()


def test_dns_failure_is_named():
    # .invalid never resolves (RFC 2606); the resolver answers at once.
    with pytest.raises(TimestampError, match="could not be reached: DNS lookup failed"):
        request_timestamp(DATA, "http://tsa.example.invalid/", timeout=5)


def test_cli_timestamp_from_a_dead_tsa_is_one_clear_line(package_copy):
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evidence.cli",
            "timestamp",
            str(package_copy),
            "--tsa",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "connection refused" in proc.stderr and "ConnectionError" not in proc.stderr
    assert not Path(package_copy / "evidence" / "timestamps").exists()


def test_stalled_body_is_named_timed_out():
    """Headers arrive, the body never does: urllib3's own error, not requests', is caught."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []

    def answer_headers_only() -> None:
        conn = server.accept()[0]
        accepted.append(conn)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")

    thread = threading.Thread(target=answer_headers_only, daemon=True)
    thread.start()
    try:
        with pytest.raises(TimestampError, match="could not be reached: timed out"):
            request_timestamp(DATA, f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=0.5)
    finally:
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def test_status_text_from_the_tsa_is_shown_safely(tsa):
    from tsa import der

    text = "refused\x1b[8m hidden"
    # PKIStatusInfo { status 2, statusString { UTF8String } }
    response = der_seq(der_seq(der_int(2), der_seq(der(0x0C, text.encode()))))
    result = check_token(response, hashlib.sha256(DATA).digest(), roots=[])
    (problem,) = result.problems
    assert "\x1b" not in problem and "refused\\x1b[8m hidden" in problem

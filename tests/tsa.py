"""A real RFC 3161 time-stamping authority for the tests: `openssl ts -reply` over HTTP.

Each LocalTSA has its own root and a TSA certificate with the critical
timeStamping extended key usage (or without it, or self-signed, on request).

Where `openssl ts` cannot produce a hostile response (a chosen nonce or
accuracy, a missing signer certificate, injected certificates),
:meth:`LocalTSA.forge` builds the TSTInfo itself and has it signed by the
same TSA key with `openssl cms -sign`; set ``LocalTSA.responder`` to serve
such responses over the same HTTP endpoint.
"""

from __future__ import annotations

import datetime as dt
import http.server
import subprocess
import tempfile
import threading
import typing
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM

CONFIG = """
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
{certs}
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = {digests}
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def der(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def der_int(value: int) -> bytes:
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def der_seq(*items: bytes) -> bytes:
    return der(0x30, b"".join(items))


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return der(0x06, bytes(body))


def der_gentime(when: dt.datetime) -> bytes:
    return der(0x18, when.strftime("%Y%m%d%H%M%SZ").encode())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa_cert(
    root: x509.Certificate | None,
    root_key: typing.Any,
    key: typing.Any,
    *,
    eku_critical: bool | None = True,
    not_after: dt.datetime | None = None,
    serial: int | None = None,
    ski_pad: int = 0,
    cn: str = "Evidence Test TSA",
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(root.subject if root else _name(cn))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(b"\x01" * (20 + ski_pad)), critical=False)
    )
    if eku_critical is not None:  # None: no extended key usage at all
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical
        )
    return builder.sign(root_key if root is not None else key, hashes.SHA256())


def make_root(cn: str = "Evidence Test TSA Root") -> tuple[x509.Certificate, typing.Any]:
    # RSA: fixed-length signatures, so certificates of equal content length
    # have equal DER length (the tests swap certificates in place).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


class LocalTSA:
    """`openssl ts -reply` behind an HTTP server on 127.0.0.1."""

    def __init__(
        self,
        *,
        include_chain: bool = False,
        self_signed: bool = False,
        not_after: dt.datetime | None = None,
        root: tuple[x509.Certificate, typing.Any] | None = None,
        digests: str = "sha256, sha384, sha512",
        eku_critical: bool | None = True,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tsa-"))
        self.root, self.root_key = root or make_root()
        self.key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            self.cert = make_tsa_cert(None, None, self.key, not_after=not_after)
        else:
            self.cert = make_tsa_cert(
                self.root, self.root_key, self.key, not_after=not_after, eku_critical=eku_critical
            )
        (self.dir / "tsa.pem").write_bytes(self.cert.public_bytes(PEM))
        (self.dir / "tsa.key").write_bytes(
            self.key.private_bytes(
                PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.root_pem = self.dir / "root.pem"
        self.root_pem.write_bytes(self.root.public_bytes(PEM))
        (self.dir / "serial").write_text("01\n")
        certs = ""
        if include_chain:
            # openssl adds the signer certificate itself; the extra certs are the chain.
            (self.dir / "chain.pem").write_bytes(self.root.public_bytes(PEM))
            certs = "certs = $dir/chain.pem"
        (self.dir / "openssl.cnf").write_text(
            CONFIG.format(dir=self.dir, certs=certs, digests=digests)
        )
        self.requests = 0
        self.fail_with: int | None = None
        # When set, answers each query instead of `openssl ts -reply`.
        self.responder: typing.Callable[[bytes], bytes] | None = None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    def reply(self, query: bytes) -> bytes:
        """Run `openssl ts -reply` on a DER TimeStampReq; returns the DER TimeStampResp."""
        q = self.dir / "query.tsq"
        r = self.dir / "reply.tsr"
        q.write_bytes(query)
        subprocess.run(
            [
                "openssl",
                "ts",
                "-reply",
                "-config",
                str(self.dir / "openssl.cnf"),
                "-queryfile",
                str(q),
                "-out",
                str(r),
            ],
            check=True,
            capture_output=True,
        )
        return r.read_bytes()

    def forge(
        self,
        query: bytes,
        *,
        nonce: int | str | None = "same",
        imprint_oid: str | None = None,
        accuracy: bytes | None = None,
        include_signer: bool = True,
        extra_certs: typing.Sequence[x509.Certificate] = (),
        status: int = 0,
    ) -> bytes:
        """A TimeStampResp for ``query`` built here and signed by this TSA's key.

        Args:
            nonce: "same" copies the query's nonce; an int or None replaces it.
            imprint_oid: another hash algorithm OID for the imprint (same digest bytes).
            accuracy: the DER Accuracy SEQUENCE to put in (default: 1 second).
            include_signer: embed the TSA's certificate.
            extra_certs: more certificates to embed.
            status: the PKIStatus; not 0 or 1 gives a response with no token.
        """
        from rfc3161_client import _rust

        req = _rust.parse_timestamp_request(query)
        if status not in (0, 1):
            return der_seq(der_seq(der_int(status)))
        imprint = req.message_imprint
        oid = imprint_oid or imprint.hash_algorithm.dotted_string
        tst_nonce = req.nonce if nonce == "same" else nonce
        fields = [
            der_int(1),
            der_oid("1.2.3.4.1"),
            der_seq(der_seq(der_oid(oid), b"\x05\x00"), der(0x04, imprint.message)),
            der_int(x509.random_serial_number()),
            der_gentime(dt.datetime.now(dt.timezone.utc)),
            accuracy if accuracy is not None else der_seq(der_int(1)),
        ]
        if tst_nonce is not None:
            fields.append(der_int(typing.cast(int, tst_nonce)))
        tst = der_seq(*fields)
        (self.dir / "tst.der").write_bytes(tst)
        cmd = [
            "openssl",
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-econtent_type",
            "1.2.840.113549.1.9.16.1.4",
            "-md",
            "sha256",
            "-signer",
            str(self.dir / "tsa.pem"),
            "-inkey",
            str(self.dir / "tsa.key"),
            "-in",
            str(self.dir / "tst.der"),
            "-out",
            str(self.dir / "token.der"),
        ]
        if not include_signer:
            cmd.append("-nocerts")
        if extra_certs:
            (self.dir / "extra.pem").write_bytes(b"".join(c.public_bytes(PEM) for c in extra_certs))
            cmd += ["-certfile", str(self.dir / "extra.pem")]
        subprocess.run(cmd, check=True, capture_output=True)
        token = (self.dir / "token.der").read_bytes()
        return der_seq(der_seq(der_int(status)), token)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        tsa = self
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                query = self.rfile.read(min(length, 65536))
                tsa.requests += 1
                if tsa.fail_with is not None:
                    self.send_response(tsa.fail_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    with lock:
                        body = (tsa.responder or tsa.reply)(query)
                except subprocess.CalledProcessError:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: typing.Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

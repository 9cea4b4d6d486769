"""A real RFC 3161 time-stamping authority for the tests: `openssl ts -reply` over HTTP.

Each LocalTSA has its own root and a TSA certificate with the critical
timeStamping extended key usage (or without it, or self-signed, on request).
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
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa_cert(
    root: x509.Certificate | None,
    root_key: typing.Any,
    key: typing.Any,
    *,
    eku_critical: bool = True,
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
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical
        )
        .add_extension(x509.SubjectKeyIdentifier(b"\x01" * (20 + ski_pad)), critical=False)
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
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tsa-"))
        self.root, self.root_key = root or make_root()
        self.key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            self.cert = make_tsa_cert(None, None, self.key, not_after=not_after)
        else:
            self.cert = make_tsa_cert(self.root, self.root_key, self.key, not_after=not_after)
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
        (self.dir / "openssl.cnf").write_text(CONFIG.format(dir=self.dir, certs=certs))
        self.requests = 0
        self.fail_with: int | None = None
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
                        body = tsa.reply(query)
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

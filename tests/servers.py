"""Real local servers for the tests: raw sockets, HTTP, HTTPS with a test CA.

Every server binds 127.0.0.1 port 0 and runs in a daemon thread.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import ssl
import threading
import time
import typing
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class RawServer:
    """Answers every connection by calling ``responder(conn, request_bytes)``.

    ``requests`` collects the exact request bytes received (up to the blank line).
    """

    def __init__(
        self,
        responder: typing.Callable[[socket.socket, bytes], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responder = responder
        # With a server context, every connection speaks TLS first (raw bytes inside).
        self.tls = tls
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        # The (ip, port) each connection came from, to show who connected.
        self.peers: list[tuple[str, int]] = []
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append((str(peer[0]), int(peer[1])))
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data)
            self.responder(conn, data)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def fixed_response(
    raw: bytes, linger: float = 0.05
) -> typing.Callable[[socket.socket, bytes], None]:
    def respond(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(raw)
        time.sleep(linger)

    return respond


Route = tuple[int, list[tuple[str, str]], bytes]


def _handler(
    routes: dict[str, Route], slow: dict[str, float] | None = None
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if slow and self.path in slow:
                time.sleep(slow[self.path])
            route = routes.get(self.path)
            if route is None:
                status, headers, body = 404, [("Content-Type", "text/plain")], b"not found\n"
            else:
                status, headers, body = route
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: typing.Any) -> None:
            pass

    return Handler


class Site:
    """A threaded HTTP or HTTPS server for a dict of routes."""

    def __init__(
        self,
        routes: dict[str, Route],
        tls: ssl.SSLContext | None = None,
        slow: dict[str, float] | None = None,
    ) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, slow))
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalCA:
    """A root CA, an intermediate, and a server certificate for 127.0.0.1/localhost."""

    def __init__(
        self, directory: Path, *, expired: bool = False, hostname: str = "localhost"
    ) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._cert("Evidence Test Root", self.root_key, None, None, ca=True, now=now)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._cert(
            "Evidence Test Intermediate", self.inter_key, self.root, self.root_key, ca=True, now=now
        )
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        not_after = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=30)
        self.leaf = self._cert(
            hostname,
            self.leaf_key,
            self.inter,
            self.inter_key,
            ca=False,
            now=now,
            not_after=not_after,
            san=hostname,
        )
        pem = serialization.Encoding.PEM
        self.root_pem = directory / "root.pem"
        self.root_pem.write_bytes(self.root.public_bytes(pem))
        self.chain_pem = directory / "server-chain.pem"
        self.chain_pem.write_bytes(self.leaf.public_bytes(pem) + self.inter.public_bytes(pem))
        self.key_pem = directory / "server-key.pem"
        self.key_pem.write_bytes(
            self.leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    @staticmethod
    def _cert(
        name: str,
        key: typing.Any,
        issuer: x509.Certificate | None,
        issuer_key: typing.Any,
        *,
        ca: bool,
        now: dt.datetime,
        not_after: dt.datetime | None = None,
        san: str | None = None,
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=2))
            .not_valid_after(not_after or now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            names: list[x509.GeneralName] = [x509.DNSName(san or "localhost")]
            if san == "localhost":
                names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False)
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        return builder.sign(issuer_key or key, hashes.SHA256())

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.chain_pem, self.key_pem)
        return ctx


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

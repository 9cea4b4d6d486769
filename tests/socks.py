"""Real proxies for the tests: a SOCKS5 server (RFC 1928/1929) and an HTTP CONNECT proxy.

Both bind 127.0.0.1 port 0, serve each client in a daemon thread, log every
request, and resolve host names only through their own table (``names``), so
a name unknown to the system resolver (``evidence-test.invalid``) works only
through them. Each remembers the local address of every connection it opens
to a destination, so a test can show that a server saw nothing but the proxy.
``hostile`` turns one into a broken or malicious proxy.
"""

from __future__ import annotations

import base64
import ipaddress
import selectors
import socket
import ssl
import threading
import time
import typing

import attrs

HOSTILE = ("garbage", "huge", "drip", "silent", "refuse")


@attrs.define
class ProxyRequest:
    """One tunnel asked of the proxy."""

    host: str
    port: int
    # "name", "ipv4" or "ipv6": how the client gave the destination.
    address_type: str
    user: str | None
    password: str | None


class TestProxy:
    """A threaded SOCKS5 or HTTP CONNECT proxy.

    Args:
        kind: ``"socks5"`` or ``"connect"``.
        names: host name -> IP address, the only names this proxy resolves.
        credentials: ``(user, password)`` the client must give, or None.
        tls: a server context to speak TLS with clients (an https:// proxy).
        hostile: one of :data:`HOSTILE` to misbehave instead of proxying.
        ipv4_only: answer IPv6 destinations "address type not supported" (SOCKS5
            reply 8), as a proxy without IPv6 (a common Tor setup) does.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(
        self,
        kind: str,
        *,
        names: dict[str, str] | None = None,
        credentials: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        hostile: str | None = None,
        ipv4_only: bool = False,
    ) -> None:
        assert kind in ("socks5", "connect")
        self.ipv4_only = ipv4_only
        assert hostile is None or hostile in HOSTILE
        self.kind = kind
        self.names = dict(names or {})
        self.credentials = credentials
        self.tls = tls
        self.hostile = hostile
        self.requests: list[ProxyRequest] = []
        self.clients = 0
        # Local (ip, port) of every connection this proxy opened to a destination.
        self.outbound: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port: int = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def url(self, user: str | None = None, password: str | None = None) -> str:
        scheme = {"socks5": "socks5h", "connect": "https" if self.tls else "http"}[self.kind]
        auth = f"{user}:{password}@" if user is not None else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    # -- serving -----------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.clients += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            if self.hostile is not None:
                self._misbehave(conn)
                return
            upstream = self._socks(conn) if self.kind == "socks5" else self._connect(conn)
            if upstream is not None:
                _pump(conn, upstream)
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _misbehave(self, conn: socket.socket) -> None:
        conn.recv(4096)
        if self.hostile == "garbage":
            wrong = b"SSH-2.0-OpenSSH_9.2\r\n\r\n"
            if self.kind == "socks5":
                wrong = b"HTTP/1.0 400 Bad Request\r\n\r\n"
            conn.sendall(wrong)
        elif self.hostile == "huge":
            # A reply that never ends: a proxy trying to fill our memory.
            chunk = b"\x05\x00" if self.kind == "socks5" else b"HTTP/1.1 200 OK\r\n"
            try:
                conn.sendall(chunk)
                filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
                for _ in range(10_000):
                    conn.sendall(filler)
            except OSError:
                pass
        elif self.hostile == "drip":
            reply = b"\x05\x00" if self.kind == "socks5" else b"HTTP/1.1 200 Established\r\n"
            try:
                for byte in reply + b"\r\n" * 50:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.5)
            except OSError:
                pass
        elif self.hostile == "silent":
            time.sleep(10)
        elif self.hostile == "refuse":
            if self.kind == "socks5":
                conn.sendall(b"\x05\x00")
                conn.recv(4096)
                conn.sendall(b"\x05\x01\x00\x01" + bytes(6))
            else:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.2)

    def _resolve(self, host: str) -> str | None:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return self.names.get(host.lower())

    def _dial(self, address: str, port: int) -> socket.socket | None:
        try:
            up = socket.create_connection((address, port), timeout=10)
        except OSError:
            return None
        with self._lock:
            name = up.getsockname()
            self.outbound.append((str(name[0]), int(name[1])))
        return up

    def _socks(self, conn: socket.socket) -> socket.socket | None:
        version, count = _exact(conn, 2)
        methods = _exact(conn, count)
        assert version == 5
        user = password = None
        if self.credentials is not None:
            if 2 not in methods:
                conn.sendall(b"\x05\xff")
                return None
            conn.sendall(b"\x05\x02")
            _exact(conn, 1)
            user = _exact(conn, _exact(conn, 1)[0]).decode()
            password = _exact(conn, _exact(conn, 1)[0]).decode()
            if (user, password) != self.credentials:
                conn.sendall(b"\x01\x01")
                return None
            conn.sendall(b"\x01\x00")
        elif 0 in methods:
            conn.sendall(b"\x05\x00")
        else:
            conn.sendall(b"\x05\xff")
            return None
        _version, command, _reserved, atyp = _exact(conn, 4)
        if atyp == 1:
            host, kind = str(ipaddress.IPv4Address(_exact(conn, 4))), "ipv4"
        elif atyp == 4:
            host, kind = str(ipaddress.IPv6Address(_exact(conn, 16))), "ipv6"
        else:
            host, kind = _exact(conn, _exact(conn, 1)[0]).decode("ascii"), "name"
        port = int.from_bytes(_exact(conn, 2), "big")
        with self._lock:
            self.requests.append(ProxyRequest(host, port, kind, user, password))
        if kind == "ipv6" and self.ipv4_only:
            conn.sendall(b"\x05\x08\x00\x01" + bytes(6))  # address type not supported
            return None
        address = self._resolve(host) if command == 1 else None
        up = self._dial(address, port) if address is not None else None
        if up is None:
            conn.sendall(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
            return None
        bound = up.getsockname()
        conn.sendall(
            b"\x05\x00\x00\x01"
            + ipaddress.IPv4Address(bound[0]).packed
            + int(bound[1]).to_bytes(2, "big")
        )
        return up

    def _connect(self, conn: socket.socket) -> socket.socket | None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        fields = (line.partition(":") for line in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, _, v in fields}
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        user = password = None
        auth = headers.get("proxy-authorization", "")
        if auth.lower().startswith("basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        with self._lock:
            self.requests.append(ProxyRequest(host, int(port_text), "name", user, password))
        if self.credentials is not None and (user, password) != self.credentials:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return None
        address = self._resolve(host) if method == "CONNECT" else None
        up = self._dial(address, int(port_text)) if address is not None else None
        if up is None:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return up


def _exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("client went away")
        data += chunk
    return data


def _pump(a: socket.socket, b: socket.socket) -> None:
    selector = selectors.DefaultSelector()
    selector.register(a, selectors.EVENT_READ)
    selector.register(b, selectors.EVENT_READ)
    try:
        while True:
            pending = [a] if isinstance(a, ssl.SSLSocket) and a.pending() else []
            ready = pending or [key.fileobj for key, _ in selector.select(timeout=30)]
            if not ready:
                return
            for source in ready:
                data = typing.cast(socket.socket, source).recv(65536)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    except OSError:
        return
    finally:
        selector.close()
        b.close()

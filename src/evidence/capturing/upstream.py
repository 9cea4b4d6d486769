"""Tunnels to an origin server through the operator's proxy (SOCKS5 or HTTP CONNECT).

People who capture pages about a government may not want the site (or their
network) to see their address. With a proxy (Tor at ``socks5h://127.0.0.1:9050``,
a SOCKS5 server, an HTTP or HTTPS proxy) every connection to a server goes
through it, and nothing is ever sent directly: a proxy that cannot be used is
an error, never a reason to fall back.

The tunnel is a plain byte stream to ``(host, port)``; HTTP and TLS stay with
requests/urllib3 above it, so the bytes recorded are exactly those exchanged
with the origin and TLS runs end to end (the certificate chain is the one the
site presented). We always tunnel (CONNECT also for ``http://`` targets), so
the request the origin receives is the one we recorded.

* ``socks5://`` (RFC 1928): names are resolved here and the proxy is sent an
  address, so the DNS answers are known (and can be checked by ``public_only``),
  but the lookup itself leaves from this machine.
* ``socks5h://``: the name is sent to the proxy and never resolved here.
* ``http://`` / ``https://``: HTTP CONNECT; the proxy resolves the name. With
  ``https://`` the connection to the proxy is TLS (checked against
  :attr:`ProxyURL.tls_ca_bundle` or the system store) and the origin's TLS runs
  inside it. Python's ``ssl`` cannot wrap a TLS socket in another, so a
  thread relays between the proxy's TLS socket and one end of a
  ``socketpair``; the caller gets the other end.
* A user name and password in the URL are sent to the proxy (RFC 1929, or
  ``Proxy-Authorization: Basic``) and are never shown: :class:`ProxyURL`'s
  repr and :meth:`ProxyURL.redacted` leave them out, and errors never name
  the proxy's address.

Threat model: every byte from the proxy is hostile input. Replies are read
exactly (SOCKS) or bounded (:data:`MAX_CONNECT_REPLY` for CONNECT), and the
whole handshake (TCP, TLS to the proxy, SOCKS or CONNECT) must finish before
one deadline, so a proxy that drips bytes is cut off. What the proxy does with
the traffic (log it, alter plain HTTP) is outside what we can see; TLS to the
origin is verified as usual.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import selectors
import socket
import ssl
import threading
import time
import typing
import urllib.parse

import attrs

from evidence.errors import UsageError

__all__ = [
    "MAX_CONNECT_REPLY",
    "PROXY_SCHEMES",
    "ProxyError",
    "ProxyURL",
    "open_tunnel",
    "open_tunnel_to_any",
]

PROXY_SCHEMES = ("socks5", "socks5h", "http", "https")
# An HTTP CONNECT reply head larger than this is an attack or not a proxy.
MAX_CONNECT_REPLY = 16 * 1024
# How long the https-proxy relay waits on one send or one partial TLS record.
_RELAY_IO_TIMEOUT = 60.0

_SOCKS_REPLIES = {
    1: "general failure",
    2: "connection not allowed by the proxy's rules",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused by the destination",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
# Replies after which another address of the same name may still work (socks5):
# unreachable, refused, or (8) an address type the proxy lacks, e.g. IPv6.
_SOCKS_TRY_NEXT = frozenset({3, 4, 5, 8})


class ProxyError(OSError):
    """The proxy could not be used: unreachable, refused, or it broke the protocol.

    Attributes:
        try_next: the proxy could not reach this destination address, but
            another address of the same name might work.
    """

    def __init__(self, message: str, *, try_next: bool = False) -> None:
        super().__init__(message)
        self.try_next = try_next

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class ProxyURL:
    """A parsed proxy URL. Credentials are kept out of its repr and every message.

    Attributes:
        scheme: ``socks5``, ``socks5h``, ``http`` or ``https``.
        host: the proxy's host name or IP address (no brackets).
        port: the proxy's port (always given explicitly).
        username: for RFC 1929 or Basic authentication, or None.
        password: likewise.
        tls_ca_bundle: for ``https://`` proxies, a PEM file of CAs to check
            the proxy's certificate against instead of the system store.
    """

    scheme: str
    host: str
    port: int
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    tls_ca_bundle: str | None = None

    @classmethod
    def parse(cls, url: str) -> ProxyURL:
        """Parse ``scheme://[user:password@]host:port``.

        Raises:
            UsageError: not such a URL (the message never repeats a password).
        """
        if not isinstance(url, str) or not url.strip():
            raise UsageError("proxy URL is empty")
        url = url.strip()
        if not url.isprintable() or any(ch.isspace() for ch in url):
            raise UsageError("proxy URL contains whitespace or control characters")
        scheme, sep, _ = url.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in PROXY_SCHEMES:
            raise UsageError(
                "proxy URL must start with socks5h://, socks5://, http:// or https:// "
                "(e.g. socks5h://127.0.0.1:9050 for Tor)"
            )
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise UsageError("proxy URL has an invalid host or port") from None
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError("proxy URL must not have a path, query or fragment")
        host = parts.hostname
        if not host:
            raise UsageError("proxy URL has no host")
        if port is None or port == 0:
            raise UsageError(
                f"proxy URL needs a port, e.g. {scheme}://{_bracket(host)}:"
                f"{9050 if scheme.startswith('socks') else 8080}"
            )
        username = urllib.parse.unquote(parts.username) if parts.username is not None else None
        password = urllib.parse.unquote(parts.password) if parts.password is not None else None
        if username is not None or password is not None:
            username = username or ""
            password = password or ""
            for value in (username, password):
                if len(value.encode("utf-8")) > 255:
                    raise UsageError("proxy user name and password hold at most 255 bytes each")
            if scheme.startswith("socks") and not username:
                raise UsageError("proxy URL has a password but no user name")
        return cls(scheme=scheme, host=host, port=port, username=username, password=password)

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets), without credentials."""
        return f"{_bracket(self.host)}:{self.port}"

    @property
    def resolves_names(self) -> bool:
        """True when the proxy, not this machine, resolves host names."""
        return self.scheme != "socks5"

    def redacted(self) -> str:
        """The URL without credentials: ``scheme://host:port``."""
        return f"{self.scheme}://{self.address}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class _Handshake:
    """Reads and writes on the proxy socket, all bounded by one deadline."""

    def __init__(self, sock: socket.socket, limit: float, seconds: float) -> None:
        self.sock = sock
        self.limit = limit
        self.seconds = seconds

    def _too_slow(self) -> ProxyError:
        return ProxyError(f"the proxy did not complete the handshake within {self.seconds:.1f} s")

    def _left(self) -> float:
        left = self.limit - time.monotonic()
        if left <= 0:
            raise self._too_slow()
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise self._too_slow() from None
        except OSError as exc:
            raise ProxyError(
                f"the proxy connection failed during the handshake: {exc.strerror or exc}"
            ) from exc

    def recv(self, n: int) -> bytes:
        """At most ``n`` bytes (at least one); EOF is an error."""
        self.sock.settimeout(self._left())
        try:
            data = self.sock.recv(n)
        except TimeoutError:
            raise self._too_slow() from None
        except OSError as exc:
            raise ProxyError(
                f"the proxy connection failed during the handshake: {exc.strerror or exc}"
            ) from exc
        if not data:
            raise ProxyError("the proxy closed the connection during the handshake")
        return data

    def exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            buf += self.recv(n - len(buf))
        return bytes(buf)


def open_tunnel_to_any(
    proxy: ProxyURL,
    targets: typing.Sequence[str],
    port: int,
    *,
    deadline: float,
    connect_timeout: float,
    socket_options: typing.Iterable[tuple[int, int, int]] = (),
) -> socket.socket:
    """:func:`open_tunnel` to each of ``targets`` (a name, or a name's addresses
    for ``socks5``) in turn, while the proxy's refusal says another may work
    (an IPv6 address to a proxy without IPv6). Raises the last ProxyError."""
    if not targets:
        raise ProxyError("no address to connect to")
    options = tuple(socket_options)
    error: ProxyError | None = None
    for target in targets:
        try:
            return open_tunnel(
                proxy,
                target,
                port,
                deadline=deadline,
                connect_timeout=connect_timeout,
                socket_options=options,
            )
        except ProxyError as exc:
            error = exc
            if not exc.try_next:
                break
    assert error is not None
    raise error


def open_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    *,
    deadline: float,
    connect_timeout: float,
    socket_options: typing.Iterable[tuple[int, int, int]] = (),
) -> socket.socket:
    """A connected stream to ``(host, port)`` through ``proxy``.

    Args:
        proxy: the proxy.
        host: the destination: a name (sent to the proxy as is; for
            ``socks5`` the caller must resolve it first and pass an address)
            or an IP address.
        port: the destination port.
        deadline: absolute ``time.monotonic()`` after which nothing more is tried.
        connect_timeout: seconds for the whole handshake at most.
        socket_options: ``setsockopt`` arguments for the TCP socket to the proxy.

    Returns:
        A blocking socket: the TCP socket to the proxy (SOCKS, http://) or a
        ``socketpair`` end relayed through TLS to the proxy (https://).

    Raises:
        ProxyError: the proxy cannot be reached or used, or refused the destination.
    """
    host = host.strip("[]")
    if not host.isascii() or not host.isprintable() or any(ch in host for ch in " \r\n"):
        # urllib3 hands us IDNA (xn--) names; anything else is not a host name.
        raise ProxyError("invalid destination host name")
    if proxy.scheme == "socks5" and _ip(host) is None:
        # The caller resolves names for socks5; never let one reach the proxy.
        raise ValueError("socks5 tunnels take an IP address; resolve the name first")
    seconds = max(min(connect_timeout, deadline - time.monotonic()), 0.0)
    limit = time.monotonic() + seconds
    if seconds <= 0:
        raise ProxyError("no time left to connect to the proxy")
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=seconds)
    except TimeoutError:
        raise ProxyError(f"cannot connect to the proxy: no answer within {seconds:.1f} s") from None
    except socket.gaierror as exc:
        raise ProxyError(f"cannot resolve the proxy's host name: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise ProxyError(f"cannot connect to the proxy: {exc.strerror or exc}") from exc
    outer: socket.socket = sock
    try:
        for option in socket_options:
            sock.setsockopt(*option)
        if proxy.scheme == "https":
            outer = _tls_to_proxy(sock, proxy, limit, seconds)
        hs = _Handshake(outer, limit, seconds)
        if proxy.scheme in ("socks5", "socks5h"):
            _socks5(hs, proxy, host, port)
        else:
            _connect(hs, proxy, host, port)
        if proxy.scheme == "https":
            return _relay(typing.cast(ssl.SSLSocket, outer))
        outer.settimeout(None)
        return outer
    except BaseException:
        outer.close()
        sock.close()
        raise


def _tls_to_proxy(
    sock: socket.socket, proxy: ProxyURL, limit: float, seconds: float
) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=proxy.tls_ca_bundle)
    sock.settimeout(max(limit - time.monotonic(), 0.001))
    try:
        return context.wrap_socket(sock, server_hostname=proxy.host)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in _NAME_MISMATCH:
            # OpenSSL's text quotes the name it checked: the proxy's address.
            detail = "it is not valid for the proxy's name"
        else:
            detail = _without_address(str(exc.verify_message or exc.reason), proxy)
        raise ProxyError(
            f"TLS to the proxy failed: its certificate is not trusted ({detail})"
        ) from exc
    except TimeoutError:
        raise ProxyError(f"the proxy did not complete TLS within {seconds:.1f} s") from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        detail = _without_address(str(reason), proxy)
        raise ProxyError(f"TLS to the proxy failed: {detail}") from exc


# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_EMAIL_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = frozenset({62, 63, 64})


def _without_address(text: str, proxy: ProxyURL) -> str:
    """``text`` with the proxy's host replaced: errors never name the proxy's address."""
    return text.replace(proxy.host, "<proxy>") if proxy.host else text


def _socks5(hs: _Handshake, proxy: ProxyURL, host: str, port: int) -> None:
    """RFC 1928 CONNECT, with RFC 1929 user/password when the URL has them."""
    auth = proxy.username is not None
    hs.send(b"\x05\x02\x00\x02" if auth else b"\x05\x01\x00")
    version, method = hs.exact(2)
    if version != 5:
        raise ProxyError("the proxy does not speak SOCKS5")
    if method == 0xFF:
        raise ProxyError(
            "proxy requires authentication"
            if not auth
            else "the proxy accepts none of our authentication methods"
        )
    if method == 0x02 and auth:
        user = (proxy.username or "").encode("utf-8")
        password = (proxy.password or "").encode("utf-8")
        hs.send(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        _, status = hs.exact(2)
        if status != 0:
            raise ProxyError("the proxy rejected the user name or password")
    elif method != 0x00:
        raise ProxyError(f"the proxy chose an authentication method we did not offer ({method})")
    ip = _ip(host)
    if ip is None:
        name = host.encode("ascii")
        if not 0 < len(name) <= 255:
            raise ProxyError("host name too long for SOCKS5")
        address = b"\x03" + bytes([len(name)]) + name
    elif ip.version == 4:
        address = b"\x01" + ip.packed
    else:
        address = b"\x04" + ip.packed
    hs.send(b"\x05\x01\x00" + address + port.to_bytes(2, "big"))
    version, reply, reserved, atyp = hs.exact(4)
    if version != 5 or reserved != 0:
        raise ProxyError("the proxy sent an invalid SOCKS5 reply")
    if reply != 0:
        text = _SOCKS_REPLIES.get(reply, f"unknown reply code {reply}")
        raise ProxyError(f"proxy refused the connection: {text}", try_next=reply in _SOCKS_TRY_NEXT)
    # The bound address is the proxy's own; read it exactly and drop it.
    if atyp == 1:
        hs.exact(4 + 2)
    elif atyp == 4:
        hs.exact(16 + 2)
    elif atyp == 3:
        (length,) = hs.exact(1)
        hs.exact(length + 2)
    else:
        raise ProxyError("the proxy sent an invalid SOCKS5 reply (address type)")


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r?\n")
# The reply's end. A bare LF ends lines too (RFC 9112 section 2.2): some
# small proxies answer that way, and waiting for CRLF CRLF would end in a
# timeout that says nothing about why.
_REPLY_END = re.compile(rb"\r?\n\r?\n")


def _connect(hs: _Handshake, proxy: ProxyURL, host: str, port: int) -> None:
    """HTTP CONNECT (RFC 9110 section 9.3.6)."""
    target = f"{_bracket(host)}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None:
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(secret).decode('ascii')}")
    hs.send(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    head = bytearray()
    while (found := _REPLY_END.search(head)) is None:
        if len(head) > MAX_CONNECT_REPLY:
            raise ProxyError(f"the proxy's reply is longer than {MAX_CONNECT_REPLY} bytes")
        head += hs.recv(4096)
    end = found.end()
    if end > MAX_CONNECT_REPLY:
        raise ProxyError(f"the proxy's reply is longer than {MAX_CONNECT_REPLY} bytes")
    match = _STATUS_LINE.match(bytes(head))
    if match is None:
        raise ProxyError("the proxy sent an invalid reply to CONNECT (not HTTP)")
    code = int(match.group(1))
    if code == 407:
        raise ProxyError(
            "proxy requires authentication"
            if proxy.username is None
            else "the proxy rejected the user name or password"
        )
    if not 200 <= code < 300:
        reason = (match.group(2) or b"").decode("ascii", "replace")
        reason = "".join(ch if ch.isprintable() else "?" for ch in reason)[:80]
        raise ProxyError(f"proxy refused the connection: HTTP {code} {reason}".rstrip())
    if end != len(head):
        # The origin has not been sent anything yet, so nothing may follow the reply.
        raise ProxyError("the proxy sent data after its reply to CONNECT")


def _relay(outer: ssl.SSLSocket) -> socket.socket:
    """One end of a socketpair whose other end a thread joins to ``outer``."""
    inner, ours = socket.socketpair()
    thread = threading.Thread(
        target=_pump, args=(ours, outer), name="evidence-proxy-relay", daemon=True
    )
    thread.start()
    return inner


def _pump(ours: socket.socket, outer: ssl.SSLSocket) -> None:
    """Copy bytes both ways until either side closes; then close both."""
    selector = selectors.DefaultSelector()
    try:
        ours.settimeout(_RELAY_IO_TIMEOUT)
        outer.settimeout(_RELAY_IO_TIMEOUT)
        selector.register(ours, selectors.EVENT_READ)
        selector.register(outer, selectors.EVENT_READ)
        while True:
            # Bytes TLS already decrypted are not visible to select().
            ready = [outer] if outer.pending() else [key.fileobj for key, _ in selector.select()]
            for source in ready:
                data = typing.cast(socket.socket, source).recv(65536)
                if not data:
                    return
                (ours if source is outer else outer).sendall(data)
    except (OSError, ValueError):
        return
    finally:
        selector.close()
        ours.close()
        outer.close()

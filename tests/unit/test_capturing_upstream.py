"""upstream.py: proxy URLs, and every odd reply a proxy can send, over real sockets."""

from __future__ import annotations

import socket
import threading
import time

import attrs
import pytest

from evidence.capturing.upstream import ProxyError, ProxyURL, open_tunnel, open_tunnel_to_any
from evidence.errors import UsageError

from servers import LocalCA, closed_port, fixed_response
from socks import TestProxy


def test_proxy_urls_parse_and_never_show_their_credentials():
    p = ProxyURL.parse("socks5h://field%40team:p%3Ass@127.0.0.1:9050")
    assert (p.scheme, p.host, p.port) == ("socks5h", "127.0.0.1", 9050)
    assert (p.username, p.password) == ("field@team", "p:ss")
    assert p.redacted() == "socks5h://127.0.0.1:9050"
    assert "p:ss" not in repr(p) and "field" not in repr(p)
    assert p.resolves_names
    assert not ProxyURL.parse("SOCKS5://127.0.0.1:1080").resolves_names
    v6 = ProxyURL.parse("http://[::1]:3128/")
    assert (v6.host, v6.address) == ("::1", "[::1]:3128")
    assert ProxyURL.parse("https://u:@proxy.example:443").password == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("socks4://127.0.0.1:1080", "must start with"),
        ("socks5h://127.0.0.1:0", "needs a port"),
        ("socks5h://127.0.0.1:99999", "invalid host or port"),
        ("http://127.0.0.1:8080?x=1", "path, query or fragment"),
        ("socks5h://:8080", "no host"),
        ("socks5h://a b@127.0.0.1:9050", "whitespace"),
        (f"socks5h://{'u' * 256}:p@127.0.0.1:9050", "255 bytes"),
    ],
)
def test_bad_proxy_urls_are_usage_errors(url, message):
    with pytest.raises(UsageError, match=message) as err:
        ProxyURL.parse(url)
    assert "p@" not in str(err.value)


class Scripted:
    """Answers one connection step by step: read ``reads`` more bytes (-1: up to a
    blank line), then send ``reply``."""

    def __init__(self, steps: list[tuple[int, bytes]]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        threading.Thread(target=self._run, args=(steps,), daemon=True).start()

    def _run(self, steps: list[tuple[int, bytes]]) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                for reads, reply in steps:
                    want = len(self.received) + reads
                    while (
                        b"\r\n\r\n" not in self.received if reads < 0 else len(self.received) < want
                    ):
                        chunk = conn.recv(1 if reads < 0 else want - len(self.received))
                        if not chunk:
                            return
                        self.received += chunk
                    conn.sendall(reply)
                time.sleep(0.3)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def _tunnel(scheme: str, server: Scripted, host: str = "example.org", auth: str = ""):
    proxy = ProxyURL.parse(f"{scheme}://{auth}127.0.0.1:{server.port}")
    return open_tunnel(proxy, host, 443, deadline=time.monotonic() + 5, connect_timeout=3)


# The client's greeting is 3 bytes; its request for example.org:443 is 18.
_GREETING = 3
_REQUEST = 4 + 1 + len("example.org") + 2


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(_GREETING, b"\x05\x00"), (_REQUEST, b"\x05\x00\x00\x07")], "invalid SOCKS5 reply"),
        ([(_GREETING, b"\x05\x00"), (_REQUEST, b"\x06\x00\x00\x01")], "invalid SOCKS5 reply"),
        ([(_GREETING, b"\x05\x02")], "authentication method we did not offer"),
        ([(_GREETING, b"\x05\xff")], "proxy requires authentication"),
        ([(_GREETING, b"\x05\x00"), (_REQUEST, b"\x05\x09\x00\x01" + bytes(6))], "unknown reply"),
        ([(_GREETING, b"\x05\x00"), (_REQUEST, b"\x05\x02\x00\x01" + bytes(6))], "not allowed"),
        ([(_GREETING, b"\x05\x00"), (_REQUEST, b"\x05\x00\x00\x01\x7f")], "closed the connection"),
    ],
)
def test_socks5_replies_are_read_exactly_and_refused_clearly(steps, message):
    server = Scripted(steps)
    try:
        with pytest.raises(ProxyError, match=message):
            _tunnel("socks5h", server)
    finally:
        server.close()


@pytest.mark.parametrize(
    "bound",
    [b"\x01" + bytes(4), b"\x04" + bytes(16), b"\x03\x0bproxy.local"],
)
def test_socks5_bound_addresses_of_every_type_are_consumed(bound):
    # After the reply, the tunnel carries the origin's bytes: nothing of the
    # reply may be left in it.
    reply = b"\x05\x00\x00" + bound + b"\x01\xbb"
    server = Scripted([(_GREETING, b"\x05\x00"), (_REQUEST, reply), (5, b"hello")])
    try:
        sock = _tunnel("socks5h", server)
        sock.sendall(b"ping!")
        sock.settimeout(5)
        assert sock.recv(5) == b"hello"
        sock.close()
        assert server.received[_GREETING:] == b"\x05\x01\x00\x03\x0bexample.org\x01\xbb" + b"ping!"
    finally:
        server.close()


def test_socks5_sends_addresses_as_addresses_and_never_a_name_for_socks5():
    reply = b"\x05\x00\x00\x01" + bytes(6)
    server = Scripted([(_GREETING, b"\x05\x00"), (4 + 16 + 2, reply)])
    try:
        _tunnel("socks5", server, host="[2001:db8::1]").close()
        assert server.received[_GREETING : _GREETING + 4] == b"\x05\x01\x00\x04"
    finally:
        server.close()
    with pytest.raises(ValueError, match="resolve the name first"):
        open_tunnel(
            ProxyURL.parse("socks5://127.0.0.1:1"),
            "example.org",
            80,
            deadline=time.monotonic() + 1,
            connect_timeout=1,
        )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\nearly", "sent data after its reply"),
        (b"HTTP/1.1 407 Who\r\n\r\n", "proxy requires authentication"),
        (b"HTTP/1.1 502 Bad\x1b[31mGateway\r\n\r\n", "HTTP 502 Bad\\?\\[31mGateway"),
        (b"HTTP/2 200\r\n\r\n", "not HTTP"),
        (b"SOCKS\r\n\r\n", "not HTTP"),
        # Bare LF line ends are read, not waited past until a timeout.
        (b"HTTP/1.0 403 Forbidden\nVia: x\n\n", "HTTP 403 Forbidden$"),
        (b"HTTP/1.1 200 OK\n\nearly", "sent data after its reply"),
    ],
)
def test_connect_replies_are_bounded_and_refused_clearly(reply, message):
    server = Scripted([(-1, reply)])
    try:
        with pytest.raises(ProxyError, match=message):
            _tunnel("http", server)
    finally:
        server.close()


@pytest.mark.parametrize(
    "reply", [b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.0 200 Connection established\n\n"]
)
def test_connect_replies_with_either_line_end_open_the_tunnel(reply):
    server = Scripted([(-1, reply)])
    try:
        _tunnel("http", server).close()
    finally:
        server.close()


def test_connect_sends_basic_credentials_and_names_the_rejection():
    server = Scripted([(-1, b"HTTP/1.1 407 No\r\n\r\n")])
    try:
        with pytest.raises(ProxyError, match="rejected the user name or password"):
            _tunnel("http", server, auth="user:pw@")
        time.sleep(0.1)
        assert b"Proxy-Authorization: Basic dXNlcjpwdw==\r\n" in server.received
        assert server.received.startswith(b"CONNECT example.org:443 HTTP/1.1\r\n")
    finally:
        server.close()


def test_https_proxy_relay_ends_when_the_caller_closes(test_ca):
    proxy = TestProxy("connect", names={"origin.test": "127.0.0.1"}, tls=test_ca.server_context())
    origin = socket.socket()
    origin.bind(("127.0.0.1", 0))
    origin.listen(1)
    try:
        url = ProxyURL.parse(f"https://127.0.0.1:{proxy.port}")
        url = ProxyURL(url.scheme, url.host, url.port, tls_ca_bundle=str(test_ca.root_pem))
        before = {t for t in threading.enumerate() if t.name == "evidence-proxy-relay"}
        sock = open_tunnel(
            url,
            "origin.test",
            origin.getsockname()[1],
            deadline=time.monotonic() + 5,
            connect_timeout=3,
        )
        server_side, _ = origin.accept()
        sock.sendall(b"through TLS to the proxy")
        server_side.settimeout(5)
        assert server_side.recv(100) == b"through TLS to the proxy"
        relays = {t for t in threading.enumerate() if t.name == "evidence-proxy-relay"} - before
        assert len(relays) == 1
        sock.close()
        relay = relays.pop()
        relay.join(5)
        assert not relay.is_alive(), "closing our end stops the relay"
        server_side.close()
    finally:
        origin.close()
        proxy.close()


def test_an_https_proxy_with_an_untrusted_certificate_is_refused(test_ca):
    proxy = TestProxy("connect", tls=test_ca.server_context())
    try:
        with pytest.raises(ProxyError, match="TLS to the proxy failed: its certificate is not"):
            open_tunnel(
                ProxyURL.parse(f"https://127.0.0.1:{proxy.port}"),
                "example.org",
                443,
                deadline=time.monotonic() + 5,
                connect_timeout=3,
            )
        assert proxy.requests == []
    finally:
        proxy.close()


@pytest.mark.parametrize("host", ["exa\r\nmple.org", "bücher.example", "a b", "x\x00y"])
def test_a_destination_that_is_not_a_host_name_never_reaches_the_proxy(host):
    proxy = TestProxy("connect")
    try:
        with pytest.raises(ProxyError, match="invalid destination host name"):
            open_tunnel(
                ProxyURL.parse(proxy.url()),
                host,
                80,
                deadline=time.monotonic() + 5,
                connect_timeout=3,
            )
        assert proxy.clients == 0
    finally:
        proxy.close()


def test_a_proxy_certificate_for_another_name_is_refused_without_naming_the_proxy(tmp_path):
    # OpenSSL's message for a name mismatch quotes the name it checked, i.e.
    # the proxy's address: that text reaches batch CSVs, state and task results.
    ca = LocalCA(tmp_path, hostname="proxy.example.internal")
    proxy = TestProxy("connect", tls=ca.server_context())
    try:
        url = ProxyURL.parse(f"https://127.0.0.1:{proxy.port}")
        url = attrs.evolve(url, tls_ca_bundle=str(ca.root_pem))
        refused = r"not trusted \(it is not valid for the proxy's name\)"
        with pytest.raises(ProxyError, match=refused) as err:
            open_tunnel(url, "example.org", 443, deadline=time.monotonic() + 5, connect_timeout=3)
        assert "127.0.0.1" not in str(err.value)
        assert str(proxy.port) not in str(err.value)
        assert proxy.requests == []
    finally:
        proxy.close()


def test_a_socks5_proxy_without_ipv6_lets_the_next_address_be_tried():
    # Reply 8 (address type not supported) is what a proxy without IPv6 (a
    # common Tor setup) answers to an IPv6 destination. With socks5:// the
    # name was resolved here, and its IPv4 address may still work: stopping
    # at the first address failed dual-stack sites whose AAAA came first.
    server = Scripted([(_GREETING, b"\x05\x00"), (4 + 16 + 2, b"\x05\x08\x00\x01" + bytes(6))])
    try:
        proxy = ProxyURL.parse(f"socks5://127.0.0.1:{server.port}")
        with pytest.raises(ProxyError, match="address type not supported") as err:
            open_tunnel(proxy, "2001:db8::1", 443, deadline=time.monotonic() + 5, connect_timeout=3)
        assert err.value.try_next
        assert server.received[_GREETING:][:4] == b"\x05\x01\x00\x04"
    finally:
        server.close()


def test_the_next_address_is_tried_only_when_the_proxy_says_it_may_work(raw_server):
    """What the fetcher and the TSA request both use for socks5, where this
    machine resolved the name: an IPv6 answer refused by a proxy without IPv6
    must not cost the capture (or the timestamp) its IPv4 address."""
    origin = raw_server(fixed_response(b"HTTP/1.1 204 No Content\r\n\r\n"))
    proxy = TestProxy("socks5", ipv4_only=True)
    url = ProxyURL.parse(f"socks5://127.0.0.1:{proxy.port}")
    try:
        sock = open_tunnel_to_any(
            url, ["::1", "127.0.0.1"], origin.port, deadline=time.monotonic() + 5, connect_timeout=3
        )
        sock.close()
        asked = [(r.host, r.address_type) for r in proxy.requests]
        assert asked == [("::1", "ipv6"), ("127.0.0.1", "ipv4")]
        # Every address unreachable: each is tried, and the last refusal is the error.
        with pytest.raises(ProxyError, match="host unreachable"):
            open_tunnel_to_any(
                url, ["127.0.0.1", "127.0.0.2"], closed_port(), deadline=time.monotonic() + 5,
                connect_timeout=3,
            )  # fmt: skip
        assert [r.host for r in proxy.requests[2:]] == ["127.0.0.1", "127.0.0.2"]
        with pytest.raises(ProxyError, match="no address"):
            open_tunnel_to_any(url, [], 80, deadline=time.monotonic() + 5, connect_timeout=3)
    finally:
        proxy.close()

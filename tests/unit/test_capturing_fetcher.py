"""fetcher.py's connection classes: with a proxy, no path connects directly."""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
import threading
import time
import typing

import pytest
import requests

from evidence.capturing.fetcher import Fetcher, FetchLimits
from evidence.capturing.upstream import ProxyURL
from evidence.errors import CaptureError

from servers import closed_port, fixed_response

PAGE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_a_connection_opened_outside_fetch_is_refused_never_direct(raw_server):
    # The proxy reaches the connection through the exchange's thread-local
    # state. A request on the fetcher's session without that state (a new
    # caller, a library path that opens a connection on its own) used to
    # connect straight to the server: the operator's address, past --proxy.
    origin = raw_server(fixed_response(PAGE))
    fetcher = Fetcher(
        user_agent="t",
        limits=FetchLimits(connect_timeout=3, read_timeout=3),
        proxy=ProxyURL.parse(f"socks5h://127.0.0.1:{closed_port()}"),
    )
    try:
        with pytest.raises(requests.ConnectionError, match="outside an exchange"):
            fetcher._session.get(origin.url("/"), timeout=3)
    finally:
        fetcher.close()
    assert origin.peers == [], "nothing reached the server directly"


# --- a kept-alive connection the server closed ------------------------------


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _KeptAliveServer:
    """Reads requests one after the other on kept-alive connections and has
    :meth:`answer` answer each; records each request line and the connection
    it came on (both counted from 1). ``tls``: speak TLS (as ``localhost``)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.seen: list[tuple[int, bytes]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, conn: socket.socket, number: int) -> bool:
        """Answer request ``number``; False closes the connection."""
        raise NotImplementedError

    def _accept(self) -> None:
        connection = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            connection += 1
            threading.Thread(target=self._serve, args=(conn, connection), daemon=True).start()

    def _serve(self, conn: socket.socket, connection: int) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn:
                conn.settimeout(10)
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(data) < length:
                        data += conn.recv(65536)
                    data = data[length:]
                    with self._lock:
                        self.seen.append((connection, head.split(b"\r\n")[0]))
                        number = len(self.seen)
                    if not self.answer(conn, number):
                        return
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()


class _KeepAlive(_KeptAliveServer):
    """Answers with ``interim`` then a 2-byte ``ok``; for the request numbers
    in ``drop`` it sends ``drop_with`` and closes the connection instead
    (``reset``: with a TCP reset, after a moment), setting ``on_drop`` first."""

    def __init__(
        self,
        drop: set[int],
        drop_with: bytes = b"",
        interim: bytes = b"",
        *,
        reset: bool = False,
        tls: ssl.SSLContext | None = None,
        on_drop: threading.Event | None = None,
    ) -> None:
        self.drop = drop
        self.drop_with = drop_with
        self.interim = interim
        self.reset = reset
        self.on_drop = on_drop
        super().__init__(tls)

    def answer(self, conn: socket.socket, number: int) -> bool:
        if number not in self.drop:
            conn.sendall(self.interim + _OK)
            return True
        if self.on_drop is not None:
            self.on_drop.set()
        conn.sendall(self.drop_with)
        if self.reset:
            if self.drop_with:
                time.sleep(0.2)  # the client has read what was sent
            linger = struct.pack("ii", 1, 0)  # close with a reset
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        return False


@pytest.fixture
def keep_alive():
    servers: list[_KeepAlive] = []

    def make(
        drop: set[int], drop_with: bytes = b"", interim: bytes = b"", **kw: typing.Any
    ) -> _KeepAlive:
        servers.append(_KeepAlive(drop, drop_with, interim, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _fetch_twice(server: _KeepAlive, method: str = "GET", ca_bundle: str | None = None):
    fetcher = Fetcher(
        user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3), ca_bundle=ca_bundle
    )
    try:
        first = fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10)
        first.response_file.close()
        return fetcher.fetch(
            server.url("/b"),
            deadline=time.monotonic() + 10,
            method=method,
            body=b"x" if method == "POST" else None,
        )
    finally:
        fetcher.close()


def test_a_request_on_a_connection_the_server_closed_is_sent_again(keep_alive):
    # The server closes its kept-alive connection as our next request arrives
    # (an idle timeout crossing it on the wire). Browsers and HTTP clients send
    # such a request again on a new connection; the capture did not, so a
    # requisite sometimes went missing (a flaky test in CI showed it).
    server = keep_alive(drop={2})
    exchange = _fetch_twice(server)
    try:
        assert exchange.status == 200
        assert exchange.response_file.read() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    finally:
        exchange.response_file.close()
    assert server.seen == [
        (1, b"GET /a HTTP/1.1"),
        (1, b"GET /b HTTP/1.1"),
        (2, b"GET /b HTTP/1.1"),
    ]
    # The request recorded is the one answered, once, not both attempts.
    assert exchange.request_bytes.startswith(b"GET /b HTTP/1.1\r\n")
    assert exchange.request_bytes.count(b"GET /b") == 1
    # A new connection: the server's address is that of the answering connection.
    assert exchange.server_ip == "127.0.0.1"
    assert exchange.dns == ("127.0.0.1",)


_CLOSED = "connection reset by the server|closed the connection without sending a response"


def test_a_request_that_is_not_idempotent_is_not_sent_again(keep_alive):
    # The server may have acted on a POST before closing, so it is not sent again.
    server = keep_alive(drop={2})
    with pytest.raises(CaptureError, match=_CLOSED):
        _fetch_twice(server, "POST")
    assert server.seen == [(1, b"GET /a HTTP/1.1"), (1, b"POST /b HTTP/1.1")]


def test_a_response_cut_short_is_kept_not_sent_again(keep_alive):
    # Part of a response arrived: the server did answer, and that is what happened.
    server = keep_alive(drop={2}, drop_with=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
    exchange = _fetch_twice(server)
    exchange.response_file.close()
    assert exchange.truncated == "disconnect"
    assert server.seen == [(1, b"GET /a HTTP/1.1"), (1, b"GET /b HTTP/1.1")]


def test_a_partial_status_line_cut_by_a_reset_is_an_answer_not_sent_again(keep_alive):
    # The server sent part of a status line, then reset the connection. The
    # partial line sat in the read buffer (http.client never handed it on to be
    # recorded), so the spool was empty and the request was sent again: an
    # answer that had begun to arrive was dropped for another one.
    server = keep_alive(drop={2}, drop_with=b"HTTP/1.1 2", reset=True)
    with pytest.raises(CaptureError, match=_CLOSED):
        _fetch_twice(server)
    assert server.seen == [(1, b"GET /a HTTP/1.1"), (1, b"GET /b HTTP/1.1")]


def test_a_reset_seen_before_the_answer_is_read_is_sent_again_too(keep_alive, test_ca):
    # The reset of a kept-alive connection can arrive before the response is
    # asked for: the socket then has no peer, and getpeername's ENOTCONN was
    # reported as "other OSError: Transport endpoint is not connected" and not
    # sent again. (Over TLS on loopback it usually arrives that early; a few
    # rounds make the early case all but certain.)
    for _ in range(5):
        server = keep_alive(drop={2}, reset=True, tls=test_ca.server_context())
        exchange = _fetch_twice(server, ca_bundle=str(test_ca.root_pem))
        exchange.response_file.close()
        assert exchange.status == 200
        assert [c for c, _ in server.seen] == [1, 1, 2]


def test_nothing_is_sent_again_once_the_capture_has_ended(keep_alive, test_ca):
    # The capture ends (the recording proxy's cancel event) while the request
    # is on its way; the reset showed at getpeername, before any read looked
    # at the event: the request went again on a new connection after the end.
    for _ in range(5):
        ended = threading.Event()
        server = keep_alive(drop={2}, reset=True, tls=test_ca.server_context(), on_drop=ended)
        fetcher = Fetcher(
            user_agent="t",
            limits=FetchLimits(connect_timeout=3, read_timeout=3),
            ca_bundle=str(test_ca.root_pem),
        )
        try:
            fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10).response_file.close()
            with pytest.raises(CaptureError):
                fetcher.fetch(server.url("/b"), deadline=time.monotonic() + 10, cancel=ended)
        finally:
            fetcher.close()
        time.sleep(0.1)  # a request sent again would have arrived by now
        assert server.seen == [(1, b"GET /a HTTP/1.1"), (1, b"GET /b HTTP/1.1")]


def test_a_new_connection_the_server_closes_is_not_tried_again(keep_alive):
    server = keep_alive(drop={1})
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        with pytest.raises(CaptureError, match=_CLOSED):
            fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()
    assert server.seen == [(1, b"GET /a HTTP/1.1")]


# --- interim (1xx) responses ---------------------------------------------------

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"


def test_interim_responses_are_kept_apart_and_the_connection_stays_in_step(keep_alive):
    # Two exchanges on one kept-alive connection, each answered after a 103:
    # the second must read its own answer, not what was left of the first.
    server = keep_alive(drop=set(), interim=EARLY_HINTS)
    exchange = _fetch_twice(server)
    try:
        assert exchange.status == 200
        body = exchange.response_file.read()
    finally:
        exchange.response_file.close()
    assert body == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert exchange.block_sha256 == hashlib.sha256(body).digest()
    assert exchange.payload_sha256 == hashlib.sha256(b"ok").digest()
    assert exchange.header_length == len(body) - 2
    assert exchange.interim == EARLY_HINTS
    assert exchange.interim_statuses == (103,)
    assert [c for c, _ in server.seen] == [1, 1], "one connection, in step"


def test_interim_responses_past_the_byte_limit_are_an_invalid_response(keep_alive):
    big = b"HTTP/1.1 103 Early Hints\r\nLink: <" + b"x" * 60_000 + b">\r\n\r\n"
    server = keep_alive(drop=set(), interim=big * 5)
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        with pytest.raises(CaptureError, match=r"interim \(1xx\) responses longer than"):
            fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()


def test_a_connection_an_unasked_for_101_switched_is_not_used_again(keep_alive):
    # What follows the 101 is in another protocol, or bytes the server sent
    # ahead of time: never the answer to the next request on that connection.
    server = keep_alive(drop=set(), interim=b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    exchange = _fetch_twice(server)
    try:
        assert exchange.status == 101
        assert exchange.response_file.read() == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    finally:
        exchange.response_file.close()
    assert [c for c, _ in server.seen] == [1, 2]


# --- responses whose end the server and we may see differently ---------------


class _Scripted(_KeptAliveServer):
    """Request number n is answered with ``script[n]``: pieces of bytes, each
    sent after its delay in seconds. Unscripted requests get a 2-byte ``ok``."""

    def __init__(self, script: dict[int, list[tuple[float, bytes]]]) -> None:
        self.script = script
        super().__init__()

    def answer(self, conn: socket.socket, number: int) -> bool:
        for delay, piece in self.script.get(number, [(0.0, _OK)]):
            time.sleep(delay)
            conn.sendall(piece)
        return True


_SPLIT = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nnot for /b!"


@pytest.mark.parametrize(
    "first",
    [
        # Bytes beyond the response's end arrive with it, the rest a moment later.
        [(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + _SPLIT[:9]), (0.3, _SPLIT[9:])],
        [(0.0, b"HTTP/1.1 204 No Content\r\n\r\n" + _SPLIT[:9]), (0.3, _SPLIT[9:])],
        # A head that frames its response in two ways, the rest sent later.
        [
            (0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (0.0, b"0\r\n\r\n"),
            (0.3, _SPLIT),
        ],
        [(0.0, b"HTTP/1.1 204 No Content\r\nContent-Length: 11\r\n\r\n"), (0.3, _SPLIT)],
    ],
    ids=["beyond-length", "body-on-204", "length-and-chunked", "204-with-length"],
)
def test_what_a_server_sends_past_a_response_is_never_the_next_ones_answer(first):
    # The server sends more than the response it framed, or frames it in two
    # ways. What it meant by those bytes is still arriving when the next
    # request (a requisite of the same host) goes out on the kept-alive
    # connection, and was recorded as the answer to that request: a response
    # attributed to a request it does not answer.
    server = _Scripted({1: first})
    try:
        exchange = _fetch_twice(server)  # type: ignore[arg-type]  # same url()
    finally:
        server.close()
    try:
        block = exchange.response_file.read()
    finally:
        exchange.response_file.close()
    assert block == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert [c for c, _ in server.seen] == [1, 2], "not sent on the same connection"


def test_a_length_repeated_in_a_list_is_that_length_not_a_cut_response():
    # "Content-Length: 5, 5" is 5 bytes (RFC 9110 section 8.6; urllib3 reads
    # it so). http.client read no length in it and waited for the kept-alive
    # connection to close: the whole response was recorded as cut short
    # ("no response before the read timeout"), after the read timeout.
    server = _Scripted({1: [(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello")]})
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        started = time.monotonic()
        exchange = fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10)
        exchange.response_file.close()
        assert time.monotonic() - started < 2
        assert exchange.truncated is None
        assert exchange.response_length - exchange.header_length == 5
        fetcher.fetch(server.url("/b"), deadline=time.monotonic() + 10).response_file.close()
    finally:
        fetcher.close()
        server.close()
    assert [c for c, _ in server.seen] == [1, 1], "the connection stays in step"


@pytest.mark.parametrize(
    "end",
    [b"0\r\n", b"0\r\nX-Trailer: 1\r\n", b"0\r\nX-Trailer: 1"],
    ids=["no-crlf", "trailer", "cut-trailer"],
)
def test_a_chunked_body_cut_after_its_last_chunk_is_marked_cut(raw_server, end):
    # http.client takes the end of the connection for the empty line that
    # ends a chunked body: a body cut after its last chunk was sealed whole.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    server = raw_server(fixed_response(head + end))
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        exchange = fetcher.fetch(server.url("/"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()
    try:
        assert exchange.response_file.read() == head + end
    finally:
        exchange.response_file.close()
    assert exchange.truncated == "disconnect"
    assert exchange.truncated_detail == "the connection ended before the end of the chunked body"


def test_a_whole_chunked_body_with_a_trailer_is_whole(raw_server):
    whole = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = raw_server(fixed_response(whole))
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        exchange = fetcher.fetch(server.url("/"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()
    exchange.response_file.close()
    assert exchange.truncated is None
    assert exchange.response_length == len(whole)


@pytest.mark.parametrize("lengths", [b"5, 6", b"5\r\nContent-Length: 6"])
def test_conflicting_lengths_are_an_invalid_response_not_an_unknown_failure(raw_server, lengths):
    # urllib3 refuses them (RFC 9110 section 8.6: an unrecoverable error); the
    # failure was reported as kind "other", "InvalidHeader: ...".
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: " + lengths + b"\r\n\r\nhello!"
    server = raw_server(fixed_response(raw))
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        with pytest.raises(CaptureError) as caught:
            fetcher.fetch(server.url("/"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()
    assert caught.value.kind == "http"
    assert caught.value.cause == "invalid HTTP response: conflicting Content-Length values"


def test_a_negative_chunk_size_is_broken_framing_not_read_to_the_end(raw_server):
    # http.client reads "-1" as a chunk size and then reads "-1 bytes": all
    # that comes until the connection closes, in one piece in memory (a
    # server streaming 400 MB this way took 830 MB; up to twice
    # max_response_bytes).
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"
    server = raw_server(fixed_response(head + b"x" * 100_000, linger=5))
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        started = time.monotonic()
        exchange = fetcher.fetch(server.url("/"), deadline=time.monotonic() + 10)
    finally:
        fetcher.close()
    exchange.response_file.close()
    assert time.monotonic() - started < 2, "not read until the connection ends"
    assert exchange.truncated == "disconnect"
    assert exchange.response_length == len(head)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_a_response_without_a_body_has_none_whatever_its_transfer_encoding(status):
    # http.client read a chunked body for a 204 or 304 with "Transfer-Encoding:
    # chunked": it waited for one until the read timeout and marked the whole
    # response cut, or took what came next on the connection for its body.
    head = b"HTTP/1.1 " + status + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    # The last chunk comes 2 s later: a fetch that waits for it is slow for
    # sure, one that does not is fast even on a loaded machine.
    server = _Scripted({1: [(0.0, head), (2.0, b"0\r\n\r\n")]})
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        started = time.monotonic()
        exchange = fetcher.fetch(server.url("/a"), deadline=time.monotonic() + 10)
        assert time.monotonic() - started < 1.5
        assert exchange.truncated is None
        assert exchange.response_file.read() == head
        exchange.response_file.close()
        second = fetcher.fetch(server.url("/b"), deadline=time.monotonic() + 10)
        assert second.response_file.read() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        second.response_file.close()
    finally:
        fetcher.close()
        server.close()


def test_nothing_is_sent_once_the_capture_has_ended(raw_server):
    # The recording proxy passes the capture's end as a cancel event: a
    # request that reaches the fetcher after it never goes to the server.
    server = raw_server(fixed_response(PAGE))
    ended = threading.Event()
    ended.set()
    fetcher = Fetcher(user_agent="t", limits=FetchLimits(connect_timeout=3, read_timeout=3))
    try:
        with pytest.raises(CaptureError, match="the capture ended before a response arrived"):
            fetcher.fetch(server.url("/"), deadline=time.monotonic() + 10, cancel=ended)
    finally:
        fetcher.close()
    assert server.peers == []

"""The recording proxy without a browser: a real client, real servers, real sockets."""

from __future__ import annotations

import gzip
import io
import socket
import ssl
import threading
import time
import typing
from pathlib import Path

import pytest
import requests
from cryptography import x509

from evidence.capturing import proxy as proxy_module
from evidence.capturing.fetcher import Fetcher, FetchLimits, refuse_non_public
from evidence.capturing.proxy import InterceptionCA, RecordingProxy, is_browser_service
from evidence.capturing.record import WARC_PATH, Recorder
from evidence.package import PackageWriter
from evidence.warc import WARCWriter

from browsers import parse_records
from servers import closed_port, fixed_response

BODY = gzip.compress(b'{"text": "from the server"}')
RAW = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"X-Odd:  two  spaces\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


def blocks(warc: bytes) -> list[tuple[str, str, bytes]]:
    """(type, target, block) per record, parsed with zlib, not our reader."""
    return [(h["WARC-Type"], h.get("WARC-Target-URI", ""), b) for h, b in parse_records(warc)]


@pytest.fixture
def recording(tmp_path: Path):
    """A proxy writing into a real WARC; yields (proxy, finish) where finish() returns records."""
    opened: list = []

    def make(
        *,
        public_only: bool = False,
        ca_bundle: str | None = None,
        deadline: float = 20,
        max_total_bytes: int | None = None,
    ):
        writer = PackageWriter(tmp_path, "pkg")
        pkg = writer.__enter__()
        fh = open(pkg.path(WARC_PATH), "xb")
        warc = WARCWriter(fh)
        recorder = Recorder(pkg, warc, "2026-01-01T00:00:00Z", None)
        fetcher = Fetcher(
            user_agent="test",
            limits=FetchLimits(),
            ca_bundle=ca_bundle,
            check_address=refuse_non_public if public_only else None,
        )
        proxy = RecordingProxy(
            fetcher,
            recorder,
            deadline=time.monotonic() + deadline,
            spool_dir=str(pkg.path("data")),
            max_total_bytes=max_total_bytes,
        )
        opened.append((proxy, fetcher, fh))

        def finish() -> list[tuple[str, str, bytes]]:
            proxy.close()
            fh.flush()
            return blocks(Path(fh.name).read_bytes())

        return proxy, recorder, finish

    yield make
    for proxy, fetcher, fh in opened:
        proxy.close()
        fetcher.close()
        fh.close()


@pytest.fixture
def client():
    sessions: list[requests.Session] = []

    def make(proxy: RecordingProxy) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.proxies = {"http": proxy.server, "https": proxy.server}
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()


def test_response_reaches_client_and_warc_byte_for_byte(raw_server, recording, client):
    server = raw_server(fixed_response(RAW))
    proxy, recorder, finish = recording()
    got = client(proxy).get(server.url("/data.json"), stream=True, timeout=10)
    assert got.status_code == 200
    assert got.raw.read(decode_content=False) == BODY
    recs = finish()
    assert [r[0] for r in recs] == ["warcinfo", "request", "response"]
    assert recs[2][2] == RAW, "the recorded response is exactly what the server wrote"
    assert recs[1][2] == server.requests[0], "the recorded request is exactly what was sent"
    assert b"Proxy-Connection" not in server.requests[0]
    assert recorder.exchanges[0].role == "browser"
    assert proxy.failures == []


def test_browser_services_are_refused_and_never_recorded(recording, client):
    proxy, recorder, finish = recording()
    s = client(proxy)
    for url in (
        "http://clients2.google.com/service/update2/json",
        "http://update.googleapis.com/x",
        "http://redirector.gvt1.com/edgedl/x",
    ):
        assert s.get(url, timeout=10).status_code == 403
    assert [r[0] for r in finish()] == ["warcinfo"]
    assert len(proxy.blocked) == 3
    assert recorder.exchanges == []


def test_browser_service_hosts():
    assert is_browser_service("accounts.google.com")
    assert is_browser_service("clients4.google.com")
    assert is_browser_service("r3---sn-abc.gvt1.com")
    assert not is_browser_service("fonts.googleapis.com")
    assert not is_browser_service("www.google.com")
    assert not is_browser_service("example.org")


def test_upstream_refused_is_answered_at_once_and_recorded_as_failure(recording, client):
    proxy, _recorder, finish = recording()
    url = f"http://127.0.0.1:{closed_port()}/img.png"
    started = time.monotonic()
    got = client(proxy).get(url, timeout=10)
    assert time.monotonic() - started < 3
    assert got.status_code == 502
    assert [r[0] for r in finish()] == ["warcinfo"], "a failure is never a response record"
    assert [(f.url, f.kind) for f in proxy.failures] == [(url, "refused")]


def test_public_only_applies_to_every_address_the_browser_asks_for(raw_server, recording, client):
    server = raw_server(fixed_response(RAW))
    proxy, _recorder, finish = recording(public_only=True)
    got = client(proxy).get(server.url("/"), timeout=10)
    assert got.status_code == 502
    assert server.requests == []
    assert [r[0] for r in finish()] == ["warcinfo"]
    assert proxy.failures[0].kind == "refused-address"


def test_https_is_intercepted_with_the_pinned_key_and_upstream_chain_is_kept(
    site, test_ca, recording
):
    page = b"<p>secure</p>"
    server = site({"/": (200, [("Content-Type", "text/html")], page)}, tls=test_ca.server_context())
    proxy, recorder, finish = recording(ca_bundle=str(test_ca.root_pem))
    # A raw TLS client through CONNECT: check the certificate the proxy shows.
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    target = f"127.0.0.1:{server.port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    assert tls.selected_alpn_protocol() == "http/1.1"
    leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    from cryptography.hazmat.primitives import hashes, serialization

    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    assert base64.b64encode(digest.finalize()).decode() == proxy.ca.spki_pin
    tls.sendall(f"GET / HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    reply = io.BytesIO()
    while chunk := tls.recv(65536):
        reply.write(chunk)
    tls.close()
    assert reply.getvalue().endswith(page)
    recs = finish()
    assert [r[0] for r in recs] == ["warcinfo", "request", "response"]
    assert recs[2][1] == f"https://{target}/"
    info = recorder.exchanges[0]
    assert info.tls is not None and info.tls.verified
    assert info.tls.chain_file is not None, "the upstream chain as presented is stored"


def test_interception_ca_key_is_never_written_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ca = InterceptionCA()
    ca.context_for("example.org")
    ca.context_for("127.0.0.1")
    assert list(tmp_path.iterdir()) == []


def test_an_exchange_finishing_while_closing_is_still_recorded(raw_server, recording, client):
    server = raw_server(lambda conn, _req: (time.sleep(0.5), conn.sendall(RAW)))
    proxy, recorder, finish = recording()
    session = client(proxy)
    thread = threading.Thread(target=_get_quietly, args=(session, server.url("/")), daemon=True)
    thread.start()
    time.sleep(0.2)
    recs = finish()  # close() waits (bounded) for the handler
    thread.join(5)
    assert [r[0] for r in recs] == ["warcinfo", "request", "response"]
    assert len(recorder.exchanges) == 1


def test_nothing_is_recorded_once_the_proxy_is_closed(raw_server, recording, client):
    server = raw_server(lambda conn, _req: (time.sleep(1.0), conn.sendall(RAW)))
    proxy, recorder, finish = recording()
    session = client(proxy)
    answers: list[object] = []
    thread = threading.Thread(
        target=lambda: answers.append(_get_quietly(session, server.url("/slow"))), daemon=True
    )
    thread.start()
    time.sleep(0.3)
    proxy.close(wait=0.1)  # while the upstream answer is still on its way
    time.sleep(1.5)
    thread.join(5)
    assert [r[0] for r in finish()] == ["warcinfo"]
    assert recorder.exchanges == [], "an answer arriving after close is not recorded"


def _get_quietly(session: requests.Session, url: str) -> object:
    try:
        return session.get(url, timeout=5).status_code
    except requests.RequestException as exc:
        return exc


def _get_through(proxy: RecordingProxy, url: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    conn.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return conn


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while piece := conn.recv(65536):
        data += piece
    return data


def test_the_response_streams_to_the_client_as_it_is_recorded(raw_server, recording):
    """The client has the first half before the server sends the second: no
    store-and-forward, which would double the latency of every big response."""
    first, second = b"a" * 50_000, b"b" * 50_000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    go_on = threading.Event()

    def respond(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(head + first)
        go_on.wait(10)
        conn.sendall(second)

    server = raw_server(respond)
    proxy, _recorder, finish = recording()
    conn = _get_through(proxy, server.url("/big"))
    conn.settimeout(5)
    got = b""
    while len(got) < len(head) + len(first):
        got += conn.recv(65536)  # times out (fails) if the proxy waits for the whole body
    go_on.set()
    got += _read_all(conn)
    conn.close()
    # Only the head's connection header differs (the proxy closes after one exchange).
    assert got == head[:-2] + b"Connection: close\r\n\r\n" + first + second
    assert finish()[2][2] == head + first + second


def test_the_byte_budget_cuts_a_response_then_refuses_requests(raw_server, recording):
    body = b"x" * 3000
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + body
    server = raw_server(fixed_response(raw))
    proxy, recorder, finish = recording(max_total_bytes=1000)
    conn = _get_through(proxy, server.url("/one"))
    got = _read_all(conn)
    conn.close()
    closing = raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    assert got == closing[: len(closing) - 2000], (
        "the client gets what was recorded, up to the budget"
    )
    assert proxy.budget_hit and proxy.body_bytes == 1000
    assert recorder.exchanges[0].truncated == "length"
    conn = _get_through(proxy, server.url("/two"))
    assert _read_all(conn).startswith(b"HTTP/1.1 507 ")
    conn.close()
    assert len(server.requests) == 1, "nothing is fetched once the budget is spent"
    assert proxy.failures[-1].url == server.url("/two")
    recs = finish()
    assert [r[0] for r in recs] == ["warcinfo", "request", "response"]
    assert recs[2][2] == raw[: len(raw) - 2000]


def test_failures_and_blocked_urls_kept_are_bounded_and_counted(recording):
    """A page that requests forever cannot grow the proxy's lists without end."""
    proxy, _recorder, _finish = recording()
    for i in range(proxy_module.MAX_FAILURES_KEPT + 7):
        proxy._fail(f"http://x.test/{i}", "GET", "timeout", "late")
    for i in range(proxy_module.MAX_BLOCKED_KEPT + 3):
        proxy._note_blocked(f"https://clients2.google.com/{i}")
    assert len(proxy.failures) == proxy_module.MAX_FAILURES_KEPT
    assert proxy.failures_total == proxy_module.MAX_FAILURES_KEPT + 7
    assert proxy.failures[0].url == "http://x.test/0"  # the first ones are kept
    assert len(proxy.blocked) == proxy_module.MAX_BLOCKED_KEPT
    assert proxy.blocked_total == proxy_module.MAX_BLOCKED_KEPT + 3


def test_an_exchange_still_arriving_at_close_is_cut_and_recorded_as_it_stands(
    raw_server, recording, client
):
    """A body that would go on for a minute is ended when the capture ends: what
    arrived is recorded, marked WARC-Truncated: time, without waiting for the
    deadline; an answer that never began is a timeout failure."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"

    def endless(conn, _req):
        conn.sendall(head + b"data: one\n\n")
        time.sleep(60)

    def silent(conn, _req):
        time.sleep(60)

    stream, never = raw_server(endless), raw_server(silent)
    proxy, recorder, finish = recording(deadline=120)
    for url in (stream.url("/events"), never.url("/poll")):
        threading.Thread(target=_get_quietly, args=(client(proxy), url), daemon=True).start()
    time.sleep(1.0)
    started = time.monotonic()
    recs = finish()
    assert time.monotonic() - started < 2 * proxy_module.CLOSE_GRACE + 1
    assert [(r[0], r[1]) for r in recs] == [
        ("warcinfo", ""),
        ("request", stream.url("/events")),
        ("response", stream.url("/events")),
    ]
    assert recs[2][2] == head + b"data: one\n\n", "what arrived, byte for byte"
    (exchange,) = recorder.exchanges
    assert exchange.truncated == "time"
    assert [(f.url, f.kind) for f in proxy.failures] == [(never.url("/poll"), "timeout")]


def test_a_keep_alive_server_does_not_make_the_client_reuse_a_closing_connection(
    site, recording, client
):
    """The proxy answers one request per connection. An HTTP/1.1 server's
    response says nothing about closing, so the client kept the connection and
    sent its next request on it while the proxy was still recording the
    previous (long, for a video segment), then closing: a reset, and yt-dlp
    gave up on the stream. The client is now told the connection closes; the
    recorded response is still exactly the server's."""
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB: recording it takes a while
    server = site(
        {
            f"/seg{n}.ts": (
                200,
                [("Content-Type", "video/mp2t"), ("Keep-Alive", "timeout=5")],
                body,
            )
            for n in range(4)
        }
    )
    proxy, _recorder, finish = recording()
    session = client(proxy)
    for n in range(4):
        got = session.get(server.url(f"/seg{n}.ts"), timeout=20)
        assert got.status_code == 200 and got.content == body
        assert got.headers["Connection"] == "close"
        assert "Keep-Alive" not in got.headers
    responses = [r[2] for r in finish() if r[0] == "response"]
    assert len(responses) == 4
    for raw in responses:
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert rest == body
        assert b"Keep-Alive: timeout=5" in head, "recorded as the server sent it"
        assert b"Connection: close" not in head
    assert proxy.failures == []


def test_only_the_connection_headers_of_the_head_the_client_gets_change():
    closing = proxy_module._closing
    assert closing(b"HTTP/1.1 200 OK\r\nA: 1\r\nConnection: keep-alive\r\n"
                   b"Keep-Alive: timeout=5,\r\n max=9\r\nB:  2 \r\n\r\n") == (
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB:  2 \r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    assert (
        closing(b"HTTP/1.0 200 OK\nX: y\n\n")
        == b"HTTP/1.0 200 OK\r\nX: y\r\nConnection: close\r\n\r\n"
    )
    sent: list[bytes] = []

    class Stream:
        def sendall(self, data: bytes) -> None:
            sent.append(data)

    sink = proxy_module._ClientSink(typing.cast(socket.socket, Stream()))
    for piece in (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2",
        b"00 OK\r\nConnection: keep",
        b"-alive\r\n\r\nbody",
    ):
        sink.send(piece)
    sink.send(b" more")
    assert b"".join(sent) == (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody more"
    )


def test_a_client_that_goes_away_mid_body_does_not_cut_the_recording(raw_server, recording):
    """The proxy passes each piece on before recording it: a client gone
    (reset) stops receiving, never recording; what the server sent after
    that is stored whole, byte for byte."""
    import os
    import struct

    body = os.urandom(3 * 1024 * 1024)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    gone = threading.Event()

    def respond(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(head + body[:100_000])
        gone.wait(10)
        conn.sendall(body[100_000:])

    server = raw_server(respond)
    proxy, recorder, finish = recording()
    conn = _get_through(proxy, server.url("/video"))
    conn.settimeout(5)
    got = b""
    while len(got) < len(head) + 1000:
        got += conn.recv(65536)
    # Reset, not a polite close: the proxy's next send fails at once.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    gone.set()
    deadline = time.monotonic() + 10
    while not recorder.exchanges and time.monotonic() < deadline:
        time.sleep(0.05)
    recs = finish()
    assert [r[0] for r in recs] == ["warcinfo", "request", "response"]
    assert recs[2][2] == head + body, "every byte the server sent, after the client left too"
    assert recorder.exchanges[0].truncated is None


@pytest.mark.parametrize(
    "raw",
    [
        # Python's header parser (the record's) and Chromium's both end a
        # header line at a bare CR. The rewrite of the head dropped the whole
        # line "Connection: close<CR>Content-Type: text/html", so the client
        # lost a header the record has. A head the rewrite cannot read the way
        # they do is passed on exactly as the server sent it.
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\rContent-Type: text/html\r\n"
        b"Content-Length: 5\r\n\r\nhello",
        # A head without its blank line, then the close: recorded as a response
        # with no body; the rewrite held the bytes, waiting for the end of the
        # head, and the client got nothing.
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n",
    ],
    ids=["bare-cr", "head-ended-by-close"],
)
def test_a_head_the_rewrite_cannot_read_reaches_the_client_as_recorded(raw_server, recording, raw):
    server = raw_server(fixed_response(raw, linger=0.2))
    proxy, _recorder, finish = recording()
    conn = _get_through(proxy, server.url("/x"))
    got = _read_all(conn)
    conn.close()
    assert finish()[2][2] == raw
    assert got == raw


@pytest.mark.parametrize(
    "early",
    [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        # http.client reads these as interim too; the client stream once took
        # them for the final head: the 103 got "Connection: close" and the
        # answer kept the server's keep-alive.
        b"HTTP/1.1 103\r\n\r\n",  # no reason phrase (nor the space before it)
        b"HTTP/1.1 103\tEarly Hints\r\n\r\n",
        b"HTTP/2 103 Early Hints\r\n\r\n",
    ],
)
def test_interim_responses_reach_the_client_and_are_recorded_apart(raw_server, recording, early):
    # The client gets the 103 as the server sent it, then the answer; the
    # record holds the answer as the response and the 103 beside it.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = raw_server(fixed_response(early + answer))
    proxy, recorder, finish = recording()
    conn = _get_through(proxy, server.url("/page"))
    got = _read_all(conn)
    conn.close()
    assert got == early + answer.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    recs = finish()
    assert [(r[0], r[1]) for r in recs] == [
        ("warcinfo", ""),
        ("request", server.url("/page")),
        ("response", server.url("/page")),
        ("metadata", "urn:http-interim:" + server.url("/page")),
    ]
    assert recs[2][2] == answer
    assert recs[3][2] == early
    assert recorder.exchanges[0].status == 200
    assert recorder.exchanges[0].interim is not None
    assert recorder.exchanges[0].interim.statuses == (103,)

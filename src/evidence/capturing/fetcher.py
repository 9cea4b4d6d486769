"""Fetch one HTTP exchange and keep the exact bytes that crossed the wire.

requests stays in charge of HTTP; we only watch. A urllib3 connection class
records every byte it sends, and its ``response_class`` (an
``http.client.HTTPResponse`` subclass) wraps the socket's file object in a tee
that copies exactly the bytes http.client consumes (status line, headers, chunk
framing, compressed body) into a spool file on disk, hashing them on the way.
Nothing is re-serialised, so the stored block is byte-identical to what the
server sent. (``warcio.capture_http`` re-serialises headers, which loses odd
whitespace and non-ASCII bytes; that is why it is not used.)

The fetcher is independent of the WARC writer and of any crawling logic: a
request goes in, an :class:`Exchange` (raw bytes on disk plus connection facts)
comes out. It is safe to use from several threads; per-exchange state lives in
a thread-local, because requests and urllib3 run a request on the calling
thread.

Threat model notes:

* The total deadline is enforced on every ``recv`` (the socket timeout is set
  to what is left of it), so a server that drips one byte a second is cut off.
  DNS resolution cannot be interrupted from Python and is bounded only by the
  system resolver's own timeout.
* Header size is bounded by http.client (64 KiB per line, 100 header lines);
  body size by ``max_response_bytes``.
* With a proxy (:mod:`evidence.capturing.upstream`) every connection is a
  tunnel through it, never a direct one; the server's IP address is then not
  observable, so ``server_ip`` stays None (never the proxy's address), and DNS
  answers exist only when this machine resolved the name (``socks5``).
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import hashlib
import http.client
import io
import ipaddress
import logging
import os
import select
import socket
import ssl
import tempfile
import threading
import time
import typing
from collections.abc import Callable

import attrs
import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from evidence.capturing.upstream import ProxyError, ProxyURL, open_tunnel_to_any
from evidence.errors import CaptureError

logger = logging.getLogger(__name__)

__all__ = ["Exchange", "FetchLimits", "Fetcher", "TLSInfo", "interim_status"]

_CHUNK = 1 << 16
# How often a cancellable exchange waiting for data looks at its cancel event.
_CANCEL_POLL = 0.2
# Interim (1xx) responses before the final one: 103 Early Hints, 102
# Processing, an unasked-for 100 Continue. A server sending more, or more
# bytes of them, is not answering.
_MAX_INTERIM = 8
_MAX_INTERIM_BYTES = 256 * 1024


@attrs.frozen
class FetchLimits:
    """Bounds on one exchange. All times are seconds."""

    connect_timeout: float = 15.0
    read_timeout: float = 30.0
    max_response_bytes: int = 2 * 1024**3


@attrs.frozen
class TLSInfo:
    """Facts about the TLS session that carried an exchange, read from its own socket."""

    protocol: str | None
    cipher: str | None
    verified: bool
    # DER certificates as the server presented them, leaf first. When the
    # Python version cannot give the chain, only the leaf is here and
    # ``chain_complete`` is False.
    chain_der: tuple[bytes, ...]
    chain_complete: bool

    @property
    def leaf_sha256(self) -> str | None:
        """Lowercase hex SHA-256 of the leaf certificate's DER bytes."""
        return hashlib.sha256(self.chain_der[0]).hexdigest() if self.chain_der else None


@attrs.frozen
class Exchange:
    """One request and the response to it, with the raw bytes spooled to disk.

    ``response_file`` is an open temporary file holding the response block
    exactly as received; the caller reads it and closes it.
    """

    url: str
    method: str
    started: _dt.datetime
    ended: _dt.datetime
    request_bytes: bytes
    response_file: typing.BinaryIO
    response_length: int
    header_length: int
    block_sha256: bytes
    payload_sha256: bytes
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    server_ip: str | None
    server_port: int | None
    dns: tuple[str, ...] | None
    tls: TLSInfo | None
    truncated: str | None
    truncated_detail: str | None
    # The interim (1xx) responses that came before this one on the wire,
    # exactly as received (status lines and headers), and their status codes.
    # ``response_file`` and the digests cover the final response alone.
    interim: bytes = b""
    interim_statuses: tuple[int, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class _StopRecording(Exception):
    """Raised inside the tee when the body reached ``max_response_bytes``."""


class _InterimError(http.client.HTTPException):
    """Too many interim (1xx) responses, or too many bytes of them."""


AddressCheck = Callable[[str], None]


class _State:
    """Per-exchange state shared between the fetch loop and the connection."""

    def __init__(
        self,
        spool_dir: str | None,
        deadline: float,
        limits: FetchLimits,
        check_address: AddressCheck | None,
        proxy: ProxyURL | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.proxy = proxy
        self.deadline = deadline
        self.limits = limits
        self.check_address = check_address
        self.sent = bytearray()
        self.dns: tuple[str, ...] | None = None
        self.peer: tuple[str, int] | None = None
        self.tls: TLSInfo | None = None
        self.verify_tls = True
        self.deadline_hit = False
        self.tee: _Tee | None = None
        # Called with every piece of the response as it is recorded (the
        # recording proxy streams it on to its client).
        self.on_data: Callable[[bytes], None] | None = None
        # Set by the caller to end the exchange now, keeping what arrived (the
        # recording proxy when its capture ends with a response still coming).
        self.cancel: threading.Event | None = None
        self.cancelled = False
        # Set when this exchange opened its own connection (not one kept alive
        # from an earlier exchange).
        self.fresh_connection = False
        # Bytes read from the socket for this exchange, counted as they arrive
        # (before any parsing: a line cut by a reset is never recorded).
        self.received = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


_local = threading.local()


def _state() -> _State | None:
    return typing.cast("_State | None", getattr(_local, "state", None))


class _DeadlineRaw(io.RawIOBase):
    """Raw reader over the socket's own file object that enforces the deadline per recv."""

    def __init__(self, orig: typing.BinaryIO, sock: socket.socket, state: _State) -> None:
        super().__init__()
        # Keep the original buffered file: it owns the socket's reference
        # count (http.client relies on it to close the socket late).
        self._orig = orig
        self._raw = typing.cast(io.RawIOBase, getattr(orig, "raw", orig))
        self._sock = sock
        self._state = state

    def readable(self) -> bool:
        return True

    def readinto(self, b: typing.Any) -> int | None:
        remaining = self._state.remaining()
        if remaining <= 0:
            self._state.deadline_hit = True
            raise TimeoutError("capture deadline exceeded")
        if self._state.cancel is not None:
            self._wait_readable(min(self._state.limits.read_timeout, remaining))
            remaining = self._state.remaining()
        self._sock.settimeout(min(self._state.limits.read_timeout, max(remaining, 0.001)))
        try:
            got = self._raw.readinto(b)
        except TimeoutError:
            if self._state.remaining() <= 0:
                self._state.deadline_hit = True
            raise
        self._state.received += got or 0
        return got

    def _wait_readable(self, limit: float) -> None:
        """Wait up to ``limit`` seconds for data, ending early when the exchange is
        cancelled. (A timed-out socket file cannot be read again, so the waiting
        is done with select, not with short socket timeouts.)"""
        state = self._state
        assert state.cancel is not None
        end = time.monotonic() + limit
        while True:
            if state.cancel.is_set():
                state.deadline_hit = state.cancelled = True
                raise TimeoutError("the capture ended")
            if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
                return
            left = end - time.monotonic()
            if left <= 0:
                return  # the read below times out as it always did
            ready, _, _ = select.select([self._sock], [], [], min(left, _CANCEL_POLL))
            if ready:
                return

    def close(self) -> None:
        if not self.closed:
            self._orig.close()
        super().close()


class _Tee:
    """File-like wrapper that records exactly the bytes http.client consumes."""

    def __init__(self, reader: io.BufferedReader, state: _State) -> None:
        self._reader = reader
        self._state = state
        self.spool = tempfile.TemporaryFile(dir=state.spool_dir)
        self.length = 0
        self.header_length: int | None = None
        self.body_length = 0
        self.block_hash = hashlib.sha256()
        self.payload_hash = hashlib.sha256()
        self.truncated = False
        self.interim = b""
        self.interim_statuses: list[int] = []
        # The last line http.client read: a head ends with an empty line, so
        # anything else when the headers end means the connection ended inside it.
        self.last_line = b""
        self.head_cut = False
        self.trailer_cut = False

    # -- recording ---------------------------------------------------------
    def _record(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self.header_length is not None:
            room = self._state.limits.max_response_bytes - self.body_length
            if len(data) > room:
                data = data[: max(room, 0)]
                self.truncated = True
            self.body_length += len(data)
        if self._state.on_data is not None:
            # Passed on first, so the client works on these bytes while they
            # are hashed and spooled here (on the other core).
            self._state.on_data(data if isinstance(data, bytes) else bytes(data))
        if self.header_length is not None:
            self.payload_hash.update(data)
        self.block_hash.update(data)
        self.spool.write(data)
        self.length += len(data)
        if self.truncated:
            raise _StopRecording()

    def mark_headers_end(self) -> None:
        self.header_length = self.length
        self.head_cut = not self.at_blank_line()

    def end_interim(self, status: int) -> None:
        """What was recorded so far is an interim (1xx) response: keep its bytes
        apart, so the spool and the digests hold the final response alone."""
        if len(self.interim_statuses) >= _MAX_INTERIM:
            raise _InterimError(f"more than {_MAX_INTERIM} interim (1xx) responses")
        if len(self.interim) + self.length > _MAX_INTERIM_BYTES:
            raise _InterimError(f"interim (1xx) responses longer than {_MAX_INTERIM_BYTES} bytes")
        self.spool.seek(0)
        self.interim += self.spool.read()
        self.spool.seek(0)
        self.spool.truncate()
        self.interim_statuses.append(status)
        self.length = 0
        self.block_hash = hashlib.sha256()

    # -- the file interface http.client and urllib3 use --------------------
    def read(self, n: int | None = -1) -> bytes:
        # Built on read1 so every piece is recorded as soon as it arrives: a
        # BufferedReader.read(n) that hits a reset after partial data would
        # drop those bytes, and they were received, so they are evidence.
        pieces: list[bytes] = []
        got = 0
        while n is None or n < 0 or got < n:
            piece = self._reader.read1(-1 if n is None or n < 0 else n - got)
            if not piece:
                break
            self._record(piece)
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def read1(self, n: int = -1) -> bytes:
        data = self._reader.read1(n)
        self._record(data)
        return data

    def readinto(self, b: typing.Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def at_blank_line(self) -> bool:
        """Whether the last line http.client read was the empty line that ends
        a head or a trailer (it takes the end of the connection for one too)."""
        return self.last_line in (b"\r\n", b"\n")

    def readline(self, limit: int = -1) -> bytes:
        data = self._reader.readline(limit)
        self.last_line = data
        self._record(data)
        return data

    def peek(self, n: int = 0) -> bytes:
        return self._reader.peek(n)

    def fileno(self) -> int:
        return self._reader.fileno()

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._reader.closed

    def close(self) -> None:
        self._reader.close()


def interim_status(line: bytes) -> int | None:
    """The status code when ``line`` is read as the status line of an interim
    (1xx) response, else None.

    This is http.client's own reading of a status line (whitespace-separated,
    the code through ``int``), which :class:`Fetcher` keeps apart as interim,
    so the recording proxy gives its client as interim exactly the heads the
    record keeps apart. 101 is not interim: it switches protocols.
    """
    fields = str(line, "iso-8859-1").split(None, 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        return None
    try:
        status = int(fields[1])
    except ValueError:
        return None
    return status if _is_interim(status) else None


def _is_interim(status: int) -> bool:
    return 100 <= status < 200 and status != 101


def _repeated_length(value: str | None) -> int | None:
    """The length a Content-Length value of one number repeated in a list
    (``5, 5``) gives, else None (one number is read by http.client itself)."""
    if value is None or "," not in value:
        return None
    numbers = {item.strip() for item in value.split(",")}
    if len(numbers) != 1:
        return None
    number = numbers.pop()
    return int(number) if number.isascii() and number.isdigit() else None


def _framing_in_doubt(status: int, headers: typing.Any) -> bool:
    """True when a response's head gives its end in two ways: Content-Length
    and Transfer-Encoding together (RFC 9112 section 6.3: to be handled as an
    error, a sign of response splitting), or a 204 or 304, which have no body,
    that declares one (a 304's Transfer-Encoding may only be what a 200 would
    have had, but servers that send one tend to send a last chunk too)."""
    length = headers.get("content-length")
    coding = headers.get("transfer-encoding")
    if length is not None and coding is not None:
        return True
    if status in (204, 304) and coding is not None:
        return True
    return status == 204 and (length or "0").strip() != "0"


class _RecordingHTTPResponse(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
        *,
        state: _State,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        orig = typing.cast(typing.BinaryIO, self.fp)
        tee = _Tee(io.BufferedReader(_DeadlineRaw(orig, sock, state), _CHUNK), state)
        state.tee = tee
        self.fp = tee  # type: ignore[assignment]  # a file-like tee, duck-typed
        self._state = state
        self._socket = sock

    def _close_conn(self) -> None:
        # http.client calls this when the response has ended. Bytes read from
        # the socket beyond it were sent by a server that is out of step with
        # this connection: the rest of what it meant by them may still be on
        # the way, and would be read as the answer to the next request sent on
        # the connection. Shut it, so it is not used again (urllib3 sees it
        # closed when it next takes it from the pool), as browsers do.
        tee = typing.cast("_Tee | None", self.fp)
        if tee is not None and self._state.received > len(tee.interim) + tee.length:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        super()._close_conn()  # type: ignore[misc]  # private in typeshed

    def begin(self) -> None:
        super().begin()
        typing.cast(_Tee, self.fp).mark_headers_end()
        if self.chunked and self.length == 0:
            # A 204, a 304 or the answer to a HEAD has no body, whatever its
            # Transfer-Encoding says (RFC 9112 section 6.3; a 304 may carry
            # the one a 200 would have had). http.client read a chunked body
            # all the same: it waited for one until the read timeout and
            # marked a whole response cut, or took what came next for it.
            self.chunked = False
        repeated = _repeated_length(self.headers.get("content-length"))
        if self.length is None and not self.chunked and repeated is not None:
            # "Content-Length: 5, 5" is 5 bytes (RFC 9110 section 8.6), as
            # urllib3 reads it; http.client took it for no length and waited
            # for the connection to close, so a whole response kept alive was
            # recorded as cut by the read timeout.
            self.length = repeated
            self.will_close = self._check_close()  # type: ignore[attr-defined]  # private in typeshed
        if self.status == 101:
            # We never ask to switch protocols: what follows an unasked-for
            # 101 on this connection is not an answer to our next request.
            self.will_close = True
        elif _framing_in_doubt(self.status, self.headers):
            # The server framed this response in two ways at once; where it
            # thinks the response ends is not known, and what it sends after
            # the end read here must not become the next request's answer.
            self.will_close = True

    def _read_next_chunk_size(self) -> int:
        # http.client reads a chunk size through int(line, 16), which takes
        # "-5": it then reads "-5 bytes", which is everything until the
        # connection closes, held in memory at once. A size is hex digits;
        # a ValueError here is how http.client says the framing is broken.
        size = int(super()._read_next_chunk_size())  # type: ignore[misc]  # private in typeshed
        if size < 0:
            raise ValueError("negative chunk size")
        return size

    def _read_and_discard_trailer(self) -> None:
        # http.client takes the end of the connection for the end of a chunked
        # body's trailer (the empty line after the last chunk): a body cut
        # there would look like a whole answer.
        super()._read_and_discard_trailer()  # type: ignore[misc]  # private in typeshed
        tee = typing.cast(_Tee, self.fp)
        tee.trailer_cut = not tee.at_blank_line()

    def _read_status(self) -> tuple[str, int, str]:
        # http.client passes over 100 Continue and takes any other 1xx (103
        # Early Hints, 102 Processing) for the answer, leaving the real one
        # unread. Every interim response is read here instead, its bytes kept
        # apart (101 is not interim: it switches protocols, and we never ask to).
        tee = typing.cast(_Tee, self.fp)
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]  # private in typeshed
            # The same decision as interim_status (the recording proxy's).
            if not _is_interim(status):
                return str(version), int(status), str(reason)
            http.client.parse_headers(typing.cast(typing.BinaryIO, tee))  # bounded
            tee.end_interim(status)


def _tls_info(sock: socket.socket, verified: bool) -> TLSInfo | None:
    if not isinstance(sock, ssl.SSLSocket):
        return None
    chain: tuple[bytes, ...] = ()
    complete = False
    sslobj = getattr(sock, "_sslobj", None)
    getter = getattr(sock, "get_unverified_chain", None) or getattr(
        sslobj, "get_unverified_chain", None
    )
    if getter is not None:
        try:
            certs = getter() or []
            chain = tuple(
                c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for c in certs
            )
            complete = bool(chain)
        except (AttributeError, ValueError, ssl.SSLError):
            chain = ()
    if not chain:
        leaf = sock.getpeercert(binary_form=True)
        chain = (leaf,) if leaf else ()
    cipher = sock.cipher()
    return TLSInfo(
        protocol=sock.version(),
        cipher=cipher[0] if cipher else None,
        verified=verified,
        chain_der=chain,
        chain_complete=complete,
    )


class _RecordingMixin:
    """Methods shared by the HTTP and HTTPS connection classes."""

    # Provided by urllib3's connection classes.
    sock: socket.socket
    _dns_host: str
    port: int
    timeout: float | None
    socket_options: typing.Any
    response_class: typing.Any

    def _new_conn(self) -> socket.socket:
        state = _state()
        host, port = self._dns_host, self.port
        if state is not None:
            state.fresh_connection = True
        if state is None:
            # The proxy, the address check and the deadline live in the
            # exchange's state: without it a connection would go straight to
            # the server, past --proxy and --public-only. Fail closed.
            raise urllib3.exceptions.NewConnectionError(
                self,  # type: ignore[arg-type]  # mixed into a urllib3 connection
                "refusing to connect outside an exchange (Fetcher.fetch)",
            )
        if state.proxy is not None:
            return self._new_tunnel(state, state.proxy)
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(host, self, exc) from exc  # type: ignore[arg-type]  # mixed into a urllib3 connection
        answers = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        state.dns = answers
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if state.check_address is not None:
                state.check_address(address)
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(min(state.limits.connect_timeout, max(state.remaining(), 0.001)))
                sock.connect(sockaddr)
                return sock
            except TimeoutError as exc:
                sock.close()
                raise urllib3.exceptions.ConnectTimeoutError(
                    self, f"connection to {host} timed out"
                ) from exc
            except OSError as exc:
                sock.close()
                error = exc
        raise urllib3.exceptions.NewConnectionError(
            self,  # type: ignore[arg-type]  # mixed into a urllib3 connection
            f"Failed to establish a new connection: {error}",
        ) from error

    def _new_tunnel(self, state: _State, proxy: ProxyURL) -> socket.socket:
        """A tunnel through ``proxy``; never a direct connection, whatever fails."""
        host, port = self._dns_host.strip("[]"), self.port
        targets = [host]
        if not proxy.resolves_names:
            # socks5: resolve here, check every answer, send the proxy an address.
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise urllib3.exceptions.NameResolutionError(host, self, exc) from exc  # type: ignore[arg-type]  # mixed into a urllib3 connection
            targets = list(dict.fromkeys(str(info[4][0]) for info in infos))
            state.dns = tuple(targets)
            if state.check_address is not None:
                for address in targets:
                    state.check_address(address)
        elif state.check_address is not None:
            # The proxy resolves the name, so its address cannot be checked
            # here. CaptureOptions refuses this combination; fail closed anyway.
            raise AddressRefused(
                f"{proxy.scheme} proxies resolve names themselves, so --public-only "
                "cannot check the destination"
            )
        try:
            sock = open_tunnel_to_any(
                proxy,
                targets,
                port,
                deadline=state.deadline,
                connect_timeout=state.limits.connect_timeout,
                socket_options=self.socket_options or (),
            )
        except ProxyError as exc:
            raise urllib3.exceptions.NewConnectionError(
                self,  # type: ignore[arg-type]  # mixed into a urllib3 connection
                f"proxy: {exc}",
            ) from exc
        sock.settimeout(min(state.limits.connect_timeout, max(state.remaining(), 0.001)))
        return sock

    def send(self, data: typing.Any) -> None:
        state = _state()
        if state is not None and isinstance(data, (bytes, bytearray, memoryview)):
            state.sent.extend(data)
        super().send(data)  # type: ignore[misc]  # super() is urllib3's class

    def getresponse(self) -> typing.Any:
        state = _state()
        if state is None:  # pragma: no cover - only our fetcher mounts these classes
            return super().getresponse()  # type: ignore[misc]  # super() is urllib3's class
        sock = self.sock
        if state.proxy is None:
            try:
                peer = sock.getpeername()
            except OSError as exc:
                # A socket we connected that has no peer any more was reset by
                # it (a kept-alive connection the server closed as our request
                # crossed its close): the same failure a read would report.
                if exc.errno != errno.ENOTCONN:
                    raise
                raise ConnectionResetError(errno.ECONNRESET, "connection reset") from exc
            state.peer = (str(peer[0]), int(peer[1]))
            if state.check_address is not None:
                state.check_address(state.peer[0])
        # Through a proxy the peer is the proxy (or our relay): not the server,
        # so nothing is recorded as the server's address. A TLS socket here is
        # always the origin's own TLS, end to end through the tunnel.
        state.tls = _tls_info(sock, state.verify_tls)
        self.response_class = functools.partial(_RecordingHTTPResponse, state=state)
        return super().getresponse()  # type: ignore[misc]  # super() is urllib3's class


class _RecordingHTTPConnection(_RecordingMixin, urllib3.connection.HTTPConnection):
    pass


class _RecordingHTTPSConnection(_RecordingMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _RecordingHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    def _validate_conn(self, conn: typing.Any) -> None:
        # urllib3 warns (InsecureRequestWarning, with a site-packages path) on
        # every unverified connection. --insecure is an explicit choice that is
        # recorded in the manifest and announced once by the CLI, and a
        # warnings filter around the request would not be thread-safe.
        urllib3.HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()

    ConnectionCls = _RecordingHTTPSConnection


class _RecordingAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPPool,
            "https": _HTTPSPool,
        }


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (requests and urllib3 wrap the
    socket's own error as a cause, a context or a ``reason``)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        reason = getattr(cur, "reason", None)
        cur = (
            cur.__cause__
            or cur.__context__
            or (reason if isinstance(reason, BaseException) else None)
        )
    return chain


# RFC 9110 section 9.2.2: a request with one of these methods may be sent again.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def _stale_connection(exc: BaseException, state: _State, method: str) -> bool:
    """True when an idempotent request went out on a kept-alive connection that
    the server had already closed: the server answered nothing, so sending it
    again on a new connection is what browsers and HTTP clients do.

    A server may close an idle connection at any moment, and its close can
    cross our next request on the wire. Nothing of such an attempt is kept: no
    response byte arrived, and the request that is recorded is the one sent
    again.
    """
    if state.fresh_connection or not state.sent or state.deadline_hit or state.cancelled:
        return False
    if method.upper() not in _IDEMPOTENT:
        return False
    if state.received:
        # Counted at the socket, not in the spool: a reset can end a read
        # whose partial line http.client never handed on to be recorded.
        return False
    return any(
        isinstance(item, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))
        for item in _causes(exc)
    )


def _describe(exc: BaseException, state: _State, deadline_seconds: float) -> tuple[str, str]:
    """Turn a requests/urllib3/socket exception into ``(kind, one short human cause)``.

    ``kind`` is one of :data:`evidence.errors.CAPTURE_ERROR_KINDS`, decided by
    exception class, never by message text.
    """
    if state.cancelled:
        return "timeout", "the capture ended before a response arrived"
    if state.deadline_hit:
        return (
            "timeout",
            f"deadline of {deadline_seconds:.1f} s exceeded before a complete response",
        )
    chain = _causes(exc)
    for item in chain:
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            return "disk", f"cannot store the response: {os.strerror(item.errno)}"
    specific: list[
        tuple[type[BaseException] | tuple[type[BaseException], ...], str, str | None]
    ] = [
        (ProxyError, "proxy", None),
        (AddressRefused, "refused-address", None),
        (
            (urllib3.exceptions.NameResolutionError, socket.gaierror),
            "dns",
            "DNS lookup failed (no such host, or no resolver reachable)",
        ),
        (ssl.SSLCertVerificationError, "tls", None),
        (ssl.SSLError, "tls", None),
        (_InterimError, "http", None),
        (
            urllib3.exceptions.InvalidHeader,
            "http",
            "invalid HTTP response: conflicting Content-Length values",
        ),
        (ConnectionRefusedError, "refused", "connection refused"),
        (ConnectionResetError, "refused", "connection reset by the server"),
        (http.client.LineTooLong, "http", "invalid HTTP response: header line too long"),
        (
            http.client.RemoteDisconnected,
            "refused",
            "server closed the connection without sending a response",
        ),
        (http.client.BadStatusLine, "http", "invalid HTTP response: bad status line"),
        (http.client.HTTPException, "http", None),
        (urllib3.exceptions.ConnectTimeoutError, "timeout", "connection timed out"),
        (urllib3.exceptions.NewConnectionError, "refused", "could not connect"),
        (
            (TimeoutError, urllib3.exceptions.ReadTimeoutError),
            "timeout",
            "no response before the read timeout",
        ),
    ]
    for classes, kind, text in specific:
        for item in chain:
            if not isinstance(item, classes):
                continue
            if text is not None:
                return kind, text
            if isinstance(item, (AddressRefused, ProxyError)):
                return kind, str(item)
            if isinstance(item, _InterimError):
                return kind, f"invalid HTTP response: {item}"
            if isinstance(item, ssl.SSLCertVerificationError):
                return kind, (
                    f"TLS certificate verification failed: {item.verify_message or item.reason}"
                )
            if isinstance(item, ssl.SSLError):
                return kind, f"TLS handshake failed: {item.reason or item}"
            return kind, f"invalid HTTP response: {type(item).__name__}"
    root = chain[-1]  # the innermost cause found while walking the chain above
    return "other", f"{type(root).__name__}: {root}"


class AddressRefused(OSError):
    """A connection was refused by the caller's address policy (e.g. public-only)."""


class Fetcher:
    """Performs single HTTP(S) exchanges and records their raw bytes.

    Args:
        user_agent: the User-Agent header sent.
        limits: per-exchange bounds.
        ca_bundle: a PEM file of CA certificates to trust instead of the default ones.
        unsafe_insecure: turn TLS certificate verification off (recorded by callers).
        check_address: called with every IP address before connecting to it and
            with the address actually connected to; raises :class:`AddressRefused`
            to refuse it.
        proxy: send every connection through this proxy (never directly).
    """

    def __init__(
        self,
        *,
        user_agent: str,
        limits: FetchLimits,
        ca_bundle: str | None = None,
        unsafe_insecure: bool = False,
        check_address: AddressCheck | None = None,
        pool_size: int = 16,
        proxy: ProxyURL | None = None,
    ) -> None:
        self.limits = limits
        self.proxy = proxy
        self.user_agent = user_agent
        self.verify: bool | str = False if unsafe_insecure else (ca_bundle or True)
        self.check_address = check_address
        session = requests.Session()
        # Proxies and .netrc from the environment would change who we talk to
        # and what we send; a capture talks to the server directly.
        session.trust_env = False
        adapter = _RecordingAdapter(max_retries=0, pool_maxsize=pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = user_agent
        # Fixed, not taken from whichever decoders happen to be installed, so
        # captures are comparable and every body we parse can be decoded.
        session.headers["Accept-Encoding"] = "gzip, deflate"
        self._session = session
        self._pool_size = pool_size

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def fetch(
        self,
        url: str,
        *,
        deadline: float,
        spool_dir: str | None = None,
        method: str = "GET",
        headers: typing.Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        on_data: Callable[[bytes], None] | None = None,
        max_body_bytes: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Exchange:
        """Perform one request (GET unless told) without following redirects and record it.

        Args:
            url: absolute http(s) URL.
            deadline: absolute ``time.monotonic()`` value after which reading stops.
            spool_dir: directory for the temporary file holding the response.
            method: the request method (the browser's recording proxy forwards
                the page's own).
            headers: request headers sent in addition to (or instead of) the
                session's; ``Accept-Encoding`` stays the fetcher's own.
            body: the request body, for methods that carry one.
            on_data: called with each piece of the response (head included)
                as it arrives, in order, just before it is hashed and spooled;
                exactly the bytes stored. A piece that cannot be spooled makes
                the exchange a ``disk`` failure after the caller was given it
                (the recording proxy then fails the capture). It must not raise.
            max_body_bytes: a tighter body limit for this exchange alone (the
                smaller of it and ``limits.max_response_bytes`` applies).
            cancel: when set, the exchange ends at once, as at the deadline:
                what arrived of the body is kept, marked ``time`` (the capture
                ended); with no response head yet it is a ``timeout`` failure.

        Returns:
            The recorded exchange. A response cut short (size limit, deadline,
            disconnect after the headers) is still returned, with ``truncated`` set.

        Raises:
            CaptureError: no response headers could be received.
        """
        limits = self.limits
        if max_body_bytes is not None and max_body_bytes < limits.max_response_bytes:
            limits = attrs.evolve(limits, max_response_bytes=max(max_body_bytes, 0))
        deadline_seconds = max(deadline - time.monotonic(), 0.0)
        truncated: str | None = None
        detail: str | None = None
        extra = {k: v for k, v in headers if k.lower() != "accept-encoding"}
        try:
            # A request sent on a kept-alive connection the server had just
            # closed is sent again on another; each such attempt uses up one
            # pooled connection, so the last one is always a new connection.
            for attempt in range(self._pool_size + 1):
                if cancel is not None and cancel.is_set():
                    # The capture has ended: nothing (more) goes to the server,
                    # not even a request that met a closed connection.
                    raise CaptureError(
                        url, "the capture ended before a response arrived", "timeout"
                    )
                state = _State(spool_dir, deadline, limits, self.check_address, self.proxy)
                state.on_data = on_data
                state.cancel = cancel
                state.verify_tls = self.verify is not False
                started = _dt.datetime.now(_dt.timezone.utc)
                _local.state = state
                try:
                    response = self._session.request(
                        method,
                        url,
                        headers=extra or None,
                        data=body,
                        stream=True,
                        allow_redirects=False,
                        verify=self.verify,
                        timeout=(self.limits.connect_timeout, self.limits.read_timeout),
                    )
                    break
                except (
                    requests.RequestException,
                    urllib3.exceptions.HTTPError,
                    OSError,
                    http.client.HTTPException,
                    ValueError,
                ) as exc:
                    if state.tee is not None:
                        state.tee.spool.close()
                        # A response refused after its head was read (urllib3's
                        # own checks) still holds the socket's file.
                        state.tee.close()
                    if attempt < self._pool_size and _stale_connection(exc, state, method):
                        logger.debug("%s: kept-alive connection was closed; sending again", url)
                        continue
                    kind, cause = _describe(exc, state, deadline_seconds)
                    raise CaptureError(url, cause, kind) from exc
            tee = state.tee
            if tee is None or tee.header_length is None:  # pragma: no cover - defensive
                raise CaptureError(url, "no response recorded", "other")
            try:
                try:
                    while response.raw.read(_CHUNK, decode_content=False):
                        pass
                except _StopRecording:
                    truncated = "length"
                    detail = f"body cut at max_response_bytes={limits.max_response_bytes}"
                except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
                    kind, cause = _describe(exc, state, deadline_seconds)
                    if kind == "disk":
                        # Our disk, not the server: nothing about this response is evidence.
                        raise CaptureError(url, cause, kind) from exc
                    if state.cancelled:
                        truncated = "time"
                        detail = "the capture ended while the body was still arriving"
                    elif state.deadline_hit:
                        truncated = "time"
                        detail = (
                            f"deadline of {deadline_seconds:.1f} s reached while reading the body"
                        )
                    else:
                        truncated = "disconnect"
                        detail = cause
                finally:
                    response.close()
                tee.spool.flush()
            except BaseException as exc:
                tee.spool.close()
                if isinstance(exc, OSError):
                    kind, cause = _describe(exc, state, deadline_seconds)
                    raise CaptureError(url, cause, kind) from exc
                raise
            # A body cut exactly at the limit raises nothing; say so all the same.
            if tee.truncated and truncated is None:  # pragma: no cover - defensive
                truncated = "length"
            if tee.head_cut and truncated is None:
                # http.client takes the end of the connection for the end of
                # the head: a head cut short would look like a whole answer.
                truncated = "disconnect"
                detail = "the connection ended inside the response head"
            if tee.trailer_cut and truncated is None:
                truncated = "disconnect"
                detail = "the connection ended before the end of the chunked body"
            ended = _dt.datetime.now(_dt.timezone.utc)
            tee.spool.seek(0)
            raw_headers = response.raw.headers
            return Exchange(
                url=url,
                method=method,
                started=started,
                ended=ended,
                request_bytes=bytes(state.sent),
                response_file=typing.cast(typing.BinaryIO, tee.spool),
                response_length=tee.length,
                header_length=tee.header_length,
                block_sha256=tee.block_hash.digest(),
                payload_sha256=tee.payload_hash.digest(),
                status=response.status_code,
                reason=str(response.reason or ""),
                headers=tuple((str(k), str(v)) for k, v in raw_headers.items()),
                server_ip=state.peer[0] if state.peer else None,
                server_port=state.peer[1] if state.peer else None,
                dns=state.dns,
                tls=state.tls,
                truncated=truncated,
                truncated_detail=detail,
                interim=tee.interim,
                interim_statuses=tuple(tee.interim_statuses),
            )
        finally:
            _local.state = None


_NOT_PUBLIC = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """True when ``address`` is a globally routable unicast IP address.

    Refuses loopback, private, link-local (169.254.169.254), carrier-grade NAT,
    multicast, reserved and unspecified addresses, and looks inside IPv6
    forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo), so
    ``::ffff:127.0.0.1`` is as private as ``127.0.0.1``.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    embedded: list[ipaddress.IPv4Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
    for candidate in [ip, *embedded]:
        if not candidate.is_global or candidate.is_multicast:
            return False
        if any(candidate in net for net in _NOT_PUBLIC if candidate.version == net.version):
            return False
    return True


def refuse_non_public(address: str) -> None:
    """An address check for :class:`Fetcher` that refuses every non-public address."""
    if not is_public_address(address):
        raise AddressRefused(
            f"destination {address} is not a public address (refused by --public-only)"
        )

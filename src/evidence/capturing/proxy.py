"""A local recording proxy for browser capture: the browser's requests, our bytes.

Chromium is pointed at this proxy (loopback, ephemeral port, one per capture).
Every request it forwards is made upstream by the same
:class:`~evidence.capturing.fetcher.Fetcher` as plain capture and written by
the same :class:`~evidence.capturing.record.Recorder`, so a browser capture
keeps exactly what a plain capture keeps: the request and response bytes as
they crossed the wire (chunk framing and content encodings included), the
server's IP address, the TLS chain from that very connection, the DNS answers,
the same limits and the same ``public_only`` check on every address.

HTTPS is intercepted with a certificate authority made for this capture in
memory (:class:`InterceptionCA`). Chromium trusts only the leaf key's pin
(``--ignore-certificate-errors-spki-list``); the key is never written to disk
(the server context loads it through an anonymous ``memfd``) and is gone when
the capture ends. Upstream certificates are checked by the fetcher against the
normal trust store (or ``--ca-bundle``); a failure is answered with a 502 and
recorded as a failure, never silently trusted.

The client receives the recorded response bytes unchanged, streamed on as
they are recorded (never a byte that was not recorded, never held whole in
memory), then the connection is closed (one request per connection), so
whatever framing the server chose, the client sees the same end of message we
recorded. The same proxy serves yt-dlp for ``--media`` (docs/media.md), with
a byte budget over all its responses.

Threat model notes:

* Request heads are bounded (:data:`MAX_HEAD_BYTES`), request bodies too
  (:data:`MAX_REQUEST_BODY`); connections at once are capped
  (:data:`MAX_CONNECTIONS`).
* Chromium's own background traffic (Google accounts, component updates, safe
  browsing, field trials) is refused here by host (:func:`is_browser_service`)
  and never recorded; launch flags switch most of it off first.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import socket
import ssl
import threading
import time
import typing
import urllib.parse

import attrs

from evidence.errors import CaptureError

if typing.TYPE_CHECKING:
    from evidence.capturing.fetcher import Exchange, Fetcher
    from evidence.capturing.record import Recorder

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "MAX_REQUEST_BODY",
    "CountingFetcher",
    "InterceptionCA",
    "ProxyFailure",
    "RecordingProxy",
    "is_browser_service",
]

MAX_HEAD_BYTES = 64 * 1024
MAX_REQUEST_BODY = 16 * 1024 * 1024
MAX_CONNECTIONS = 64
# Seconds an exchange still arriving when the capture ends may take to finish
# before it is cut and recorded as it stands.
CLOSE_GRACE = 2.0
# Failures and blocked URLs kept in memory for the manifest; past these only
# counted, so a page that requests forever cannot grow them without end.
MAX_FAILURES_KEPT = 5000
MAX_BLOCKED_KEPT = 1000
_IO_TIMEOUT = 30.0

# Hop-by-hop and proxy headers: they concern the browser's connection to us,
# not the request to the server. Host and Content-Length are set by the fetcher
# from the URL and the body.
_DROP_HEADERS = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        "transfer-encoding",
    }
)

# Endpoints of Chromium's own services. A page may well load from other
# Google hosts (fonts.googleapis.com, www.gstatic.com...), so this list names
# only what a browser calls for itself.
_SERVICE_HOSTS = frozenset(
    {
        "accounts.google.com",
        "android.clients.google.com",
        "update.googleapis.com",
        "safebrowsing.googleapis.com",
        "safebrowsingohttpgateway.googleapis.com",
        "sb-ssl.google.com",
        "optimizationguide-pa.googleapis.com",
        "content-autofill.googleapis.com",
        "clientservices.googleapis.com",
        "chromesyncpasswords-pa.googleapis.com",
        "componentupdater.pa.googleapis.com",
        "chrome.google.com",
        "chromewebstore.googleapis.com",
        "tools.google.com",
        "redirector.gvt1.com",
    }
)
_SERVICE_PATTERNS = (
    re.compile(r"clients\d*\.google\.com"),
    re.compile(r"(?:[a-z0-9-]+\.)*gvt1\.com"),
)


def is_browser_service(host: str) -> bool:
    """True when ``host`` is an endpoint of Chromium's own background services."""
    host = host.lower().rstrip(".")
    return host in _SERVICE_HOSTS or any(p.fullmatch(host) for p in _SERVICE_PATTERNS)


@attrs.frozen
class ProxyFailure:
    """A request the browser made that got no recorded response (answered 502)."""

    url: str
    method: str
    kind: str
    error: str


class InterceptionCA:
    """A certificate authority made in memory for one capture, never stored.

    One leaf key serves every host (its pin is what Chromium trusts); leaf
    certificates are made per host on first use.
    """

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = dt.datetime.now(dt.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        tag = os.urandom(6).hex()
        self._name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"evidence interception CA {tag}")]
        )
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        spki = self._leaf_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.spki_pin = base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context_for(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``host`` (ALPN http/1.1)."""
        with self._lock:
            ctx = self._contexts.get(host)
            if ctx is None:
                ctx = self._make_context(host)
                self._contexts[host] = ctx
            return ctx

    def _make_context(self, host: str) -> ssl.SSLContext:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = dt.datetime.now(dt.timezone.utc)
        name: x509.GeneralName
        try:
            name = x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            name = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64] or "-")]))
            .issuer_name(self._name)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([name]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        material = (
            cert.public_bytes(pem)
            + self._cert.public_bytes(pem)
            + self._leaf_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        # ssl can load a key only from a path: an anonymous memory file keeps
        # it off every disk, and it is closed as soon as it is loaded.
        fd = os.memfd_create("evidence-interception", os.MFD_CLOEXEC)
        try:
            os.write(fd, material)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return ctx


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that fetches and records everything a browser asks for.

    Args:
        fetcher: the one fetcher (limits, TLS trust, ``public_only``).
        recorder: the one recorder of this capture's WARC.
        deadline: absolute ``time.monotonic()`` after which nothing more is fetched.
        spool_dir: where response spool files live.
        ca: the interception CA (a new one when not given).
        role: the role of every exchange recorded (``browser``, ``media``).
        max_total_bytes: response body bytes over all exchanges at most: each
            exchange may use what is left when it starts (and is cut, marked
            ``WARC-Truncated: length``, at that); once nothing is left,
            requests are refused. None: only the fetcher's own limits.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        recorder: Recorder,
        *,
        deadline: float,
        spool_dir: str,
        ca: InterceptionCA | None = None,
        role: str = "browser",
        max_total_bytes: int | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._recorder = recorder
        self._deadline = deadline
        self._spool_dir = spool_dir
        self._role = role
        self._max_total_bytes = max_total_bytes
        self.ca = ca or InterceptionCA()
        # The first MAX_FAILURES_KEPT failures and MAX_BLOCKED_KEPT blocked
        # URLs; the totals count every one.
        self.failures: list[ProxyFailure] = []
        self.failures_total = 0
        self.blocked: list[str] = []
        self.blocked_total = 0
        # Body bytes received over every exchange, and whether the budget cut one.
        self.body_bytes = 0
        self.budget_hit = False
        # The first exchange lost to our own full disk (see raise_disk_failure).
        self.disk_failure: CaptureError | None = None
        self._lock = threading.Lock()
        # Held while an exchange is recorded; close() takes it, so nothing is
        # recorded once close() has returned.
        self._record_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = True
        self._closed = False
        # Set by close(): exchanges still arriving end at once and are recorded
        # with what came (marked), instead of running on to the deadline.
        self._cancel = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="evidence-proxy", daemon=True
        )
        self._accept_thread.start()

    @property
    def server(self) -> str:
        """The proxy address for the browser's ``--proxy-server``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self, wait: float = 5.0) -> None:
        """Stop accepting, cut every open connection, wait (bounded) for handlers.

        Exchanges still arriving get half of ``wait`` (at most
        :data:`CLOSE_GRACE` seconds) to finish; then they are ended and
        recorded with what came (``WARC-Truncated: time``), or, when no
        response had begun, listed as ``timeout`` failures. Handlers that
        finish within ``wait`` seconds record their exchange; after that
        nothing more is recorded.
        """
        with self._lock:
            self._accepting = False
            conns = list(self._conns)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        end = time.monotonic() + wait
        grace = time.monotonic() + min(wait / 2, CLOSE_GRACE)
        self._accept_thread.join(max(end - time.monotonic(), 0))
        for thread in list(self._threads):
            thread.join(max(grace - time.monotonic(), 0))
        self._cancel.set()
        for thread in list(self._threads):
            thread.join(max(end - time.monotonic(), 0))
        with self._record_lock:
            self._closed = True

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections -------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(timeout=_IO_TIMEOUT):
                conn.close()
                continue
            with self._lock:
                if not self._accepting:
                    self._slots.release()
                    conn.close()
                    return
                self._conns.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        stream: socket.socket = conn
        readers: list[typing.BinaryIO] = []
        try:
            conn.settimeout(_IO_TIMEOUT)
            reader = conn.makefile("rb")
            readers.append(reader)
            head = _read_head(reader)
            if head is None:
                return
            method, target, headers = head
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                if not host or not port.isdigit():
                    conn.sendall(_simple(400, "bad CONNECT target"))
                    return
                if is_browser_service(host.strip("[]")):
                    self._note_blocked(f"https://{target}/")
                    conn.sendall(_simple(403, "blocked: browser service"))
                    return
                conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                stream = self.ca.context_for(host.strip("[]")).wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.add(stream)
                reader = stream.makefile("rb")
                readers.append(reader)
                head = _read_head(reader)
                if head is None:
                    return
                method, path, headers = head
                authority = host if port == "443" else target
                url = f"https://{authority}{path if path.startswith('/') else '/' + path}"
            else:
                url = target
            self._forward(stream, reader, method, url, headers)
        except (OSError, ssl.SSLError, ValueError) as exc:
            logger.debug("proxy connection ended: %s", exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._conns.discard(stream)
            for r in readers:
                with contextlib.suppress(OSError):
                    r.close()
            for s in (stream, conn):
                with contextlib.suppress(OSError):
                    s.close()
            self._slots.release()

    def _forward(
        self,
        stream: socket.socket,
        reader: typing.BinaryIO,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            stream.sendall(_simple(400, "only http and https URLs are fetched"))
            return
        if is_browser_service(parts.hostname):
            self._note_blocked(url)
            stream.sendall(_simple(403, "blocked: browser service"))
            return
        lowered = {k.lower(): v for k, v in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower() or "upgrade" in lowered:
            self._fail(url, method, "other", "chunked request bodies and upgrades are not proxied")
            stream.sendall(_simple(501, "not supported by the recording proxy"))
            return
        body: bytes | None = None
        length = lowered.get("content-length")
        if length is not None:
            if not length.strip().isdigit() or int(length) > MAX_REQUEST_BODY:
                self._fail(url, method, "other", "request body too large or malformed")
                stream.sendall(_simple(413, "request body too large"))
                return
            body = reader.read(int(length))
        forward = [(k, v) for k, v in headers if k.lower() not in _DROP_HEADERS]
        if time.monotonic() >= self._deadline:
            self._fail(url, method, "timeout", "capture deadline reached before the request")
            stream.sendall(_simple(504, "capture deadline reached"))
            return
        budget = self._budget_left()
        if budget is not None and budget <= 0:
            self._fail(url, method, "other", "the media byte limit was reached before the request")
            stream.sendall(_simple(507, "byte limit of this capture reached"))
            return
        client = _ClientSink(stream)
        try:
            ex = self._fetcher.fetch(
                url,
                deadline=self._deadline,
                spool_dir=self._spool_dir,
                method=method,
                headers=forward,
                body=body,
                on_data=client.send,
                max_body_bytes=budget,
                cancel=self._cancel,
            )
        except CaptureError as exc:
            if exc.kind == "disk":
                with self._lock:
                    self.disk_failure = self.disk_failure or exc
            self._fail(url, method, exc.kind, exc.cause)
            if not client.started:
                stream.sendall(_simple(502, "upstream failed (recorded as a failure)"))
            return
        client.flush()
        with self._lock:
            self.body_bytes += ex.response_length - ex.header_length
            if budget is not None and ex.truncated == "length":
                self.budget_hit = True
        # Recorded even when the client went away: the server sent it. Not
        # once the proxy is closed: the capture is being sealed, and a record
        # written now would be missing from the manifest.
        with self._record_lock:
            if self._closed:
                ex.response_file.close()
                self._fail(url, method, "timeout", "arrived after the capture ended")
            else:
                self._recorder.record(ex, self._role)

    def raise_disk_failure(self, url: str) -> None:
        """Raise a ``disk`` CaptureError for ``url`` (the capture's page) when an
        exchange was lost to our own full disk. As in a capture without a
        browser, that fails the whole capture: the client had already been
        given bytes the package could not keep."""
        failure = self.disk_failure
        if failure is not None:
            raise CaptureError(url, failure.cause, "disk") from failure

    def _budget_left(self) -> int | None:
        if self._max_total_bytes is None:
            return None
        with self._lock:
            return self._max_total_bytes - self.body_bytes

    def _fail(self, url: str, method: str, kind: str, error: str) -> None:
        with self._lock:
            self.failures_total += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append(ProxyFailure(url=url, method=method, kind=kind, error=error))

    def _note_blocked(self, url: str) -> None:
        with self._lock:
            self.blocked_total += 1
            if len(self.blocked) < MAX_BLOCKED_KEPT:
                self.blocked.append(url)


class _ClientSink:
    """Sends recorded bytes on to the client as they arrive.

    A client that went away stops receiving, not recording: the server sent
    the bytes, so they are evidence all the same.

    The proxy answers one request per connection, so the response head the
    client gets says ``Connection: close`` whatever the server said. An
    HTTP/1.1 server's head says nothing about closing; the client then sent
    its next request on this connection while the exchange was still being
    recorded, and got a reset when it closed (yt-dlp gave up on the stream).
    Only what is sent on changes: the record holds the server's bytes.
    """

    def __init__(self, stream: socket.socket) -> None:
        self._stream = stream
        self.started = False
        self.gone = False
        self._head = b""
        self._head_done = False

    def send(self, data: bytes) -> None:
        if not self._head_done:
            data = self._rewrite_head(data)
            if not data:
                return
        self.started = True
        if self.gone:
            return
        try:
            self._stream.sendall(data)
        except (OSError, ValueError):
            self.gone = True

    def _rewrite_head(self, data: bytes) -> bytes:
        """Hold bytes until the final response head is whole; return what to send."""
        # Here, not at the top: the batch scheduler imports this module for its
        # constants and must not load the HTTP stack (requests, urllib3).
        from evidence.capturing.fetcher import interim_status

        self._head += data
        out = b""
        while True:
            end = _HEAD_END.search(self._head)
            if end is None:
                if len(self._head) <= _MAX_HELD_HEAD:
                    return out
                # Over the most Chromium takes (256 KiB; http.client takes up
                # to 100 lines of 64 KiB): passed on as it is.
                self._head_done = True
                out, self._head = out + self._head, b""
                return out
            head, rest = self._head[: end.end()], self._head[end.end() :]
            if interim_status(head.split(b"\n", 1)[0]) is not None:
                # 103 Early Hints and the like, exactly as the fetcher reads
                # them: the final head follows.
                out, self._head = out + head, rest
                continue
            self._head_done = True
            self._head = b""
            if _BARE_CR.search(head):
                # Python's header parser (the record's) and Chromium's both
                # end a header line at a bare CR, which the rewrite does not:
                # it could drop a header hidden behind a Connection header.
                # Passed on as the server sent it.
                return out + head + rest
            return out + _closing(head) + rest

    def flush(self) -> None:
        """Pass on what is still held: a head that ended with the connection
        (recorded as it is, so the client gets it as it is too)."""
        if not self._head_done and self._head:
            self._head_done = True
            held, self._head = self._head, b""
            self.send(held)


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_MAX_HELD_HEAD = 256 * 1024
_HOP_BY_HOP = (b"connection", b"keep-alive", b"proxy-connection")


def _closing(head: bytes) -> bytes:
    """``head`` without its connection headers, saying ``Connection: close``."""
    lines = head.rstrip(b"\r\n").split(b"\n")
    kept = [lines[0].rstrip(b"\r")]
    dropping = False
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the line before
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() in _HOP_BY_HOP
        if not dropping:
            kept.append(line)
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _read_head(reader: typing.BinaryIO) -> tuple[str, str, list[tuple[str, str]]] | None:
    """Request line and headers, bounded; None when the peer closed first."""
    line = reader.readline(MAX_HEAD_BYTES + 1)
    if not line:
        return None
    total = len(line)
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x request line")
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(MAX_HEAD_BYTES + 1)
        total += len(raw)
        if total > MAX_HEAD_BYTES or not raw:
            raise ValueError("request head too large or cut short")
        text = raw.decode("latin-1").rstrip("\r\n")
        if not text:
            break
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError("malformed request header")
        headers.append((name, value.strip()))
    return parts[0], parts[1], headers


def _simple(status: int, text: str) -> bytes:
    reasons = {
        400: "Bad Request",
        403: "Forbidden",
        413: "Content Too Large",
        501: "Not Implemented",
        507: "Insufficient Storage",
        502: "Bad Gateway",
        504: "Gateway Timeout",
    }
    body = (text + "\n").encode("ascii", "replace")
    return (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii") + body


class CountingFetcher:
    """The capture's fetcher, refusing every request past ``limit`` (the proxy lists
    them as failures), so a page or a playlist that requests forever cannot grow
    the capture (each exchange adds about 1.2 kB to the manifest)."""

    def __init__(self, fetcher: Fetcher, limit: int, capped: threading.Event, what: str) -> None:
        self._fetcher = fetcher
        self._limit = limit
        self._lock = threading.Lock()
        self._capped = capped
        self._what = what
        self.used = 0
        self.refused = 0

    def fetch(self, url: str, **kwargs: typing.Any) -> Exchange:
        with self._lock:
            if self.used >= self._limit:
                self.refused += 1
                self._capped.set()
                raise CaptureError(
                    url, f"request limit reached ({self._limit} per {self._what})", "limit"
                )
            self.used += 1
        return self._fetcher.fetch(url, **kwargs)

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self._fetcher, name)

"""Misbehaving and hostile servers: every capture ends within its limits, clearly."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from evidence.capturing import CaptureOptions, capture
from evidence.capturing.fetcher import is_public_address
from evidence.errors import CaptureError
from evidence.manifest import Manifest
from evidence.package import MANIFEST_PATH
from evidence.verifying import Outcome, verify

from servers import LocalCA, fixed_response

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
FAST = CaptureOptions(deadline=3.0, read_timeout=1.0, connect_timeout=2.0)


def manifest(pkg: Path) -> Manifest:
    return Manifest.from_bytes((pkg / MANIFEST_PATH).read_bytes())


def response_block(pkg: Path) -> tuple[dict[str, str], bytes]:
    data = (pkg / "data/capture.warc.gz").read_bytes()
    m = manifest(pkg)
    rec = next(r for r in m.records if r["type"] == "response")
    text = zlib.decompress(data[rec["offset"] : rec["offset"] + rec["length"]], 31)
    head, _, rest = text.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return headers, rest[: int(headers["Content-Length"])]


def bounded(fn, limit_mib: float = 40.0):
    """Run fn, returning (result or exception, seconds, peak Python heap MiB)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        result = fn()
    except Exception as exc:  # the caller asserts on the exception
        result = exc
    seconds = time.monotonic() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak / 2**20 < limit_mib, f"peak Python memory {peak / 2**20:.1f} MiB"
    return result, seconds


def endless(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    block = b"z" * 65536
    while True:
        conn.sendall(block)


def test_endless_body_is_cut_at_the_size_limit(raw_server, tmp_path):
    server = raw_server(endless)
    opts = CaptureOptions(max_response_bytes=20 * 2**20, deadline=30)
    result, seconds = bounded(lambda: capture(server.url(), out=tmp_path, options=opts))
    pkg = Path(result.path)
    headers, _block = response_block(pkg)
    assert headers["WARC-Truncated"] == "length"
    assert manifest(pkg).to_json()["capture"]["limits_hit"][0]["limit"] == "max_response_bytes"
    assert seconds < 30


def test_endless_body_is_cut_at_the_deadline(raw_server, tmp_path):
    server = raw_server(endless)
    opts = CaptureOptions(deadline=2.0, read_timeout=1.0)
    result, seconds = bounded(lambda: capture(server.url(), out=tmp_path, options=opts))
    assert seconds < 6
    headers, _ = response_block(Path(result.path))
    assert headers["WARC-Truncated"] in ("time", "length")


def huge_header(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\nbody")


def never_ending_headers(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for i in range(100000):
        conn.sendall(b"X-%d: y\r\n" % i)
        time.sleep(0.001)


@pytest.mark.parametrize(
    ("responder", "cause"),
    [
        (huge_header, "header line too long"),
        (never_ending_headers, "invalid HTTP response"),
        (fixed_response(b"HTTP/1.1 ok fine\r\n\r\n"), "bad status line"),
        (fixed_response(b"NONSENSE\r\n\r\n"), "bad status line"),
        (fixed_response(b"<html>HTTP/0.9 style: no status line at all</html>"), "bad status line"),
        (fixed_response(b""), ("without sending a response", "connection reset")),
    ],
    ids=["1MB-header-line", "too-many-headers", "bad-status", "garbage-status", "http09", "empty"],
)
def test_no_valid_response_gives_a_clear_error(raw_server, tmp_path, responder, cause):
    server = raw_server(responder)
    out = tmp_path / "out"
    exc, seconds = bounded(lambda: capture(server.url(), out=out, options=FAST))
    assert isinstance(exc, CaptureError), exc
    causes = cause if isinstance(cause, tuple) else (cause,)
    assert any(c in exc.cause for c in causes), exc.cause
    assert seconds < 10
    assert not out.exists() or list(out.iterdir()) == []


def reset_mid_body(conn, _request):
    import socket
    import struct

    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


@pytest.mark.parametrize(
    ("raw", "truncated", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", "disconnect", b"short"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef-extra", None, b"abc"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n",
            "disconnect",
            b"zz\r\n",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "disconnect", b"5\r\nab"),
    ],
    ids=["length-longer-than-body", "length-shorter-than-body", "bad-chunk-size", "chunk-cut"],
)
def test_framing_errors_keep_what_arrived(raw_server, tmp_path, raw, truncated, body):
    server = raw_server(fixed_response(raw))
    pkg = Path(capture(server.url(), out=tmp_path, options=FAST).path)
    headers, block = response_block(pkg)
    assert headers.get("WARC-Truncated") == truncated
    assert block.endswith(body)
    assert raw.startswith(block)  # never more than the server sent, byte for byte
    assert verify(pkg, trust=[]).outcome is Outcome.UNTRUSTED


def test_connection_reset_mid_body(raw_server, tmp_path):
    server = raw_server(reset_mid_body)
    pkg = Path(capture(server.url(), out=tmp_path, options=FAST).path)
    headers, block = response_block(pkg)
    assert headers["WARC-Truncated"] == "disconnect"
    assert block.endswith(b"partial")


def test_non_utf8_and_folded_headers_are_stored_byte_exact(raw_server, tmp_path):
    raw = (
        b"HTTP/1.1 200 OK\r\nX-Bytes: \xff\xfe\x80 raw\r\nX-Folded: first\r\n"
        b"  continued line\r\n\tand tab\r\nContent-Length: 2\r\n\r\nok"
    )
    server = raw_server(fixed_response(raw))
    pkg = Path(capture(server.url(), out=tmp_path, options=FAST).path)
    _, block = response_block(pkg)
    assert block == raw


def test_redirect_to_private_address_refused_under_public_only(site, tmp_path):
    # The first URL is itself on loopback, so it is refused before connecting.
    s = site({"/": (200, [], b"x")})
    out = tmp_path / "out"
    proc = subprocess.run(
        [*EVIDENCE, "capture", s.url("/"), "--public-only", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "not a public address" in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/",
        "http://2130706433:{port}/",  # decimal spelling of 127.0.0.1
        "http://0x7f000001:{port}/",  # hex
        "http://0177.0.0.1:{port}/",  # octal
        "http://127.1:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_public_only_refuses_loopback_spellings(site, tmp_path, url):
    s = site({"/": (200, [], b"x")})
    target = url.format(port=s.port)
    with pytest.raises(CaptureError) as info:
        capture(target, out=tmp_path, options=CaptureOptions(public_only=True))
    assert "not a public address" in info.value.cause


def test_public_only_refusal_mid_capture_is_recorded(site, tmp_path, monkeypatch):
    """Refusals after the first URL are recorded and the capture goes on.

    No public server exists here, so for this test 127.0.0.1 counts as public
    and 127.0.0.2 does not; everything else (sockets, the refusal path, the
    manifest) is real.
    """
    from evidence.capturing import fetcher

    monkeypatch.setattr(fetcher, "is_public_address", lambda address: address == "127.0.0.1")
    s = site({})
    s2 = f"http://127.0.0.2:{s.port}"
    s = site(
        {
            "/page": (
                200,
                [("Content-Type", "text/html")],
                f'<img src="{s2}/private.png"><img src="/ok.png">'.encode(),
            ),
            "/ok.png": (200, [("Content-Type", "image/png")], b"png"),
            "/hop": (302, [("Location", f"{s2}/internal")], b""),
        }
    )
    opts = CaptureOptions(public_only=True)
    pkg = Path(capture(s.url("/page"), out=tmp_path, options=opts).path)
    m = manifest(pkg)
    assert m.to_json()["capture"]["refused"] == [
        {
            "url": f"{s2}/private.png",
            "reason": "destination 127.0.0.2 is not a public address (refused by --public-only)",
        }
    ]
    assert s.url("/ok.png") in {e["url"] for e in m.to_json()["exchanges"]}
    assert m.to_json()["options"]["public_only"] is True
    pkg = Path(capture(s.url("/hop"), out=tmp_path, options=opts).path)
    m = manifest(pkg)
    assert "not a public address" in m.to_json()["capture"]["redirects"][0]["error"]
    assert m.to_json()["capture"]["refused"][0]["url"] == f"{s2}/internal"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("2002:0808:0808::", True),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize("kind", ["expired", "wrong-host", "self-signed"])
def test_bad_tls_certificates(site, tmp_path, kind):
    ca = LocalCA(
        tmp_path,
        expired=kind == "expired",
        hostname="other.example" if kind == "wrong-host" else "localhost",
    )
    ctx = ca.server_context()
    s = site({"/": (200, [], b"x")}, ctx)
    opts = CaptureOptions(ca_bundle=None if kind == "self-signed" else str(ca.root_pem), deadline=5)
    out = tmp_path / "out"
    with pytest.raises(CaptureError) as info:
        capture(s.url("/", host="localhost"), out=out, options=opts)
    expected = {"expired": "expired", "wrong-host": "match", "self-signed": "certificate"}[kind]
    assert "TLS certificate verification failed" in info.value.cause
    assert expected in info.value.cause.lower()
    assert not out.exists() or list(out.iterdir()) == []


# --- decompression bombs: decoding for requisites is capped -------------------


def _bomb(layers: int) -> bytes:
    data = b"<html>" + b" " * (64 * 2**20) + b"<img src='/x.png'></html>"
    for _ in range(layers):
        data = gzip.compress(data, compresslevel=9)
    return data


@pytest.mark.parametrize(("encoding", "layers"), [("gzip", 1), ("gzip, gzip", 2), ("deflate", 1)])
def test_decompression_bomb_is_capped(raw_server, tmp_path, encoding, layers):
    if encoding == "deflate":
        body = zlib.compress(b"<html>" + b" " * (64 * 2**20) + b"</html>", 9)
    else:
        body = _bomb(layers)

    def respond(conn, request):
        if b"GET / " in request:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: "
                + encoding.encode()
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
            )
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    server = raw_server(respond)
    result, _ = bounded(lambda: capture(server.url(), out=tmp_path), limit_mib=60)
    pkg = Path(result.path)
    _, block = response_block(pkg)
    assert block.endswith(body)  # the raw bytes are archived as sent
    assert any("cut at" in w for w in result.warnings)


def test_hostile_css_and_title_do_not_stall_the_capture(site, tmp_path):
    # The review's case: 160 KB of "url(" took 81 s to parse, past any deadline.
    hostile_css = b"url(" * 40000
    page = (
        b"<html><head><title>" + b"< " * 200000 + b"</title>"
        b"<link rel=stylesheet href=/s.css><style>" + hostile_css + b"</style></head></html>"
    )
    s = site(
        {
            "/": (200, [("Content-Type", "text/html")], page),
            "/s.css": (200, [("Content-Type", "text/css")], hostile_css),
        }
    )
    opts = CaptureOptions(deadline=10.0, read_timeout=2.0)
    result, seconds = bounded(lambda: capture(s.url("/"), out=tmp_path, options=opts), 200)
    assert not isinstance(result, Exception), result
    assert seconds < 20
    assert s.url("/s.css") in {r["target_uri"] for r in manifest(Path(result.path)).records}

"""Capturing through a proxy, and never contacting anything else (issue 16, operator safety).

Real proxies (tests/socks.py: SOCKS5 and HTTP CONNECT, on 127.0.0.1) resolve
``evidence-test.invalid`` through their own table, so a capture of that name
can only work through them; every server remembers who connected, so a test
can show that the target saw nothing but the proxy.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import evidence
from evidence.capturing import CaptureOptions, capture
from evidence.capturing.upstream import ProxyURL
from evidence.errors import CaptureError, UsageError
from evidence.manifest import Manifest
from evidence.show import describe, summary
from evidence.verifying import verify

from browsers import have_chromium, records
from servers import LocalCA, RawServer, closed_port, fixed_response
from socks import TestProxy
from tsa import LocalTSA

EVIDENCE = [sys.executable, "-m", "evidence.cli"]


needs_chromium = pytest.mark.skipif(not have_chromium(), reason="no Chromium or Playwright")
NAME = "evidence-test.invalid"
PAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Odd:   spaced  \r\n"
    b"Content-Length: 23\r\nConnection: close\r\n\r\n<p>through a proxy</p>\n"
)


@pytest.fixture
def proxies():
    made: list[TestProxy] = []

    def make(kind: str, **kwargs) -> TestProxy:
        kwargs.setdefault("names", {NAME: "127.0.0.1"})
        p = TestProxy(kind, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def origin(raw_server):
    return raw_server(fixed_response(PAGE))


@pytest.fixture(scope="module")
def name_ca(tmp_path_factory):
    """A CA whose server certificate is for evidence-test.invalid."""
    return LocalCA(tmp_path_factory.mktemp("name-ca"), hostname=NAME)


def _manifest(package: Path) -> Manifest:
    return Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())


def _only_the_proxy_connected(server: RawServer, proxy: TestProxy) -> None:
    assert server.peers, "the server was reached"
    assert set(server.peers) <= set(proxy.outbound), "every connection came from the proxy"


def _every_byte(root: Path) -> bytes:
    """Every file under ``root``, gzip members expanded: where a secret could hide."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            raw = path.read_bytes()
            out.append(raw)
            if path.name.endswith(".gz"):
                out.append(gzip.decompress(raw))
    return b"\n".join(out)


# --- what a proxied package says ----------------------------------------------------


def test_a_name_only_the_proxy_knows_is_captured_only_through_socks5h(
    origin, proxies, tmp_path, signer
):
    proxy = proxies("socks5")
    url = origin.url("/", host=NAME)
    for options in (CaptureOptions(), CaptureOptions(proxy=f"socks5://127.0.0.1:{proxy.port}")):
        # Directly, and through socks5 (which resolves here), the name is unknown.
        with pytest.raises(CaptureError) as err:
            capture(url, out=tmp_path / "no", options=options)
        assert err.value.kind == "dns"
    assert origin.peers == [] and proxy.requests == []

    result = capture(
        url, out=tmp_path, options=CaptureOptions(proxy=proxy.url()), sign_with=[signer.key]
    )
    package = Path(result.path)
    assert result.status == 200
    assert [(r.host, r.port, r.address_type) for r in proxy.requests] == [
        (NAME, origin.port, "name")
    ], "the name went to the proxy, never resolved here"
    _only_the_proxy_connected(origin, proxy)

    recs = records(package)
    response = next(b for h, b in recs if h["WARC-Type"] == "response")
    request = next(b for h, b in recs if h["WARC-Type"] == "request")
    assert response == PAGE, "the bytes recorded are the bytes the server wrote"
    assert [request] == origin.requests, "and the request recorded is the one it received"
    assert not any("WARC-IP-Address" in h for h, _ in recs), "no server IP: none was seen"
    warcinfo = recs[0][1].decode()
    assert "proxy: socks5h\r\n" in warcinfo and "server-ip-observable: no\r\n" in warcinfo
    assert str(proxy.port) not in warcinfo, "the proxy's address is not recorded unless asked"

    m = _manifest(package)
    assert m.capture is not None and m.capture.network is not None
    assert m.capture.server_ip is None and m.capture.dns == {}
    assert all(e.server_ip is None and e.dns_answers is None for e in m.exchanges)
    assert m.capture.network.to_json() == {
        "proxy_scheme": "socks5h",
        "server_ip_observable": False,
        "names_resolved_by": "proxy",
    }
    assert m.options is not None and m.options["proxy"] == "socks5h"
    assert "proxy_address" not in m.options

    sentence = "captured through a socks5h proxy; server IP not observable"
    report = verify(package, trust=[signer.pub])
    assert report.subject is not None and sentence in (report.subject.network or "")
    assert f"Network:       {sentence}" in report.to_text()
    assert sentence in describe(summary(package))
    court = evidence.report(
        package, out=tmp_path / "report.html", trust=[signer.pub], record_custody=False
    )
    assert court.exit_code == 0
    assert sentence in (tmp_path / "report.html").read_text()


def test_socks5_resolves_here_records_the_answers_and_sends_an_address(
    raw_server, proxies, tmp_path
):
    origin = raw_server(fixed_response(PAGE))
    proxy = proxies("socks5")
    url = origin.url("/", host="localhost")  # /etc/hosts: no network lookup
    result = capture(
        url, out=tmp_path, options=CaptureOptions(proxy=f"socks5://127.0.0.1:{proxy.port}")
    )
    m = _manifest(Path(result.path))
    assert m.capture is not None and m.capture.network is not None
    assert m.capture.network.names_resolved_by == "local"
    assert "127.0.0.1" in m.capture.dns["localhost"]
    assert m.capture.server_ip is None
    # The proxy got an address, never the name.
    assert proxy.requests and all(r.address_type != "name" for r in proxy.requests)
    assert proxy.requests[-1].host == "127.0.0.1"
    _only_the_proxy_connected(origin, proxy)


def test_public_only_checks_socks5_answers_and_refuses_name_resolving_proxies(
    origin, proxies, tmp_path
):
    proxy = proxies("socks5")
    with pytest.raises(CaptureError) as err:
        capture(
            origin.url("/"),
            out=tmp_path,
            options=CaptureOptions(proxy=f"socks5://127.0.0.1:{proxy.port}", public_only=True),
        )
    assert err.value.kind == "refused-address"
    assert proxy.requests == [] and origin.peers == [], "refused before anything was sent"
    for scheme in ("socks5h", "http", "https"):
        with pytest.raises(UsageError, match="--public-only cannot be checked"):
            CaptureOptions(proxy=f"{scheme}://127.0.0.1:1080", public_only=True)


@pytest.mark.parametrize("kind", ["socks5h", "http", "https"])
def test_https_through_a_proxy_keeps_the_origins_chain_and_bytes(
    kind, proxies, name_ca, test_ca, tmp_path, signer
):
    origin = RawServer(fixed_response(PAGE), tls=name_ca.server_context())
    try:
        proxy = proxies(
            "socks5" if kind == "socks5h" else "connect",
            tls=test_ca.server_context() if kind == "https" else None,
        )
        # One bundle: the origin's root, and the https proxy's (127.0.0.1) root.
        bundle = tmp_path / "roots.pem"
        bundle.write_bytes(name_ca.root_pem.read_bytes() + test_ca.root_pem.read_bytes())
        result = capture(
            origin.url("/", host=NAME),
            out=tmp_path / "out",
            options=CaptureOptions(proxy=proxy.url(), ca_bundle=str(bundle)),
            sign_with=[signer.key],
        )
        package = Path(result.path)
        m = _manifest(package)
        assert m.capture is not None and m.capture.tls is not None
        tls = m.capture.tls
        assert tls.verified
        # The chain is the origin's own, as it presented it: TLS ran end to end.
        leaf = hashlib.sha256(name_ca.leaf.public_bytes(Encoding.DER)).hexdigest()
        assert tls.certificate_sha256 == leaf
        assert tls.certificates is not None
        assert [c.sha256 for c in tls.certificates] == [
            hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()
            for c in (name_ca.leaf, name_ca.inter)
        ]
        recs = records(package)
        assert next(b for h, b in recs if h["WARC-Type"] == "response") == PAGE
        assert m.capture.network is not None and m.capture.network.proxy_scheme == kind
        assert [r.host for r in proxy.requests] == [NAME]
        _only_the_proxy_connected(origin, proxy)
    finally:
        origin.close()


@pytest.mark.parametrize("kind", ["socks5", "connect"])
def test_credentials_work_and_never_appear_in_the_package_or_output(
    kind, origin, proxies, tmp_path
):
    user, password = "field-team", "s3cret-Pa55word"
    proxy = proxies(kind, credentials=(user, password))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *EVIDENCE,
            "capture",
            origin.url("/", host=NAME),
            "--proxy",
            proxy.url(user, password),
            "--record-proxy-address",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (proxy.requests[-1].user, proxy.requests[-1].password) == (user, password)
    package = Path(json.loads(proc.stdout)["packages"][0]["package"])
    everything = _every_byte(package)
    for secret in (password, user):
        assert secret.encode() not in everything
        assert secret not in proc.stdout + proc.stderr
    # Asked for, the address is recorded (host:port only).
    m = _manifest(package)
    assert m.capture is not None and m.capture.network is not None
    assert m.capture.network.proxy_address == f"127.0.0.1:{proxy.port}"
    shown = subprocess.run([*EVIDENCE, "show", str(package)], capture_output=True, text=True)
    assert f"at 127.0.0.1:{proxy.port}; server IP not observable" in shown.stdout
    assert password not in shown.stdout

    # Wrong or missing credentials: a clear error, and the target is never reached.
    peers = list(origin.peers)
    for url, cause in (
        (proxy.url(user, "wrong"), "rejected the user name or password"),
        (proxy.url(), "proxy requires authentication"),
    ):
        with pytest.raises(CaptureError, match=cause) as err:
            capture(origin.url("/", host=NAME), out=out, options=CaptureOptions(proxy=url))
        assert err.value.kind == "proxy"
        assert "wrong" not in str(err.value)
    assert origin.peers == peers
    assert repr(CaptureOptions(proxy=proxy.url(user, password))).count(password) == 0
    assert password not in repr(ProxyURL.parse(proxy.url(user, password)))


@pytest.mark.parametrize("scheme", ["socks5h", "socks5", "http", "https"])
def test_a_dead_proxy_is_a_clear_error_and_nothing_goes_direct(scheme, origin, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *EVIDENCE,
            "capture",
            origin.url("/"),
            "--proxy",
            f"{scheme}://127.0.0.1:{closed_port()}",
            "--json",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["packages"] == []
    assert doc["failures"][0]["kind"] == "proxy"
    assert "cannot connect to the proxy: Connection refused" in doc["failures"][0]["error"]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert origin.peers == [], "the target never saw a connection"
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("kind", ["socks5", "connect"])
@pytest.mark.parametrize(
    ("hostile", "cause"),
    [
        ("garbage", r"does not speak SOCKS5|invalid reply to CONNECT"),
        ("huge", r"invalid SOCKS5 reply|longer than 16384 bytes"),
        ("drip", r"did not complete the handshake within 1\.5 s"),
        ("silent", r"did not complete the handshake within 1\.5 s"),
        ("refuse", r"proxy refused the connection: (general failure|HTTP 403 Forbidden)"),
    ],
)
def test_a_hostile_proxy_is_a_clear_error_within_the_deadline(
    kind, hostile, cause, origin, proxies, tmp_path
):
    proxy = proxies(kind, hostile=hostile)
    url = proxy.url()
    started = time.monotonic()
    with pytest.raises(CaptureError, match=cause) as err:
        capture(
            origin.url("/"),
            out=tmp_path,
            options=CaptureOptions(proxy=url, connect_timeout=1.5, deadline=5),
        )
    assert time.monotonic() - started < 4
    assert err.value.kind == "proxy"
    assert origin.peers == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://127.0.0.1:21", "must start with socks5h://"),
        ("socks5h://127.0.0.1", "needs a port"),
        ("socks5h://127.0.0.1:9050/path", "must not have a path"),
        ("socks5h://:hunter2@127.0.0.1:9050", "has a password but no user name"),
        ("127.0.0.1:9050", "must start with socks5h://"),
    ],
)
def test_a_bad_proxy_url_is_a_usage_error_that_never_shows_a_password(value, message, tmp_path):
    for env, args in ((None, ["--proxy", value]), (value, [])):
        environ = {k: v for k, v in os.environ.items() if k != "EVIDENCE_PROXY"}
        if env is not None:
            environ["EVIDENCE_PROXY"] = env
        proc = subprocess.run(
            [*EVIDENCE, "capture", "http://127.0.0.1:9/", "--out", str(tmp_path), *args],
            capture_output=True,
            text=True,
            env=environ,
        )
        assert proc.returncode == 2
        assert message in proc.stderr
        assert ("EVIDENCE_PROXY:" if env else "--proxy:") in proc.stderr
        assert "hunter2" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_evidence_proxy_sets_the_default(origin, proxies, tmp_path):
    proxy = proxies("socks5")
    environ = {**os.environ, "EVIDENCE_PROXY": proxy.url()}
    proc = subprocess.run(
        [*EVIDENCE, "capture", origin.url("/", host=NAME), "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environ,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r.host for r in proxy.requests] == [NAME]
    _only_the_proxy_connected(origin, proxy)


@pytest.mark.parametrize("kind", ["socks5h", "https"])
def test_the_tsa_is_asked_through_the_proxy_too(kind, origin, proxies, test_ca, tmp_path):
    tsa = LocalTSA()
    try:
        tsa_port = int(tsa.url.rsplit(":", 1)[1].split("/", 1)[0])
        proxy = proxies(
            "socks5" if kind == "socks5h" else "connect",
            names={NAME: "127.0.0.1", "tsa.invalid": "127.0.0.1"},
            tls=test_ca.server_context() if kind == "https" else None,
        )
        # The https proxy's certificate is checked against --ca-bundle.
        options = CaptureOptions(proxy=proxy.url(), ca_bundle=str(test_ca.root_pem))
        result = capture(
            origin.url("/", host=NAME),
            out=tmp_path,
            options=options,
            tsa_urls=[f"http://tsa.invalid:{tsa_port}/tsa"],
            tsa_roots=[tsa.root],
        )
        assert tsa.requests == 1
        assert result.warnings == ()
        assert ("tsa.invalid", tsa_port) in [(r.host, r.port) for r in proxy.requests]
        assert list((Path(result.path) / "evidence" / "timestamps").glob("*.tsr"))
        # A TSA the proxy cannot reach costs the token, never a direct request.
        before = tsa.requests
        dead = capture(
            origin.url("/", host=NAME),
            out=tmp_path,
            options=options,
            tsa_urls=[f"http://127.0.0.2:{tsa_port}/tsa"],
        )
        assert tsa.requests == before
        assert any("proxy refused the connection" in w for w in dead.warnings)
    finally:
        tsa.server.shutdown()
        tsa.server.server_close()


def test_timestamp_and_ledger_checkpoint_reach_the_tsa_only_through_the_proxy(
    origin, proxies, tmp_path
):
    """`evidence timestamp --proxy` and `ledger checkpoint` (EVIDENCE_PROXY) also
    keep the operator's address from the TSA; a dead proxy is an error, never a
    direct request."""
    from evidence.keys import write_keypair

    tsa = LocalTSA()
    try:
        tsa_port = int(tsa.url.rsplit(":", 1)[1].split("/", 1)[0])
        tsa_url = f"http://tsa.invalid:{tsa_port}/tsa"
        proxy = proxies("socks5", names={"tsa.invalid": "127.0.0.1"})
        out = tmp_path / "archive"
        package = capture(origin.url("/"), out=out).path
        environ = {k: v for k, v in os.environ.items() if k != "EVIDENCE_PROXY"}

        def run(*args: str, env: dict[str, str] = environ) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*EVIDENCE, *args], capture_output=True, text=True, env=env)

        done = run("timestamp", package, "--tsa", tsa_url, "--proxy", proxy.url())
        assert done.returncode == 0, done.stderr
        assert tsa.requests == 1
        assert [(r.host, r.port) for r in proxy.requests] == [("tsa.invalid", tsa_port)]
        # The name is the proxy's to resolve: without it the TSA cannot be reached.
        assert run("timestamp", package, "--tsa", tsa_url).returncode != 0
        assert tsa.requests == 1

        key = tmp_path / "ledger.key"
        write_keypair(key, None)
        assert run("ledger", "init", str(out)).returncode == 0
        assert run("ledger", "add", str(out), package).returncode == 0
        with_env = {**environ, "EVIDENCE_PROXY": proxy.url()}
        done = run(
            "ledger", "checkpoint", str(out), "--key", str(key), "--tsa", tsa_url, env=with_env
        )
        assert done.returncode == 0, done.stderr
        assert tsa.requests == 2
        assert len(proxy.requests) == 2

        dead = {**environ, "EVIDENCE_PROXY": f"socks5h://127.0.0.1:{closed_port()}"}
        failed = run("timestamp", package, "--tsa", f"http://127.0.0.1:{tsa_port}/tsa", env=dead)
        assert failed.returncode != 0
        assert "proxy" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
        assert tsa.requests == 2
    finally:
        tsa.server.shutdown()
        tsa.server.server_close()


def test_a_forged_task_can_neither_set_nor_unset_the_workers_proxy():
    from evidence.queue import TaskRefusedError, check_task

    worker = CaptureOptions(proxy="socks5h://127.0.0.1:9050")
    task_id = "0b7a3f9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    for options in (
        {"proxy": "http://attacker.example:8080"},
        {"proxy": None},
        {"record_proxy_address": True},
    ):
        with pytest.raises(TaskRefusedError, match="not allowed"):
            check_task(task_id, ["https://example.org/", {"options": options}], worker)
    # public_only cannot be checked through socks5h: refused, never silently dropped.
    with pytest.raises(TaskRefusedError, match="--public-only cannot be checked"):
        check_task(task_id, ["https://example.org/", {"options": {"public_only": True}}], worker)
    task = ["https://example.org/", {"options": {"deadline": 5}}]
    _, kept, _, _ = check_task(task_id, task, worker)
    assert kept.proxy == worker.proxy


# --- nothing but the target -----------------------------------------------------------

_ADDRESS = re.compile(
    r"sin6?_port=htons\((\d+)\),.*?(?:inet_addr\(\"([^\"]+)\"\)|inet_pton\(AF_INET6, \"([^\"]+)\")"
)
_FD = re.compile(r"^(?:\d+ +)?(\w+)\(\d+<([A-Za-z0-9]+)(?::\[([^\]]*)\])?")


@attrs.define
class Trace:
    """What ``strace -f -yy`` saw the capture and every process it started do."""

    tcp: set[tuple[str, int]] = attrs.Factory(set)  # TCP connect() destinations
    udp: set[tuple[str, int]] = attrs.Factory(set)  # UDP connect() destinations
    udp_sends: list[str] = attrs.Factory(list)  # any datagram sent on an inet socket
    listening: set[int] = attrs.Factory(set)  # ports of our own loopback listeners


def _traced(args: list[str], tmp_path: Path, env: dict[str, str] | None = None):
    """Run the CLI under strace, following every process it starts (Chromium too)."""
    trace_file = tmp_path / "network.trace"
    proc = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-yy",
            "-e",
            "trace=connect,getsockname,sendto,sendmsg,sendmmsg,write,writev",
            "-o",
            str(trace_file),
            *EVIDENCE,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    trace = Trace()
    for line in trace_file.read_text(errors="replace").splitlines():
        fd = _FD.match(line)
        call, proto = (fd.group(1), fd.group(2)) if fd else ("", "")
        if call == "connect" and proto in ("TCP", "TCPv6", "UDP", "UDPv6"):
            match = _ADDRESS.search(line)
            assert match, f"an inet connect this test cannot read: {line}"
            dest = (match.group(2) or match.group(3), int(match.group(1)))
            (trace.tcp if proto.startswith("TCP") else trace.udp).add(dest)
        elif call == "connect":
            assert "AF_INET" not in line, f"an inet connect on an unknown socket: {line}"
        elif call.startswith(("send", "write")) and proto.startswith("UDP"):
            trace.udp_sends.append(line)
        elif call == "getsockname" and proto.startswith("TCP") and "->" not in (fd.group(3) or ""):
            trace.listening.add(int((fd.group(3) or ":0").rsplit(":", 1)[1]))
    return proc, trace


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


@needs_strace
def test_a_capture_connects_to_nothing_but_the_target(origin, tmp_path):
    proc, trace = _traced(["capture", origin.url("/"), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert trace.tcp == {("127.0.0.1", origin.port)}
    assert trace.udp == set() and trace.udp_sends == [], "no DNS, no lookup of any kind"


@needs_strace
def test_with_a_proxy_every_connection_goes_to_the_proxy(origin, proxies, tmp_path):
    proxy = proxies("socks5")
    tsa = LocalTSA()
    try:
        tsa_port = int(tsa.url.rsplit(":", 1)[1].split("/", 1)[0])
        proxy.names["tsa.invalid"] = "127.0.0.1"
        proc, trace = _traced(
            [
                "capture",
                origin.url("/", host=NAME),
                "--proxy",
                proxy.url(),
                "--tsa",
                f"http://tsa.invalid:{tsa_port}/tsa",
                "--out",
                str(tmp_path / "out"),
            ],
            tmp_path,
        )
    finally:
        tsa.server.shutdown()
        tsa.server.server_close()
    assert proc.returncode == 0, proc.stderr
    assert trace.tcp == {("127.0.0.1", proxy.port)}
    assert trace.udp == set() and trace.udp_sends == []
    assert tsa.requests == 1


def _webrtc_page(stun_port: int) -> bytes:
    """A page whose script asks a STUN server (ours, on loopback) for its public address."""
    html = (
        "<html><head><title>rtc</title></head><body><p>WebRTC</p><script>"
        f"const stun = 'stun:127.0.0.1:{stun_port}';"
        "const pc = new RTCPeerConnection({iceServers: [{urls: stun}]});"
        "pc.createDataChannel('x');"
        "pc.createOffer().then(o => pc.setLocalDescription(o));"
        "</script></body></html>"
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"Content-Length: {len(html)}\r\n\r\n".encode()
        + html
    )


@pytest.fixture
def stun_listener():
    """A UDP socket on 127.0.0.1 that counts the datagrams it receives."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _datagrams(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recvfrom(2048)
        except TimeoutError:
            return count
        count += 1


def _browser_checks(trace: Trace, allowed_ports: set[int]) -> None:
    # Chromium talks only to our per-capture recording proxy (a loopback
    # listener of the capture itself); the fetcher only to allowed_ports.
    assert trace.listening, "the recording proxy's listener was seen"
    assert trace.tcp, "connections were seen"
    for host, port in trace.tcp:
        assert host == "127.0.0.1" and port in allowed_ports | trace.listening, (host, port)
    # Chromium asks the kernel which local address would reach an IPv6
    # address (connect() on a UDP socket, which sends nothing); a datagram
    # would be a lookup or a probe, and none may leave.
    assert trace.udp_sends == [], trace.udp_sends[:3]


@needs_strace
@needs_chromium
def test_a_browser_capture_through_socks5h_talks_only_to_the_proxy(
    raw_server, proxies, stun_listener, tmp_path
):
    # The page runs WebRTC, which would send UDP straight to the STUN server
    # it names (past every proxy, showing the operator's address).
    page = _webrtc_page(stun_listener.getsockname()[1])
    origin = raw_server(fixed_response(page))
    proxy = proxies("socks5")
    out = tmp_path / "out"
    proc, trace = _traced(
        [
            "capture",
            origin.url("/", host=NAME),
            "--browser",
            "--wait",
            "2",
            "--proxy",
            proxy.url(),
            "--json",
            "--out",
            str(out),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    _browser_checks(trace, {proxy.port})
    assert {(r.host, r.port) for r in proxy.requests} == {(NAME, origin.port)}
    _only_the_proxy_connected(origin, proxy)
    package = Path(json.loads(proc.stdout)["packages"][0]["package"])
    recs = records(package)
    got = [b for h, b in recs if h.get("WARC-Target-URI") == origin.url("/", host=NAME)]
    assert got[-1] == page, "the browser's page was fetched upstream through SOCKS, exactly"
    assert _datagrams(stun_listener) == 0, "WebRTC sent nothing around the proxy"
    assert not any("WARC-IP-Address" in h for h, _ in recs)
    m = _manifest(package)
    assert m.capture is not None and m.capture.browser is not None
    assert m.capture.network is not None and m.capture.network.proxy_scheme == "socks5h"


@pytest.mark.slow
@needs_strace
@needs_chromium
def test_a_browser_capture_connects_to_nothing_but_the_target(raw_server, stun_listener, tmp_path):
    origin = raw_server(fixed_response(_webrtc_page(stun_listener.getsockname()[1])))
    proc, trace = _traced(
        ["capture", origin.url("/"), "--browser", "--wait", "2", "--out", str(tmp_path / "out")],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    _browser_checks(trace, {origin.port})
    assert ("127.0.0.1", origin.port) in trace.tcp
    assert _datagrams(stun_listener) == 0


def test_a_batch_goes_through_the_proxy_too(raw_server, proxies, tmp_path):
    origin = raw_server(fixed_response(PAGE))
    proxy = proxies("connect")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{origin.url(f'/{i}', host=NAME)}\n" for i in range(3)))
    proc = subprocess.run(
        [*EVIDENCE, "batch", str(lst), "--proxy", proxy.url(), "--json", "--out", tmp_path / "o"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["captured"] == 3
    assert sorted(r.port for r in proxy.requests) == [origin.port] * 3
    _only_the_proxy_connected(origin, proxy)
    for doc in lines[:-1]:
        m = _manifest(Path(doc["package"]))
        assert m.capture is not None and m.capture.network is not None
        assert m.capture.network.proxy_scheme == "http"


def test_an_empty_evidence_proxy_and_an_address_without_a_proxy_are_usage_errors(tmp_path):
    environ = {**os.environ, "EVIDENCE_PROXY": " "}
    proc = subprocess.run(
        [*EVIDENCE, "capture", "http://127.0.0.1:9/", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=environ,
    )
    assert proc.returncode == 2
    assert "EVIDENCE_PROXY is set but empty; unset it to capture without a proxy" in proc.stderr
    environ.pop("EVIDENCE_PROXY")
    proc = subprocess.run(
        [*EVIDENCE, "capture", "http://127.0.0.1:9/", "--record-proxy-address", "--out", "o"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "--record-proxy-address needs --proxy" in proc.stderr
    assert not (tmp_path / "o").exists()

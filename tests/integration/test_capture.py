"""Capture end to end against real local servers: bytes on the wire, redirects, TLS, limits."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from evidence.capturing import CaptureOptions, capture
from evidence.cli import main
from evidence.errors import CaptureError
from evidence.manifest import Manifest
from evidence.show import describe, summary
from evidence.verifying import Outcome, verify

from browsers import records as warc_records
from servers import closed_port, fixed_response

EVIDENCE = [sys.executable, "-m", "evidence.cli"]


def records(package: Path) -> list[tuple[str, dict[str, str], bytes]]:
    """(type, headers, block) per record, read with zlib and plain parsing, not our reader."""
    return [(headers["WARC-Type"], headers, block) for headers, block in warc_records(package)]


def warcio_check(package: Path) -> None:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "warcio"),
            "check",
            "-v",
            str(package / "data" / "capture.warc.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "digest pass" in proc.stdout


def manifest(package: Path) -> Manifest:
    return Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())


def visible(out: Path) -> list[str]:
    return sorted(os.listdir(out)) if out.exists() else []


# Hand-written responses that a re-serialising recorder would alter.
ODD_RESPONSES = {
    "odd-whitespace": (
        b"HTTP/1.1 200  OK \r\nX-Spaced:    lots   of   space  \r\nContent-Length: 5\r\n"
        b"Content-Type:text/plain\r\n\r\nhello"
    ),
    "latin1-and-repeated": (
        b"HTTP/1.1 200 OK\r\nX-Caf\xe9: caf\xe9 cr\xe8me\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"set-cookie: c=3\r\nZ-Last: 1\r\nA-First: 2\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "chunked-gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(gzip.compress(b"<p>compressed</p>", mtime=0))
        + gzip.compress(b"<p>compressed</p>", mtime=0)
        + b"\r\n4;name=value\r\nmore\r\n0\r\nX-Trailer: yes\r\n\r\n"
    ),
    "no-length-close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nread until close",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok",
}


@pytest.mark.parametrize("name", sorted(ODD_RESPONSES))
def test_response_block_is_byte_identical(raw_server, tmp_path, name):
    raw = ODD_RESPONSES[name]
    server = raw_server(fixed_response(raw))
    result = capture(server.url("/page?q=1"), out=tmp_path)
    package = Path(result.path)
    recs = records(package)
    types = [r[0] for r in recs]
    assert types == ["warcinfo", "request", "response"]
    assert recs[2][2] == raw, "the response block must be exactly what the server sent"
    assert recs[1][2] == server.requests[0], "the request block must be exactly what we sent"
    req_h, resp_h = recs[1][1], recs[2][1]
    assert req_h["WARC-Concurrent-To"] == resp_h["WARC-Record-ID"]
    assert resp_h["WARC-Concurrent-To"] == req_h["WARC-Record-ID"]
    assert resp_h["WARC-IP-Address"] == "127.0.0.1"
    assert resp_h["WARC-Block-Digest"].startswith("sha256:")
    assert resp_h["WARC-Payload-Digest"].startswith("sha256:")
    assert resp_h["WARC-Date"] == req_h["WARC-Date"]
    warcio_check(package)
    assert verify(package, trust=[]).outcome is Outcome.UNTRUSTED


def test_warc_is_one_gzip_member_per_record(raw_server, tmp_path):
    server = raw_server(fixed_response(ODD_RESPONSES["odd-whitespace"]))
    package = Path(capture(server.url(), out=tmp_path).path)
    data = (package / "data" / "capture.warc.gz").read_bytes()
    m = manifest(package)
    offsets = [r["offset"] for r in m.records]
    assert offsets[0] == 0
    for rec in m.records:
        member = data[rec["offset"] : rec["offset"] + rec["length"]]
        assert member[:2] == b"\x1f\x8b"
        text = gzip.decompress(member)
        assert text.startswith(b"WARC/1.1\r\n")
        assert rec["id"].encode() in text
    assert sum(r["length"] for r in m.records) == len(data)


def test_redirect_chain_every_hop_recorded(site, tmp_path):
    routes = {
        "/a": (301, [("Location", "/b")], b""),
        "/b": (302, [("Location", "http://127.0.0.1:{port}/c")], b""),
        "/c": (307, [("Location", "d")], b""),
        "/d": (200, [("Content-Type", "text/html")], b"<p>final</p>"),
    }
    s = site(routes)
    routes["/b"] = (302, [("Location", f"http://127.0.0.1:{s.port}/c")], b"")
    result = capture(s.url("/a"), out=tmp_path)
    assert result.status == 200
    assert result.final_url == s.url("/d")
    m = manifest(Path(result.path))
    chain = m.to_json()["capture"]["redirects"]
    assert [h["status"] for h in chain] == [301, 302, 307]
    assert [h["location"] for h in chain] == [s.url("/b"), s.url("/c"), s.url("/d")]
    assert [e["url"] for e in m.to_json()["exchanges"]] == [
        s.url(p) for p in ("/a", "/b", "/c", "/d")
    ]
    assert [r[0] for r in records(Path(result.path))] == ["warcinfo"] + ["request", "response"] * 4
    warcio_check(Path(result.path))


def test_redirect_loop_stops_at_max_redirects(site, tmp_path):
    s = site({"/loop": (302, [("Location", "/loop")], b"")})
    result = capture(s.url("/loop"), out=tmp_path, options=CaptureOptions(max_redirects=3))
    m = manifest(Path(result.path))
    assert len(m.to_json()["exchanges"]) == 4
    assert m.to_json()["capture"]["limits_hit"][0]["limit"] == "max_redirects"
    assert any("redirects" in w for w in result.warnings)


def test_redirect_to_file_scheme_is_not_followed(site, tmp_path):
    s = site({"/x": (302, [("Location", "file:///etc/passwd")], b"")})
    result = capture(s.url("/x"), out=tmp_path)
    m = manifest(Path(result.path))
    assert len(m.to_json()["exchanges"]) == 1
    assert "unsupported scheme" in m.to_json()["capture"]["redirects"][0]["error"]
    assert any("not followed" in w for w in result.warnings)


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_is_still_evidence(site, tmp_path, status):
    s = site({})
    if status == 500:
        s = site({"/": (500, [("Content-Type", "text/plain")], b"boom")})
    proc = subprocess.run(
        [*EVIDENCE, "capture", s.url("/"), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    package = Path(proc.stdout.strip())
    assert package.is_dir()
    assert manifest(package).to_json()["capture"]["status"] == status
    assert f"HTTP {status}" in proc.stderr


def test_https_with_private_ca(site, tmp_path, test_ca):
    s = site(
        {"/": (200, [("Content-Type", "text/html")], b"<p>secure</p>")}, test_ca.server_context()
    )
    url = s.url("/", host="localhost")
    opts = CaptureOptions(ca_bundle=str(test_ca.root_pem))
    result = capture(url, out=tmp_path, options=opts)
    m = manifest(Path(result.path))
    tls = m.to_json()["capture"]["tls"]
    assert tls["verified"] is True
    assert tls["protocol"].startswith("TLS")
    leaf_der = test_ca.leaf.public_bytes(Encoding.DER)
    assert tls["certificate_sha256"] == hashlib.sha256(leaf_der).hexdigest()
    assert m.to_json()["options"]["ca_bundle"] == "custom"
    warcio_check(Path(result.path))


def test_https_untrusted_certificate_fails_without_package(site, tmp_path, test_ca):
    s = site({"/": (200, [], b"x")}, test_ca.server_context())
    out = tmp_path / "out"
    with pytest.raises(CaptureError) as info:
        capture(s.url("/", host="localhost"), out=out)
    assert "certificate verification failed" in info.value.cause
    assert visible(out) == []


def test_insecure_is_recorded(site, tmp_path, test_ca):
    s = site({"/": (200, [], b"x")}, test_ca.server_context())
    proc = subprocess.run(
        [*EVIDENCE, "capture", s.url("/", host="localhost"), "--insecure", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verification is OFF" in proc.stderr
    m = manifest(Path(proc.stdout.strip()))
    assert m.to_json()["options"]["tls_verification"] is False
    assert m.to_json()["capture"]["tls"]["verified"] is False


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("file:///etc/passwd", "unsupported scheme"),
        ("ftp://127.0.0.1/x", "unsupported scheme"),
        ("http://", "no host"),
        ("not a url", "invalid URL"),
        ("http://127.0.0.1:99999/", "invalid URL"),
        ("http://nonexistent.invalid/", "DNS lookup failed"),
        ("http://127.0.0.1:{closed}/", "connection refused"),
    ],
)
def test_no_response_means_no_package_and_one_clear_line(tmp_path, url, cause):
    # A closed port taken now, not at collection (another test's server may have it since).
    url = url.replace("{closed}", str(closed_port()))
    out = tmp_path / "out"
    proc = subprocess.run(
        [*EVIDENCE, "capture", url, "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert cause in lines[0] and url in lines[0]
    assert "Traceback" not in proc.stderr
    assert visible(out) == []


def _drip(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(0.2)


def test_drip_feed_body_is_cut_at_the_deadline(raw_server, tmp_path):
    server = raw_server(_drip)
    start = time.monotonic()
    result = capture(
        server.url(), out=tmp_path, options=CaptureOptions(deadline=1.5, read_timeout=1.0)
    )
    assert time.monotonic() - start < 5
    pkg = Path(result.path)
    resp = records(pkg)[2]
    assert resp[1]["WARC-Truncated"] == "time"
    assert manifest(pkg).to_json()["capture"]["limits_hit"][0]["limit"] == "deadline"
    warcio_check(pkg)


def _drip_headers(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):
        conn.sendall(b"X")
        time.sleep(0.2)


def test_headers_that_never_end_fail_within_the_deadline(raw_server, tmp_path):
    server = raw_server(_drip_headers)
    start = time.monotonic()
    with pytest.raises(CaptureError) as info:
        capture(server.url(), out=tmp_path, options=CaptureOptions(deadline=1.5, read_timeout=1.0))
    assert time.monotonic() - start < 5
    assert "deadline" in info.value.cause
    assert visible(tmp_path) == []


def _big(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
    block = b"y" * 65536
    try:
        for _ in range(160):
            conn.sendall(block)
    except OSError:
        pass


def test_max_response_bytes_truncates_and_records(raw_server, tmp_path):
    server = raw_server(_big)
    result = capture(server.url(), out=tmp_path, options=CaptureOptions(max_response_bytes=100_000))
    pkg = Path(result.path)
    resp = records(pkg)[2]
    assert resp[1]["WARC-Truncated"] == "length"
    head_end = resp[2].index(b"\r\n\r\n") + 4
    assert len(resp[2]) - head_end == 100_000
    m = manifest(pkg)
    assert m.to_json()["capture"]["limits_hit"][0]["limit"] == "max_response_bytes"
    assert m.to_json()["exchanges"][0]["truncated"] == "length"
    warcio_check(pkg)


def _reset_mid_body(conn, _request):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")


def test_connection_closed_mid_body_keeps_what_arrived(raw_server, tmp_path):
    server = raw_server(_reset_mid_body)
    result = capture(server.url(), out=tmp_path)
    resp = records(Path(result.path))[2]
    assert resp[1]["WARC-Truncated"] == "disconnect"
    assert resp[2].endswith(b"only part")


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/1.1 200 OK\r\nContent-Le", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n"],
)
def test_connection_closed_inside_the_head_is_not_a_whole_answer(raw_server, tmp_path, raw):
    # http.client takes the end of the connection for the end of the head, so
    # this was recorded as a complete 200 with an empty body.
    server = raw_server(fixed_response(raw))
    package = Path(capture(server.url(), out=tmp_path).path)
    resp = records(package)[2]
    assert resp[2] == raw
    assert resp[1]["WARC-Truncated"] == "disconnect"
    m = manifest(package)
    assert m.to_json()["exchanges"][0]["truncated"] == "disconnect"
    assert any("ended inside the response head" in w for w in m.capture.warnings)


# An unasked-for 100 Continue, then 103 Early Hints, then the answer.
INTERIM = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<p>answer</p>\n"


def test_interim_responses_are_kept_apart_and_the_answer_is_the_page(raw_server, tmp_path, signer):
    # http.client took a 103 for the answer: the package held the 103 and no
    # page, with status 103. The answer is now the response record, and the
    # interim responses' exact bytes are a metadata record beside it.
    server = raw_server(fixed_response(INTERIM + ANSWER))
    package = Path(capture(server.url("/"), out=tmp_path, sign_with=[signer.key]).path)
    recs = records(package)
    assert [r[0] for r in recs] == ["warcinfo", "request", "response", "metadata"]
    response, interim = recs[2], recs[3]
    assert response[2] == ANSWER
    assert interim[2] == INTERIM
    assert interim[1]["WARC-Target-URI"] == "urn:http-interim:" + server.url("/")
    assert interim[1]["Content-Type"] == "application/http;msgtype=response"
    assert interim[1]["WARC-Concurrent-To"] == response[1]["WARC-Record-ID"]
    m = manifest(package)
    assert m.capture.status == 200
    assert m.to_json()["exchanges"][0]["interim"] == {
        "record": interim[1]["WARC-Record-ID"],
        "statuses": [100, 103],
        "size": len(INTERIM),
    }
    warcio_check(package)
    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED
    # Shown, not hidden: by evidence show and in the court report.
    info = summary(package)
    assert info["exchanges"][0]["interim"] == [100, 103]
    assert "after interim responses 100, 103 (kept in their own record)" in describe(info)
    report = tmp_path / "report.html"
    code = main(["report", str(package), "--out", str(report), "--trust", str(signer.pub)])
    assert code == 0
    assert "first sent interim responses (100, 103)" in report.read_text()
    # Editing what the interim responses said (recompressed, CRCs valid) is caught.
    data = (package / "data" / "capture.warc.gz").read_bytes()
    rec = m.records[3]
    member = gzip.decompress(data[rec["offset"] : rec["offset"] + rec["length"]])
    forged = gzip.compress(member.replace(b"style.css", b"other.css"), mtime=0)
    (package / "data" / "capture.warc.gz").write_bytes(data[: rec["offset"]] + forged)
    assert verify(package, trust=[signer.pub]).outcome is Outcome.FAILED


def test_endless_interim_responses_are_an_invalid_response(raw_server, tmp_path):
    server = raw_server(fixed_response(b"HTTP/1.1 102 Processing\r\n\r\n" * 20 + ANSWER))
    with pytest.raises(CaptureError, match=r"more than 8 interim \(1xx\) responses"):
        capture(server.url("/"), out=tmp_path)
    assert visible(tmp_path) == []


def test_package_is_a_valid_bag_and_sha256sum_agrees(site, tmp_path):
    s = site({"/": (200, [("Content-Type", "text/html")], b"<p>bag</p>")})
    pkg = Path(capture(s.url("/"), out=tmp_path).path)
    proc = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=pkg, capture_output=True)
    assert proc.returncode == 0, proc.stdout
    proc = subprocess.run(
        ["sha256sum", "-c", "tagmanifest-sha256.txt"], cwd=pkg, capture_output=True
    )
    assert proc.returncode == 0, proc.stdout
    import bagit

    bagit.Bag(str(pkg)).validate()  # raises bagit.BagValidationError when invalid


def test_capture_json_and_show(site, tmp_path):
    s = site({"/": (200, [("Content-Type", "text/html")], b"<p>json</p>")})
    proc = subprocess.run(
        [
            *EVIDENCE,
            "capture",
            s.url("/"),
            s.url("/missing"),
            "--json",
            "--out",
            str(tmp_path),
            "--operator-name",
            "A. Reporter",
            "--operator-org",
            "Example NGO",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [p["status"] for p in doc["packages"]] == [200, 404]
    assert doc["failures"] == []
    pkg = doc["packages"][0]["package"]
    m = manifest(Path(pkg))
    assert m.to_json()["operator"] == {"name": "A. Reporter", "organization": "Example NGO"}
    shown = subprocess.run([*EVIDENCE, "show", pkg], capture_output=True, text=True)
    assert shown.returncode == 0
    assert s.url("/") in shown.stdout and "HTTP 200" in shown.stdout
    assert "data/capture.warc.gz" in shown.stdout
    js = json.loads(
        subprocess.run([*EVIDENCE, "show", pkg, "--json"], capture_output=True, text=True).stdout
    )
    assert js["status"] == 200 and js["package_id"] == Path(pkg).name


def test_one_bad_url_among_good_ones(site, tmp_path):
    s = site({"/": (200, [], b"ok")})
    proc = subprocess.run(
        [*EVIDENCE, "capture", s.url("/"), "file:///x", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert len(proc.stdout.strip().splitlines()) == 1
    assert "file:///x" in proc.stderr


def test_show_refuses_a_temporary_directory(tmp_path):
    d = tmp_path / ".incomplete-x"
    d.mkdir()
    proc = subprocess.run([*EVIDENCE, "show", str(d)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "never a package" in proc.stderr

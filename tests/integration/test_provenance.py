"""Whole pages (requisites), TLS chains and DNS from the same connection, chain of custody."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from evidence.attach import sign_package
from evidence.capturing import CaptureOptions, capture
from evidence.keys import generate_keypair
from evidence.manifest import Manifest
from evidence.package import MANIFEST_PATH
from evidence.verifying import Outcome, Status, verify

from judge_tools import wayback

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
BIN = Path(sys.executable).parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def manifest(pkg: Path) -> Manifest:
    return Manifest.from_bytes((pkg / MANIFEST_PATH).read_bytes())


def fetched_urls(pkg: Path) -> set[str]:
    return {e["url"] for e in manifest(pkg).to_json()["exchanges"]}


@pytest.fixture
def nested_site(site):
    cdn = site({"/cdn.png": (200, [("Content-Type", "image/png")], PNG + b"cdn")})
    cdn_url = cdn.url("/cdn.png", host="localhost")
    html = f"""<!DOCTYPE html><html><head>
<link rel="stylesheet" href="/css/main.css">
<link rel="icon" href="/favicon.ico">
<script src="/js/app.js"></script>
<style>.banner {{ background: url(/img/styleblock.png) }}</style>
</head><body background="/img/body-bg.png">
<p>Broken markup <b>never closed <i>here
<img src="/img/a.png" srcset="/img/a-2x.png 2x, /img/a-3x.png 3x">
<picture><source srcset="/img/p.webp" type="image/webp"><img src="/img/p.jpg"></picture>
<img src="/img/broken.png">
<img src="/img/slow.png">
<img src="{cdn_url}">
<img src="data:image/png;base64,AAAA">
<div style="background-image: url('/img/inline.png')">x</div>
<video poster="/img/poster.png"><source src="/media/v.mp4" type="video/mp4"></video>
<iframe src="/frame.html"></iframe>
<a href="/not-a-requisite.html">links are not requisites</a>
</body></html>""".encode()
    css = (
        b'@import "base.css";\n@font-face { src: url(../fonts/f.woff2) format("woff2"); }\n'
        b"h1 { background: url('/img/bg.png') } /* url(/img/commented.png) */\n"
    )
    routes = {
        "/index.html": (200, [("Content-Type", "text/html; charset=utf-8")], html),
        "/css/main.css": (200, [("Content-Type", "text/css")], css),
        "/css/base.css": (200, [("Content-Type", "text/css")], b'@import url("deep.css");'),
        "/css/deep.css": (200, [("Content-Type", "text/css")], b"p{background:url(/img/deep.png)}"),
        "/fonts/f.woff2": (200, [("Content-Type", "font/woff2")], b"wOF2font"),
        "/frame.html": (
            200,
            [("Content-Type", "text/html")],
            b'<img src="/img/in-frame.png"><iframe src="/frame2.html"></iframe>',
        ),
        "/frame2.html": (200, [("Content-Type", "text/html")], b"<p>too deep</p>"),
        "/favicon.ico": (200, [("Content-Type", "image/x-icon")], b"ico"),
        "/js/app.js": (200, [("Content-Type", "text/javascript")], b"console.log(1)"),
        "/media/v.mp4": (200, [("Content-Type", "video/mp4")], b"mp4"),
    }
    for name in (
        "styleblock",
        "body-bg",
        "a",
        "a-2x",
        "a-3x",
        "inline",
        "poster",
        "bg",
        "deep",
        "in-frame",
        "slow",
    ):
        routes[f"/img/{name}.png"] = (200, [("Content-Type", "image/png")], PNG + name.encode())
    routes["/img/p.webp"] = (200, [("Content-Type", "image/webp")], b"RIFFwebp")
    routes["/img/p.jpg"] = (200, [("Content-Type", "image/jpeg")], b"\xff\xd8jpg")
    s = site(routes, slow={"/img/slow.png": 0.5})
    return s, cdn


def test_requisites_found_fetched_and_verified(nested_site, tmp_path):
    s, cdn = nested_site
    result = capture(s.url("/index.html"), out=tmp_path)
    pkg = Path(result.path)
    urls = fetched_urls(pkg)
    expected = {
        s.url(p)
        for p in (
            "/index.html",
            "/css/main.css",
            "/css/base.css",
            "/css/deep.css",
            "/fonts/f.woff2",
            "/favicon.ico",
            "/js/app.js",
            "/img/styleblock.png",
            "/img/body-bg.png",
            "/img/a.png",
            "/img/a-2x.png",
            "/img/a-3x.png",
            "/img/p.webp",
            "/img/p.jpg",
            "/img/broken.png",
            "/img/slow.png",
            "/img/inline.png",
            "/img/poster.png",
            "/media/v.mp4",
            "/frame.html",
            "/img/in-frame.png",
            "/img/bg.png",
            "/img/deep.png",
        )
    }
    expected.add(cdn.url("/cdn.png", host="localhost"))
    assert expected <= urls, expected - urls
    assert s.url("/frame2.html") not in urls  # one level of iframes only
    assert s.url("/not-a-requisite.html") not in urls
    assert s.url("/img/commented.png") not in urls
    req = manifest(pkg).to_json()["capture"]["requisites"]
    assert req["enabled"] and req["skipped"] == 0
    assert [f["url"] for f in req["failed"]] == [s.url("/img/broken.png")]
    assert req["failed"][0]["error"] == "HTTP 404"
    roles = {e["url"]: (e["role"], e["found_in"]) for e in manifest(pkg).to_json()["exchanges"]}
    assert roles[s.url("/css/deep.css")] == ("requisite", s.url("/css/base.css"))
    assert roles[s.url("/img/in-frame.png")] == ("requisite", s.url("/frame.html"))
    assert verify(pkg, trust=[]).outcome is Outcome.UNTRUSTED
    proc = subprocess.run([str(BIN / "warcio"), "check", str(pkg / "data/capture.warc.gz")])
    assert proc.returncode == 0
    assert any("1 requisite(s) failed" in w for w in result.warnings)


def test_requisite_limits_are_reported(nested_site, tmp_path):
    s, _ = nested_site
    opts = CaptureOptions(max_requisites=3, requisite_workers=2)
    result = capture(s.url("/index.html"), out=tmp_path, options=opts)
    m = manifest(Path(result.path))
    req = m.to_json()["capture"]["requisites"]
    assert req["fetched"] == 3 and req["skipped"] > 0
    assert req["limits_hit"][0]["limit"] == "max_requisites"
    assert any(h["limit"] == "max_requisites" for h in m.to_json()["capture"]["limits_hit"])
    assert any("max_requisites" in w for w in result.warnings)


def test_no_requisites_flag(nested_site, tmp_path):
    s, _ = nested_site
    proc = subprocess.run(
        [*EVIDENCE, "capture", s.url("/index.html"), "--no-requisites", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    pkg = Path(proc.stdout.strip())
    assert fetched_urls(pkg) == {s.url("/index.html")}
    assert manifest(pkg).to_json()["options"]["requisites"] is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failed_requisite_does_not_fail_the_capture(site, tmp_path):
    dead = _free_port()
    s = site(
        {
            "/": (
                200,
                [("Content-Type", "text/html")],
                f'<img src="http://127.0.0.1:{dead}/gone.png"><img src="/ok.png">'.encode(),
            ),
            "/ok.png": (200, [("Content-Type", "image/png")], PNG),
        }
    )
    result = capture(s.url("/"), out=tmp_path)
    req = manifest(Path(result.path)).to_json()["capture"]["requisites"]
    assert req["failed"] == [
        {
            "url": f"http://127.0.0.1:{dead}/gone.png",
            "kind": "image",
            "found_in": s.url("/"),
            "error": "connection refused",
        }
    ]
    assert s.url("/ok.png") in fetched_urls(Path(result.path))


def test_gzip_html_requisites_are_found(raw_server, tmp_path):
    import gzip

    body = gzip.compress(b'<html><img src="/pic.png"></html>')

    def respond(conn, request):
        if b"GET /pic.png" in request:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\npng"
            )
        else:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % len(body)
                + body
                + b"\r\n0\r\n\r\n"
            )

    server = raw_server(respond)
    pkg = Path(capture(server.url("/"), out=tmp_path).path)
    assert server.url("/pic.png") in fetched_urls(pkg)


# --- replay in pywb ---------------------------------------------------------


def test_pywb_is_not_in_the_project_environment():
    """pywb would downgrade cryptography here; it lives in its own venv (judge_tools)."""
    import importlib.util

    assert importlib.util.find_spec("pywb") is None
    assert importlib.util.find_spec("OpenSSL") is None  # pyOpenSSL came only with pywb


def test_replays_in_pywb(nested_site, tmp_path, judge_tools):
    s, _ = nested_site
    pkg = Path(capture(s.url("/index.html"), out=tmp_path / "out").path)
    work = tmp_path / "pywb"
    work.mkdir()
    subprocess.run(
        [str(judge_tools / "wb-manager"), "init", "evidence"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [str(judge_tools / "wb-manager"), "add", "evidence", str(pkg / "data/capture.warc.gz")],
        cwd=work,
        check=True,
        capture_output=True,
    )
    with wayback(judge_tools, work) as port:
        base = f"http://127.0.0.1:{port}/evidence/2026id_/"

        def replay(path: str) -> bytes:
            with urllib.request.urlopen(base + s.url(path), timeout=10) as resp:
                return resp.read()

        assert b"links are not requisites" in replay("/index.html")
        assert b'@import "base.css"' in replay("/css/main.css")
        assert replay("/img/a.png") == PNG + b"a"
        assert replay("/img/deep.png") == PNG + b"deep"


# --- TLS chain and DNS, from the same connection ----------------------------


def test_https_chain_as_presented_is_stored(site, tmp_path, test_ca):
    s = site({"/": (200, [("Content-Type", "text/html")], b"<p>tls</p>")}, test_ca.server_context())
    pkg = Path(
        capture(
            s.url("/", host="localhost"),
            out=tmp_path,
            options=CaptureOptions(ca_bundle=str(test_ca.root_pem)),
        ).path
    )
    m = manifest(pkg)
    tls = m.to_json()["capture"]["tls"]
    assert tls["chain_complete"] is True and tls["verified"] is True
    certs = tls["certificates"]
    assert [c["subject"] for c in certs] == ["CN=localhost", "CN=Evidence Test Intermediate"]
    assert certs[0]["issuer"] == "CN=Evidence Test Intermediate"
    assert "localhost" in certs[0]["san"] and "127.0.0.1" in certs[0]["san"]
    stored = x509.load_pem_x509_certificates((pkg / tls["chain_file"]).read_bytes())
    assert stored == [test_ca.leaf, test_ca.inter]  # as presented: no local root appended
    assert tls["chain_file"] in {f["path"] for f in m.to_json()["files"]}
    assert m.to_json()["capture"]["dns"]["localhost"][0] in ("127.0.0.1", "::1")
    assert m.to_json()["exchanges"][0]["server_ip"] == "127.0.0.1"
    proc = subprocess.run([*EVIDENCE, "show", str(pkg)], capture_output=True, text=True)
    assert "chain[1]  CN=Evidence Test Intermediate" in proc.stdout
    assert "DNS          localhost ->" in proc.stdout
    # Swapping the certificate file for another is caught.
    other = test_ca.root.public_bytes(serialization.Encoding.PEM)
    (pkg / tls["chain_file"]).write_bytes(other)
    report = verify(pkg, trust=[])
    assert report.outcome is Outcome.FAILED
    assert report.check("payload").status is Status.FAIL


# --- chain of custody ---------------------------------------------------------


@pytest.fixture
def custody_pkg(package_copy, signer, tmp_path):
    env = {**os.environ, "EVIDENCE_PASSPHRASE": "pw-at-least-8"}
    key_path = tmp_path / "courier.key"
    subprocess.run([*EVIDENCE, "keygen", str(key_path)], env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [
            *EVIDENCE,
            "custody",
            "add",
            str(package_copy),
            "--event",
            "transferred",
            "--note",
            "handed to counsel on a USB drive",
            "--actor",
            "Courier",
            "--key",
            str(key_path),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    subprocess.run(
        [
            *EVIDENCE,
            "custody",
            "add",
            str(package_copy),
            "--event",
            "checked",
            "--note",
            "hashes compared",
        ],
        check=True,
        capture_output=True,
    )
    return package_copy, Path(f"{key_path}.pub")


def custody_lines(pkg: Path) -> list[bytes]:
    return (pkg / "evidence/custody.jsonl").read_bytes().splitlines()


def write_lines(pkg: Path, lines: list[bytes]) -> None:
    (pkg / "evidence/custody.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))


def test_custody_log_grows_and_verifies(custody_pkg, signer):
    pkg, courier_pub = custody_pkg
    events = [json.loads(x) for x in custody_lines(pkg)]
    assert [e["event"] for e in events] == ["captured", "transferred", "checked"]
    assert events[0]["key_id"] == signer.kid and "signature" in events[1]
    report = verify(pkg, trust=[signer.pub, courier_pub])
    assert report.ok, report.to_text()
    custody = report.check("custody")
    assert custody.status is Status.PASS and "2 trusted signer(s)" in custody.summary
    # Without the courier's key the chain still holds; the signer is named as untrusted.
    report = verify(pkg, trust=[signer.pub])
    assert report.ok and any("not said you trust" in d for d in report.check("custody").details)
    proc = subprocess.run([*EVIDENCE, "custody", str(pkg)], capture_output=True, text=True)
    assert "transferred by Courier" in proc.stdout and "handed to counsel" in proc.stdout
    import bagit

    bagit.Bag(str(pkg)).validate()


def test_sign_appends_countersigned_event(package_copy, signer):
    second = generate_keypair()
    sign_package(package_copy, second)
    events = [json.loads(x) for x in custody_lines(package_copy)]
    assert [e["event"] for e in events] == ["captured", "countersigned"]


@pytest.mark.parametrize(
    "tamper",
    [
        "edit",
        "remove-middle",
        "reorder",
        "forge-signature",
        "from-another-package",
        "time-backwards",
    ],
)
def test_custody_tampering_is_caught(custody_pkg, signer, tamper, site, tmp_path):
    pkg, courier_pub = custody_pkg
    lines = custody_lines(pkg)
    if tamper == "edit":
        lines[1] = lines[1].replace(b"USB drive", b"USB stick")
    elif tamper == "remove-middle":
        del lines[1]
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "forge-signature":
        event = json.loads(lines[1])
        event["note"] = "forged"
        lines[1] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    elif tamper == "time-backwards":
        event = json.loads(lines[2])
        event["time"] = "2001-01-01T00:00:00.000000Z"
        lines[2] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    else:
        s = site({"/": (200, [], b"other")})
        other = Path(capture(s.url("/"), out=tmp_path / "o", sign_with=[signer.key]).path)
        lines = custody_lines(other)
    write_lines(pkg, lines)
    report = verify(pkg, trust=[signer.pub, courier_pub])
    assert report.outcome is Outcome.FAILED
    assert report.check("custody").status is Status.FAIL


def test_custody_tail_truncation_is_only_caught_with_an_anchor(custody_pkg, signer):
    """Documented limit: the last holder can drop the newest events unless anchored."""
    pkg, _courier_pub = custody_pkg
    import hashlib

    head = hashlib.sha256(custody_lines(pkg)[-1]).hexdigest()
    write_lines(pkg, custody_lines(pkg)[:-1])
    assert verify(pkg, trust=[signer.pub]).ok
    report = verify(pkg, trust=[signer.pub], custody_anchors=[head])
    assert report.outcome is Outcome.FAILED
    assert "anchor" in report.check("custody").summary


def test_custody_add_unknown_event_is_a_usage_error(package_copy):
    proc = subprocess.run(
        [*EVIDENCE, "custody", "add", str(package_copy), "--event", "stolen"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2

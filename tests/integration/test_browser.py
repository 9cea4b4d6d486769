"""Browser capture end to end: real Chromium, the recording proxy, local servers only.

Chromium comes from Debian (``apt-get install chromium``; .ci/run installs it
when missing) and Playwright from the ``browser`` extra. Each test here
launches Chromium once; together they take about ten seconds.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from evidence.capturing import BrowserOptions, CaptureOptions, capture
from evidence.errors import PackageError, UsageError
from evidence.extract import extract
from evidence.manifest import Manifest
from evidence.show import describe, summary
from evidence.verifying import Outcome, verify

from browsers import have_chromium, leftover_browsers, own_browsers, records  # noqa: F401  (own_browsers: autouse)
from judge_tools import wayback
from servers import closed_port

pytest.importorskip("playwright.sync_api", reason="needs the browser extra")


needs_chromium = pytest.mark.skipif(not have_chromium(), reason="no Chromium installed")

TEXT = "Statement of 3 December: 声明全文 — ئۇيغۇرچە بايانات"


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xd0\x20\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _lazy_pixels(png: bytes) -> int:
    """How many pixels of the screenshot have the lazy image's colour."""
    import io

    from PIL import Image  # Pillow comes with weasyprint in the test extra

    with Image.open(io.BytesIO(png)) as image:
        raw = image.convert("RGB").tobytes()
    target = bytes((0xD0, 0x20, 0x20))
    return sum(1 for i in range(0, len(raw), 3) if raw[i : i + 3] == target)


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    # The raw server answers one request per connection and says so, or a
    # pooled connection would be reused just as the server closes it.
    headers = [*headers, ("Connection", "close")]
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


ARTICLE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Article</title>
<link rel="stylesheet" href="/missing.css"><script src="/app.js"></script></head>
<body><h1>Article</h1><p id="text">loading…</p>
<div style="height: 6000px"></div>
<img id="lazy" loading="lazy" src="/lazy.png" width="200" height="100">
<script>
fetch("/api/text").then(r => r.json()).then(j => {
  document.getElementById("text").textContent = j.text; });
</script></body></html>
""".encode()

SITE = {
    "/": _response("302 Found", [("Location", "/article")], b"see /article\n"),
    "/article": _response("200 OK", [("Content-Type", "text/html; charset=utf-8")], ARTICLE),
    "/api/text": _response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        gzip.compress(json.dumps({"text": TEXT}, ensure_ascii=False).encode()),
    ),
    "/lazy.png": _response("200 OK", [("Content-Type", "image/png")], _png(200, 100)),
    # Chunk framing and a trailer: recorded as sent, and the browser still runs it.
    "/app.js": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n"
        b"Trailer: X-Check\r\n\r\n"
        b"10\r\nwindow.appRan = \r\n5\r\ntrue;\r\n0\r\nX-Check: done\r\n\r\n"
    ),
    "/missing.css": _response("404 Not Found", [("Content-Type", "text/plain")], b"no\n"),
}
NOT_FOUND = _response("404 Not Found", [("Content-Type", "text/plain")], b"not found\n")


def routed(routes: dict[str, bytes]):
    def respond(conn, request: bytes) -> None:
        path = request.split(b" ", 2)[1].decode("latin-1")
        conn.sendall(routes.get(path, NOT_FOUND))
        time.sleep(0.05)

    return respond


@needs_chromium
def test_browser_capture_keeps_what_the_reader_saw_and_the_exact_bytes(
    raw_server, tmp_path, signer
):
    server = raw_server(routed(SITE))
    origin = server.url("")
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        sign_with=[signer.key],
        browser=BrowserOptions(),
    )
    package = Path(result.path)
    assert result.final_url == server.url("/article")
    assert result.status == 200
    recs = records(package)

    # Every response record is byte-identical to what the server wrote, and
    # every request record is a request the server received.
    responses = [(h, b) for h, b in recs if h["WARC-Type"] == "response"]
    requests_ = [b for h, b in recs if h["WARC-Type"] == "request"]
    paths = []
    for headers, block in responses:
        target = headers["WARC-Target-URI"]
        assert target.startswith(origin), f"only the page's own traffic is recorded: {target}"
        path = target[len(origin) :]
        paths.append(path)
        assert block == SITE.get(path, NOT_FOUND), path
    assert sorted(requests_) == sorted(server.requests)
    for path in ("/", "/article", "/api/text", "/lazy.png", "/app.js", "/missing.css"):
        assert paths.count(path) == 1, f"{path} recorded once (scrolling loads the lazy image)"

    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None
    assert [h.url for h in manifest.capture.redirects] == [server.url("/")]
    assert manifest.page_exchange is not None
    assert manifest.page_exchange.url == server.url("/article")
    browser = manifest.capture.browser
    assert browser is not None and browser.completed
    assert browser.unrecorded == (), "every request the browser reported was recorded"
    assert browser.version.startswith("Chromium ")
    assert browser.viewport == "1280x800"
    assert "HeadlessChrome" in browser.user_agent
    assert any(f.startswith("--ignore-certificate-errors-spki-list=") for f in browser.flags)
    warcinfo = recs[0][1].decode()
    assert f"interception-spki-sha256: {browser.interception_spki_sha256}" in warcinfo

    # The artefacts: resource records with urn: targets, in the signed inventory.
    artefacts = {a.kind: a for a in browser.artefacts}
    assert set(artefacts) == {"screenshot", "pdf", "dom"}
    by_id = {h["WARC-Record-ID"]: (h, b) for h, b in recs}
    page_record = manifest.page_exchange.response_record
    inventory_ids = {r.id for r in manifest.records}
    for kind, artefact in artefacts.items():
        headers, block = by_id[artefact.record]
        assert headers["WARC-Type"] == "resource"
        assert headers["WARC-Target-URI"] == f"urn:{kind}:{server.url('/article')}"
        assert headers["WARC-Refers-To"] == page_record
        assert artefact.record in inventory_ids
    shot = by_id[artefacts["screenshot"].record][1]
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", shot[16:24])
    assert width == 1280 and height > 6000, "a full-page screenshot, as tall as the page"
    assert _lazy_pixels(shot) > 200 * 100 * 0.9, "the lazy image is drawn in the screenshot"
    assert by_id[artefacts["pdf"].record][1].startswith(b"%PDF-")
    dom = by_id[artefacts["dom"].record][1].decode("utf-8")
    assert TEXT in dom, "the DOM holds the text the script inserted"

    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED
    shown = describe(summary(package))
    assert "Artefact     screenshot: image/png" in shown
    assert f"Browser      {browser.version}, viewport 1280x800, complete" in shown

    # extract: the picture and the decoded bodies as plain files, with an index.
    result_x = extract(package, tmp_path / "x")
    index = json.loads(Path(result_x.index).read_text())
    assert (tmp_path / "x" / index["artefacts"]["screenshot"]["file"]).read_bytes() == shot
    api = next(r for r in index["responses"] if r["url"] == server.url("/api/text"))
    assert api["decoded"] and api["content_encoding"] == "gzip"
    assert json.loads((tmp_path / "x" / api["file"]).read_bytes())["text"] == TEXT
    app = next(r for r in index["responses"] if r["url"] == server.url("/app.js"))
    assert (tmp_path / "x" / app["file"]).read_bytes() == b"window.appRan = true;"


@needs_chromium
def test_https_page_through_interception_with_a_failed_subresource(site, test_ca, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/gone.png"
    page = f'<!DOCTYPE html><title>S</title><p id="t">x</p><img src="{dead}">'
    page += '<script>fetch("/t").then(r => r.text()).then(t => { t_ = t; '
    page += 'document.getElementById("t").textContent = t; });</script>'
    server = site(
        {
            "/": (200, [("Content-Type", "text/html")], page.encode()),
            "/t": (200, [("Content-Type", "text/plain; charset=utf-8")], TEXT.encode()),
        },
        tls=test_ca.server_context(),
    )
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(ca_bundle=str(test_ca.root_pem), deadline=60),
        browser=BrowserOptions(pdf=False, scroll=False),
    )
    # A refused upstream is answered at once: no waiting for the load timeout.
    assert time.monotonic() - started < 20
    manifest = Manifest.from_bytes((Path(result.path) / "evidence" / "manifest.json").read_bytes())
    page_ex = manifest.page_exchange
    assert page_ex is not None and page_ex.tls is not None and page_ex.tls.verified
    assert page_ex.tls.chain_file is not None
    assert manifest.capture is not None and manifest.capture.browser is not None
    failed = manifest.capture.browser.failed
    assert [(f.url, f.kind) for f in failed] == [(dead, "refused")]
    assert dead not in [e.url for e in manifest.exchanges], "a failure is not a response"
    dom = next(
        b
        for h, b in records(Path(result.path))
        if h.get("WARC-Target-URI", "").startswith("urn:dom:")
    )
    assert TEXT in dom.decode("utf-8")

    # The browser log is sealed like every record: one changed byte in it is
    # a verification failure, and extract refuses to write it out.
    log = manifest.capture.browser.log
    assert log is not None
    member = next(r for r in manifest.records if r.id == log.record)
    warc = Path(result.path) / "data" / "capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[member.offset + member.length // 2] ^= 0x01
    warc.write_bytes(bytes(data))
    assert verify(Path(result.path), trust=[]).outcome is Outcome.FAILED
    with pytest.raises(PackageError, match="does not match the sealed inventory"):
        extract(Path(result.path), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@needs_chromium
@pytest.mark.slow
def test_hostile_page_ends_at_the_deadline_with_no_process_left(raw_server, tmp_path):
    hostile = _response(
        "200 OK",
        [("Content-Type", "text/html")],
        b"<!DOCTYPE html><title>loop</title><script>for (;;) {}</script>",
    )
    server = raw_server(routed({"/": hostile}))
    started = time.monotonic()
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=6),
        browser=BrowserOptions(),
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed
    assert leftover_browsers() == []
    manifest = Manifest.from_bytes((Path(result.path) / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert not manifest.capture.browser.completed
    # Killed by the watchdog, or ended by Playwright's timeouts just before.
    assert [h.limit for h in manifest.capture.limits_hit] == ["deadline"]
    assert manifest.capture.limits_hit[0].detail in ("browser killed", "browser steps cut short")
    assert manifest.page_exchange is not None, "what arrived is kept"
    assert verify(Path(result.path), trust=[]).outcome is Outcome.UNTRUSTED


@needs_chromium
def test_a_page_answered_after_early_hints_is_the_page_chromium_shows(raw_server, tmp_path):
    # The proxy hands Chromium the 103 as sent, then the answer; the record
    # keeps the answer as the page's response and the 103 beside it.
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload; as=style\r\n\r\n"
    page = _response("200 OK", [("Content-Type", "text/html")], b"<title>Early</title><p>hi</p>")
    server = raw_server(routed({"/": early + page}))
    result = capture(server.url("/"), out=tmp_path, browser=BrowserOptions())
    manifest = Manifest.from_bytes((Path(result.path) / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None
    assert (manifest.capture.status, manifest.capture.title) == (200, "Early")
    assert manifest.capture.browser is not None and manifest.capture.browser.completed
    page_exchange = manifest.page_exchange
    assert page_exchange is not None and page_exchange.interim is not None
    assert page_exchange.interim.statuses == (103,)
    blocks = {h.get("WARC-Target-URI"): b for h, b in records(Path(result.path))}
    assert blocks["urn:http-interim:" + server.url("/")] == early
    assert verify(Path(result.path), trust=[]).outcome is Outcome.UNTRUSTED


def test_without_playwright_one_line_says_how_to_install():
    code = (
        "import sys; sys.modules['playwright'] = None; sys.modules['playwright.sync_api'] = None\n"
        "from evidence.capturing import capture\n"
        "from evidence.errors import UsageError\n"
        "try:\n"
        "    capture('http://127.0.0.1:9/', out='unused', browser=True)\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == (
        "browser capture needs Playwright: pip install 'evidence-archive[browser]'"
    )


def test_a_named_chromium_that_does_not_exist_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EVIDENCE_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(UsageError, match="Chromium not found or not executable"):
        capture("http://127.0.0.1:9/", out=tmp_path, browser=True)
    assert list(tmp_path.iterdir()) == []


@needs_chromium
def test_cli_capture_with_browser_options(raw_server, tmp_path, capsys):
    from evidence.cli import main

    server = raw_server(routed(SITE))
    code = main(
        [
            "capture",
            "--browser",
            "--viewport",
            "800x600",
            "--no-scroll",
            "--max-browser-requests",
            "100",
            "--browser-memory",
            "1500",
            "--out",
            str(tmp_path),
            server.url("/article"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    manifest = Manifest.from_bytes((Path(out.strip()) / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert manifest.capture.browser.viewport == "800x600"
    assert manifest.options is not None
    assert manifest.options["browser_scroll"] is False
    assert manifest.options["browser_viewport"] == "800x600"
    assert manifest.options["browser_max_requests"] == 100
    assert manifest.options["browser_max_browser_memory_mb"] == 1500
    for bad in (["--max-browser-requests", "0"], ["--browser-memory", "x"]):
        with pytest.raises(SystemExit) as stopped:
            main(["capture", "--browser", *bad, server.url("/article")])
        assert stopped.value.code == 2
    assert main(["capture", "--browser-memory", "900", server.url("/article")]) == 2
    assert "only apply with --browser" in capsys.readouterr().err


def _log_of(package: Path, manifest: Manifest) -> tuple[dict[str, str], dict]:
    """The browser log record (headers, parsed JSON), found through the manifest."""
    assert manifest.capture is not None and manifest.capture.browser is not None
    log = manifest.capture.browser.log
    assert log is not None
    by_id = {h["WARC-Record-ID"]: (h, b) for h, b in records(package)}
    headers, block = by_id[log.record]
    assert len(block) == log.size
    return headers, json.loads(block)


BIG = os.urandom(25 * 1024 * 1024)  # larger than DevTools' inspector cache (20 MB)

EVERYTHING = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Everything</title></head><body>
<p id="sw">sw pending</p><p id="big">big pending</p><p id="redir">redir pending</p>
<img src="/missing.png" width="10" height="10">
<a id="dl" href="/file.bin">download</a>
<a id="blank" href="/popup-b" target="_blank">open</a>
<script>
console.log("console from the page: \\u001b[31mred\\u202e");
console.warn("a warning");
setTimeout(() => { throw new TypeError("page error on purpose"); }, 0);
const put = (id, text) => { document.getElementById(id).textContent = text; };
fetch("/big").then(r => r.arrayBuffer()).then(b => put("big", "big " + b.byteLength));
fetch("/redir").then(r => r.text()).then(t => put("redir", t));
window.open("/popup-a");
setTimeout(() => document.getElementById("blank").click(), 50);
// After load: a download started while the page loads cuts its load short.
addEventListener("load", () => setTimeout(() => document.getElementById("dl").click(), 50));
navigator.serviceWorker.register("/sw.js")
  .then(() => navigator.serviceWorker.ready)
  .then(() => navigator.serviceWorker.controller ? null : new Promise(
        r => navigator.serviceWorker.addEventListener("controllerchange", r)))
  .then(() => fetch("/via-sw")).then(r => r.text()).then(t => put("sw", t))
  .catch(e => put("sw", "sw failed " + e));
setTimeout(() => alert("a dialog"), 200);
</script></body></html>
"""

SERVICE_WORKER = b"""
self.addEventListener("install", (e) => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(clients.claim()));
self.addEventListener("fetch", (e) => {
  if (new URL(e.request.url).pathname === "/via-sw") e.respondWith(fetch("/from-sw"));
});
"""

EVERYTHING_SITE = {
    "/": _response("200 OK", [("Content-Type", "text/html; charset=utf-8")], EVERYTHING),
    "/sw.js": _response("200 OK", [("Content-Type", "text/javascript")], SERVICE_WORKER),
    "/from-sw": _response("200 OK", [("Content-Type", "text/plain")], b"answered by the worker"),
    "/big": _response("200 OK", [("Content-Type", "application/octet-stream")], BIG),
    "/redir": _response(
        "302 Found", [("Location", "/redir-target"), ("Content-Type", "text/plain")], b"moved\n"
    ),
    "/redir-target": _response("200 OK", [("Content-Type", "text/plain")], b"after redirect"),
    "/missing.png": _response("404 Not Found", [("Content-Type", "text/plain")], b"no png\n"),
    "/file.bin": _response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", 'attachment; filename="report.pdf"'),
        ],
        b"%PDF-1.4 pretend\n" * 100,
    ),
    "/popup-a": _response("200 OK", [("Content-Type", "text/html")], b"<title>A</title>pop-up A"),
    "/popup-b": _response("200 OK", [("Content-Type", "text/html")], b"<title>B</title>pop-up B"),
}


@needs_chromium
def test_every_request_is_one_record_or_one_failure(raw_server, tmp_path, signer):
    """Service worker and its fetch, pop-ups, a refused download, a 25 MB body, a
    redirect with its body, a 404: each request the server saw is recorded once,
    the browser's log lists what the browser reported, and nothing is unaccounted."""
    server = raw_server(routed(EVERYTHING_SITE))
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        sign_with=[signer.key],
        browser=BrowserOptions(pdf=False, scroll=False),
    )
    package = Path(result.path)
    recs = records(package)
    origin = server.url("")
    responses = [(h, b) for h, b in recs if h["WARC-Type"] == "response"]
    # Every request the server received is one request record, byte for byte
    # (so nothing was fetched twice, nor left out), and every response record
    # is exactly what the server wrote.
    assert sorted(b for h, b in recs if h["WARC-Type"] == "request") == sorted(server.requests)
    paths = [h["WARC-Target-URI"][len(origin) :] for h, _ in responses]
    for path, raw in EVERYTHING_SITE.items():
        assert paths.count(path) == 1, path
        block = next(b for h, b in responses if h["WARC-Target-URI"] == origin + path)
        assert block == raw, path
    assert "/via-sw" not in paths, "the worker answered it: only the worker's fetch is on the wire"

    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None and manifest.capture.browser is not None
    browser = manifest.capture.browser
    assert browser.unrecorded == ()
    assert browser.failed == ()
    dom = next(b for h, b in recs if h.get("WARC-Target-URI", "").startswith("urn:dom:"))
    assert b'<p id="sw">answered by the worker</p>' in dom
    assert f'<p id="big">big {len(BIG)}</p>'.encode() in dom
    assert b'<p id="redir">after redirect</p>' in dom

    # The refused download: its response is in the WARC, the manifest says refused.
    file_record = next(h for h, _ in responses if h["WARC-Target-URI"] == origin + "/file.bin")
    assert [(d.url, d.filename, d.state, d.record) for d in browser.downloads] == [
        (origin + "/file.bin", "report.pdf", "refused", file_record["WARC-Record-ID"])
    ]
    assert sorted(browser.popups) == [origin + "/popup-a", origin + "/popup-b"]

    # The browser's log: a metadata record about the page, never the page's URI.
    headers, log = _log_of(package, manifest)
    assert headers["WARC-Type"] == "metadata"
    assert headers["WARC-Target-URI"] == f"urn:browser-log:{origin}/"
    assert headers["Content-Type"] == "application/json"
    assert headers["WARC-Refers-To"] == manifest.page_exchange.response_record
    assert browser.log is not None and browser.log.record in {r.id for r in manifest.records}
    assert log["format"] == "evidence-browser-log/1" and log["page"] == origin + "/"
    by_path = {r["url"][len(origin) :]: r for r in log["requests"]}
    assert by_path["/"]["navigation"] and by_path["/"]["resource_type"] == "document"
    assert by_path["/via-sw"]["from_service_worker"] and by_path["/via-sw"]["status"] == 200
    assert by_path["/from-sw"]["by_service_worker"]
    assert by_path["/sw.js"]["by_service_worker"]
    assert by_path["/missing.png"]["status"] == 404
    assert by_path["/redir"]["status"] == 302 and by_path["/redir-target"]["status"] == 200
    assert by_path["/file.bin"]["failure"] == "net::ERR_ABORTED"
    assert by_path["/big"]["status"] == 200
    texts = [m["text"] for m in log["console"]]
    assert "console from the page: \x1b[31mred\u202e" in texts, "text kept as data"
    assert any(m["level"] == "warning" and m["text"] == "a warning" for m in log["console"])
    assert [e["message"] for e in log["page_errors"]] == ["page error on purpose"]
    assert log["dialogs"] == [{"type": "alert", "message": "a dialog", "action": "dismissed"}]
    assert log["downloads"][0]["suggested_filename"] == "report.pdf"
    assert browser.log.requests == len(log["requests"])
    assert browser.log.console_messages == len(log["console"]) and browser.log.page_errors == 1

    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED
    shown = describe(summary(package))
    assert "Browser log  " in shown and "Download     refused: " in shown
    assert "Pop-up       closed: " in shown
    assert "\x1b" not in shown
    extracted = extract(package, tmp_path / "x")
    index = json.loads(Path(extracted.index).read_text())
    assert index["artefacts"]["log"]["file"] == "browser-log.json"
    assert json.loads((tmp_path / "x" / "browser-log.json").read_bytes()) == log


@needs_chromium
@pytest.mark.slow
def test_pywb_replays_the_text_the_script_inserted(raw_server, tmp_path, judge_tools):
    """The package's WARC alone, replayed by pywb with no live server, shows the
    text the page's script fetched and inserted, when loaded in Chromium."""

    from playwright.sync_api import sync_playwright

    from evidence.capturing.browser import find_chromium

    assert TEXT.encode() not in ARTICLE, "only the script's fetch() brings the text"
    server = raw_server(routed(SITE))
    url = server.url("/article")
    result = capture(url, out=tmp_path / "pkg", browser=BrowserOptions(pdf=False, screenshot=False))
    server.close()  # replay must come from the WARC alone
    root = tmp_path / "replay"
    subprocess.run(
        [str(judge_tools / "wb-manager"), "init", "evidence"],
        cwd=root.mkdir() or root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            str(judge_tools / "wb-manager"),
            "add",
            "evidence",
            str(Path(result.path) / "data" / "capture.warc.gz"),
        ],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with wayback(judge_tools, root) as port:
        created = Manifest.from_bytes(
            (Path(result.path) / "evidence" / "manifest.json").read_bytes()
        ).created
        stamp = "".join(ch for ch in created if ch.isdigit())[:14]
        replay = f"http://127.0.0.1:{port}/evidence/{stamp}mp_/{url}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium())
            try:
                page = browser.new_page()
                page.goto(replay, wait_until="load", timeout=30_000)
                # pywb shows a top-level mp_ URL in its frame: the page is the iframe.
                text = page.frame_locator("iframe#replay_iframe").locator("#text")
                text.wait_for(timeout=30_000)
                page.wait_for_function(
                    "t => { const f = document.querySelector('iframe#replay_iframe');"
                    " const e = f && f.contentDocument && f.contentDocument.getElementById('text');"
                    " return e && e.textContent === t; }",
                    arg=TEXT,
                    timeout=20_000,
                )
                assert text.inner_text() == TEXT
            finally:
                browser.close()


@needs_chromium
def test_a_service_worker_registers_over_intercepted_https(site, test_ca, tmp_path):
    """The browser trusts the per-capture key by its pin (not by ignoring errors),
    so a service worker registers over HTTPS, and its fetch is recorded."""
    page = (
        b'<!DOCTYPE html><title>S</title><p id="sw">pending</p><script>'
        b'navigator.serviceWorker.register("/sw.js")'
        b".then(() => navigator.serviceWorker.ready)"
        b".then(() => navigator.serviceWorker.controller ? null : new Promise("
        b'r => navigator.serviceWorker.addEventListener("controllerchange", r)))'
        b'.then(() => fetch("/via-sw")).then(r => r.text())'
        b'.then(t => { document.getElementById("sw").textContent = t; })'
        b'.catch(e => { document.getElementById("sw").textContent = "failed " + e; });'
        b"</script>"
    )
    server = site(
        {
            "/": (200, [("Content-Type", "text/html")], page),
            "/sw.js": (200, [("Content-Type", "text/javascript")], SERVICE_WORKER),
            "/from-sw": (200, [("Content-Type", "text/plain")], b"worker over https"),
        },
        tls=test_ca.server_context(),
    )
    result = capture(
        server.url("/"),
        out=tmp_path,
        options=CaptureOptions(ca_bundle=str(test_ca.root_pem), deadline=60),
        browser=BrowserOptions(pdf=False, scroll=False, screenshot=False),
    )
    package = Path(result.path)
    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    recs = records(package)
    dom = next(b for h, b in recs if h.get("WARC-Target-URI", "").startswith("urn:dom:"))
    assert b'<p id="sw">worker over https</p>' in dom
    urls = [e.url for e in manifest.exchanges]
    assert urls.count(server.url("/sw.js")) == 1 and urls.count(server.url("/from-sw")) == 1
    assert server.url("/via-sw") not in urls
    assert all(e.tls is not None and e.tls.verified for e in manifest.exchanges)
    _, log = _log_of(package, manifest)
    by_url = {r["url"]: r for r in log["requests"]}
    assert by_url[server.url("/via-sw")]["from_service_worker"]
    assert by_url[server.url("/from-sw")]["by_service_worker"]
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert manifest.capture.browser.unrecorded == () and manifest.capture.browser.failed == ()


@needs_chromium
@pytest.mark.parametrize(
    "mib",
    [
        # The 4 MiB spool fits; the WARC write then fails with ENOSPC in a
        # proxy thread, which cannot report it to anyone; the spool is then
        # deleted, so the disk has room again for the rest. It used to seal a
        # package whose WARC did not match its inventory.
        4,
        # 7 MiB cannot even be spooled: the fetch fails as "disk" after the
        # browser was already given part of it. It used to become one more
        # failed request in a package sealed without it.
        7,
    ],
    ids=["record", "spool"],
)
def test_a_full_disk_in_the_proxy_fails_the_capture_and_leaves_nothing(raw_server, tmpfs, mib):
    """As for a capture without a browser, our own full disk fails the whole
    capture, for the page's URL, with no package and no temporary directory."""
    from evidence.errors import CaptureError

    big = os.urandom(mib * 1024 * 1024)
    page = b"<html><body><h1>Statement</h1><img src='/big.jpg'></body></html>"
    server = raw_server(
        routed(
            {
                "/": _response("200 OK", [("Content-Type", "text/html")], page),
                "/big.jpg": _response("200 OK", [("Content-Type", "image/jpeg")], big),
            }
        )
    )
    tmpfs_dir = tmpfs("6m")
    out = tmpfs_dir / "out"
    with pytest.raises(CaptureError) as failed:
        capture(
            server.url("/"),
            out=out,
            options=CaptureOptions(deadline=60),
            browser=BrowserOptions(pdf=False, screenshot=False),
        )
    assert failed.value.kind == "disk", failed.value
    assert failed.value.url == server.url("/")
    assert not out.exists() or list(out.iterdir()) == [], "not even a temporary directory"
    assert leftover_browsers() == []

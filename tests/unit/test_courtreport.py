"""The court report's parts: HTML escaping, screenshot extraction, names, formats (issue 14)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import re
import shutil
import zlib
from pathlib import Path

import pytest

import evidence
from evidence.courtreport import _format_for, _labels
from evidence.courtreport.facts import gather, screenshot_from_warc
from evidence.courtreport.html import render_html
from evidence.errors import UsageError
from evidence.warc.writer import WARCWriter

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


def _warc_with(block: bytes, content_type: str = "image/png") -> tuple[Path, dict]:
    buf = io.BytesIO()
    writer = WARCWriter(buf)
    info = writer.write_record(
        record_type="resource",
        date="2026-01-01T00:00:00Z",
        content_type=content_type,
        block=block,
        block_length=len(block),
        block_sha256=hashlib.sha256(block).digest(),
        target_uri="urn:screenshot:http://example.org/",
    )
    return buf.getvalue(), info.to_json()  # type: ignore[return-value]


@pytest.fixture
def warc_file(tmp_path):
    def make(block: bytes) -> tuple[Path, dict]:
        data, info = _warc_with(block)
        path = tmp_path / "w.warc.gz"
        path.write_bytes(b"x" * 10 + data)  # a record not at offset 0
        info["offset"] = 10
        return path, info

    return make


def test_screenshot_is_read_from_its_resource_record(warc_file):
    path, info = warc_file(PNG_1x1)
    shot = screenshot_from_warc(path, info["offset"], info["length"], info["sha256"])
    assert shot == (PNG_1x1, "image/png")


def test_screenshot_whose_member_changed_is_refused(warc_file):
    path, info = warc_file(PNG_1x1)
    assert screenshot_from_warc(path, info["offset"], info["length"], "0" * 64) is None
    # Off by one byte: not the sealed member.
    assert screenshot_from_warc(path, info["offset"] + 1, info["length"], info["sha256"]) is None


def test_screenshot_that_is_not_an_image_is_refused(warc_file):
    path, info = warc_file(b"<svg onload=alert(1)></svg>")
    assert screenshot_from_warc(path, info["offset"], info["length"], info["sha256"]) is None


def test_screenshot_claiming_absurd_dimensions_is_refused(warc_file):
    huge = bytearray(PNG_1x1)
    huge[16:24] = (1_000_000).to_bytes(4, "big") + (1_000_000).to_bytes(4, "big")
    path, info = warc_file(bytes(huge))
    assert screenshot_from_warc(path, info["offset"], info["length"], info["sha256"]) is None


def test_screenshot_bomb_is_bounded(tmp_path):
    # A gzip member that inflates to 256 MiB: refused, and never inflated whole.
    import tracemalloc

    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"WARC/1.1\r\nContent-Length: 1000\r\n\r\n" + PNG_1x1
    chunk = b"\0" * (1 << 20)
    data = bomb.compress(body) + b"".join(bomb.compress(chunk) for _ in range(256)) + bomb.flush()
    path = tmp_path / "bomb.warc.gz"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    tracemalloc.start()
    try:
        assert screenshot_from_warc(path, 0, len(data), digest) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 1024 * 1024


def test_format_comes_from_the_suffix_or_is_refused():
    assert _format_for(Path("r.PDF"), None) == "pdf"
    assert _format_for(Path("r.htm"), None) == "html"
    assert _format_for(Path("r"), "html") == "html"
    with pytest.raises(UsageError, match=r"\.pdf or \.html"):
        _format_for(Path("r.txt"), None)
    with pytest.raises(UsageError):
        _format_for(Path("r.pdf"), "docx")


def test_attachment_labels_are_plain_and_unique():
    labels = _labels([Path("a/pkg"), Path("b/pkg"), Path("c/../x y\u202e"), Path("d/.hidden")])
    assert labels[0] == "pkg" and labels[1] == "pkg-2"
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", label) for label in labels)
    assert len(set(labels)) == 4


HOSTILE = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "hostile-strings"


def test_html_shows_every_hostile_string_escaped_and_visible(tmp_path):
    pkg = tmp_path / "pkg<script>"
    shutil.copytree(HOSTILE, pkg)
    verification = evidence.verify(pkg, trust=[])
    facts = gather(pkg, verification)
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "<script" not in doc.lower()
    assert "pkg&lt;script&gt;" in doc  # the directory name, escaped
    for raw in ("\x1b", "\x07", "\u202e", "\u2066", "\n  PASS"):
        assert raw not in doc
    assert "⟪U+202E⟫" in doc
    # Attachment names are plain, whatever the directory is called.
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", a.name) for a in facts.attachments)


def test_html_cuts_overlong_values_with_a_note(package_copy, signer):
    import json

    from evidence.attach import append_event

    append_event(package_copy, event="transferred", note="A" * 3900)
    facts = gather(package_copy, evidence.verify(package_copy, trust=[signer.pub]))
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "A" * 3900 not in doc
    assert re.search(r"more characters not shown", doc)
    assert json.loads(facts.attachments[-1].data)["outcome"] == "verified"


def test_key_names_come_from_the_callers_key_files(package_copy, signer, tmp_path):
    out = tmp_path / "r.html"
    evidence.report(package_copy, out=out, trust=[signer.pub.parent], record_custody=False)
    assert f"({signer.pub.name}, your key file)" in out.read_text("utf-8")


def test_report_of_no_package_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="at least one package"):
        evidence.report([], out=tmp_path / "r.html", trust=[])


def test_report_on_a_directory_that_is_not_a_package(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = evidence.report(empty, out=tmp_path / "r.html", trust=[])
    assert result.exit_code == 2
    assert "NOT AN EVIDENCE PACKAGE" in (tmp_path / "r.html").read_text("utf-8")
    assert result.custody_events == () and result.custody_problems
    assert list(empty.iterdir()) == []  # nothing was written into it


def test_report_survives_a_read_only_custody_log(package_copy, signer, tmp_path):
    import os

    if os.geteuid() == 0:
        # root writes through permissions: make the log a directory-free FIFO-free
        # case instead, a custody log that is a symbolic link, which append refuses.
        log = package_copy / "evidence" / "custody.jsonl"
        target = tmp_path / "elsewhere.jsonl"
        target.write_bytes(log.read_bytes())
        log.unlink()
        log.symlink_to(target)
    else:  # pragma: no cover - CI runs as root
        (package_copy / "evidence").chmod(0o500)
    out = tmp_path / "r.html"
    result = evidence.report(package_copy, out=out, trust=[signer.pub])
    assert out.exists() and result.custody_problems
    assert result.custody_events == ()


def test_the_pdf_renderer_fetches_nothing(tmp_path):
    """Even if the HTML named a resource, rendering would stop instead of fetching it."""
    import http.server
    import threading

    from evidence.courtreport.pdf import render_pdf
    from evidence.errors import ReportError

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG_1x1)))
            self.end_headers()
            self.wfile.write(PNG_1x1)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    try:
        port = server.server_address[1]
        for src in (
            f"http://127.0.0.1:{port}/beacon.png",
            secret.as_uri(),
            f"<style>@import url('http://127.0.0.1:{port}/x.css');</style>",
        ):
            body = src if src.startswith("<") else f'<img src="{src}">'
            with pytest.raises(ReportError, match="refused"):
                render_pdf(f"<html><body>{body}</body></html>", [], created=_NOW)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []
    # The inline image the report does use still renders.
    data = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()
    assert render_pdf(f'<img src="{data}">', [], created=_NOW).startswith(b"%PDF-")


_NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def test_every_shown_value_is_inert_html():
    import unicodedata

    from hypothesis import given
    from hypothesis import strategies as st

    from evidence.courtreport.html import _t, _url, _words

    @given(st.text(max_size=300))
    def check(value: str) -> None:
        for render in (_t, _url, _words):
            out = render(value)
            inner = re.sub(r"^<[^>]*>|</[a-z]+>$", "", out)
            assert "<" not in inner and ">" not in inner and '"' not in inner
            assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in out)

    check()


# Browser and media parts (issues 12, 16): a manifest's capture.browser and
# capture.media are shown in words, every value escaped, every list bounded.

EVIL = "Evil \u202etxt.exe<script>alert(1)</script>\x1b[2J"


def _browser_and_media(n_failed: int = 3, n_items: int = 1, sha256: str | None = None):
    from evidence.manifest import (
        BrowserArtefact,
        BrowserDownload,
        BrowserFailure,
        BrowserInfo,
        MediaFile,
        MediaInfo,
        MediaItem,
    )

    shot = hashlib.sha256(b"shot").hexdigest()
    video = sha256 or hashlib.sha256(b"video").hexdigest()
    browser = BrowserInfo(
        name="chromium",
        version="Chromium 156.0.1",
        executable="/usr/lib/chromium/chromium",
        viewport="1280x800",
        user_agent=f"UA {EVIL}",
        interception_spki_sha256="eXMVz5GgrmG1O5pX3VZyYfFVsEBYneIuMBsf4iobYNg=",
        completed=False,
        artefacts=(
            BrowserArtefact(
                kind="screenshot",
                target_uri=f"urn:screenshot:http://x/{EVIL}",
                record="<urn:uuid:1>",
                content_type="image/png",
                size=1234567,
                sha256=shot,
            ),
        ),
        failed=tuple(
            BrowserFailure(url=f"http://x/{i}{EVIL}", method="GET", kind="dns", error=EVIL)
            for i in range(n_failed)
        ),
        blocked=7,
        unrecorded=(f"http://unrecorded/{EVIL}",),
        notes=(f"note {EVIL}",),
        popups=(f"http://popup/{EVIL}",),
        downloads=(BrowserDownload(url="http://dl/", filename=EVIL, state="refused"),),
    )
    items = tuple(
        MediaItem(
            url=f"http://x/watch{EVIL}",
            id="abc",
            title=f"Title {i} {EVIL}",
            extractor="generic",
            format_ids=("137", "140"),
            live=i == 1,
            complete=i == 0,
            files=(
                MediaFile(
                    kind="media",
                    target_uri="urn:media:http://x/watch",
                    record=f"<urn:uuid:m{i}>",
                    name="00001.mp4",
                    content_type="video/mp4",
                    size=2_000_000,
                    sha256=video,
                    complete=i == 0,
                ),
                MediaFile(
                    kind="subtitles",
                    target_uri="urn:media-subtitles:en:http://x/watch",
                    record=f"<urn:uuid:s{i}>",
                    name="00001.en.vtt",
                    content_type="text/vtt",
                    size=10,
                    sha256=hashlib.sha256(b"subs").hexdigest(),
                    language="en",
                ),
            ),
        )
        for i in range(n_items)
    )
    media = MediaInfo(
        tool="yt-dlp",
        version="2026.10.26",
        ffmpeg=True,
        format_selector="bv*+ba/b",
        max_media_bytes=4 * 1024**3,
        received_bytes=2_000_100,
        requests=3,
        failed_requests=1,
        completed=False,
        items=items,
        notes=(f"the media byte limit was reached {EVIL}",),
    )
    return browser, media, shot, video


def _hostile_facts(tmp_path, **parts):
    import attrs

    pkg = tmp_path / "pkg"
    shutil.copytree(HOSTILE, pkg)
    facts = gather(pkg, evidence.verify(pkg, trust=[]))
    assert facts.manifest is not None and facts.manifest.capture is not None
    from evidence.manifest import Inventory

    capture = attrs.evolve(facts.manifest.capture, **parts)
    records = Inventory()
    for r in facts.manifest.records:
        records.add(r.to_json())
    media = parts.get("media")
    for item in media.items if media is not None else ():
        for i, f in enumerate(item.files):
            # Listed in the inventory, as a capture lists them (offsets made up).
            records.add(
                {
                    "id": f.record,
                    "type": "resource",
                    "date": "2026-01-01T00:00:00Z",
                    "target_uri": f.target_uri,
                    "offset": 4242 + i,
                    "length": 100,
                    "sha256": "0" * 64,
                }
            )
    manifest = attrs.evolve(facts.manifest, capture=capture, records=records)
    return attrs.evolve(facts, manifest=manifest)


def test_browser_and_media_sections_show_hashes_and_escape_everything(tmp_path):
    browser, media, shot, video = _browser_and_media(n_items=2)
    facts = _hostile_facts(tmp_path, browser=browser, media=media)
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "Opened in a real web browser" in doc and "Chromium 156.0.1" in doc
    assert "The browser capture did NOT complete" in doc
    assert "certificates were checked by the capturing machine" in doc
    assert shot in doc and "screenshot.png" in doc and "1,234,567" in doc
    assert "<h3>Video and audio</h3>" in doc and "yt-dlp 2026.10.26" in doc
    assert video in doc and "media/001.mp4" in doc and "media/002.mp4" in doc
    assert "media/001.subtitles.1.vtt" in doc and "language en" in doc
    assert "evidence extract PACKAGE DIR" in doc and "DIR/media/" in doc
    # Item 1 is complete; item 2 is a cut live stream, and says so.
    assert "<span class='ok'>complete</span>" in doc
    assert "INCOMPLETE: what arrived is kept" in doc and "a live stream" in doc
    # Every hostile value is there, visibly, and inert.
    shown = "Evil ⟪U+202E⟫txt.exe&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J"
    for where in ("Title 0 ", "Title 1 ", "note ", "the media byte limit was reached ", "UA "):
        assert where + shown in doc, where
    assert f"<bdi>Title 0 {shown}</bdi>" in doc
    assert doc.count(shown) >= 12  # URLs, errors, pop-up, download name, notes...
    for raw in ("\u202e", "\x1b", "<script"):
        assert raw not in doc
    # The by-hand part gives a warcio command per stored video, with its hash.
    assert (
        f"warcio extract --payload data/capture.warc.gz 4242 | sha256sum   # expect {video}" in doc
    )


def test_an_insecure_browser_capture_does_not_claim_certificates_were_checked(tmp_path):
    import attrs

    browser, _, _, _ = _browser_and_media()
    facts = _hostile_facts(tmp_path, browser=browser)
    assert facts.manifest is not None
    options = {**facts.manifest.options, "tls_verification": False}
    facts = attrs.evolve(facts, manifest=attrs.evolve(facts.manifest, options=options))
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "certificates were NOT checked (captured with --insecure)" in doc
    assert "certificates were checked by the capturing machine" not in doc


def test_browser_and_media_lists_are_bounded(tmp_path):
    from evidence.courtreport.html import MAX_ROWS

    browser, media, _, _ = _browser_and_media(n_failed=MAX_ROWS + 5, n_items=MAX_ROWS + 3)
    facts = _hostile_facts(tmp_path, browser=browser, media=media)
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "5 more not shown" in doc and "3 more items not shown" in doc
    assert f"<h4>Item {MAX_ROWS}</h4>" in doc and f"<h4>Item {MAX_ROWS + 1}</h4>" not in doc
    assert "and 183 more: offsets in warc.records" in doc  # 203 videos, 20 commands


def test_a_hash_that_is_not_hex_never_reaches_a_command(tmp_path):
    _, media, _, _ = _browser_and_media(sha256="$(touch pwned)")
    facts = _hostile_facts(tmp_path, media=media)
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    assert "warcio extract" not in doc
    assert "$(touch pwned)" in doc  # shown in its table cell, as the package says


def test_no_browser_or_media_section_without_them(tmp_path):
    facts = _hostile_facts(tmp_path)
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    for absent in (
        "Opened in a real web browser",
        "Video and audio",
        "warcio extract",
        "DIR/media",
    ):
        assert absent not in doc


def test_media_details_take_text_and_numbers_only():
    from evidence.courtreport.facts import media_details_from_block

    block = (
        b'{"uploader": "Ann \\u202e", "channel": ["a"], "duration": 12.5, "upload_date": true,'
        b' "webpage_url": "", "view_count": 5}'
    )
    details = media_details_from_block("<urn:uuid:i>", block)
    assert details is not None
    assert details.values == (("uploader", "Ann \u202e"), ("duration", "12.5"))
    assert details.sha256 == hashlib.sha256(block).hexdigest()
    assert media_details_from_block("r", b"[1, 2]") is None
    assert media_details_from_block("r", b"[" * 100_000 + b"]" * 100_000) is None
    assert media_details_from_block("r", b"\xff not json") is None


def test_every_value_from_the_info_json_is_labelled_as_the_sites(tmp_path):
    """The item's page comes from the same info JSON as the uploader: it is
    yt-dlp's reading of the site, not a fact of the capture, and the report
    must say so beside it and in the note on where the values come from."""
    import attrs

    from evidence.courtreport.facts import media_details_from_block

    _, media, _, _ = _browser_and_media()
    info_record = "<urn:uuid:info0>"
    item = media.items[0]
    info = attrs.evolve(item.files[1], kind="info", record=info_record)
    media = attrs.evolve(media, items=(attrs.evolve(item, files=(item.files[0], info)),))
    facts = _hostile_facts(tmp_path, media=media)
    block = b'{"uploader": "Ann", "webpage_url": "https://elsewhere.example/v/1"}'
    details = media_details_from_block(info_record, block)
    assert details is not None
    facts = attrs.evolve(facts, media_details={info_record: details})
    doc = render_html([facts], generated="2026-01-01T00:00:00Z", software="0+test")
    row = re.search(r"<tr><th>([^<]*)</th><td><span class=\"url mono\"[^>]*>https://else", doc)
    assert row is not None, "the page is shown"
    assert "yt-dlp" in row.group(1) or "site" in row.group(1), row.group(1)
    note = doc[doc.index("are quoted from the item's info JSON") - 200 :][:400]
    assert "page" in note, note


def test_a_manifest_swapped_after_verification_is_never_shown_under_its_verdict(
    package_copy, signer, tmp_path, monkeypatch
):
    """The report reads manifest.json twice: the verifier's read, then its own.
    Someone who can write to the package in between (a shared archive) must
    not get their manifest shown under the verdict on the original."""
    import json

    import evidence.verifying as verifying
    from evidence.errors import ReportError

    manifest = package_copy / "evidence" / "manifest.json"
    forged = json.loads(manifest.read_bytes())
    forged["capture"]["requested_url"] = "https://forged.example/"
    real_verify = verifying.verify

    def verify_then_swap(*args, **kwargs):
        report = real_verify(*args, **kwargs)
        manifest.write_text(json.dumps(forged))  # the attacker's write, between the two reads
        return report

    monkeypatch.setattr(verifying, "verify", verify_then_swap)
    out = tmp_path / "r.html"
    with pytest.raises(ReportError, match=r"manifest\.json changed while the report"):
        evidence.report(package_copy, out=out, trust=[signer.pub], record_custody=False)
    assert not out.exists()
    # Unchanged, the same call reports, and the JSON names the manifest it verified.
    monkeypatch.setattr(verifying, "verify", real_verify)
    report = evidence.verify(package_copy, trust=[signer.pub])
    assert report.to_json()["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()

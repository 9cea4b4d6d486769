"""Court reports (issue 14), read back with independent tools.

Real signed and timestamped packages (a local site, a local RFC 3161
authority) are reported on; the PDFs are read with poppler (``pdftotext``,
``pdftoppm``) and qpdf (``--show-attachment``), and the attached proofs are
re-checked with ``openssl``. None of these tools shares code with us.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import typing
import zlib
from pathlib import Path

import attrs
import pytest

# The [report] extra is part of [test]: without WeasyPrint these tests fail, never skip.
import weasyprint  # noqa: F401

import evidence
from evidence.capturing import CaptureOptions, capture
from evidence.cli import main
from evidence.manifest import Inventory, Manifest, PayloadFile
from evidence.package import PackageWriter
from evidence.seal import bag_info_for, seal_attachments
from evidence.timestamping import load_tsa_roots
from evidence.warc.writer import WARCWriter

from browsers import have_chromium
from tsa import LocalTSA

TOOLS = ("pdftotext", "pdftoppm", "qpdf", "openssl")
for _tool in TOOLS:
    if shutil.which(_tool) is None:  # pragma: no cover - .ci/run installs them
        pytest.fail(f"{_tool} is missing: .ci/run installs poppler-utils and qpdf", pytrace=False)

PAGE = (
    "<!DOCTYPE html><html><head><title>Заявление 声明 ئۇيغۇرچە باياناتى</title></head>"
    "<body><p>Nothing happened.</p></body></html>\n"
).encode()


def _pdftotext(pdf: Path, *pages: str, layout: bool = True) -> str:
    mode = ["-layout"] if layout else []
    proc = subprocess.run(
        ["pdftotext", *mode, *pages, str(pdf), "-"], capture_output=True, check=True
    )
    return proc.stdout.decode("utf-8")


def _attachment(pdf: Path, name: str) -> bytes:
    proc = subprocess.run(
        ["qpdf", f"--show-attachment={name}", str(pdf)], capture_output=True, check=True
    )
    return proc.stdout


def _attachment_names(pdf: Path) -> list[str]:
    proc = subprocess.run(
        ["qpdf", "--list-attachments", str(pdf)], capture_output=True, text=True, check=True
    )
    return [line.split(" -> ")[0] for line in proc.stdout.splitlines() if " -> " in line]


def _png(width: int, height: int) -> bytes:
    """A real PNG (stripes), made by hand so the test needs no image library."""
    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes((200, 60, 60) if (x // 40 + y // 40) % 2 else (60, 60, 200)) for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def tsa():
    t = LocalTSA()
    yield t
    t.close()


@pytest.fixture(scope="module")
def stamped(tmp_path_factory, signer, tsa):
    """A signed and timestamped package of a page with a non-Latin title."""
    from servers import Site

    site = Site(
        {
            "/": (200, [("Content-Type", "text/html; charset=utf-8")], PAGE),
            "/old": (301, [("Location", "/")], b"moved\n"),
        }
    )
    try:
        out = tmp_path_factory.mktemp("stamped")
        result = capture(
            site.url("/old"),
            out=out,
            options=CaptureOptions(),
            sign_with=[signer.key],
            tsa_urls=[tsa.url],
            tsa_roots=load_tsa_roots([tsa.root_pem]),
        )
    finally:
        site.close()
    return Path(result.path)


@pytest.fixture
def stamped_copy(stamped, tmp_path):
    dest = tmp_path / "pkgs" / stamped.name
    shutil.copytree(stamped, dest)
    return dest


def _with_screenshot(package: Path, out: Path, key, image: bytes) -> Path:
    """Re-seal ``package`` with a ``urn:screenshot:`` resource record added to its WARC.

    This is what browser capture stores (DESIGN.md: artefacts are WARC
    resource records listed in the signed inventory), built with the same
    writer, manifest model and sealing code as a capture.
    """
    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    old = (package / manifest.warc_path).read_bytes()
    import io

    buf = io.BytesIO()
    writer = WARCWriter(buf)
    member = writer.write_record(
        record_type="resource",
        date=manifest.created,
        content_type="image/png",
        block=image,
        block_length=len(image),
        block_sha256=hashlib.sha256(image).digest(),
        target_uri="urn:screenshot:" + (manifest.capture.final_url if manifest.capture else ""),
    )
    records = Inventory()
    for r in manifest.records:
        records.add(r.to_json())
    records.add({**member.to_json(), "offset": len(old)})
    warc = old + buf.getvalue()
    files = tuple(
        PayloadFile(path=f.path, size=len(warc), sha256=hashlib.sha256(warc).hexdigest())
        if f.path == manifest.warc_path
        else f
        for f in manifest.files
    )
    new = attrs.evolve(
        manifest, package_id=manifest.package_id + "-shot", files=files, records=records
    )
    raw = new.to_bytes()
    out.mkdir(parents=True, exist_ok=True)
    with PackageWriter(out, new.package_id) as pkg:
        pkg.path(manifest.warc_path).parent.mkdir(parents=True, exist_ok=True)
        pkg.path(manifest.warc_path).write_bytes(warc)
        warnings: list[str] = []
        attachments = seal_attachments(
            raw,
            keys=[key],
            tsa_urls=[],
            tsa_roots=[],
            actor=None,
            note="captured",
            warnings=warnings,
        )
        path = pkg.finish(
            manifest=raw,
            payload=[(f.path, f.sha256, f.size) for f in files],
            bag_info=bag_info_for(new),
            attachments=attachments,
        )
    return Path(path)


def test_pdf_report_reads_back_with_independent_tools(stamped_copy, signer, tsa, tmp_path):
    out = tmp_path / "report.pdf"
    custody_before = (stamped_copy / "evidence" / "custody.jsonl").read_bytes()
    result = evidence.report(stamped_copy, out=out, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert result.outcome is evidence.Outcome.VERIFIED and result.exit_code == 0
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result.sha256

    page1 = _pdftotext(out, "-f", "1", "-l", "1")
    manifest = (stamped_copy / "evidence" / "manifest.json").read_bytes()
    m = Manifest.from_bytes(manifest)
    assert "VERIFIED" in page1
    assert m.capture is not None
    assert m.capture.requested_url in page1 and m.capture.final_url in page1
    assert hashlib.sha256(manifest).hexdigest() in page1
    assert m.files[0].sha256 in page1
    assert signer.kid in page1 and signer.pub.name in page1
    flat = " ".join(page1.split())
    assert "Timestamp authority" in flat and "verified against a TSA root" in flat
    # Non-Latin text is real text (pango shaped it with an installed font), not boxes.
    assert "Заявление" in page1 and "声明" in page1

    everything = _pdftotext(out, layout=False)
    squeezed = "".join(everything.split())  # table cells wrap long key ids
    for check in result.reports[0].checks:
        assert "".join(check.title.split()) in squeezed, check.title
    assert everything.count("PASS") >= len(result.reports[0].checks)
    for words in (
        "Chain of custody",
        "How to check this without our software",
        "Methodology mapping",
        "Berkeley Protocol",
        "openssl pkeyutl -verify",
    ):
        assert words in everything

    # PDF/A-3 declared in the XMP metadata (read after qpdf decompresses the streams).
    plain = tmp_path / "plain.pdf"
    subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(out), str(plain)], check=True)
    xmp = plain.read_bytes()
    assert b'pdfaid:part="3"' in xmp or b"<pdfaid:part>3</pdfaid:part>" in xmp
    # PDF/A-3 associated files: each embedded file says how it relates to the document.
    assert xmp.count(b"/AFRelationship /Source") >= 5

    # The proofs are attached byte for byte and still verify with openssl.
    names = _attachment_names(out)
    label = stamped_copy.name
    expected = {
        f"{label}_manifest.json": manifest,
        f"{label}_{signer.kid}.sig": (
            stamped_copy / "evidence" / "signatures" / f"{signer.kid}.sig"
        ).read_bytes(),
        # The log as it was when verified: the `reported` event comes after.
        f"{label}_custody.jsonl": custody_before,
    }
    tsrs = sorted((stamped_copy / "evidence" / "timestamps").glob("*.tsr"))
    assert tsrs
    for tsr in tsrs:
        expected[f"{label}_{tsr.name}"] = tsr.read_bytes()
    for name, content in expected.items():
        assert name in names
        assert _attachment(out, name) == content, name
    verbose = subprocess.run(
        ["qpdf", "--list-attachments", "--verbose", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    entries = re.split(r"\n(?=\S)", verbose)
    sig_entry = next(e for e in entries if e.startswith(f"{label}_{signer.kid}.sig ->"))
    assert "mime type: application/octet-stream" in sig_entry  # raw Ed25519, not PGP
    report_json = json.loads(_attachment(out, f"{label}_verification-report.json"))
    assert report_json["outcome"] == "verified" and report_json["report_version"] == 2

    work = tmp_path / "from-pdf"
    work.mkdir()
    for name in expected:
        (work / name).write_bytes(_attachment(out, name))
    ok = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(signer.pub),
            "-rawin",
            "-in",
            f"{label}_manifest.json",
            "-sigfile",
            f"{label}_{signer.kid}.sig",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            f"{label}_manifest.json",
            "-in",
            f"{label}_{tsrs[0].name}",
            "-CAfile",
            str(tsa.root_pem),
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr

    # Writing the report appended a `reported` custody event with its SHA-256,
    # and the package still verifies.
    after = (stamped_copy / "evidence" / "custody.jsonl").read_bytes()
    assert (
        after.startswith(custody_before) and after.count(b"\n") == custody_before.count(b"\n") + 1
    )
    last = json.loads(after.splitlines()[-1])
    assert last["event"] == "reported" and result.sha256 in last["note"]
    assert evidence.verify(stamped_copy, trust=[signer.pub]).ok


def test_page_one_renders_with_the_screenshot_and_nothing_overflows(stamped, signer, tmp_path):
    image = _png(480, 300)
    pkg = _with_screenshot(stamped, tmp_path / "pkgs", signer.key, image)
    assert evidence.verify(pkg, trust=[signer.pub]).ok
    out = tmp_path / "shot.pdf"
    evidence.report(pkg, out=out, trust=[signer.pub], record_custody=False)
    page1 = _pdftotext(out, "-f", "1", "-l", "1")
    assert "VERIFIED" in page1 and "full image is attached" in page1
    assert _attachment(out, f"{pkg.name}_screenshot.png") == image
    # Render page 1 and look at its pixels: the screenshot's two stripe colours
    # are there, and the right margin is blank (nothing ran off the page).
    subprocess.run(
        ["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(out), str(tmp_path / "p")],
        check=True,
    )
    png = next(tmp_path.glob("p*.png")).read_bytes()
    pixels, width = _decode_png(png)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), 3)}
    assert bytes((200, 60, 60)) in colours and bytes((60, 60, 200)) in colours
    margin = width * 3 - 3 * 20  # the last 20 pixels of each row (~10 mm at 50 dpi)
    rows = [pixels[r : r + width * 3] for r in range(0, len(pixels), width * 3)]
    assert all(row[margin:] == b"\xff" * (width * 3 - margin) for row in rows)


def _decode_png(data: bytes) -> tuple[bytes, int]:
    """RGB pixels and width of an 8-bit RGB PNG as pdftoppm writes it (filters undone)."""
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            assert body[8:10] == b"\x08\x02", "expected 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 3
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return bytes(out), width


def test_a_tampered_package_says_failed_on_page_one(stamped_copy, signer, tmp_path):
    warc = stamped_copy / "data" / "capture.warc.gz"
    raw = bytearray(warc.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    warc.write_bytes(bytes(raw))
    out = tmp_path / "tampered.pdf"
    result = evidence.report(stamped_copy, out=out, trust=[signer.pub], record_custody=False)
    assert result.exit_code == 1
    page1 = _pdftotext(out, "-f", "1", "-l", "1")
    assert "FAILED" in page1 and "do not rely on it" in page1
    assert "VERIFIED" not in page1.replace("FAILED", "")


HOSTILE = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "hostile-strings"


def test_hostile_strings_are_shown_visibly_in_html_and_pdf(tmp_path):
    pkg = tmp_path / HOSTILE.name
    shutil.copytree(HOSTILE, pkg)
    html_out = tmp_path / "hostile.html"
    result = evidence.report(pkg, out=html_out, trust=[], record_custody=False)
    assert result.outcome is evidence.Outcome.UNTRUSTED
    doc = html_out.read_text("utf-8")
    for raw in ("\x1b", "\x07", "\u202e", "\u2066"):
        assert raw not in doc, repr(raw)
    assert "\\x1b]0;VERIFIED\\x07" in doc  # the title's escape sequence, visible
    assert "⟪U+2066⟫" in doc and "⟪U+202E⟫" in doc  # bidi controls, visible
    # The forged report lines in the custody note stay inside one table cell.
    assert "received\\n  PASS  Signature by key trusted" in doc
    # Nothing in the document can load anything.
    lowered = doc.lower()
    for marker in (
        "<script",
        "<iframe",
        "<link",
        "<object",
        "<embed",
        "url(",
        "@import",
        'src="http',
        "href=",
    ):
        assert marker not in lowered, marker
    assert "default-src 'none'" in doc

    pdf_out = tmp_path / "hostile.pdf"
    evidence.report(pkg, out=pdf_out, trust=[], record_custody=False)
    text = _pdftotext(pdf_out)
    assert "INTACT BUT NOT TRUSTED" in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "⟪U+202E⟫" in text.replace("\n", "")


def test_cli_report_html_signs_it_and_records_custody(stamped_copy, signer, tmp_path, capsys):
    key = tmp_path / "signer.key"
    from evidence.keys import private_key_pem

    key.write_bytes(private_key_pem(signer.key, None))
    key.chmod(0o600)
    out = tmp_path / "case.html"
    code = main(
        [
            "report",
            str(stamped_copy),
            "--out",
            str(out),
            "--trust",
            str(signer.pub),
            "--key",
            str(key),
            "--actor",
            "Clerk of court",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcome"] == "verified" and doc["format"] == "html"
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    sig = Path(doc["signature"])
    assert sig.name == "case.html.sig" and len(sig.read_bytes()) == 64
    ok = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(signer.pub),
            "-rawin",
            "-in",
            str(out),
            "-sigfile",
            str(sig),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    last = json.loads((stamped_copy / "evidence" / "custody.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "reported" and last["actor"] == "Clerk of court"
    assert last["key_id"] == signer.kid and doc["sha256"] in last["note"]
    report = evidence.verify(stamped_copy, trust=[signer.pub])
    assert report.ok and report.check("custody").status is evidence.Status.PASS


def test_cli_report_refuses_an_output_inside_the_package(stamped_copy, signer, capsys):
    code = main(
        [
            "report",
            str(stamped_copy),
            "--out",
            str(stamped_copy / "r.html"),
            "--trust",
            str(signer.pub),
        ]
    )
    assert code == 2
    assert "inside the package" in capsys.readouterr().err
    assert not (stamped_copy / "r.html").exists()


def test_cli_report_needs_a_known_format(stamped_copy, signer, tmp_path, capsys):
    code = main(
        ["report", str(stamped_copy), "--out", str(tmp_path / "r.txt"), "--trust", str(signer.pub)]
    )
    assert code == 2 and ".pdf or .html" in capsys.readouterr().err


@pytest.mark.slow
def test_a_case_report_of_twenty_packages(stamped, signer, tmp_path):
    paths = []
    for i in range(20):
        dest = tmp_path / f"p{i:02d}" / stamped.name  # the same name twice: labels stay unique
        shutil.copytree(stamped, dest)
        paths.append(dest)
    (paths[7] / "data" / "capture.warc.gz").write_bytes(b"gone")
    out = tmp_path / "case.pdf"
    result = evidence.report(paths, out=out, trust=[signer.pub], record_custody=False)
    assert result.exit_code == 1 and len(result.reports) == 20
    page1 = _pdftotext(out, "-f", "1", "-l", "1")
    assert "20 web evidence packages" in page1 and "NOT ALL VERIFIED" in page1
    assert "19 VERIFIED" in page1 and "1 FAILED" in page1
    names = _attachment_names(out)
    assert len({n for n in names if n.endswith("_manifest.json")}) == 20


def test_report_without_weasyprint_says_how_to_install(stamped, signer, tmp_path):
    code = (
        "import sys; sys.modules['weasyprint'] = None\n"
        "from evidence.cli import main\n"
        f"sys.exit(main(['report', {str(stamped)!r}, '--out', {str(tmp_path / 'r.pdf')!r},"
        f" '--trust', {str(signer.pub)!r}, '--no-custody-event']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pip install 'evidence-archive[report]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.pdf").exists()


def test_https_capture_shows_the_certificate_chain(site, tmp_path, test_ca, signer):
    from cryptography.hazmat.primitives.serialization import Encoding

    s = site(
        {"/": (200, [("Content-Type", "text/html")], b"<p>secure</p>")}, test_ca.server_context()
    )
    result = capture(
        s.url("/"),
        out=tmp_path / "pkgs",
        options=CaptureOptions(ca_bundle=str(test_ca.root_pem)),
        sign_with=[signer.key],
    )
    out = tmp_path / "tls.html"
    evidence.report(result.path, out=out, trust=[signer.pub], record_custody=False)
    doc = out.read_text("utf-8")
    leaf = test_ca.leaf
    assert hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest() in doc
    assert leaf.subject.rfc4514_string() in doc and leaf.issuer.rfc4514_string() in doc
    assert "was verified by the capturing machine" in doc


def _browser_and_media_ready() -> bool:
    import importlib.util

    if importlib.util.find_spec("yt_dlp") is None or shutil.which("ffmpeg") is None:
        return False
    return have_chromium()


# The site's words, hostile: a right-to-left override, markup, an escape.
MEDIA_TITLE = "Witness \u202eevil<script>x</script> \x1b[2J statement"
UPLOADER = "Channel \u2066<b>official</b>"


@pytest.mark.skipif(
    not _browser_and_media_ready(), reason="needs Chromium, yt-dlp and ffmpeg (.ci/run)"
)
def test_browser_and_media_capture_is_reported_with_its_files(site, tmp_path, signer):
    from evidence.extract import extract

    clip_path = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=duration=1:size=96x64:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "32k", "-shortest", str(clip_path)],
        check=True, timeout=120,
    )  # fmt: skip
    clip = clip_path.read_bytes()
    routes: dict[str, typing.Any] = {"/clip.mp4": (200, [("Content-Type", "video/mp4")], clip)}
    s = site(routes)
    # yt-dlp's generic extractor reads the title, uploader and duration from JSON-LD.
    video_object = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": MEDIA_TITLE,
        "contentUrl": s.url("/clip.mp4"),
        "encodingFormat": "video/mp4",
        "duration": "PT1S",
        "uploadDate": "2026-11-30",
        "author": {"@type": "Person", "name": UPLOADER},
    }
    ld = json.dumps(video_object).replace("<", "\\u003c")
    page = (
        "<html><head><title>Statement</title><script type='application/ld+json'>"
        f"{ld}</script></head><body><p>A statement.</p></body></html>"
    )
    routes["/watch"] = (200, [("Content-Type", "text/html; charset=utf-8")], page.encode())
    result = capture(
        s.url("/watch"),
        out=tmp_path / "pkgs",
        options=CaptureOptions(deadline=60),
        sign_with=[signer.key],
        browser=True,
        media=True,
    )
    package = Path(result.path)
    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None
    browser, media = manifest.capture.browser, manifest.capture.media
    assert browser is not None and media is not None
    (item,) = media.items
    assert item.title == MEDIA_TITLE
    video = next(f for f in item.files if f.kind == "media")
    assert hashlib.sha256(clip).hexdigest() == video.sha256

    out = tmp_path / "report.html"
    report = evidence.report(package, out=out, trust=[signer.pub], record_custody=False)
    assert report.outcome is evidence.Outcome.VERIFIED
    doc = out.read_text("utf-8")
    assert "Opened in a real web browser" in doc and browser.version in doc
    assert "<h3>Video and audio</h3>" in doc and f"yt-dlp {media.version}" in doc
    # The title and uploader, visible and inert; the duration from the sealed info JSON.
    assert "<bdi>Witness ⟪U+202E⟫evil&lt;script&gt;x&lt;/script&gt;" in doc
    assert "Channel ⟪U+2066⟫&lt;b&gt;official&lt;/b&gt;" in doc
    assert "Duration (seconds, as the site gave it)</th><td><bdi>1" in doc
    for raw in ("\u202e", "\u2066", "\x1b", "<script", "<b>official"):
        assert raw not in doc, repr(raw)

    # Each file the report names is what `evidence extract` writes, with the hash shown.
    extract(package, tmp_path / "x")
    named = re.findall(
        r"<td class='mono'>((?:media/)?[a-z0-9.-]+\.[a-z0-9]+)</td><td class='mono'>([0-9a-f]{64})",
        doc,
    )
    assert {n for n, _ in named} >= {
        "screenshot.png",
        "page.pdf",
        "dom.html",
        "browser-log.json",
        "media/001.mp4",
        "media/001.info.json",
    }
    for name, digest in named:
        assert hashlib.sha256((tmp_path / "x" / name).read_bytes()).hexdigest() == digest, name
    assert (tmp_path / "x" / "media" / "001.mp4").read_bytes() == clip

    # The by-hand command for the video works with warcio, as printed.
    (command,) = re.findall(r"warcio extract --payload \S+ \d+ \| sha256sum   # expect \w+", doc)
    args, expected = command.split(" | ")[0].split(), command.rsplit(" ", 1)[1]
    warcio = Path(sys.executable).with_name("warcio")
    proc = subprocess.run(
        [str(warcio), *args[1:]], cwd=package, capture_output=True, check=True, timeout=60
    )
    assert hashlib.sha256(proc.stdout).hexdigest() == expected == video.sha256

    pdf = tmp_path / "report.pdf"
    evidence.report(package, out=pdf, trust=[signer.pub], record_custody=False)
    text = _pdftotext(pdf, layout=False)
    flat = " ".join(text.split())
    assert "Witness ⟪U+202E⟫evil<script>x</script>" in flat
    assert "Opened in a real web browser" in flat and "media/001.mp4" in flat
    assert video.sha256[:30] in flat.replace(" ", "")

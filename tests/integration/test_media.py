"""Media capture end to end: real yt-dlp, real ffmpeg-made media, local servers only.

A session fixture makes a short MP4 (testsrc video, sine audio), an HLS
stream of several segments and a DASH stream (separate video and audio, so
ffmpeg merges them) with ``ffmpeg -f lavfi``, and an MP3. ffmpeg and ffprobe
come from Debian (.ci/run installs them); yt-dlp from the ``media`` extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path

import pytest

from evidence.capturing import CaptureOptions, MediaOptions, capture
from evidence.capturing.media import MAX_INFO_JSON_BYTES, NO_MEDIA
from evidence.extract import extract
from evidence.manifest import Manifest, MediaInfo
from evidence.show import describe, summary
from evidence.verifying import Outcome, verify

from browsers import have_chromium, records

pytest.importorskip("yt_dlp", reason="needs the media extra")
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs ffmpeg and ffprobe (apt-get install ffmpeg)",
)
pytestmark = needs_ffmpeg


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clip.mp4 (2 s, H.264 + AAC), hls/ (4 segments), hls-aes/ (the same, AES-128
    encrypted), dash/ (video and audio apart), tone.mp3."""
    root = tmp_path_factory.mktemp("media")
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "48k", "-shortest", str(root / "clip.mp4"),
    )  # fmt: skip
    (root / "hls").mkdir()
    _ffmpeg(
        "-i", str(root / "clip.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "0.5",
        "-hls_list_size", "0", "-hls_segment_filename", str(root / "hls" / "seg%03d.ts"),
        str(root / "hls" / "index.m3u8"),
    )  # fmt: skip
    (root / "hls-aes").mkdir()
    (root / "hls-aes" / "key.bin").write_bytes(bytes(range(16)))
    key_info = root / "key-info.txt"
    key_info.write_text(f"key.bin\n{root / 'hls-aes' / 'key.bin'}\n", encoding="utf-8")
    _ffmpeg(
        "-i", str(root / "clip.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "0.5",
        "-hls_list_size", "0", "-hls_key_info_file", str(key_info),
        "-hls_segment_filename", str(root / "hls-aes" / "seg%03d.ts"),
        str(root / "hls-aes" / "index.m3u8"),
    )  # fmt: skip
    (root / "dash").mkdir()
    _ffmpeg(
        "-i", str(root / "clip.mp4"), "-map", "0:v", "-map", "0:a", "-c", "copy",
        "-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0",
        "-adaptation_sets", "id=0,streams=v id=1,streams=a", str(root / "dash" / "manifest.mpd"),
    )  # fmt: skip
    (root / "subs.vtt").write_text(SUBTITLES, encoding="utf-8")
    _ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=330:duration=1.5",
        "-c:a", "libmp3lame", "-b:a", "64k", str(root / "tone.mp3"),
    )  # fmt: skip
    return root


SUBTITLES = "WEBVTT\n\n00:00.000 --> 00:01.500\nThe statement, in the witness's words.\n"
_TYPES = {
    ".vtt": "text/vtt",
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp3": "audio/mpeg",
    ".html": "text/html; charset=utf-8",
}


def test_aes_128_hls_is_decrypted_by_yt_dlp_through_the_proxy(media_server, media_dir, tmp_path):
    """An AES-128 stream (common on news sites): the key and every encrypted segment
    are response records, and the stored file is the decrypted video. (Without
    pycryptodomex, in the media extra, yt-dlp would hand it to ffmpeg, which may
    never download.)"""
    server = media_server()
    playlist = (media_dir / "hls-aes" / "index.m3u8").read_text(encoding="utf-8")
    assert "METHOD=AES-128" in playlist
    result = capture(
        server.url("/hls-aes/index.m3u8"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        media=True,
    )
    package = Path(result.path)
    _, media = media_of(package)
    fetched = [p for p, _ in server.log]
    assert fetched.count("/hls-aes/key.bin") == 1
    for seg in sorted((media_dir / "hls-aes").glob("*.ts")):
        assert fetched.count(f"/hls-aes/{seg.name}") == 1, seg.name
    assert_server_log_is_recorded(server, package)
    (item,) = media.items
    assert item.complete and media.completed, media.notes
    stored = next(f for f in item.files if f.kind == "media")
    movie = tmp_path / "aes.mp4"
    movie.write_bytes({h["WARC-Record-ID"]: b for h, b in records(package)}[stored.record])
    duration, codecs = probe(movie)
    assert 1.5 < duration < 2.5 and codecs == {"h264", "aac"}


class MediaServer:
    """Serves files and pages over plain sockets and logs exactly what it wrote.

    ``log`` holds ``(path, bytes written)`` per request, so a test can show
    that the package's response records are those very bytes. ``/live.m3u8``
    is a live playlist (no ``#EXT-X-ENDLIST``) listing 200 seconds of
    segments; ``/radio.mp3`` a response body that never ends.
    """

    def __init__(self, root: Path, pages: dict[str, str] | None = None) -> None:
        self.root = root
        self.pages = pages or {}
        self.log: list[tuple[str, bytes]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        sent = bytearray()
        path = "?"
        try:
            conn.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1].decode("latin-1").split("?", 1)[0]
            if path == "/radio.mp3":
                self._endless(conn, sent)
                return
            body, ctype = self._body(path)
            status = "200 OK" if body is not None else "404 Not Found"
            if body is None:
                body, ctype = b"not found\n", "text/plain"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            for piece in (head, body):
                conn.sendall(piece)
                sent.extend(piece)
        except OSError:
            pass
        finally:
            with self._lock:
                self.log.append((path, bytes(sent)))
            conn.close()

    def _body(self, path: str) -> tuple[bytes | None, str]:
        if path in self.pages:
            return self.pages[path].encode(), _TYPES[".html"]
        if path == "/live.m3u8":
            lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1"]
            lines.append("#EXT-X-MEDIA-SEQUENCE:0")
            for n in range(400):
                lines += ["#EXTINF:0.5,", f"live/{n}.ts"]
            return ("\n".join(lines) + "\n").encode(), _TYPES[".m3u8"]
        if path.startswith("/live/") and path.endswith(".ts"):
            return (self.root / "hls" / "seg000.ts").read_bytes(), _TYPES[".ts"]
        file = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return None, ""
        return file.read_bytes(), _TYPES.get(file.suffix, "application/octet-stream")

    def _endless(self, conn: socket.socket, sent: bytearray) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nConnection: close\r\n\r\n"
        conn.sendall(head)
        sent.extend(head)
        tone = (self.root / "tone.mp3").read_bytes()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            conn.sendall(tone)
            sent.extend(tone)
            time.sleep(0.05)


@pytest.fixture
def media_server(media_dir: Path) -> typing.Iterator[typing.Callable[..., MediaServer]]:
    servers: list[MediaServer] = []

    def make(pages: dict[str, str] | None = None) -> MediaServer:
        server = MediaServer(media_dir, pages)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def capture_tone(server: MediaServer, out: Path, signer: typing.Any = None) -> Path:
    """The direct MP3 captured with media (signed when ``signer`` is given): its package."""
    result = capture(
        server.url("/tone.mp3"),
        out=out,
        options=CaptureOptions(deadline=60),
        sign_with=[signer.key] if signer is not None else (),
        media=True,
    )
    return Path(result.path)


def media_of(package: Path) -> tuple[Manifest, MediaInfo]:
    manifest = Manifest.from_bytes((package / "evidence" / "manifest.json").read_bytes())
    assert manifest.capture is not None and manifest.capture.media is not None
    return manifest, manifest.capture.media


def probe(path: Path) -> tuple[float, set[str]]:
    """(duration in seconds, codec names) as ffprobe reads them."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
         "-of", "json", str(path)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    return float(doc["format"]["duration"]), {s["codec_name"] for s in doc["streams"]}


def assert_server_log_is_recorded(server: MediaServer, package: Path) -> None:
    """Every response the server wrote is a response record holding exactly those bytes."""
    recs = records(package)
    blocks: dict[str, list[bytes]] = {}
    for headers, block in recs:
        if headers["WARC-Type"] == "response":
            blocks.setdefault(headers["WARC-Target-URI"], []).append(block)
    cut = {h["WARC-Target-URI"] for h, _ in recs if h.get("WARC-Truncated")}
    for path, wrote in server.log:
        url = server.url(path)
        if url in cut:
            # Cut at a limit: the record holds what arrived before the cut.
            assert any(wrote.startswith(b) and b for b in blocks[url]), path
            continue
        assert wrote in blocks.get(url, []), f"{path}: the bytes the server wrote"
    assert sum(len(v) for v in blocks.values()) == len(server.log), "nothing recorded twice"


def test_html5_video_page_keeps_the_file_and_every_byte(media_server, media_dir, tmp_path, signer):
    page = (
        '<html><head><title>Testimony</title></head><body><video src="/clip.mp4">'
        '<track kind="subtitles" src="/subs.vtt" srclang="en"></video>'
    )
    server = media_server({"/watch": page})
    result = capture(
        server.url("/watch"),
        out=tmp_path,
        options=CaptureOptions(deadline=60, requisites=False),
        sign_with=[signer.key],
        media=True,
    )
    package = Path(result.path)
    manifest, media = media_of(package)
    assert media.tool == "yt-dlp" and media.version and media.completed
    assert media.requests == 3, "the page again (yt-dlp reads it), the video, the subtitles"
    (item,) = media.items
    assert item.complete and not item.live and item.format_ids
    assert item.url == server.url("/watch") and item.title
    files = {f.kind: f for f in item.files}
    assert set(files) == {"media", "subtitles", "info"}
    assert files["subtitles"].language == "en"
    assert files["subtitles"].target_uri == f"urn:media-subtitles:en:{server.url('/watch')}"
    assert files["media"].target_uri == f"urn:media:{server.url('/watch')}"
    assert files["info"].target_uri == f"urn:media-info:{server.url('/watch')}"

    by_id = {h["WARC-Record-ID"]: (h, b) for h, b in records(package)}
    inventory = {r.id for r in manifest.records}
    headers, block = by_id[files["media"].record]
    assert headers["WARC-Type"] == "resource" and files["media"].record in inventory
    assert headers["WARC-Refers-To"] == manifest.page_exchange.response_record  # type: ignore[union-attr]
    # A direct file: what yt-dlp wrote is exactly what the server sent.
    assert block == (media_dir / "clip.mp4").read_bytes()
    assert files["media"].size == len(block)
    assert_server_log_is_recorded(server, package)

    info_block = by_id[files["info"].record][1]
    info = json.loads(info_block)
    assert len(info_block) <= MAX_INFO_JSON_BYTES
    assert info["title"] == item.title and info["formats_chosen"][0]["format_id"]
    assert info["subtitles"] == ["en"]
    for dropped in ("formats", "http_headers", "thumbnails"):
        assert dropped not in info and dropped not in info["formats_chosen"][0]
    warcinfo = records(package)[0][1].decode()
    assert f"media-tool: yt-dlp/{media.version}" in warcinfo
    assert "media-ffmpeg: available\r\n" in warcinfo, "whether, never where"
    assert "media-format-selector: bv*+ba/b\r\n" in warcinfo

    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED
    shown = describe(summary(package))
    assert f"Media        yt-dlp {media.version}, 3 request(s)" in shown
    assert "  media      00001.mp4: video/mp4" in shown

    # extract writes the media file and its info JSON as plain files.
    out = extract(package, tmp_path / "x")
    index = json.loads(Path(out.index).read_text())
    written = {f["kind"]: tmp_path / "x" / f["file"] for f in index["media"][0]["files"]}
    assert written["media"].read_bytes() == block
    assert written["subtitles"].read_text(encoding="utf-8") == SUBTITLES
    assert json.loads(written["info"].read_bytes()) == info
    duration, codecs = probe(written["media"])
    assert 1.5 < duration < 2.5 and codecs == {"h264", "aac"}


def test_a_tampered_media_record_fails_verification(media_server, tmp_path, signer):
    package = capture_tone(media_server(), tmp_path, signer)
    manifest, media = media_of(package)
    record = next(f.record for f in media.items[0].files if f.kind == "media")
    member = next(r for r in manifest.records if r.id == record)
    warc = package / "data" / "capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[member.offset + member.length // 2] ^= 0x01
    warc.write_bytes(bytes(data))
    report = verify(package, trust=[signer.pub])
    assert report.outcome is Outcome.FAILED
    with pytest.raises(Exception, match="does not match the sealed inventory"):
        extract(package, tmp_path / "x")


def test_hls_stream_every_playlist_and_segment_recorded(media_server, media_dir, tmp_path):
    server = media_server()
    result = capture(
        server.url("/hls/index.m3u8"), out=tmp_path, options=CaptureOptions(deadline=60), media=True
    )
    package = Path(result.path)
    manifest, media = media_of(package)
    segments = sorted(p.name for p in (media_dir / "hls").glob("*.ts"))
    assert len(segments) >= 4
    fetched = [p for p, _ in server.log]
    for name in segments:
        assert fetched.count(f"/hls/{name}") == 1, name
    media_urls = {e.url for e in manifest.exchanges if e.role == "media"}
    assert {server.url(f"/hls/{n}") for n in segments} <= media_urls
    assert server.url("/hls/index.m3u8") in media_urls
    assert_server_log_is_recorded(server, package)
    (item,) = media.items
    assert item.complete and media.completed
    stored = next(f for f in item.files if f.kind == "media")
    block = {h["WARC-Record-ID"]: b for h, b in records(package)}[stored.record]
    movie = tmp_path / "hls.mp4"
    movie.write_bytes(block)
    duration, codecs = probe(movie)
    assert 1.5 < duration < 2.5 and codecs == {"h264", "aac"}
    blocks = {h["WARC-Record-ID"]: b for h, b in records(package)}
    bodies = [
        blocks[e.response_record].partition(b"\r\n\r\n")[2]
        for e in manifest.exchanges
        if e.role == "media"
    ]
    assert media.received_bytes == sum(len(b) for b in bodies)


def test_https_media_is_fetched_and_checked_by_the_proxy(site, test_ca, media_dir, tmp_path):
    """yt-dlp's hop to our proxy skips certificate checks; the proxy's own
    connection to the server is verified against the capture's CA bundle."""
    audio = (media_dir / "tone.mp3").read_bytes()
    server = site(
        {"/tone.mp3": (200, [("Content-Type", "audio/mpeg")], audio)},
        tls=test_ca.server_context(),
    )
    url = server.url("/tone.mp3", host="localhost")
    result = capture(
        url,
        out=tmp_path,
        options=CaptureOptions(ca_bundle=str(test_ca.root_pem), deadline=60),
        media=True,
    )
    manifest, media = media_of(Path(result.path))
    fetched = [e for e in manifest.exchanges if e.role == "media"]
    assert fetched and all(e.tls is not None and e.tls.verified for e in fetched)
    assert all(e.tls.chain_file for e in fetched if e.tls is not None)
    stored = next(f for f in media.items[0].files if f.kind == "media")
    assert {h["WARC-Record-ID"]: b for h, b in records(Path(result.path))}[stored.record] == audio

    # Without the capture's CA the proxy refuses the server, whatever yt-dlp accepts.
    from evidence.capturing.fetcher import Fetcher, FetchLimits

    info, _ = _media_alone(url, Fetcher(user_agent="test", limits=FetchLimits()), tmp_path)
    assert info.items == () and info.failed_requests >= 1
    assert any("TLS certificate verification failed" in n for n in info.notes)


def test_dash_video_and_audio_merged_by_ffmpeg(media_server, tmp_path):
    server = media_server()
    result = capture(
        server.url("/dash/manifest.mpd"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        media=True,
    )
    package = Path(result.path)
    _, media = media_of(package)
    (item,) = media.items
    assert len(item.format_ids) == 2, "a video and an audio format, merged"
    assert media.ffmpeg
    assert_server_log_is_recorded(server, package)
    assert any(p.endswith(".m4s") for p, _ in server.log)
    stored = next(f for f in item.files if f.kind == "media")
    movie = tmp_path / "dash.mp4"
    movie.write_bytes({h["WARC-Record-ID"]: b for h, b in records(package)}[stored.record])
    duration, codecs = probe(movie)
    assert 1.5 < duration < 2.5 and codecs == {"h264", "aac"}


def test_direct_audio_file(media_server, media_dir, tmp_path):
    package = capture_tone(media_server(), tmp_path)
    _, media = media_of(package)
    stored = next(f for f in media.items[0].files if f.kind == "media")
    assert stored.content_type == "audio/mpeg"
    block = {h["WARC-Record-ID"]: b for h, b in records(package)}[stored.record]
    assert block == (media_dir / "tone.mp3").read_bytes()
    movie = tmp_path / "tone.mp3"
    movie.write_bytes(block)
    duration, codecs = probe(movie)
    assert 1.2 < duration < 1.8 and codecs == {"mp3"}


def test_a_page_without_media_is_not_an_error(media_server, tmp_path):
    server = media_server({"/": "<html><title>Statement</title><p>Only words.</p></html>"})
    result = capture(server.url("/"), out=tmp_path, options=CaptureOptions(deadline=60), media=True)
    package = Path(result.path)
    _, media = media_of(package)
    assert media.items == () and media.notes == (NO_MEDIA,)
    assert not any(w.startswith("media:") for w in result.warnings)
    assert verify(package, trust=[]).outcome is Outcome.UNTRUSTED
    assert "Media        no media stored" in describe(summary(package))


def test_an_endless_live_stream_is_cut_by_the_byte_limit(media_server, media_dir, tmp_path):
    server = media_server()
    segment = len((media_dir / "hls" / "seg000.ts").read_bytes())
    limit = 200_000
    started = time.monotonic()
    result = capture(
        server.url("/live.m3u8"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        media=MediaOptions(max_media_bytes=limit),
    )
    assert time.monotonic() - started < 30
    package = Path(result.path)
    manifest, media = media_of(package)
    assert media.received_bytes <= limit
    assert not media.completed
    assert any("byte limit" in n for n in media.notes)
    assert any("media: the media byte limit" in w for w in result.warnings)
    cut = [e for e in manifest.exchanges if e.role == "media" and e.truncated == "length"]
    assert len(cut) == 1, "the response that reached the limit is kept, marked"
    (item,) = media.items
    assert item.live and not item.complete
    stored = next(f for f in item.files if f.kind == "media")
    assert stored.size >= segment * 2, "what arrived is kept"
    assert_server_log_is_recorded(server, package)
    assert verify(package, trust=[]).outcome is Outcome.UNTRUSTED


def test_an_endless_response_is_cut_by_the_deadline(media_server, tmp_path):
    server = media_server({"/listen": '<title>Radio</title><audio src="/radio.mp3"></audio>'})
    started = time.monotonic()
    result = capture(
        server.url("/listen"),
        out=tmp_path,
        options=CaptureOptions(deadline=4, requisites=False),
        media=True,
    )
    assert time.monotonic() - started < 4 + 15
    manifest, media = media_of(Path(result.path))
    assert not media.completed
    assert any("deadline" in n for n in media.notes)
    timed = [e for e in manifest.exchanges if e.role == "media" and e.truncated == "time"]
    assert timed, "the endless body is kept up to the deadline, marked"


def test_without_ffmpeg_a_single_file_format_and_a_warning(media_server, tmp_path):
    server = media_server()
    empty = tmp_path / "no-ffmpeg"
    empty.mkdir()
    result = capture(
        server.url("/hls/index.m3u8"),
        out=tmp_path / "out",
        options=CaptureOptions(deadline=60),
        media=MediaOptions(ffmpeg=str(empty)),
    )
    _, media = media_of(Path(result.path))
    assert not media.ffmpeg and media.format_selector == "b"
    assert any("ffmpeg was not found" in w for w in result.warnings)
    stored = next(f for f in media.items[0].files if f.kind == "media")
    assert stored.content_type == "video/mp2t", "not remuxed: the type says what the bytes are"


def _media_alone(url: str, fetcher: typing.Any, tmp_path: Path) -> tuple[MediaInfo, list[str]]:
    """The media step alone, with the given fetcher, into a package that is then dropped."""
    from evidence.capturing.media import MediaPlan, run_media
    from evidence.capturing.record import WARC_PATH, Recorder
    from evidence.package import PackageWriter
    from evidence.warc import WARCWriter

    with PackageWriter(tmp_path, "media-alone") as pkg:
        with open(pkg.path(WARC_PATH), "xb") as fh:
            recorder = Recorder(pkg, WARCWriter(fh), "2026-01-01T00:00:00Z", None)
            info, warnings = run_media(
                MediaPlan.prepare(MediaOptions()),
                url,
                fetcher=fetcher,
                recorder=recorder,
                deadline=time.monotonic() + 30,
                spool_dir=str(pkg.path("data")),
                user_agent="test",
            )
        assert sorted(p.name for p in pkg.path("data").iterdir()) == ["capture.warc.gz"]
        assert recorder.exchanges == []
    fetcher.close()
    return info, warnings


def test_public_only_refuses_media_hosts_too(media_server, tmp_path):
    """yt-dlp's requests go through the one fetcher, so its address check holds.

    The page itself cannot be public in a test (everything here is loopback),
    so the media step runs alone, with the fetcher --public-only makes.
    """
    from evidence.capturing.fetcher import Fetcher, FetchLimits, refuse_non_public

    server = media_server()
    fetcher = Fetcher(user_agent="test", limits=FetchLimits(), check_address=refuse_non_public)
    info, warnings = _media_alone(server.url("/tone.mp3"), fetcher, tmp_path)
    assert server.log == [], "nothing was fetched from a loopback host"
    assert info.items == () and info.failed_requests >= 1 and not info.completed
    refused = f"no response for {server.url('/tone.mp3')}: destination 127.0.0.1 is not a public"
    assert any(n.startswith(refused) for n in info.notes)
    assert any(w.startswith(f"media: {refused}") for w in warnings)


def test_cli_capture_media(media_server, tmp_path, capsys):
    from evidence.cli import main

    server = media_server()
    code = main(
        ["capture", "--media", "--max-media-bytes", "50M", "--out", str(tmp_path),
         server.url("/tone.mp3")]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    manifest, media = media_of(Path(out.strip()))
    assert media.max_media_bytes == 50 * 1024**2
    assert (
        manifest.options is not None and manifest.options["media_max_media_bytes"] == 50 * 1024**2
    )
    assert main(["extract", out.strip(), str(tmp_path / "x")]) == 0
    assert "0 artefact(s), 2 media file(s), 3 response bodies" in capsys.readouterr().out
    assert main(["capture", "--max-media-bytes", "1M", "--out", str(tmp_path), "x"]) == 2
    assert "--max-media-bytes only applies with --media" in capsys.readouterr().err


def test_without_yt_dlp_one_line_says_how_to_install(tmp_path):
    code = (
        "import sys; sys.modules['yt_dlp'] = None; sys.modules['yt_dlp.version'] = None\n"
        "from evidence.cli import main\n"
        f"sys.exit(main(['capture', '--media', '--out', {str(tmp_path)!r}, 'http://127.0.0.1:9/']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "evidence: error: media capture needs yt-dlp: pip install 'evidence-archive[media]'"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not have_chromium(), reason="needs the browser extra and a Chromium")
def test_browser_and_media_in_one_package(media_server, media_dir, tmp_path, signer):
    page = '<html><head><title>Clip</title></head><body><video src="/clip.mp4"></video></body>'
    server = media_server({"/watch": page})
    result = capture(
        server.url("/watch"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        sign_with=[signer.key],
        browser=True,
        media=True,
    )
    package = Path(result.path)
    manifest, media = media_of(package)
    assert manifest.capture is not None and manifest.capture.browser is not None
    assert {a.kind for a in manifest.capture.browser.artefacts} == {"screenshot", "pdf", "dom"}
    roles = {e.role for e in manifest.exchanges}
    assert {"page", "media"} <= roles
    (item,) = media.items
    stored = next(f for f in item.files if f.kind == "media")
    blocks = {h["WARC-Record-ID"]: b for h, b in records(package)}
    assert blocks[stored.record] == (media_dir / "clip.mp4").read_bytes()
    assert_server_log_is_recorded(server, package)
    warcinfo = records(package)[0][1].decode()
    assert f"browser: {manifest.capture.browser.version}\r\n" in warcinfo
    assert f"media-tool: yt-dlp/{media.version}" in warcinfo
    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED


@pytest.mark.slow
def test_a_yt_dlp_that_hangs_is_abandoned_and_the_page_kept(media_server, tmp_path):
    """A stuck ffmpeg (here: one that only sleeps) cannot hold the capture past
    its deadline and the grace; the package is written without yt-dlp's files."""
    import os
    import signal

    fake = tmp_path / "bin"
    fake.mkdir()
    pids = tmp_path / "pids"
    script = fake / "ffmpeg"
    script.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 30\n")
    script.chmod(0o755)
    server = media_server()
    started = time.monotonic()
    try:
        result = capture(
            server.url("/dash/manifest.mpd"),
            out=tmp_path / "out",
            options=CaptureOptions(deadline=3),
            media=MediaOptions(ffmpeg=str(fake)),
        )
        assert time.monotonic() - started < 3 + 10 + 5
        package = Path(result.path)
        _, media = media_of(package)
        assert media.items == () and not media.completed
        assert any("abandoned" in n for n in media.notes)
        assert sorted(p.name for p in (package / "data").iterdir()) == ["capture.warc.gz"]
        assert verify(package, trust=[]).outcome is Outcome.UNTRUSTED
    finally:
        for pid in pids.read_text().split() if pids.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_yt_dlp_plugins_from_the_environment_never_run(media_server, tmp_path):
    """A yt-dlp plugin in the operator's config directory would run inside the
    capture (yt-dlp loads them when used as a library); ours does not let it.
    A fresh process, since plugins load once per process."""
    plugin = tmp_path / "xdg" / "yt-dlp" / "plugins" / "p" / "yt_dlp_plugins" / "extractor"
    plugin.mkdir(parents=True)
    marker = tmp_path / "plugin-ran"
    (plugin / "planted.py").write_text(
        "from yt_dlp.extractor.common import InfoExtractor\n"
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "class PlantedIE(InfoExtractor):\n"
        "    _VALID_URL = r'planted:never'\n"
    )
    server = media_server()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    code = (
        "import sys, yt_dlp\n"
        "yt_dlp.YoutubeDL({'quiet': True}) if sys.argv[1] == 'control' else None\n"
        "from evidence.cli import main\n"
        "sys.exit(main(['capture', '--media', '--out', sys.argv[2], sys.argv[3]]))\n"
    )
    args = [sys.executable, "-c", code]
    done = subprocess.run(
        [*args, "ours", str(tmp_path / "out"), server.url("/tone.mp3")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), "the planted plugin did not run"
    done = subprocess.run(
        [*args, "control", str(tmp_path / "out2"), server.url("/tone.mp3")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert marker.exists(), "control: plain yt-dlp in the same environment runs it"
    assert "plugins loaded earlier by other code in this process were active" in done.stderr


def test_media_through_a_socks5h_proxy_reaches_a_name_only_the_proxy_knows(
    media_server, media_dir, tmp_path
):
    """yt-dlp's requests go through the one fetcher, so --proxy covers them too:
    the host name exists only in the proxy's table, and no server IP is made up."""
    from socks import TestProxy

    name = "evidence-media.invalid"
    proxy = TestProxy("socks5", names={name: "127.0.0.1"})
    try:
        server = media_server()
        url = f"http://{name}:{server.port}/tone.mp3"
        result = capture(
            url, out=tmp_path, options=CaptureOptions(deadline=60, proxy=proxy.url()), media=True
        )
        manifest, media = media_of(Path(result.path))
        fetched = [e for e in manifest.exchanges if e.role == "media"]
        assert fetched and all(e.server_ip is None and e.dns_answers is None for e in fetched)
        assert len(proxy.requests) == len(manifest.exchanges), "every request went to the proxy"
        assert {(r.host, r.address_type) for r in proxy.requests} == {(name, "name")}
        stored = next(f for f in media.items[0].files if f.kind == "media")
        blocks = {h["WARC-Record-ID"]: b for h, b in records(Path(result.path))}
        assert blocks[stored.record] == (media_dir / "tone.mp3").read_bytes()
        assert not any("WARC-IP-Address" in h for h, _ in records(Path(result.path)))
    finally:
        proxy.close()


def test_batch_with_media_in_worker_processes(media_server, media_dir, tmp_path):
    """`evidence batch --media` captures each URL's media in the worker processes,
    with the limit given; with --queue it is refused (the workers decide)."""
    server = media_server({"/": "<html><title>Statement</title><p>Only words.</p></html>"})
    listing = tmp_path / "list.txt"
    listing.write_text(f"{server.url('/tone.mp3')}\n{server.url('/')}\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "evidence.cli", "batch", str(listing), "--out", str(out)]
    argv += ["--media", "--max-media-bytes", "50M", "--workers", "2", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    packages = {
        json.loads(line)["url"]: json.loads(line)["package"]
        for line in done.stdout.splitlines()
        if '"package"' in line
    }
    _, audio = media_of(out / packages[server.url("/tone.mp3")])
    assert audio.max_media_bytes == 50 * 1024**2
    stored = next(f for f in audio.items[0].files if f.kind == "media")
    block = {h["WARC-Record-ID"]: b for h, b in records(out / packages[server.url("/tone.mp3")])}
    assert block[stored.record] == (media_dir / "tone.mp3").read_bytes()
    _, none = media_of(out / packages[server.url("/")])
    assert none.items == () and none.notes == (NO_MEDIA,)
    queued = subprocess.run(
        [*argv[:7], "--media", "--queue", "redis://127.0.0.1:9/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queued.returncode == 2 and "evidence worker --media" in queued.stderr

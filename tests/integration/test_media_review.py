"""An attack review of media capture (issue 16): each test failed before its fix.

Reuses the real servers and ffmpeg-made media of ``test_media.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evidence.capturing import CaptureOptions, capture
from evidence.manifest import dumps
from evidence.package import MANIFEST_PATH
from evidence.verifying import Outcome, verify

pytest.importorskip("yt_dlp", reason="needs the media extra")
from test_media import (
    assert_server_log_is_recorded,
    capture_tone,
    media_dir,
    media_of,
    media_server,
    needs_ffmpeg,
)
from test_sealing import _resign

__all__ = ["media_dir", "media_server"]  # fixtures, used by name
pytestmark = needs_ffmpeg


@pytest.mark.parametrize(
    ("field", "value"),
    [("sha256", "0" * 64), ("size", 7), ("record", "<urn:uuid:not-there>"), ("target_uri", "x")],
)
def test_a_media_entry_that_lies_about_its_record_fails_verification(
    media_server, tmp_path, signer, field, value
):
    """The signed media entry names a record and gives its size and SHA-256: a
    court reads those in show, extract's index and the report, so a signer
    (or a bug) stating other values than the record holds must not verify."""
    package = capture_tone(media_server(), tmp_path, signer)
    assert verify(package, trust=[signer.pub]).outcome is Outcome.VERIFIED

    def lie(data: dict) -> None:
        entry = next(
            f for f in data["capture"]["media"]["items"][0]["files"] if f["kind"] == "media"
        )
        entry[field] = value

    _resign(package, signer.key, lie)
    report = verify(package, trust=[signer.pub])
    assert report.outcome is Outcome.FAILED
    failed = [c for c in report.checks if c.status.name == "FAIL"]
    assert [c.name for c in failed] == ["artefacts"], [c.name for c in failed]
    assert field.replace("_", " ") in json.dumps(report.to_json())


def test_a_hostile_subtitle_language_does_not_cost_the_video(media_server, media_dir, tmp_path):
    """yt-dlp puts a <track srclang> into a file name unchecked: a slash made
    it refuse the whole download, a long one failed it with ENAMETOOLONG. A
    page could so keep its own video out of the evidence."""
    for lang in ("../../../../../../../tmp/evil", "a" * 300):
        page = (
            '<html><body><video src="/clip.mp4">'
            f'<track kind="subtitles" src="/subs.vtt" srclang="{lang}">'
            '<track kind="subtitles" src="/subs.vtt" srclang="en"></video>'
        )
        server = media_server({"/watch": page})
        out = tmp_path / str(len(lang))
        result = capture(
            server.url("/watch"),
            out=out,
            options=CaptureOptions(deadline=60, requisites=False),
            media=True,
        )
        _, media = media_of(Path(result.path))
        (item,) = media.items
        kinds = sorted(f.kind for f in item.files)
        assert kinds == ["info", "media", "subtitles"], (lang[:20], media.notes)
        assert [f.language for f in item.files if f.kind == "subtitles"] == ["en"]
        assert not Path("/tmp/evil.vtt").exists()


@pytest.mark.slow  # 20 s: the deadline and the grace; test_media covers the abandonment
def test_an_abandoned_ffmpeg_is_not_left_running(media_server, tmp_path):
    """At the deadline yt-dlp is abandoned; the ffmpeg it started to merge
    (here one that only sleeps) must not outlive the capture: it would run on
    after the command ended, holding files of a package already written."""
    import os
    import signal
    import time

    from evidence.capturing import MediaOptions

    fake = tmp_path / "bin"
    fake.mkdir()
    pids = tmp_path / "pids"
    script = fake / "ffmpeg"
    # The real ffmpeg answers yt-dlp's probes; a merge (-i) hangs. No exec:
    # the shell stays the child yt-dlp started, with its arguments.
    real = shutil.which("ffmpeg")
    script.write_text(
        f'#!/bin/sh\ncase "$*" in *" -i "*) echo $$ >> {pids}; sleep 30;; '
        f'*) exec {real} "$@";; esac\n'
    )
    script.chmod(0o755)
    server = media_server()
    try:
        capture(
            server.url("/dash/manifest.mpd"),
            out=tmp_path / "out",
            options=CaptureOptions(deadline=3),
            media=MediaOptions(ffmpeg=str(fake)),
        )
        started = [int(p) for p in pids.read_text().split()]
        assert started, "the fake ffmpeg ran"
        time.sleep(0.5)
        for pid in started:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            assert state == b"Z" or not Path(f"/proc/{pid}").exists(), f"ffmpeg {pid} still runs"
    except FileNotFoundError:
        pass  # gone: reaped
    finally:
        for pid in pids.read_text().split() if pids.exists() else ():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_yt_dlp_never_hands_the_download_to_ffmpeg(media_server, media_dir, tmp_path, monkeypatch):
    """An HLS playlist with a feature yt-dlp's native downloader lacks (here
    SAMPLE-AES; AES-128 too without pycryptodomex) made yt-dlp hand the
    download to ffmpeg, which fetched playlist, key and segments itself: with
    the operator's ordinary ``no_proxy=127.0.0.1`` straight to the server,
    around the recorder, ``--public-only`` and ``--proxy``. ffmpeg may now
    read local files only; such a stream is not downloaded, and nothing
    reaches a server unrecorded."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    hls = tmp_path / "site" / "hls"
    shutil.copytree(media_dir / "hls", hls)
    playlist = (hls / "index.m3u8").read_text()
    (hls / "index.m3u8").write_text(
        playlist.replace(
            "#EXT-X-TARGETDURATION",
            '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="key.bin",KEYFORMAT="identity"\n'
            "#EXT-X-TARGETDURATION",
        )
    )
    (hls / "key.bin").write_bytes(bytes(16))
    server = media_server()
    server.root = tmp_path / "site"
    result = capture(
        server.url("/hls/index.m3u8"),
        out=tmp_path / "out",
        options=CaptureOptions(deadline=30),
        media=True,
    )
    package = Path(result.path)
    assert_server_log_is_recorded(server, package)
    requested = [p for p, _ in server.log]
    assert "/hls/key.bin" not in requested and "/hls/seg000.ts" not in requested
    _, media = media_of(package)
    assert media.items == () or not any(f.kind == "media" for i in media.items for f in i.files)
    assert not media.completed


def test_a_playlist_of_endless_tiny_segments_is_capped_by_requests(media_server, tmp_path):
    """Measured: 8,120 one-packet segments a minute over loopback, each about
    1.2 kB of manifest, so a long deadline on a 100,000-segment playlist made
    a manifest the verifier will not read (64 MiB). Requests are capped like
    the browser's; what arrived is kept, marked, and the package verifies."""
    from evidence.capturing import MediaOptions

    server = media_server()  # /live.m3u8 lists 400 segments
    result = capture(
        server.url("/live.m3u8"),
        out=tmp_path,
        options=CaptureOptions(deadline=60),
        media=MediaOptions(max_requests=20),
    )
    package = Path(result.path)
    manifest, media = media_of(package)
    assert media.requests <= 20 and len(server.log) <= 21, "the page, then 20 for yt-dlp"
    assert not media.completed
    assert any("media request limit (20) was reached" in n for n in media.notes)
    assert manifest.options is not None and manifest.options["media_max_requests"] == 20
    assert verify(package, trust=[]).outcome is Outcome.UNTRUSTED


def test_extract_names_media_files_itself_whatever_kind_the_manifest_gives(media_server, tmp_path):
    """extract runs on packages nobody verified: a kind such as
    ``x/../../escape`` went into the file name (the open failed only because
    ``001.x`` did not exist) and a repeated info entry stopped extraction."""
    from evidence.extract import extract

    package = capture_tone(media_server(), tmp_path / "out")
    data = json.loads((package / MANIFEST_PATH).read_bytes())
    files = data["capture"]["media"]["items"][0]["files"]
    media = next(f for f in files if f["kind"] == "media")
    info = next(f for f in files if f["kind"] == "info")
    files.append(dict(media, kind="x/../../escape"))
    files.append(dict(info))
    (package / MANIFEST_PATH).write_bytes(dumps(data))
    out = extract(package, tmp_path / "x")
    written = sorted(str(p.relative_to(tmp_path / "x")) for p in (tmp_path / "x").rglob("*"))
    assert all(
        p == "media" or p.startswith(("media/001", "responses", "index.json")) for p in written
    )
    assert all("/" not in p.removeprefix("media/").removeprefix("responses/") for p in written)
    assert out.media == 4
    assert (
        not (tmp_path / "escape.1.mp3").exists() and not (tmp_path / "x" / "escape.1.mp3").exists()
    )


def test_extract_of_a_package_listing_one_artefact_kind_twice_says_so(media_server, tmp_path):
    """Two screenshot entries stopped extraction with a raw FileExistsError."""
    from evidence.extract import extract

    package = capture_tone(media_server(), tmp_path / "out")
    data = json.loads((package / MANIFEST_PATH).read_bytes())
    stored = next(f for f in data["capture"]["media"]["items"][0]["files"] if f["kind"] == "info")
    shot = {k: stored[k] for k in ("target_uri", "record", "content_type", "size", "sha256")}
    data["capture"]["browser"] = {
        "name": "Chromium", "version": "1", "executable": "chromium", "viewport": "1x1",
        "user_agent": "x", "interception_spki_sha256": "x", "completed": True,
        "artefacts": [dict(shot, kind="screenshot"), dict(shot, kind="screenshot")],
    }  # fmt: skip
    (package / MANIFEST_PATH).write_bytes(dumps(data))
    out = extract(package, tmp_path / "x")
    assert out.artefacts == 1
    assert any("listed more than once" in n for n in out.notes)

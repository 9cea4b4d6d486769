"""The media part without a network: what is kept of yt-dlp's info, the manifest model, show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.capturing import MediaOptions, capture
from evidence.capturing.media import MAX_INFO_JSON_BYTES, _language, _Logger, bounded_info
from evidence.errors import ManifestError, UsageError
from evidence.manifest import CaptureInfo, MediaFile, MediaInfo, MediaItem
from evidence.show import describe

HOSTILE = "Title\x1b[2J\u202eevil\r\nsecond line"


def _info() -> dict[str, object]:
    """A yt-dlp info dict of the hostile kind: huge, nested, with secrets."""
    return {
        "id": "v1",
        "title": "x" * 100_000,
        "description": "d" * 10_000_000,
        "duration": float("nan"),
        "view_count": 2**80,
        "uploader": {"nested": "object"},
        "http_headers": {"Cookie": "session=secret"},
        "formats": [{"format_id": str(n), "url": "https://cdn/" + "a" * 500} for n in range(5000)],
        "thumbnails": [{"url": "https://t/" + str(n)} for n in range(5000)],
        "requested_formats": [
            {
                "format_id": "137",
                "url": "https://cdn/v",
                "http_headers": {"Cookie": "session=secret"},
                "fragments": [{"url": "f"}] * 1000,
            },
            {"format_id": "140", "url": "https://cdn/a", "acodec": "mp4a.40.2"},
        ],
        "requested_subtitles": {f"l{n}": {"data": "x" * 1000} for n in range(100)},
        "format_id": "137+140",
    }


def test_bounded_info_keeps_named_fields_bounded_and_drops_secrets():
    kept = bounded_info(_info())
    data = json.dumps(kept)
    assert len(data) <= MAX_INFO_JSON_BYTES
    assert "secret" not in data and "Cookie" not in data
    assert "formats" not in kept and "thumbnails" not in kept and "uploader" not in kept
    assert "duration" not in kept, "NaN is not JSON"
    assert "view_count" not in kept, "a number past 2**53 is not kept"
    assert len(kept["title"]) == 4096
    assert [f["format_id"] for f in kept["formats_chosen"]] == ["137", "140"]
    assert "fragments" not in kept["formats_chosen"][0]
    assert len(kept["subtitles"]) == 20


def test_a_single_format_is_the_chosen_one():
    kept = bounded_info({"id": "a", "format_id": "0", "url": "http://x/a.mp4", "ext": "mp4"})
    assert kept["formats_chosen"] == [{"format_id": "0", "url": "http://x/a.mp4", "ext": "mp4"}]


def _media() -> MediaInfo:
    return MediaInfo(
        tool="yt-dlp",
        version="2026.10.26",
        ffmpeg=True,
        format_selector="bv*+ba/b",
        max_media_bytes=1000,
        received_bytes=10,
        requests=2,
        completed=False,
        items=(
            MediaItem(
                url="http://example.org/watch",
                title=HOSTILE,
                format_ids=("137", "140"),
                live=True,
                complete=False,
                files=(
                    MediaFile(
                        kind="media",
                        target_uri="urn:media:http://example.org/watch",
                        record="<urn:uuid:1>",
                        name="00001.mp4.part",
                        content_type="video/mp4",
                        size=10,
                        sha256="0" * 64,
                        complete=False,
                    ),
                ),
            ),
        ),
        notes=(HOSTILE,),
    )


def test_media_part_round_trips_and_old_manifests_have_none():
    media = _media()
    again = MediaInfo.from_json(json.loads(json.dumps(media.to_json())), "media")
    assert again == media
    assert "language" not in media.to_json()["items"][0]["files"][0], "omitted when None"
    old = {
        "requested_url": "http://x/",
        "final_url": "http://x/",
        "status": 200,
        "started": "2026-01-01T00:00:00Z",
        "ended": "2026-01-01T00:00:01Z",
    }
    assert CaptureInfo.from_json(old, "capture").media is None
    with pytest.raises(ManifestError, match=r"capture\.media\.items"):
        CaptureInfo.from_json({**old, "media": {**media.to_json(), "items": "x"}}, "capture")


def test_show_lists_media_with_hostile_text_made_harmless():
    shown = describe({"media": _media().to_json()})
    assert "Media        yt-dlp 2026.10.26, 2 request(s), 10 bytes received, INCOMPLETE" in shown
    assert "(INCOMPLETE: what arrived) (live stream)" in shown
    assert "  formats    137, 140" in shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\r" not in shown
    title = next(line for line in shown.splitlines() if line.startswith("  title"))
    assert title.endswith("(as the site gave it)")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (MediaOptions(max_media_bytes=0), "max_media_bytes must be a positive"),
        (MediaOptions(max_items=0), "max_items must be at least 1"),
    ],
)
def test_unusable_media_options_are_refused_before_any_connection(tmp_path, options, message):
    with pytest.raises(UsageError, match=message):
        capture("http://127.0.0.1:9/", out=tmp_path, media=options)
    assert list(tmp_path.iterdir()) == []


def test_subtitle_language_tags_are_reduced_to_safe_characters():
    assert _language("00001.en.vtt") == "en"
    assert _language("00001.pt-BR.vtt") == "pt-BR"
    assert _language("00001.e\u202en\x1b[2J.vtt") == "en2J"
    assert _language("00001.vtt") == "und"
    assert _language("00001.....vtt") == "und"


def test_bounded_info_stays_bounded_when_every_kept_field_is_huge():
    big = "u" * 100_000
    fmt = {"format_id": big, "url": big, "manifest_url": big, "protocol": big, "ext": big}
    info = {name: big for name in ("id", "title", "uploader", "channel", "webpage_url")}
    kept = bounded_info({**info, "requested_formats": [dict(fmt) for _ in range(50)]})
    assert len(json.dumps(kept, indent=2)) <= MAX_INFO_JSON_BYTES
    assert len(kept["formats_chosen"]) == 8


def test_yt_dlp_messages_name_no_local_path(tmp_path):
    package = tmp_path / "archives" / ".pkg-123"
    workdir = package / "data" / ".media-x"
    log = _Logger([(str(workdir), "<media dir>"), (str(package), "<package>")])
    log.error(f"ERROR: unable to open for writing: [Errno 13] {workdir}/00001.mp4.part")
    log.warning(f"WARNING: cannot remove {package}/data/x and ~ is {Path.home()}/clips")
    assert log.messages == [
        "unable to open for writing: [Errno 13] <media dir>/00001.mp4.part",
        "cannot remove <package>/data/x and ~ is ~/clips",
    ]

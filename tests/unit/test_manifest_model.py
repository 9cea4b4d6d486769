"""The typed manifest model (issue 9): strict on read, exact on write, nothing dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from evidence.errors import ManifestError
from evidence.manifest import CaptureInfo, Manifest, TLSInfo, dumps

CORPUS = Path(__file__).parents[1] / "assets" / "corpus"


def sealed_json(sealed_package: Path) -> dict:
    return json.loads((sealed_package / "evidence" / "manifest.json").read_bytes())


def test_a_captured_manifest_round_trips_byte_for_byte(sealed_package: Path) -> None:
    raw = (sealed_package / "evidence" / "manifest.json").read_bytes()
    m = Manifest.from_bytes(raw)
    assert m.to_bytes() == raw
    assert isinstance(m.capture, CaptureInfo)
    assert m.capture.redirects[0].status == 301
    assert m.page_exchange is not None and m.page_exchange.status == 200
    assert m.capture.title == "Statement"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("capture", "tls"), "x", "capture.tls"),
        (("capture", "redirects"), ["x"], "capture.redirects[0]"),
        (("operator",), "x", "operator"),
        (("capture", "warnings"), 5, "capture.warnings"),
        (("capture", "dns"), {"h": [1]}, "capture.dns.h[0]"),
        (("capture", "status"), True, "capture.status"),
        (("exchanges",), [{"url": 1}], "exchanges[0].url"),
        (("software",), [], "software"),
        (("options",), {"a": {"b": 1}}, "options.a"),
        (("certificate_chains",), {"x": "y"}, "certificate_chains.x"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_manifest_error_naming_it(
    sealed_package: Path, path: tuple[str, ...], value: object, field: str
) -> None:
    # A signed manifest with hostile types used to crash `evidence show` with a
    # traceback (AttributeError on tls "x"); now parsing names the field.
    data = sealed_json(sealed_package)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ManifestError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Manifest.from_bytes(dumps(data))


def test_unknown_fields_are_kept_at_every_level(sealed_package: Path) -> None:
    data = sealed_json(sealed_package)
    data["future_section"] = {"x": 1}
    data["capture"]["future_field"] = [1, 2]
    data["exchanges"][0]["future"] = "y"
    data["capture"]["redirects"][0]["future"] = None
    raw = dumps(data)
    m = Manifest.from_bytes(raw)
    assert m.extra["future_section"] == {"x": 1}
    assert m.capture is not None and m.capture.extra["future_field"] == [1, 2]
    assert m.to_bytes() == raw


def test_missing_sections_are_none_not_errors() -> None:
    data = {
        "format": "evidence-package/1",
        "package_id": "x",
        "created": "2026-01-01T00:00:00.000000Z",
        "files": [],
        "warc": {"path": "data/capture.warc.gz", "records": []},
    }
    m = Manifest.from_bytes(dumps(data))
    assert m.capture is None and m.operator is None and m.exchanges == ()
    assert m.to_json() == data


def test_tls_model_keeps_optional_fields_absent() -> None:
    tls = TLSInfo(
        protocol="TLSv1.3",
        cipher="x",
        verified=True,
        certificate_sha256="0" * 64,
        chain_file=None,
        chain_complete=True,
    )
    assert "chain_note" not in tls.to_json() and "certificates" not in tls.to_json()


def test_every_corpus_manifest_parses_or_fails_cleanly() -> None:
    for path in sorted(CORPUS.glob("*/evidence/manifest.json")):
        raw = path.read_bytes()
        try:
            m = Manifest.from_bytes(raw)
        except ManifestError:
            continue
        try:
            again = Manifest.from_bytes(m.to_bytes())
        except ManifestError as exc:  # lone surrogates: refused cleanly, never written
            assert "surrogate" in str(exc), path
            continue
        assert again.to_json() == m.to_json(), path
        assert copy.copy(m) == m


def test_show_on_a_signed_manifest_with_hostile_types_is_one_line_not_a_traceback() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "show", str(CORPUS / "tls-is-a-string")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "capture.tls" in proc.stderr


def test_many_tiny_containers_are_refused_before_parsing() -> None:
    # 60 MiB of "{}," was 20 million dicts: 3 GB and a minute (adversarial review).
    import time
    import tracemalloc

    from evidence.manifest import MAX_CONTAINERS

    raw = b'{"x": [' + b"{}," * (MAX_CONTAINERS // 2) + b"[]" * (MAX_CONTAINERS // 2) + b"]}"
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(ManifestError, match="objects and arrays"):
        Manifest.from_bytes(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 4 * len(raw) + 50_000_000


BROWSER = {
    "name": "chromium",
    "version": "Chromium 1",
    "executable": "/usr/lib/chromium/chromium",
    "viewport": "1280x800",
    "user_agent": "UA",
    "interception_spki_sha256": "pin",
    "completed": True,
}


def test_browser_info_before_the_log_still_parses_and_new_fields_are_typed() -> None:
    from evidence.manifest import BrowserInfo

    old = BrowserInfo.from_json(dict(BROWSER), "capture.browser")
    assert old.log is None and old.popups == () and old.downloads == ()
    assert "log" not in old.to_json()
    new = BrowserInfo.from_json(
        {
            **BROWSER,
            "log": {
                "record": "<urn:uuid:1>",
                "target_uri": "urn:browser-log:http://x/",
                "content_type": "application/json",
                "size": 10,
                "sha256": "00",
                "requests": 3,
            },
            "popups": ["http://x/p"],
            "downloads": [{"url": "http://x/f", "state": "refused"}],
        },
        "capture.browser",
    )
    assert new.log is not None and new.log.requests == 3 and new.log.console_messages == 0
    assert new.downloads[0].record is None and new.downloads[0].filename is None
    assert BrowserInfo.from_json(new.to_json(), "capture.browser") == new
    for field, value, where in (
        ("log", "x", "capture.browser.log"),
        ("log", {"record": 1}, "capture.browser.log.record"),
        ("popups", [1], r"capture.browser.popups\[0\]"),
        ("downloads", [{"url": "u"}], r"capture.browser.downloads\[0\].state"),
    ):
        with pytest.raises(ManifestError, match=where):
            BrowserInfo.from_json({**BROWSER, field: value}, "capture.browser")


def test_show_lists_the_log_pop_ups_and_downloads_safely() -> None:
    from evidence.show import describe

    shown = describe(
        {
            "browser": {
                **BROWSER,
                "log": {"requests": 3, "console_messages": 1, "page_errors": 0, "size": 9},
                "popups": ["http://x/\x1b[2Jpop\u202e"],
                "downloads": [
                    {
                        "url": "http://x/f",
                        "filename": "a\x1b]0;b\x07.pdf",
                        "state": "refused",
                        "record": "<urn:uuid:2>",
                    }
                ],
            }
        }
    )
    assert "Browser log  3 request(s), 1 console message(s), 0 page error(s)" in shown
    assert "Pop-up       closed: http://x/" in shown
    assert "Download     refused: http://x/f, file name a" in shown
    assert "(response recorded)" in shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown

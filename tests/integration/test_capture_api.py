"""What scripts rely on when a capture works or fails (issues 9 and 11)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import warnings
from pathlib import Path

import pytest

from evidence.capturing import CaptureOptions, capture
from evidence.errors import CAPTURE_ERROR_KINDS, CaptureError, UsageError
from evidence.keys import generate_keypair, key_id
from evidence.manifest import Manifest, Operator

from servers import closed_port

PAGE = (
    "<!DOCTYPE html><html><head><title>\n  Déclaration  officielle \u202e</title></head>"
    "<body><p>x</p></body></html>"
).encode()


@pytest.mark.parametrize(
    ("url", "kind", "words"),
    [
        ("example.org", "invalid-url", "did you mean 'https://example.org'"),
        ("ftp://127.0.0.1/x", "invalid-url", "unsupported scheme"),
        ("http://nonexistent.invalid/", "dns", "DNS lookup failed"),
        ("http://127.0.0.1:{closed}/", "refused", "connection refused"),
    ],
)
def test_capture_errors_carry_a_machine_readable_kind(tmp_path, url, kind, words) -> None:
    # The closed port is taken when the test runs: one taken at collection
    # could be listened on by a server another test started since.
    url = url.replace("{closed}", str(closed_port()))
    with pytest.raises(CaptureError) as info:
        capture(url, out=tmp_path)
    assert info.value.kind == kind and kind in CAPTURE_ERROR_KINDS
    assert words in info.value.cause
    assert os.listdir(tmp_path) == []


def test_a_timeout_is_kind_timeout(raw_server, tmp_path) -> None:
    def silent(conn, _request):
        threading.Event().wait(3)

    s = raw_server(silent)
    with pytest.raises(CaptureError) as info:
        capture(s.url("/"), out=tmp_path, options=CaptureOptions(deadline=1.0))
    assert info.value.kind == "timeout"
    assert "1.0 s" in info.value.cause  # rounded, not "0.99607 s"


def test_pasted_url_with_surrounding_whitespace_is_trimmed(site, tmp_path) -> None:
    s = site({"/": (200, [("Content-Type", "text/html")], PAGE)})
    result = capture(f"  {s.url('/')}\n", out=tmp_path)
    assert result.url == s.url("/")


def test_result_has_what_scripts_need(site, tmp_path) -> None:
    s = site({"/": (200, [("Content-Type", "text/html; charset=utf-8")], PAGE)})
    key = generate_keypair()
    result = capture(s.url("/"), out=tmp_path, sign_with=[key])
    raw = (Path(result.path) / "evidence" / "manifest.json").read_bytes()
    assert result.manifest_sha256 == hashlib.sha256(raw).hexdigest()
    assert result.signers == (key_id(key.public_key()),)
    m = Manifest.from_bytes(raw)
    assert result.created == m.created
    # The title is the site's text, kept as sent (whitespace collapsed);
    # showing it safely is the display layer's job.
    assert result.title == "Déclaration officielle \u202e"
    assert m.capture is not None and m.capture.title == result.title
    assert json.loads(json.dumps(result.to_json()))["manifest_sha256"] == result.manifest_sha256


def test_no_title_when_the_page_has_none(site, tmp_path) -> None:
    s = site({"/": (200, [("Content-Type", "text/plain")], b"<title>not html</title>")})
    result = capture(s.url("/"), out=tmp_path, options=CaptureOptions(requisites=False))
    assert result.title is None


@pytest.mark.parametrize("bad", [["key.pem"], "key.pem", [b"raw"]])
def test_sign_with_paths_is_a_clear_typed_error(site, tmp_path, bad) -> None:
    s = site({"/": (200, [], b"x")})
    with pytest.raises(UsageError, match="load_private_key"):
        capture(s.url("/"), out=tmp_path, sign_with=bad)
    assert os.listdir(tmp_path) == []


def test_operator_fields_must_be_one_line(site, tmp_path) -> None:
    s = site({"/": (200, [], b"x")})
    with pytest.raises(UsageError):
        capture(s.url("/"), out=tmp_path, operator=Operator(organization="NGO\nEvil: 1"))


def test_insecure_capture_emits_no_library_warning(site, tmp_path, test_ca) -> None:
    # urllib3's InsecureRequestWarning used to reach the user's terminal with a
    # site-packages path, from requisite threads where a filter cannot help.
    page = b'<img src="/a.png"><img src="/b.png"><link rel=stylesheet href="/c.css">'
    routes = {
        "/": (200, [("Content-Type", "text/html")], page),
        "/a.png": (200, [], b"a"),
        "/b.png": (200, [], b"b"),
        "/c.css": (200, [("Content-Type", "text/css")], b"p{}"),
    }
    s = site(routes, test_ca.server_context())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = capture(s.url("/"), out=tmp_path, options=CaptureOptions(unsafe_insecure=True))
    assert result.status == 200


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_only_that_url_and_leaves_nothing(site, small_disk) -> None:
    s = site(
        {
            "/big": (200, [("Content-Type", "application/octet-stream")], os.urandom(600_000)),
            "/small": (200, [("Content-Type", "text/html")], PAGE),
        }
    )
    out = small_disk / "archives"
    with pytest.raises(CaptureError) as info:
        capture(s.url("/big"), out=out)
    assert info.value.kind == "disk"
    assert "No space left on device" in info.value.cause
    assert os.listdir(out) == []  # no half-written package, no temporary directory
    # The disk is usable again at once: the next URL is captured.
    result = capture(s.url("/small"), out=out, options=CaptureOptions(requisites=False))
    assert Path(result.path).is_dir()


def test_show_gives_the_page_title_safely(site, tmp_path) -> None:
    import contextlib
    import io

    from evidence.cli import main

    s = site({"/": (200, [("Content-Type", "text/html")], PAGE)})
    result = capture(s.url("/"), out=tmp_path, options=CaptureOptions(requisites=False))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["show", result.path]) == 0
    line = next(x for x in out.getvalue().splitlines() if x.startswith("Page title"))
    assert "Déclaration officielle ⟪U+202E⟫" in line and "\u202e" not in line
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["show", result.path, "--json"]) == 0
    assert json.loads(out.getvalue())["title"] == "Déclaration officielle \u202e"


def test_labels_are_sealed_into_the_manifest_and_shown_safely(site, tmp_path) -> None:
    import contextlib
    import io

    from evidence.cli import main

    s = site({"/": (200, [("Content-Type", "text/html")], PAGE)})
    labels = {"case": "ICC-01/21", "note": "source\x1b[2J\u202e"}
    result = capture(
        s.url("/"), out=tmp_path, options=CaptureOptions(requisites=False), labels=labels
    )
    m = Manifest.from_bytes((Path(result.path) / "evidence" / "manifest.json").read_bytes())
    assert dict(m.labels or {}) == labels
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["show", result.path]) == 0
    text = out.getvalue()
    assert "Label        case: ICC-01/21" in text
    assert "\x1b" not in text and "\\x1b[2J⟪U+202E⟫" in text


@pytest.mark.parametrize(
    "bad", [{"x": 1}, {"": "v"}, {"k": "v" * 2000}, {str(i): "v" for i in range(40)}]
)
def test_bad_labels_are_a_usage_error_before_anything_is_fetched(site, tmp_path, bad) -> None:
    s = site({"/": (200, [], b"x")})
    with pytest.raises(UsageError):
        capture(s.url("/"), out=tmp_path, labels=bad)
    assert os.listdir(tmp_path) == []


def test_a_failed_sync_after_the_rename_takes_the_package_back(site, tmp_path) -> None:
    """An I/O error making the rename durable (a failing disk) fails the
    capture, and then nothing may stay behind: a complete package left under
    its final name would make a retry write a second one for the same URL."""
    import errno

    from evidence import package
    from evidence.errors import EvidenceError

    s = site({"/": (200, [("Content-Type", "text/html")], PAGE)})
    out = tmp_path / "archives"

    def hook(name: str) -> None:
        if name == "after-rename":
            raise OSError(errno.EIO, "Input/output error")

    previous = package.set_fault_hook(hook)
    try:
        with pytest.raises(EvidenceError, match="Input/output error"):
            capture(s.url("/"), out=out, options=CaptureOptions(requisites=False))
    finally:
        package.set_fault_hook(previous)
    assert os.listdir(out) == []
    result = capture(s.url("/"), out=out, options=CaptureOptions(requisites=False))
    assert os.listdir(out) == [Path(result.path).name]

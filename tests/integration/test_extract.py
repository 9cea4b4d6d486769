"""evidence extract on plain captures, and the browser options of the CLI without a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import PAGE
from evidence.cli import main
from evidence.errors import PackageError, UsageError
from evidence.extract import extract


def test_extract_plain_capture_writes_bodies_and_index(sealed_package, tmp_path):
    result = extract(sealed_package, tmp_path / "out")
    index = json.loads(Path(result.index).read_text())
    assert index["artefacts"] == {}
    page = next(r for r in index["responses"] if r["role"] == "page")
    assert (tmp_path / "out" / page["file"]).read_bytes() == PAGE
    assert page["file"].endswith(".html")
    assert result.responses == len(index["responses"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no partial directory remains"


def test_extract_refuses_an_existing_directory(sealed_package, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match="already exists"):
        extract(sealed_package, tmp_path / "out")


def test_extract_refuses_a_changed_warc_and_leaves_nothing(package_copy, tmp_path):
    warc = package_copy / "data" / "capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[len(data) // 2] ^= 0x01
    warc.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="does not match the sealed inventory"):
        extract(package_copy, tmp_path / "o" / "out")
    assert list((tmp_path / "o").iterdir()) == [], "a failed extraction leaves no directory"


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_extract(sealed_package, tmp_path, capsys):
    code, out, _ = run(capsys, "extract", sealed_package, tmp_path / "x", "--json")
    assert code == 0
    assert json.loads(out)["responses"] == 2


def test_cli_browser_options_need_browser(tmp_path, capsys):
    code, _, err = run(capsys, "capture", "--viewport", "800x600", "http://127.0.0.1:9/")
    assert code == UsageError.exit_code
    assert "only apply with --browser" in err
    assert "Traceback" not in err


def test_cli_bad_viewport_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "capture", "--browser", "--viewport", "huge", "http://127.0.0.1:9/")
    assert code == UsageError.exit_code
    assert "WIDTHxHEIGHT" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_cli_missing_chromium_is_one_line_before_any_url(tmp_path, capsys, monkeypatch):
    pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("EVIDENCE_CHROMIUM", str(tmp_path / "nothing"))
    code, out, err = run(
        capsys, "capture", "--browser", "--out", tmp_path / "a", "http://127.0.0.1:9/"
    )
    assert code == UsageError.exit_code
    assert "Chromium not found" in err
    assert out == ""
    assert not (tmp_path / "a").exists()


def test_extract_refuses_a_fifo_warc_without_hanging(package_copy, tmp_path):
    """A FIFO in place of the WARC used to block extract forever on open()."""
    import os
    import subprocess
    import sys

    warc = package_copy / "data" / "capture.warc.gz"
    warc.unlink()
    os.mkfifo(warc)
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "extract", str(package_copy), str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()

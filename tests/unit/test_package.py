from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from evidence.errors import PackageError
from evidence.package import (
    PackageWriter,
    is_package,
    make_package_id,
    require_package,
    safe_relative_path,
)

WHEN = dt.datetime(2026, 11, 29, 11, 5, 34, tzinfo=dt.timezone.utc)
SAFE = re.compile(r"^20261129T110534Z-[a-z0-9._-]+-[0-9a-f]{8}$")


@pytest.mark.parametrize(
    ("url", "host_part"),
    [
        ("https://example.org/a", "example.org"),
        ("https://Bücher.example/x", "xn--bcher-kva.example"),
        ("http://[2001:db8::1]:8080/", "2001_db8_1_8080"),
        ("http://127.0.0.1:8765/", "127.0.0.1_8765"),
        ("https://" + "a" * 63 + "." + "b" * 63 + ".example/", None),
        ("http://exa%2Fmple/", None),
    ],
)
def test_package_ids_are_filesystem_safe(url, host_part, tmp_path):
    pid = make_package_id(url, WHEN)
    assert SAFE.match(pid), pid
    assert len(pid) <= 100
    if host_part:
        assert f"-{host_part}-" in pid
    (tmp_path / pid).mkdir()  # really creatable


def test_package_ids_are_unique():
    ids = {make_package_id("https://example.org/", WHEN) for _ in range(1000)}
    assert len(ids) == 1000


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("data/capture.warc.gz", True),
        ("data/sub/x", True),
        ("../x", False),
        ("data/../../x", False),
        ("/etc/passwd", False),
        ("~/x", False),
        ("data/~x", False),
        ("data//x", False),
        ("data/./x", False),
        ("data\\x", False),
        ("", False),
    ],
)
def test_safe_relative_path(name, ok):
    assert safe_relative_path(name) is ok


def test_aborted_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), PackageWriter(tmp_path, "pid") as pkg:
        pkg.path("data/x").write_bytes(b"x")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_temporary_directory_is_never_a_package(tmp_path):
    pkg = PackageWriter(tmp_path, "pid")
    (pkg.tmp / "bagit.txt").write_text("BagIt-Version: 1.0\n")
    (pkg.tmp / "evidence" / "manifest.json").write_text("{}")
    assert not is_package(pkg.tmp)
    with pytest.raises(PackageError, match="never a package"):
        require_package(pkg.tmp)


def test_finished_package_is_renamed_into_place(tmp_path):
    with PackageWriter(tmp_path, "pid") as pkg:
        pkg.path("data/a.txt").write_bytes(b"abc")
        final = pkg.finish(
            manifest=b"{}\n",
            payload=[
                (
                    "data/a.txt",
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                    3,
                )
            ],
            bag_info=[("External-Identifier", "pid")],
        )
    assert final == tmp_path / "pid"
    assert os.listdir(tmp_path) == ["pid"]
    assert is_package(final)
    assert "Payload-Oxum: 3.1" in (final / "bag-info.txt").read_text()


def test_unsafe_relative_path_refused(tmp_path):
    with PackageWriter(tmp_path, "pid") as pkg, pytest.raises(PackageError):
        pkg.path("../escape")


def test_fsync_paths_syncs_files_and_directories_and_reports_a_failure(tmp_path):
    from evidence.package import fsync_paths

    files = [tmp_path / f"f{i}" for i in range(5)]
    for f in files:
        f.write_bytes(b"x")
    fsync_paths([*files, tmp_path])
    (tmp_path / "link").symlink_to(files[0])
    with pytest.raises(OSError):
        fsync_paths([*files, tmp_path / "link"])
    with pytest.raises(FileNotFoundError):
        fsync_paths([tmp_path / "missing", *files])

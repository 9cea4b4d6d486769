"""The WACZ reader treats every ZIP as hostile: one named builder per malicious case.

Each case is made here, reproducibly, from a small valid WACZ; each must give
a FAILED (or NOT A PACKAGE) report with a finding that names the problem, and
never raise.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import typing
import warnings
import zipfile
from pathlib import Path

import pytest

from evidence.verifying import Outcome, Status
from evidence.verifying.wacz import (
    WACZLimits,
    WACZTrust,
    package_path_for,
    verify_wacz,
    wacz_path_for,
)

WARC = b"WARC/1.1\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n\r\n\r\n\r\n"
_DATE = (2026, 1, 1, 0, 0, 0)


def _datapackage(members: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "profile": "data-package",
            "wacz_version": "1.1.1",
            "created": "2026-01-01T00:00:00Z",
            "resources": [
                {
                    "name": n,
                    "path": n,
                    "hash": "sha256:" + hashlib.sha256(d).hexdigest(),
                    "bytes": len(d),
                }
                for n, d in members.items()
            ],
        }
    ).encode()


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: that is the point
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, method in entries:
                zf.writestr(zipfile.ZipInfo(name, _DATE), data, compress_type=method)
    return buf.getvalue()


def valid(extra: dict[str, bytes] | None = None) -> bytes:
    members = {"archive/data.warc": WARC, "pages/pages.jsonl": b"{}\n", **(extra or {})}
    entries = [(n, d, zipfile.ZIP_STORED) for n, d in members.items()]
    entries.append(("datapackage.json", _datapackage(members), zipfile.ZIP_DEFLATED))
    return _zip(entries)


def _central(data: bytes, name: str) -> int:
    """Offset of the central directory header of ``name``."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        n_len = struct.unpack("<H", data[at + 28 : at + 30])[0]
        if data[at + 46 : at + 46 + n_len] == name.encode():
            return at
        at += 4


def duplicate_names() -> bytes:
    members = {"archive/data.warc": WARC}
    return _zip(
        [
            ("archive/data.warc", WARC, 0),
            ("archive/data.warc", b"other", 0),
            ("datapackage.json", _datapackage(members), 8),
        ]
    )


def dotdot_name() -> bytes:
    return valid({"../evil.txt": b"x"})


def absolute_name() -> bytes:
    return valid({"/etc/evil": b"x"})


def control_character_name() -> bytes:
    return valid({"pages/a\x1bb.jsonl": b"x"})


def encrypted_entry() -> bytes:
    data = bytearray(valid())
    at = _central(bytes(data), "pages/pages.jsonl")
    flags = struct.unpack("<H", data[at + 8 : at + 10])[0]
    data[at + 8 : at + 10] = struct.pack("<H", flags | 1)
    return bytes(data)


def overlapping_entries() -> bytes:
    """Two directory entries pointing at one local header (the overlapping zip bomb)."""
    data = bytearray(_zip([("archive/a.warc", WARC, 0), ("archive/b.warc", WARC, 0)]))
    first = _central(bytes(data), "archive/a.warc")
    second = _central(bytes(data), "archive/b.warc")
    data[second + 42 : second + 46] = data[first + 42 : first + 46]
    return bytes(data)


def deflate_bomb() -> bytes:
    """16 MiB of zeros in about 16 KiB: a ratio no WACZ member has."""
    return _zip([("pages/bomb.jsonl", b"\0" * (16 << 20), 8), ("datapackage.json", b"{}", 8)])


def bzip2_entry() -> bytes:
    return _zip([("pages/pages.jsonl", b"{}\n", zipfile.ZIP_BZIP2)])


def truncated() -> bytes:
    return valid()[:-30]


def not_a_zip() -> bytes:
    return b"this is not a zip file at all\n" * 10


def lying_size() -> bytes:
    """A DEFLATE member whose directory entry declares fewer bytes than it inflates to."""
    members = {"pages/big.jsonl": b"y" * 5000}
    data = bytearray(
        _zip([("pages/big.jsonl", b"y" * 5000, 8), ("datapackage.json", _datapackage(members), 8)])
    )
    at = _central(bytes(data), "pages/big.jsonl")
    data[at + 24 : at + 28] = struct.pack("<I", 10)
    return bytes(data)


def stored_sizes_differ() -> bytes:
    data = bytearray(valid({"pages/big.jsonl": b"y" * 5000}))
    at = _central(bytes(data), "pages/big.jsonl")
    data[at + 24 : at + 28] = struct.pack("<I", 10)
    return bytes(data)


def negative_header_offset() -> bytes:
    """The end record puts the directory 10 bytes later than it is: zipfile then
    computes negative local header offsets (found by fuzzing; raised OSError)."""
    data = bytearray(valid())
    at = data.rfind(b"PK\x05\x06")
    offset = struct.unpack("<I", data[at + 16 : at + 20])[0]
    data[at + 16 : at + 20] = struct.pack("<I", offset + 10)
    return bytes(data)


def empty_name() -> bytes:
    """A directory entry whose name starts with NUL, which zipfile cuts to ""
    (found by fuzzing; ZipInfo.is_dir() raised IndexError)."""
    data = bytearray(valid())
    at = _central(bytes(data), "pages/pages.jsonl")
    data[at + 46] = 0
    return bytes(data)


CASES: dict[str, tuple[typing.Callable[[], bytes], str]] = {
    "duplicate_names": (duplicate_names, "duplicate"),
    "dotdot_name": (dotdot_name, "'..'"),
    "absolute_name": (absolute_name, "absolute"),
    "control_character_name": (control_character_name, "unusual"),
    "encrypted_entry": (encrypted_entry, "encrypted"),
    "overlapping_entries": (overlapping_entries, "overlaps"),
    "deflate_bomb": (deflate_bomb, "ratio"),
    "bzip2_entry": (bzip2_entry, "neither STORED nor DEFLATE"),
    "lying_size": (lying_size, "size differs"),
    "negative_header_offset": (negative_header_offset, "negative"),
    "empty_name": (empty_name, "empty"),
    "stored_sizes_differ": (stored_sizes_differ, "two sizes differ"),
}


def test_the_valid_base_case_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "ok.wacz"
    path.write_bytes(valid())
    report = verify_wacz(path, trust=WACZTrust())
    assert report.outcome is Outcome.UNTRUSTED, report.to_text()


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_zip_fails_with_a_named_finding(tmp_path: Path, case: str) -> None:
    build, words = CASES[case]
    path = tmp_path / f"{case}.wacz"
    path.write_bytes(build())
    report = verify_wacz(path, trust=WACZTrust())
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert words in report.to_text()


@pytest.mark.parametrize("build", [truncated, not_a_zip])
def test_unreadable_files_are_not_a_package(tmp_path: Path, build: typing.Any) -> None:
    path = tmp_path / "x.wacz"
    path.write_bytes(build())
    report = verify_wacz(path, trust=WACZTrust())
    assert report.outcome in (Outcome.NOT_A_PACKAGE, Outcome.FAILED)
    assert report.check("zip").status is Status.FAIL


def test_entry_count_is_bounded_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "many.wacz"
    path.write_bytes(valid({f"pages/p{i}.jsonl": b"" for i in range(50)}))
    report = verify_wacz(path, trust=WACZTrust(), limits=WACZLimits(members=10))
    assert report.outcome is Outcome.FAILED
    assert "more than the limit" in report.check("zip").summary


def test_member_size_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.wacz"
    path.write_bytes(valid({"pages/big.jsonl": b"z" * 4096}))
    report = verify_wacz(path, trust=WACZTrust(), limits=WACZLimits(member_bytes=1000))
    assert report.outcome is Outcome.FAILED
    assert "larger than the limit" in report.to_text()


@pytest.mark.parametrize(
    "rel",
    [
        "data/capture.warc.gz",
        "data/other.wacz",
        "bagit.txt",
        "tagmanifest-sha256.txt",
        "evidence/manifest.json",
        "evidence/custody.jsonl",
        "evidence/signatures/" + "a" * 64 + ".sig",
        "evidence/keys/" + "b" * 64 + ".pub",
        "evidence/timestamps/freetsa.org.tsr",
    ],
)
def test_package_paths_round_trip_one_folder_deep(rel: str) -> None:
    name = wacz_path_for(rel, "data/capture.warc.gz")
    assert name is not None and name.count("/") == 1
    assert package_path_for(name) == rel


def test_unplaceable_package_paths() -> None:
    assert wacz_path_for("data/sub/x", "data/capture.warc.gz") is None
    assert wacz_path_for("evidence/other/x", "data/capture.warc.gz") is None
    assert package_path_for("pages/pages.jsonl") is None


def test_a_clean_zip_without_datapackage_is_not_a_wacz(tmp_path: Path) -> None:
    path = tmp_path / "plain.wacz"
    path.write_bytes(_zip([("notes/readme.txt", b"hello", 8)]))
    report = verify_wacz(path, trust=WACZTrust())
    assert report.outcome is Outcome.NOT_A_PACKAGE
    assert report.exit_code == 2

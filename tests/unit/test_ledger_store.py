"""The ledger's append-only storage: growth, torn tails, doctored files."""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
from pathlib import Path

import pytest

from evidence.errors import UsageError
from evidence.ledger import (
    LeafEntry,
    Ledger,
    LedgerError,
    consistency_path,
    inclusion_path,
    init_ledger,
    merkle_root,
    verify_consistency,
    verify_inclusion,
    verify_ledger,
)
from evidence.ledger._base import CONFIG, HASHES, INDEX, LEAVES

WHEN = "2026-12-01T10:00:00.000000Z"


def entry(i: int) -> LeafEntry:
    return LeafEntry(
        f"20261201T100000Z-example.org-{i:08x}", hashlib.sha256(b"%d" % i).hexdigest(), WHEN
    )


def grown(tmp_path: Path, n: int) -> Ledger:
    ledger = init_ledger(tmp_path / "archive", origin="example.org/log")
    for i in range(n):
        assert ledger.append(entry(i)) == i
    return ledger


def sizes(ledger: Ledger) -> tuple[int, int, int]:
    return tuple((ledger.dir / f).stat().st_size for f in (LEAVES, INDEX, HASHES))  # type: ignore[return-value]


def test_appends_give_rfc6962_roots_and_proofs(tmp_path):
    ledger = grown(tmp_path, 37)
    hashes = [entry(i).hash for i in range(37)]
    for n in range(38):
        assert ledger.root(n) == merkle_root(hashes[:n])
    reopened = Ledger.open(ledger.archive)
    assert reopened.size == 37 and reopened.notes == []
    for i in range(37):
        path = inclusion_path(i, 37, reopened.range_hash)
        assert verify_inclusion(hashes[i], i, 37, path, reopened.root())
        assert reopened.leaf(i) == entry(i)
    for a, b in itertools.combinations(range(1, 38), 2):
        proof = consistency_path(a, b, reopened.range_hash)
        assert verify_consistency(a, b, proof, reopened.root(a), reopened.root(b))


def test_append_never_rewrites_existing_bytes(tmp_path):
    ledger = grown(tmp_path, 5)
    before = {f: (ledger.dir / f).read_bytes() for f in (LEAVES, INDEX, HASHES, CONFIG)}
    ledger.append(entry(99))
    for f, data in before.items():
        assert (ledger.dir / f).read_bytes().startswith(data), f


def test_leaf_bytes_are_one_tab_separated_line():
    e = entry(1)
    assert e.to_bytes() == f"{e.package_id}\t{e.manifest_sha256}\t{WHEN}\n".encode()
    assert e.hash == hashlib.sha256(b"\x00" + e.to_bytes()).digest()


@pytest.mark.parametrize(
    ("pid", "sha", "when"),
    [
        ("a\tb", "0" * 64, WHEN),
        ("pkg\n", "0" * 64, WHEN),
        ("pkg", "0" * 64 + "\n", WHEN),
        ("../x", "0" * 64, WHEN),
        ("x" * 201, "0" * 64, WHEN),
        ("pkg", "0" * 63, WHEN),
        ("pkg", "A" * 64, WHEN),
        ("pkg", "0" * 64, "2026-12-01 10:00:00"),
    ],
)
def test_bad_leaf_fields_are_refused(pid, sha, when):
    with pytest.raises(LedgerError):
        LeafEntry(pid, sha, when)


@pytest.mark.parametrize(
    "raw",
    [b"", b"a\tb\n", b"a\t" + b"0" * 64 + b"\t" + WHEN.encode(), b"\xff\t\t\n", b"x" * 600 + b"\n"],
)
def test_bad_leaf_bytes_are_refused(raw):
    with pytest.raises(LedgerError):
        LeafEntry.from_bytes(raw)


def test_init_twice_and_bad_origins_are_refused(tmp_path):
    init_ledger(tmp_path / "a")
    with pytest.raises(UsageError):
        init_ledger(tmp_path / "a")
    for origin in ("", "has space", "has+plus", "tab\there", "\u202eevil", "x" * 256, "origin\n"):
        with pytest.raises(UsageError):
            init_ledger(tmp_path / "b", origin=origin)
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("leaf", "index", "hashes"),
    [(9, 0, 0), (None, 0, 0), (None, 3, 0), (None, 8, 0), (None, 8, 17), (None, 8, 96)],
    ids=["leaf-partial", "leaf", "index-partial", "index", "hash-partial", "hashes-short"],
)
def test_torn_tail_is_ignored_then_cut(tmp_path, leaf, index, hashes):
    # Exactly what an append killed at each step leaves: leaf 7 completes
    # three subtrees, so its append writes four hashes.
    ledger = grown(tmp_path, 7)
    root, before = ledger.root(), sizes(ledger)
    data = entry(50).to_bytes()
    record = struct.pack(">Q", before[0] + len(data))
    torn = {LEAVES: data[:leaf], INDEX: record[:index], HASHES: os.urandom(hashes)}
    for name, tail in torn.items():
        with open(ledger.dir / name, "ab") as fh:
            fh.write(tail)
    reopened = Ledger.open(ledger.archive)
    assert reopened.size == 7 and reopened.root() == root
    assert reopened.notes and "torn tail" in reopened.notes[0]
    report = verify_ledger(ledger.archive, ledger_keys=None)
    assert report.check("ledger-storage").status.value == "PASS", report.to_text()
    assert any("torn tail" in n for n in report.notes)
    reopened.append(entry(8))
    assert reopened.notes == []
    assert sizes(reopened)[0] > before[0]
    assert reopened.root() == merkle_root([*(entry(i).hash for i in range(7)), entry(8).hash])
    assert Ledger.open(ledger.archive).leaf(7) == entry(8)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "offset", "kind"),
    [
        (LEAVES, 5, "stored-hash-mismatch"),
        (LEAVES, 96, "leaf-malformed"),  # the tab after the digest
        (HASHES, 40, "stored-hash-mismatch"),
        (INDEX, 15, "leaf-malformed"),  # leaf 1 ends one byte later
        (INDEX, 9, "ledger-damaged"),  # leaf 1 "ends" far beyond the file
        (INDEX, 70, "ledger-tail-altered"),  # the last leaf "ends" past the file
    ],
)
def test_doctored_storage_fails_verification(tmp_path, name, offset, kind):
    ledger = grown(tmp_path, 9)
    flip(ledger.dir / name, offset)
    report = verify_ledger(ledger.archive, ledger_keys=None)
    kinds = [f.kind for f in report.check("ledger-storage").findings]
    assert kind in kinds, report.to_text()
    assert report.exit_code == 1


def test_append_refuses_to_cut_an_altered_tail(tmp_path):
    ledger = grown(tmp_path, 9)
    flip(ledger.dir / INDEX, 70)
    before = sizes(ledger)
    with pytest.raises(LedgerError, match="altered"):
        Ledger.open(ledger.archive).append(entry(10))
    assert sizes(ledger) == before


def test_absurd_index_offsets_give_no_traceback(tmp_path):
    ledger = grown(tmp_path, 4)
    data = bytearray((ledger.dir / INDEX).read_bytes())
    data[8:16] = struct.pack(">Q", 2**63)
    (ledger.dir / INDEX).write_bytes(bytes(data))
    reopened = Ledger.open(ledger.archive)
    assert reopened.size <= 1
    report = verify_ledger(ledger.archive, ledger_keys=None)
    assert report.outcome in ("failed", "intact-untrusted")


def test_hostile_config_and_symlinks_are_refused(tmp_path):
    ledger = grown(tmp_path, 2)
    cfg = ledger.dir / CONFIG
    cfg.write_bytes(
        b'{"format": "evidence-ledger/1", "format": "x", "origin": "o", "created": "c"}'
    )
    with pytest.raises(LedgerError):
        Ledger.open(ledger.archive)
    cfg.write_bytes(b"x" * 70_000)
    with pytest.raises(LedgerError):
        Ledger.open(ledger.archive)
    cfg.unlink()
    os.symlink("/etc/hostname", cfg)
    with pytest.raises(LedgerError):
        Ledger.open(ledger.archive)


def test_symlinked_leaves_file_is_refused(tmp_path):
    ledger = grown(tmp_path, 2)
    target = tmp_path / "elsewhere"
    target.write_bytes((ledger.dir / LEAVES).read_bytes())
    (ledger.dir / LEAVES).unlink()
    os.symlink(target, ledger.dir / LEAVES)
    with pytest.raises(LedgerError, match="not a regular file"):
        Ledger.open(ledger.archive)

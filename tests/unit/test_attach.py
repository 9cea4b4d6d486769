"""evidence.attach and the bounded package reader: adding to a package someone else prepared.

Each hostile layout here used to hang (FIFOs), exhaust memory (a sparse
manifest, a link to /dev/zero) or write a false custody claim (#10, #11).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tracemalloc
import typing
from pathlib import Path

import pytest

from evidence.attach import MAX_APPEND_EVENTS, append_event, sign_package
from evidence.custody import CUSTODY_PATH, make_event, read_events
from evidence.errors import CustodyError, PackageError, SigningError
from evidence.keys import generate_keypair, key_id
from evidence.package import (
    MANIFEST_PATH,
    MAX_MANIFEST_BYTES,
    read_manifest_bytes,
    read_package_file,
    read_regular_file,
)
from evidence.signing import attachments_for
from evidence.verifying import verify


@contextlib.contextmanager
def no_hang(seconds: int = 10) -> typing.Iterator[None]:
    """Fail (instead of hanging the suite) when the block blocks on a FIFO."""

    def alarm(*_: object) -> None:
        raise TimeoutError("blocked: the code under test waited on a FIFO")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def sig_path(pkg: Path, kid: str) -> Path:
    return pkg / "evidence" / "signatures" / f"{kid}.sig"


# --- the one bounded reader ---------------------------------------------------


def test_read_regular_file_reads_a_small_file(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    assert read_regular_file(f, 5) == b"hello"
    with pytest.raises(PackageError, match="larger than 4 bytes"):
        read_regular_file(f, 4)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("symlink", "symbolic link"),
        ("fifo", "a FIFO"),
        ("directory", "a directory"),
        ("device", "symbolic link"),  # a link to /dev/zero
        ("missing", "does not exist"),
    ],
)
def test_read_regular_file_refuses_what_is_not_a_regular_file(tmp_path, kind, message):
    target = tmp_path / "x"
    if kind == "symlink":
        (tmp_path / "real").write_bytes(b"data")
        target.symlink_to(tmp_path / "real")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "device":
        target.symlink_to("/dev/zero")
    with no_hang(), pytest.raises(PackageError, match=message):
        read_regular_file(target, 1024)


def test_read_regular_file_refuses_a_device_node():
    with pytest.raises(PackageError, match="a device"):
        read_regular_file("/dev/null", 1024)


def test_sparse_file_is_refused_by_its_size_before_reading(tmp_path):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as fh:
        fh.truncate(1 << 40)  # 1 TiB, no blocks on disk
    with pytest.raises(PackageError, match="larger than 1024 bytes"):
        read_regular_file(sparse, 1024)


def test_read_package_file_refuses_a_linked_directory_on_the_way(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "custody.jsonl").write_bytes(b"x\n")
    (root / "evidence").symlink_to(elsewhere)
    with pytest.raises(PackageError, match="symbolic link or not a directory"):
        read_package_file(root, CUSTODY_PATH, 1024)
    with pytest.raises(PackageError, match="unsafe path"):
        read_package_file(root, "../elsewhere/custody.jsonl", 1024)
    assert read_package_file(root, "data/missing", 1024, missing_ok=True) is None
    with pytest.raises(PackageError, match="does not exist"):
        read_package_file(root, "missing", 1024)


# --- hostile packages given to sign / custody add -----------------------------


def test_sparse_1tib_manifest_is_a_clear_error_not_memory_error(package_copy):
    manifest = package_copy / MANIFEST_PATH
    with open(manifest, "r+b") as fh:
        fh.truncate(1 << 40)
    with pytest.raises(PackageError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        read_manifest_bytes(package_copy)
    with pytest.raises(PackageError, match="larger than"):
        sign_package(package_copy, generate_keypair())
    with pytest.raises(PackageError, match="larger than"):
        append_event(package_copy, event="checked")


def test_manifest_through_a_linked_evidence_directory_is_refused(package_copy, tmp_path):
    moved = tmp_path / "moved-evidence"
    (package_copy / "evidence").rename(moved)
    (package_copy / "evidence").symlink_to(moved)
    with pytest.raises(PackageError, match="symbolic link"):
        sign_package(package_copy, generate_keypair())


def test_signature_linked_to_dev_zero_is_refused(package_copy):
    key = generate_keypair()
    sig = sig_path(package_copy, key_id(key.public_key()))
    sig.symlink_to("/dev/zero")
    with no_hang(), pytest.raises(PackageError, match="symbolic link"):
        sign_package(package_copy, key)
    assert sig.is_symlink()  # left as found


def test_fifo_signature_is_refused_without_hanging(package_copy):
    key = generate_keypair()
    os.mkfifo(sig_path(package_copy, key_id(key.public_key())))
    with no_hang(), pytest.raises(PackageError, match="a FIFO"):
        sign_package(package_copy, key)


def test_directory_named_like_a_signature_is_refused(package_copy):
    key = generate_keypair()
    sig_path(package_copy, key_id(key.public_key())).mkdir()
    with pytest.raises(PackageError, match="a directory"):
        sign_package(package_copy, key)


def test_fifo_custody_log_is_refused_without_hanging(package_copy):
    log = package_copy / CUSTODY_PATH
    log.unlink()
    os.mkfifo(log)
    with no_hang(), pytest.raises(PackageError, match="a FIFO"):
        append_event(package_copy, event="checked")
    with no_hang(), pytest.raises(PackageError, match="a FIFO"):
        read_events(package_copy)
    with no_hang(), pytest.raises(PackageError, match="a FIFO"):
        sign_package(package_copy, generate_keypair())


def test_custody_log_linked_elsewhere_is_refused(package_copy, tmp_path):
    log = package_copy / CUSTODY_PATH
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(log.read_bytes())
    log.unlink()
    log.symlink_to(outside)
    with pytest.raises(PackageError, match="symbolic link"):
        append_event(package_copy, event="checked")
    assert outside.read_bytes().count(b"\n") == 1  # nothing written through the link


def test_signing_again_is_idempotent_and_a_changed_signature_is_refused(package_copy, signer):
    before = read_events(package_copy)
    assert sign_package(package_copy, signer.key) == signer.kid
    assert read_events(package_copy) == before  # no second "signed" event
    sig = sig_path(package_copy, signer.kid)
    sig.write_bytes(bytes(64))
    with pytest.raises(SigningError, match="exists and differs"):
        sign_package(package_copy, signer.key)


def test_countersignature_is_recorded_and_verifies(package_copy, signer, tmp_path):
    other = generate_keypair()
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    kid = sign_package(package_copy, other, actor="Desk editor")
    assert other.public_key().verify(sig_path(package_copy, kid).read_bytes(), manifest) is None
    last = read_events(package_copy)[-1]
    assert b'"event":"countersigned"' in last and kid.encode() in last
    assert verify(package_copy, trust=[signer.pub]).ok


# --- custody: 'captured' is the capture's own first event ---------------------


def test_append_captured_is_refused(package_copy):
    before = (package_copy / CUSTODY_PATH).read_bytes()
    with pytest.raises(CustodyError, match="only the first event"):
        append_event(package_copy, event="captured", note="I captured this")
    assert (package_copy / CUSTODY_PATH).read_bytes() == before


def test_make_event_refuses_captured_after_the_first(package_copy):
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    first = make_event(prev_line=None, manifest=manifest, seq=1, event="captured")
    with pytest.raises(CustodyError, match="only the first event"):
        make_event(prev_line=first, manifest=manifest, seq=2, event="captured")


def test_appended_event_links_to_the_previous_line(package_copy):
    lines = read_events(package_copy)
    event = append_event(package_copy, event="transferred", note="to counsel", actor="Desk")
    after = read_events(package_copy)
    assert after[:-1] == lines and event["seq"] == len(lines) + 1
    assert event["prev"] == hashlib.sha256(lines[-1]).hexdigest()


# --- custody logs that cannot be appended to (review: 1.2 GB, signatures without events) --


def test_log_of_millions_of_lines_is_refused_in_bounded_memory(package_copy):
    log = package_copy / CUSTODY_PATH
    log.write_bytes(b"x\n" * (8 * 1024 * 1024))  # 16 MiB, the most a log may be
    tracemalloc.start()
    try:
        with pytest.raises(CustodyError, match=f"more than {MAX_APPEND_EVENTS} lines"):
            append_event(package_copy, event="checked")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"peak Python memory {peak / 2**20:.0f} MiB"
    assert log.read_bytes() == b"x\n" * (8 * 1024 * 1024)


def test_log_that_is_not_a_custody_log_is_not_appended_to(package_copy):
    log = package_copy / CUSTODY_PATH
    log.write_bytes(log.read_bytes() + b"not json\n")
    before = log.read_bytes()
    command = ["custody", "add", str(package_copy), "--event", "checked"]
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", *command],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == CustodyError.exit_code
    assert proc.stderr.count("\n") == 1
    assert "not a valid custody log" in proc.stderr and "line 2" in proc.stderr
    assert log.read_bytes() == before
    key = generate_keypair()
    with pytest.raises(CustodyError, match="not a valid custody log"):
        sign_package(package_copy, key)
    assert not sig_path(package_copy, key_id(key.public_key())).exists()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_signature_is_not_written_when_its_event_cannot_be(package_copy, kind):
    log = package_copy / CUSTODY_PATH
    log.unlink()
    if kind == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()
    key = generate_keypair()
    kid = key_id(key.public_key())
    with no_hang(), pytest.raises(PackageError):
        sign_package(package_copy, key)
    assert not sig_path(package_copy, kid).exists()
    assert not (package_copy / "evidence" / "keys" / f"{kid}.pub").exists()


def test_signature_left_without_its_event_gets_it_on_the_next_run(package_copy, signer):
    # What an earlier version left when the custody append failed after the
    # signature was written.
    key = generate_keypair()
    files = attachments_for((package_copy / MANIFEST_PATH).read_bytes(), key)
    for rel, data in files.items():
        (package_copy / rel).write_bytes(data)
    before = read_events(package_copy)
    assert sign_package(package_copy, key) == key_id(key.public_key())
    after = read_events(package_copy)
    assert after[:-1] == before
    assert (
        b'"event":"countersigned"' in after[-1] and key_id(key.public_key()).encode() in after[-1]
    )
    assert sign_package(package_copy, key) == key_id(key.public_key())
    assert read_events(package_copy) == after  # recorded once
    assert verify(package_copy, trust=[signer.pub]).ok

"""The verifier against real packages: every tampering case is caught, intact ones pass."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from evidence.attach import sign_package
from evidence.capturing import capture
from evidence.keys import generate_keypair, public_key_pem
from evidence.manifest import Manifest
from evidence.package import MANIFEST_PATH, TAG_FILES
from evidence.verifying import Outcome, Status, verify

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
WARC = "data/capture.warc.gz"


# --- helpers that play the attacker ---------------------------------------


def members(pkg: Path) -> list[bytes]:
    m = Manifest.from_bytes((pkg / MANIFEST_PATH).read_bytes())
    data = (pkg / WARC).read_bytes()
    return [data[r["offset"] : r["offset"] + r["length"]] for r in m.records]


def write_members(pkg: Path, parts: list[bytes]) -> None:
    (pkg / WARC).write_bytes(b"".join(parts))


def rewrite_record(pkg: Path, index: int, old: bytes, new: bytes) -> None:
    """Change a record's content and recompress it, so every gzip CRC is valid."""
    parts = members(pkg)
    text = zlib.decompress(parts[index], 31)
    assert old in text
    parts[index] = _gzip(text.replace(old, new, 1))
    write_members(pkg, parts)


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def rebag(pkg: Path) -> None:
    """Recompute manifest-sha256.txt and tagmanifest-sha256.txt as an attacker would."""
    lines = []
    for f in sorted((pkg / "data").rglob("*")):
        if f.is_file():
            rel = f.relative_to(pkg).as_posix()
            lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {rel}\n")
    (pkg / "manifest-sha256.txt").write_text("".join(lines))
    octets = sum(f.stat().st_size for f in (pkg / "data").rglob("*") if f.is_file())
    info = (pkg / "bag-info.txt").read_text().splitlines()
    info = [
        line if not line.startswith("Payload-Oxum") else f"Payload-Oxum: {octets}.{len(lines)}"
        for line in info
    ]
    (pkg / "bag-info.txt").write_text("\n".join(info) + "\n")
    tags = "".join(
        f"{hashlib.sha256((pkg / t).read_bytes()).hexdigest()}  {t}\n" for t in TAG_FILES
    )
    (pkg / "tagmanifest-sha256.txt").write_text(tags)


def reseal_manifest(pkg: Path, change) -> None:
    """Edit manifest.json (files and inventory updated to match the WARC) and re-bag."""
    data = json.loads((pkg / MANIFEST_PATH).read_bytes())
    change(data)
    (pkg / MANIFEST_PATH).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    rebag(pkg)


def sync_manifest_to_warc(data: dict, pkg: Path) -> None:
    raw = (pkg / WARC).read_bytes()
    data["files"][0]["sha256"] = hashlib.sha256(raw).hexdigest()
    data["files"][0]["size"] = len(raw)


def run_verify(pkg: Path, signer, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EVIDENCE, "verify", str(pkg), "--trust", str(signer.pub), *extra],
        capture_output=True,
        text=True,
    )


def failed(report, *names: str) -> None:
    assert report.outcome is Outcome.FAILED, report.to_text()
    failing = {c.name.split(":")[0] for c in report.failures()}
    for name in names:
        assert name in failing, f"expected {name} to fail; failing: {failing}\n{report.to_text()}"


# --- the intact case -------------------------------------------------------


def test_intact_signed_package_verifies(sealed_package, signer):
    proc = run_verify(sealed_package, signer)
    assert proc.returncode == 0, proc.stdout
    assert "VERIFIED" in proc.stdout
    assert "PASS" in proc.stdout and "FAIL" not in proc.stdout
    report = verify(sealed_package, trust=[signer.pub])
    assert report.ok and report.trusted_signers == (signer.kid,)
    statuses = {c.name: c.status for c in report.checks}
    assert statuses.pop("timestamps") is Status.NOT_CHECKED  # no token in this package
    assert set(statuses.values()) == {Status.PASS}


def test_intact_package_json_report(sealed_package, signer):
    proc = run_verify(sealed_package, signer, "--json")
    doc = json.loads(proc.stdout)
    assert doc["report_version"] == 2
    assert doc["outcome"] == "verified" and doc["exit_code"] == 0
    names = [c["name"] for c in doc["checks"]]
    assert names == [
        "layout",
        "bag.tags",
        f"signature:{signer.kid}",
        "manifest",
        "bag.sealed",
        "payload",
        "warc",
        "timestamps",
        "custody",
    ]
    assert all(
        set(c) == {"name", "title", "status", "summary", "findings", "findings_not_listed"}
        for c in doc["checks"]
    )


def test_without_trust_exits_3(sealed_package, signer):
    proc = subprocess.run(
        [*EVIDENCE, "verify", str(sealed_package)], capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stdout
    assert signer.kid in proc.stdout
    assert "TRUST NOT ESTABLISHED" in proc.stdout


def test_valid_signature_by_untrusted_key_is_never_verified(package_copy, tmp_path):
    other = generate_keypair()
    other_pub = tmp_path / "other.pub"
    other_pub.write_bytes(public_key_pem(other.public_key()))
    report = verify(package_copy, trust=[other_pub])
    assert report.outcome is Outcome.UNTRUSTED
    assert report.exit_code == 3
    assert len(report.untrusted_signers) == 1
    assert any(c.status is Status.WARN for c in report.checks)


def test_countersignature_either_key_verifies(package_copy, signer, tmp_path):
    second = generate_keypair()
    pub2 = tmp_path / "second.pub"
    pub2.write_bytes(public_key_pem(second.public_key()))
    before = (package_copy / MANIFEST_PATH).read_bytes()
    kid2 = sign_package(package_copy, second)
    assert (package_copy / MANIFEST_PATH).read_bytes() == before
    assert len(list((package_copy / "evidence" / "signatures").iterdir())) == 2
    assert verify(package_copy, trust=[pub2]).trusted_signers == (kid2,)
    both = verify(package_copy, trust=[pub2, signer.pub])
    assert both.ok and set(both.trusted_signers) == {kid2, signer.kid}
    import bagit

    bagit.Bag(str(package_copy)).validate()


def test_unsigned_package_exits_3(package_copy, signer):
    shutil.rmtree(package_copy / "evidence" / "signatures")
    shutil.rmtree(package_copy / "evidence" / "keys")
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.UNTRUSTED
    assert report.check("signatures").status is Status.NOT_CHECKED


def test_empty_signatures_directory_exits_3(package_copy, signer):
    for f in (package_copy / "evidence" / "signatures").iterdir():
        f.unlink()
    report = verify(package_copy, trust=[signer.pub])
    assert report.exit_code == 3
    assert report.check("signatures").status is Status.NOT_CHECKED


# --- tampering: every case must FAIL ---------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_in_response_payload(package_copy, signer):
    m = Manifest.from_bytes((package_copy / MANIFEST_PATH).read_bytes())
    last = m.records[-1]
    rewrite_record(package_copy, len(m.records) - 1, b"Nothing happened.", b"Nothing happenef.")
    failed(verify(package_copy, trust=[signer.pub]), "payload", "warc")
    assert last["type"] == "response"


def test_flipped_byte_inside_gzip_member(package_copy, signer):
    m = Manifest.from_bytes((package_copy / MANIFEST_PATH).read_bytes())
    rec = m.records[2]
    _flip(package_copy / WARC, rec["offset"] + rec["length"] // 2)
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "payload", "warc")


def test_flipped_byte_in_http_header_even_after_rebagging(package_copy, signer):
    rewrite_record(package_copy, 4, b"Content-Type: text/html", b"Content-Type: text/htmm")
    rebag(package_copy)
    failed(verify(package_copy, trust=[signer.pub]), "payload", "warc")


@pytest.mark.parametrize("field", [b"WARC-Date: 20", b"WARC-Target-URI: http"])
def test_edited_warc_header_fields(package_copy, signer, field):
    new = field[:-2] + (b"19" if field.endswith(b"20") else b"ftp")
    rewrite_record(package_copy, 4, field, new)
    failed(verify(package_copy, trust=[signer.pub]), "warc")


def test_tampered_warc_with_manifest_updated_breaks_the_signature(package_copy, signer):
    rewrite_record(package_copy, 4, b"Nothing happened.", b"Something happened")

    def change(data):
        sync_manifest_to_warc(data, package_copy)

    reseal_manifest(package_copy, change)
    failed(verify(package_copy, trust=[signer.pub]), "signature", "warc")


@pytest.mark.parametrize("case", ["deleted", "duplicated", "swapped", "appended"])
def test_record_level_changes(package_copy, signer, case):
    parts = members(package_copy)
    if case == "deleted":
        del parts[3]
    elif case == "duplicated":
        parts.insert(3, parts[3])
    elif case == "swapped":
        parts[3], parts[4] = parts[4], parts[3]
    else:
        parts.append(parts[1])
    write_members(package_copy, parts)
    failed(verify(package_copy, trust=[signer.pub]), "payload", "warc")


@pytest.mark.parametrize("where", ["inside-member", "between-members"])
def test_truncated_warc(package_copy, signer, where):
    parts = members(package_copy)
    data = b"".join(parts)
    cut = (
        len(data) - len(parts[-1]) // 2 if where == "inside-member" else len(data) - len(parts[-1])
    )
    (package_copy / WARC).write_bytes(data[:cut])
    failed(verify(package_copy, trust=[signer.pub]), "payload", "warc")


def test_trailing_garbage(package_copy, signer):
    with open(package_copy / WARC, "ab") as fh:
        fh.write(b"\x00garbage")
    failed(verify(package_copy, trust=[signer.pub]), "payload", "warc")


@pytest.mark.parametrize("case", ["added", "removed", "replaced", "added-and-listed"])
def test_data_files(package_copy, signer, case):
    if case == "added":
        (package_copy / "data" / "extra.txt").write_text("planted\n")
    elif case == "added-and-listed":
        (package_copy / "data" / "extra.txt").write_text("planted\n")
        rebag(package_copy)
    elif case == "removed":
        (package_copy / WARC).unlink()
    else:
        (package_copy / WARC).write_bytes(b"not the original")
    failed(verify(package_copy, trust=[signer.pub]), "payload")


def test_manifest_edited_after_signing(package_copy, signer):
    def change(data):
        data["capture"]["status"] = 404

    reseal_manifest(package_copy, change)
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "signature")
    assert report.check("bag.tags").status is Status.PASS  # the attacker fixed the bag


def test_manifest_reserialised_with_same_content(package_copy, signer):
    data = json.loads((package_copy / MANIFEST_PATH).read_bytes())
    (package_copy / MANIFEST_PATH).write_text(json.dumps(data, separators=(",", ":")))
    rebag(package_copy)
    failed(verify(package_copy, trust=[signer.pub]), "signature")


def test_duplicate_json_keys(package_copy, signer):
    raw = (package_copy / MANIFEST_PATH).read_bytes()
    raw = raw.replace(b'"format": ', b'"format": "evidence-package/1",\n  "format": ', 1)
    (package_copy / MANIFEST_PATH).write_bytes(raw)
    rebag(package_copy)
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "manifest", "signature")
    assert "duplicate" in report.check("manifest").summary


@pytest.mark.parametrize("how", ["truncated", "padded", "zeroed"])
def test_damaged_signature_file(package_copy, signer, how):
    sig = package_copy / "evidence" / "signatures" / f"{signer.kid}.sig"
    data = sig.read_bytes()
    sig.write_bytes({"truncated": data[:-1], "padded": data + b"\n", "zeroed": bytes(64)}[how])
    failed(verify(package_copy, trust=[signer.pub]), "signature")


def test_signature_moved_from_another_package(package_copy, signer, site, tmp_path):
    s = site({"/": (200, [("Content-Type", "text/html")], b"<p>other page</p>")})
    other = Path(capture(s.url("/"), out=tmp_path / "other", sign_with=[signer.key]).path)
    sig_name = f"evidence/signatures/{signer.kid}.sig"
    shutil.copy(other / sig_name, package_copy / sig_name)
    failed(verify(package_copy, trust=[signer.pub]), "signature")


def test_unexpected_file_under_evidence(package_copy, signer):
    (package_copy / "evidence" / "notes.txt").write_text("trust me\n")
    failed(verify(package_copy, trust=[signer.pub]), "layout")


def test_symlink_inside_package(package_copy, signer, tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("outside\n")
    os.symlink(target, package_copy / "data" / "link.txt")
    failed(verify(package_copy, trust=[signer.pub]), "layout")


def test_not_a_package_exits_2(tmp_path, signer):
    proc = subprocess.run(
        [*EVIDENCE, "verify", str(tmp_path), "--trust", str(signer.pub)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "NOT A PACKAGE" in proc.stdout


def test_missing_trust_file_is_a_usage_error(sealed_package, tmp_path):
    proc = subprocess.run(
        [*EVIDENCE, "verify", str(sealed_package), "--trust", str(tmp_path / "nope.pub")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


@pytest.mark.parametrize(
    "name",
    [
        "bag-info.txt",
        "manifest-sha256.txt",
        "tagmanifest-sha256.txt",
        "evidence/custody.jsonl",
        WARC,
    ],
)
def test_fifo_in_place_of_a_file_never_hangs(package_copy, signer, name):
    (package_copy / name).unlink()
    os.mkfifo(package_copy / name)
    report = verify(package_copy, trust=[signer.pub])  # would block forever if it read the FIFO
    failed(report, "layout")


def test_symlinked_manifest_is_not_a_package(package_copy, signer, tmp_path):
    real = tmp_path / "elsewhere.json"
    shutil.move(package_copy / MANIFEST_PATH, real)
    os.symlink(real, package_copy / MANIFEST_PATH)
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.NOT_A_PACKAGE


@pytest.mark.parametrize("where", ["evidence/signatures", "evidence/keys"])
def test_signing_never_writes_through_a_symlink(package_copy, tmp_path, where):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(package_copy / where)
    os.symlink(outside, package_copy / where)
    from evidence.errors import PackageError

    with pytest.raises(PackageError, match="symbolic link"):
        sign_package(package_copy, generate_keypair())
    assert list(outside.iterdir()) == []


# --- what the report says, and that a package cannot forge it (#10, #11) -----


def test_text_report_starts_with_what_was_verified(package_copy, signer):
    report = verify(package_copy, trust=[signer.pub])
    head = report.to_text().split("\n\n", 1)[0]
    m = Manifest.from_bytes((package_copy / MANIFEST_PATH).read_bytes())
    assert f"Captured URL:  {m.capture.requested_url}" in head
    assert f"Final URL:     {m.capture.final_url}" in head
    assert "HTTP status:   200" in head
    assert m.capture.started in head
    assert f"Signed by:     {signer.kid} (a key you trust)" in head
    assert "Verified at:" in head and "with evidence " in head
    doc = report.to_json()
    assert doc["subject"]["requested_url"] == m.capture.requested_url
    assert doc["subject"]["status"] == 200
    assert doc["verified_at"].endswith("Z") and doc["software_version"]


def test_verified_404_says_it_is_a_record_of_a_404(site, signer, tmp_path):
    s = site({"/gone": (404, [("Content-Type", "text/html")], b"<p>Not here</p>")})
    pkg = Path(capture(s.url("/gone"), out=tmp_path, sign_with=[signer.key]).path)
    report = verify(pkg, trust=[signer.pub])
    assert report.ok, report.to_text()
    assert "verified record of an HTTP 404 response" in report.to_text()
    assert "HTTP 404" in report.to_json()["verdict"]


def test_custody_note_cannot_forge_report_lines(package_copy, signer):
    from evidence.attach import append_event

    note = "x\n  PASS  Signature by key 0000: valid\n\x1b[8mhidden\x1b[0m \u202eevil"
    append_event(package_copy, event="checked", note=note, actor="Eve\nPASS")
    text = verify(package_copy, trust=[signer.pub]).to_text()
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(
        line.lstrip().startswith("PASS  Signature by key 0000") for line in text.splitlines()
    )
    assert "\\x1b[8mhidden" in text and "\u27eaU+202E\u27eb" in text


def test_package_directory_name_is_shown_safely(package_copy, signer):
    crafted = package_copy.with_name("pkg\x1b[2J\nVERIFIED: all good")
    package_copy.rename(crafted)
    text = verify(crafted, trust=[signer.pub]).to_text()
    assert "\x1b" not in text
    assert text.splitlines()[0] == "Package:       " + str(crafted.parent).replace("\\", "\\\\") + (
        "/pkg\\x1b[2J\\nVERIFIED: all good"
    )


def test_extra_root_files_warn_and_keep_the_verdict(package_copy, signer):
    (package_copy / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    shutil.copy(signer.pub, package_copy / "signer.pub")
    report = verify(package_copy, trust=[signer.pub])
    assert report.ok, report.to_text()
    extra = report.check("extra-files")
    assert extra.status is Status.WARN
    assert {f.path for f in extra.details} == {".DS_Store", "signer.pub"}
    assert "not covered by the signature" in report.to_text()


def test_extra_directory_at_root_still_fails(package_copy, signer):
    (package_copy / "notes").mkdir()
    (package_copy / "notes" / "a.txt").write_text("x\n")
    failed(verify(package_copy, trust=[signer.pub]), "layout")


@pytest.mark.parametrize("where", ["", "data/", "evidence/"])
def test_empty_directory_fails_the_layout(package_copy, signer, where):
    (package_copy / where / "empty").mkdir()
    failed(verify(package_copy, trust=[signer.pub]), "layout")


@pytest.mark.parametrize("inside", ["evidence/keys", "key-file", "package"])
def test_trust_source_inside_the_package_is_refused(package_copy, signer, inside):
    from evidence.errors import UsageError

    source = {
        "evidence/keys": package_copy / "evidence" / "keys",
        "key-file": package_copy / "evidence" / "keys" / f"{signer.kid}.pub",
        "package": package_copy,
    }[inside]
    with pytest.raises(UsageError, match="inside the package") as exc:
        verify(package_copy, trust=[source])
    assert exc.value.exit_code == 2


def test_tsa_root_inside_the_package_is_refused(package_copy, signer):
    from evidence.errors import UsageError

    (package_copy / "tsa-root.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="inside the package"):
        verify(package_copy, trust=[signer.pub], tsa_roots=[package_copy / "tsa-root.pem"])


@pytest.mark.parametrize("anchor", ["abc", "z" * 64, "0" * 63, ""])
def test_malformed_custody_anchor_is_a_usage_error(package_copy, signer, anchor):
    from evidence.errors import UsageError

    with pytest.raises(UsageError, match="64 hexadecimal"):
        verify(package_copy, trust=[signer.pub], custody_anchors=[anchor])


# --- custody rules (#9, #10, #11) ---------------------------------------------


def test_second_captured_event_fails(package_copy, signer):
    # append_event refuses 'captured' (it is the capture's own first event), so
    # an attacker writes the line by hand: canonical, correctly chained.
    lines = (package_copy / "evidence/custody.jsonl").read_bytes().splitlines()
    event = {
        "seq": len(lines) + 1,
        "event": "captured",
        "time": json.loads(lines[-1])["time"],
        "actor": None,
        "note": "me too",
        "prev": hashlib.sha256(lines[-1]).hexdigest(),
    }
    line = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    with open(package_copy / "evidence/custody.jsonl", "ab") as fh:
        fh.write(line + b"\n")
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "custody")
    assert any("can only be the first" in f for f in report.check("custody").details)


def test_declared_log_must_start_with_captured(package_copy, signer):
    lines = (package_copy / "evidence/custody.jsonl").read_bytes().splitlines()
    event = json.loads(lines[0])
    event["event"] = "checked"
    del event["key_id"], event["signature"]
    line = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    (package_copy / "evidence/custody.jsonl").write_bytes(line + b"\n")
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "custody")


def test_huge_log_of_empty_objects_is_bounded(package_copy, signer):
    import time

    from evidence.verifying import DEFAULT_LIMITS

    log = package_copy / "evidence/custody.jsonl"
    log.write_bytes(b"{}\n" * (DEFAULT_LIMITS.custody_log_bytes // 3))
    started = time.monotonic()
    report = verify(package_copy, trust=[signer.pub])
    elapsed = time.monotonic() - started
    failed(report, "custody")
    custody = report.check("custody")
    assert len(custody.details) <= DEFAULT_LIMITS.details_per_check
    assert custody.not_listed > 0
    assert "more than" in report.to_text() and "not listed" in report.to_text()
    assert len(report.to_text()) < 200_000
    assert len(json.dumps(report.to_json())) < 500_000
    assert elapsed < 5, elapsed


# --- sizes before hashes (#10) ------------------------------------------------


def _sparse(path: Path, size: int) -> None:
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(size)


def _timed_verify(pkg: Path, signer):
    import time

    started = time.monotonic()
    report = verify(pkg, trust=[signer.pub])
    return report, time.monotonic() - started


def test_sparse_warc_tail_is_not_read(package_copy, signer):
    _sparse(package_copy / WARC, 8 * 2**30)
    report, elapsed = _timed_verify(package_copy, signer)
    failed(report, "payload", "warc")
    assert "not read" in report.check("warc").summary
    assert elapsed < 5, elapsed


def test_sparse_file_listed_only_in_the_bag_manifest_is_not_hashed(package_copy, signer):
    _sparse(package_copy / "data" / "big.bin", 8 * 2**30)
    with open(package_copy / "manifest-sha256.txt", "a") as fh:
        fh.write(f"{'0' * 64}  data/big.bin\n")
    report, elapsed = _timed_verify(package_copy, signer)
    failed(report, "payload")
    assert elapsed < 5, elapsed


@pytest.mark.parametrize("name", ["bag-info.txt", MANIFEST_PATH, "manifest-sha256.txt"])
def test_sparse_tag_file_is_not_hashed(package_copy, signer, name):
    _sparse(package_copy / name, 2**40 if name == MANIFEST_PATH else 8 * 2**30)
    report, elapsed = _timed_verify(package_copy, signer)
    assert report.outcome is Outcome.FAILED
    assert elapsed < 5, elapsed


@pytest.mark.parametrize("name", ["fetch.txt", "manifest-md5.txt", "tagmanifest-sha512.txt"])
def test_reserved_bagit_files_at_the_root_fail(package_copy, signer, name):
    # bagit.py honours them (an extra manifest makes the bag "incomplete",
    # fetch.txt makes fetch tools download into data/): never a harmless extra.
    (package_copy / name).write_text("d41d8cd98f00b204e9800998ecf8427e  data/retracted.html\n")
    report = verify(package_copy, trust=[signer.pub])
    failed(report, "layout")

"""The custody log of a signed package cannot be replaced (issue 10, item 3),
found by an adversarial review after the first fix: an unsigned or
attacker-signed 'captured' event in place of the signer's own used to pass."""

from __future__ import annotations

import datetime as dt
import json

from evidence.custody import make_event
from evidence.keys import generate_keypair, key_id, public_key_pem
from evidence.package import MANIFEST_PATH
from evidence.verifying import Outcome, Status, verify

LOG = "evidence/custody.jsonl"


def _events(pkg) -> list[bytes]:
    return (pkg / LOG).read_bytes().splitlines()


def _write(pkg, lines: list[bytes]) -> None:
    (pkg / LOG).write_bytes(b"".join(line + b"\n" for line in lines))


def resign_manifest(pkg, key, change) -> None:
    """Change the manifest and re-seal everything a verifier checks, as its signer could."""
    from evidence.manifest import Manifest, dumps
    from evidence.seal import expected_bag_files

    data = json.loads((pkg / MANIFEST_PATH).read_bytes())
    change(data)
    raw = dumps(data)
    (pkg / MANIFEST_PATH).write_bytes(raw)
    for name, body in expected_bag_files(Manifest.from_bytes(raw)).items():
        (pkg / name).write_bytes(body)
    kid = key_id(key.public_key())
    (pkg / "evidence" / "signatures" / f"{kid}.sig").write_bytes(key.sign(raw))
    first = make_event(
        prev_line=None, manifest=raw, seq=1, event="captured", key=key, when=data["created"]
    )
    _write(pkg, [first])


def _custody_text(report) -> str:
    return "\n".join(f.text for f in report.check("custody").details)


def test_unsigned_captured_event_in_place_of_the_signers_fails(package_copy, signer):
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    created = json.loads(manifest)["created"]
    forged = make_event(
        prev_line=None,
        manifest=manifest,
        seq=1,
        event="captured",
        note="captured https://elsewhere.example/",
        actor="Mallory (Ministry of Truth)",
        when=created,
    )
    _write(package_copy, [forged])
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert "no event is signed by key" in _custody_text(report)


def test_attacker_countersigning_the_manifest_cannot_own_the_log(package_copy, signer):
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    mallory = generate_keypair()
    mid = key_id(mallory.public_key())
    (package_copy / "evidence" / "signatures" / f"{mid}.sig").write_bytes(mallory.sign(manifest))
    (package_copy / "evidence" / "keys" / f"{mid}.pub").write_bytes(
        public_key_pem(mallory.public_key())
    )
    forged = make_event(
        prev_line=None,
        manifest=manifest,
        seq=1,
        event="captured",
        note="captured by me",
        key=mallory,
        when=json.loads(manifest)["created"],
    )
    _write(package_copy, [forged])
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert f"no event is signed by key {signer.kid}" in _custody_text(report)


def test_events_dated_in_the_future_fail(package_copy, signer):
    lines = _events(package_copy)
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    later = make_event(
        prev_line=lines[-1],
        manifest=manifest,
        seq=len(lines) + 1,
        event="transferred",
        note="handed over",
        when="2099-01-01T00:00:00.000000Z",
    )
    _write(package_copy, [*lines, later])
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.FAILED
    assert "after this verification ran" in _custody_text(report)


def test_unsigned_events_are_labelled_unsigned(package_copy, signer):
    lines = _events(package_copy)
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    note = make_event(
        prev_line=lines[-1],
        manifest=manifest,
        seq=len(lines) + 1,
        event="checked",
        note="hashes compared",
        when=now,
    )
    _write(package_copy, [*lines, note])
    report = verify(package_copy, trust=[signer.pub])
    assert report.outcome is Outcome.VERIFIED, report.to_text()
    assert report.check("custody").status is Status.PASS
    text = _custody_text(report)
    assert "checked; unsigned (anyone holding the package could have written it)" in text


def test_a_manifest_dated_year_one_is_judged_not_crashed(tmp_path, signer, sealed_package):
    """created = 0001-01-01 made the custody time check raise OverflowError."""
    import shutil
    import subprocess
    import sys

    pkg = tmp_path / "evil\x1b[2J\u202ename"
    shutil.copytree(sealed_package, pkg)
    resign_manifest(
        pkg, signer.key, lambda m: m.__setitem__("created", "0001-01-01T00:00:00.000000Z")
    )
    report = verify(pkg, trust=[signer.pub])
    # The signer may claim any creation time (only a timestamp proves one);
    # what matters is that every check ran to its end.
    assert "io" not in {c.name for c in report.checks}, report.to_text()
    assert report.check("custody").status is Status.PASS
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "verify", str(pkg), "--trust", str(signer.pub)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stdout + proc.stderr


def test_custody_show_does_not_claim_signatures_for_unsigned_events(package_copy):
    from evidence.show import custody_listing, describe_custody

    lines = _events(package_copy)
    manifest = (package_copy / MANIFEST_PATH).read_bytes()
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    extra = make_event(
        prev_line=lines[-1], manifest=manifest, seq=len(lines) + 1, event="checked", when=now
    )
    _write(package_copy, [*lines, extra])
    text = describe_custody(custody_listing(package_copy))
    claims = [line for line in text.splitlines() if "claims a signature" in line]
    assert len(claims) == len(lines)  # the capture's signed events, not the unsigned one
    assert "key -" not in text

"""Unit tests of evidence.verifying: findings, report rendering, policy, custody rules."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from evidence.custody import make_event
from evidence.errors import UsageError
from evidence.keys import Keyring, generate_keypair, key_id
from evidence.verifying import Check, Finding, Outcome, Report, Status, Subject, VerifyLimits
from evidence.verifying.custody import SignatureState, check_log
from evidence.verifying.policy import custody_anchors
from evidence.verifying.timestamps import describe_distance

MANIFEST = b'{"format": "evidence-package/1"}\n'
DIGEST = hashlib.sha256(MANIFEST).digest()
CREATED = dt.datetime(2026, 11, 29, 11, 5, 34, tzinfo=dt.timezone.utc)
T0 = "2026-11-29T11:05:35.000000Z"


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def log(*specs: dict, first_key=None) -> list[bytes]:
    """Lines: a captured event (signed by ``first_key``), then events from ``specs``."""
    lines = [
        make_event(
            prev_line=None, manifest=MANIFEST, seq=1, event="captured", key=first_key, when=T0
        )
    ]
    for spec in specs:
        spec = dict(spec)
        key = spec.pop("key", None)
        lines.append(
            make_event(
                prev_line=lines[-1],
                manifest=MANIFEST,
                seq=len(lines) + 1,
                when=spec.pop("when", T0),
                key=key,
                **spec,
            )
        )
    return lines


def problems(result) -> str:
    return "\n".join(f.text for f in result.problems)


# --- describe_distance ---------------------------------------------------------


@pytest.mark.parametrize("seconds", [-0.9, -0.3, 0.0, 0.4])
def test_subsecond_rounding_never_reads_before(seconds):
    text = describe_distance(dt.timedelta(seconds=seconds))
    assert "before" not in text and "0 s" not in text
    assert "less than a second after the capture began" in text


def test_distance_within_accuracy_is_not_called_before():
    text = describe_distance(dt.timedelta(seconds=-3), accuracy_seconds=5)
    assert "before" not in text and "accuracy" in text


def test_distance_after():
    assert describe_distance(dt.timedelta(minutes=3)) == "3 min after the capture began"


# --- findings and the report ---------------------------------------------------


def test_finding_sentence_is_built_from_fields():
    f = Finding(
        "SHA-256 differs", "data/x", record_id="urn:uuid:1", offset=9, expected="a", found="b"
    )
    assert f.text == "data/x: SHA-256 differs (record urn:uuid:1, offset 9): expected a, found b"
    assert "differs" in f
    assert f.to_json()["expected"] == "a"


def test_check_converts_strings_to_findings():
    c = Check("x", "X", Status.PASS, "ok", ("plain",))
    assert c.details == (Finding("plain"),) and c.findings == c.details


HOSTILE = "evil\n  PASS  Signature: forged\x1b[2J\u202e\ud800"


def test_every_package_string_is_shown_safely():
    report = Report(
        package=HOSTILE,
        checks=(
            Check("custody", HOSTILE, Status.FAIL, HOSTILE, (Finding(HOSTILE, HOSTILE, HOSTILE),)),
        ),
        outcome=Outcome.FAILED,
        package_id=HOSTILE,
        notes=(HOSTILE,),
        subject=Subject(HOSTILE, HOSTILE + "2", 404, HOSTILE, HOSTILE),
        trusted_signers=(HOSTILE,),
        software_version=HOSTILE,
    )
    text = report.to_text()
    text.encode("utf-8")  # no lone surrogate left
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(line.lstrip().startswith("PASS") for line in text.splitlines())
    doc = json.dumps(report.to_json(), ensure_ascii=False)
    doc.encode("utf-8")
    assert json.loads(doc)["package"].startswith("evil\n")  # JSON keeps the value itself


def test_verdict_of_a_verified_error_response():
    report = Report("p", (), Outcome.VERIFIED, subject=Subject(status=404))
    assert "verified record of an HTTP 404 response" in report.verdict
    assert "HTTP" not in Report("p", (), Outcome.FAILED, subject=Subject(status=404)).verdict


# --- policy ----------------------------------------------------------------------


def test_anchors_are_normalised_and_checked():
    assert custody_anchors(["  " + "AB" * 32 + "\n"]) == ["ab" * 32]
    with pytest.raises(UsageError):
        custody_anchors(["ab" * 31])


def test_limits_are_one_frozen_object():
    limits = VerifyLimits(custody_events=5)
    with pytest.raises(AttributeError):
        limits.custody_events = 6  # type: ignore[misc]


# --- custody rules ------------------------------------------------------------------


def test_intact_log_passes():
    result = check_log(log({"event": "checked"}), DIGEST, Keyring(), require_captured=True)
    assert not result.problems, problems(result)


@pytest.mark.parametrize("seq", [True, 2.0, "2"])
def test_seq_must_be_an_integer(seq):
    lines = log({"event": "checked"})
    obj = json.loads(lines[1])
    obj["seq"] = seq
    lines[1] = canonical(obj)
    result = check_log(lines, DIGEST, Keyring())
    assert "wrong sequence number" in problems(result)


def test_captured_only_first():
    # make_event refuses this, so write the attacker's line by hand.
    lines = log()
    forged = {
        "seq": 2,
        "event": "captured",
        "time": T0,
        "actor": None,
        "note": "",
        "prev": hashlib.sha256(lines[-1]).hexdigest(),
    }
    result = check_log([*lines, canonical(forged)], DIGEST, Keyring())
    assert "can only be the first" in problems(result)


def test_declared_log_starts_with_captured():
    lines = [make_event(prev_line=None, manifest=MANIFEST, seq=1, event="checked", when=T0)]
    assert "must be the capture's own" in problems(
        check_log(lines, DIGEST, Keyring(), require_captured=True)
    )
    assert "empty" in problems(check_log([], DIGEST, Keyring(), require_captured=True))
    assert not check_log([], DIGEST, Keyring()).problems


def test_event_before_the_manifest_fails():
    lines = log({"event": "checked", "when": "2026-11-29T10:00:00.000000Z"})
    result = check_log(lines, DIGEST, Keyring(), manifest_created=CREATED)
    assert "before the manifest was created" in problems(result)
    # Within the clock tolerance is fine.
    lines = log({"event": "checked", "when": "2026-11-29T11:03:00.000000Z"})
    assert not check_log(lines, DIGEST, Keyring(), manifest_created=CREATED).problems


def test_captured_event_must_be_by_a_manifest_signer():
    capture_key, other = generate_keypair(), generate_keypair()
    lines = log(first_key=other)
    result = check_log(
        lines, DIGEST, Keyring(), manifest_signers={key_id(capture_key.public_key())}
    )
    assert "someone else's claim" in problems(result)
    ok = check_log(lines, DIGEST, Keyring(), manifest_signers={key_id(other.public_key())})
    assert not ok.problems


def test_signature_states():
    trusted, bundled, stranger = generate_keypair(), generate_keypair(), generate_keypair()
    lines = log(
        {"event": "checked", "key": trusted},
        {"event": "checked", "key": bundled},
        {"event": "checked", "key": stranger},
    )
    result = check_log(
        lines,
        DIGEST,
        Keyring([trusted.public_key()]),
        {key_id(bundled.public_key()): bundled.public_key()},
    )
    assert not result.problems, problems(result)
    states = [e.signature for e in result.events]
    assert states == [
        SignatureState.UNSIGNED,
        SignatureState.TRUSTED,
        SignatureState.VALID_UNTRUSTED,
        SignatureState.UNVERIFIABLE,
    ]
    shown = [e.describe() for e in result.events]
    assert "signed by key " + key_id(trusted.public_key()) in shown[1]
    assert "signed by" not in shown[3] and "UNVERIFIABLE" in shown[3]
    assert key_id(stranger.public_key()) in shown[3]  # the full id, never a prefix


def test_garbage_signature_with_bundled_key_is_invalid():
    key = generate_keypair()
    lines = log({"event": "checked", "key": key})
    obj = json.loads(lines[1])
    obj["signature"] = base64.b64encode(bytes(64)).decode()
    lines[1] = canonical(obj)
    result = check_log(lines, DIGEST, Keyring(), {key_id(key.public_key()): key.public_key()})
    assert "does not verify" in problems(result)
    assert result.events[1].signature is SignatureState.INVALID


@pytest.mark.parametrize("kid", ["../../etc/passwd", "/etc/passwd", "A" * 64, 5, None])
def test_key_id_that_is_not_hex_is_invalid(kid):
    lines = log()
    obj = json.loads(lines[0])
    obj["key_id"] = kid
    obj["signature"] = base64.b64encode(bytes(64)).decode()
    lines[0] = canonical(obj)
    result = check_log(lines, DIGEST, Keyring())
    assert "key id is not 64" in problems(result)


def test_event_count_is_capped():
    lines = [b"{}"] * 50
    result = check_log(lines, DIGEST, Keyring(), limits=VerifyLimits(custody_events=10))
    assert len(result.events) <= 10
    assert "more than 10 events" in problems(result)


def test_lone_surrogates_never_crash():
    lines = log()
    lines.append(lines[0].replace(b'"note":""', b'"note":"\\ud800"'))
    result = check_log(lines, DIGEST, Keyring())
    assert "canonical" in problems(result)

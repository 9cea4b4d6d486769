"""evidence.sealing with real pyrage keys: recipients, sealing, the blob's structure, unsealing."""

from __future__ import annotations

import json

import attrs
import pytest

from evidence.errors import ManifestError, SealBindingError, SealError, UsageError
from evidence.manifest import (
    MAX_LABEL_CHARS,
    MAX_SEAL_RECIPIENTS,
    Inventory,
    Manifest,
    Operator,
    PayloadFile,
    SealedOperator,
)
from evidence.sealing import (
    PAD_TO,
    SEALED_TYPE,
    check_recipients,
    inspect_sealed,
    load_identities,
    operator_text,
    parse_recipients,
    seal_operator,
    unseal_operator,
)

pyrage = pytest.importorskip("pyrage", reason="the seal extra is part of the test extra")


def _key() -> tuple[str, str]:
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


WARC_SHA256 = "ab" * 32


def _manifest(
    operator: Operator | None, package_id: str = "pkg-1", warc_sha256: str = WARC_SHA256
) -> Manifest:
    return Manifest(
        package_id=package_id,
        created="2026-12-03T10:00:00Z",
        operator=operator,
        files=(PayloadFile(path="data/capture.warc.gz", size=1, sha256=warc_sha256),),
        warc_path="data/capture.warc.gz",
        records=Inventory(),
    )


def _sealed(
    *recipients: str,
    name: str | None = "Ana",
    org: str | None = "Org",
    warc_sha256: str | None = WARC_SHA256,
) -> Operator:
    return seal_operator(
        Operator(name=name, organization=org),
        recipients,
        package_id="pkg-1",
        created="2026-12-03T10:00:00Z",
        warc_sha256=warc_sha256,
    )


# --- recipients ------------------------------------------------------------------------


def test_recipients_are_checked_deduplicated_and_kept_in_order():
    _, a = _key()
    _, b = _key()
    assert parse_recipients([b, f"  {a}\n", b]) == (b, a)
    assert check_recipients(a) == (a,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "not an age X25519 recipient"),
        ("age1", "not an age X25519 recipient"),
        ("AGE1" + "Q" * 58, "not an age X25519 recipient"),
        ("ssh-rsa AAAAB3NzaC1yc2E", "SSH recipients are not accepted"),
        ("ecdsa-sha2-nistp256 AAAA", "SSH recipients are not accepted"),
        ("age1pq" + "q" * 56 + "zz", "not an age X25519 recipient"),
    ],
)
def test_bad_recipients_are_usage_errors(value, message):
    with pytest.raises(UsageError, match=message):
        check_recipients([value])


def test_a_recipient_with_a_wrong_checksum_is_caught_by_pyrage():
    _, good = _key()
    typo = good[:-1] + ("q" if good[-1] != "q" else "p")
    assert parse_recipients([typo]) == (typo,)  # the pattern alone cannot tell
    with pytest.raises(UsageError, match="not a valid age recipient"):
        check_recipients([typo])


def test_recipient_counts_are_bounded():
    with pytest.raises(UsageError, match="at least one"):
        parse_recipients([])
    many = [_key()[1] for _ in range(MAX_SEAL_RECIPIENTS + 1)]
    with pytest.raises(UsageError, match=f"at most {MAX_SEAL_RECIPIENTS}"):
        parse_recipients(many)
    with pytest.raises(UsageError, match="is text"):
        parse_recipients([5])  # type: ignore[list-item]


# --- sealing and unsealing ----------------------------------------------------------------


def test_seal_and_unseal_round_trip_with_two_keys():
    secret_a, a = _key()
    secret_b, b = _key()
    op = _sealed(a, b, name="Ana Ñ 中文", org=None)
    assert op.name is None and op.organization is None and op.label is None
    assert op.sealed is not None and op.sealed.recipients == (a, b)
    assert "Ana" not in json.dumps(op.to_json())
    assert inspect_sealed(op.sealed) == 2
    for secret, public in ((secret_a, a), (secret_b, b)):
        opened = unseal_operator(_manifest(op), [secret])
        assert (opened.name, opened.organization) == ("Ana Ñ 中文", None)
        assert opened.opened_by == public and opened.warnings == ()
    # Several identities: the one that opens it is named.
    opened = unseal_operator(_manifest(op), [_key()[0], secret_b])
    assert opened.opened_by == b


def test_the_plaintext_is_the_documented_json():
    secret, public = _key()
    op = _sealed(public)
    assert op.sealed is not None
    raw = pyrage.decrypt(
        _dearmored(op.sealed.ciphertext), [pyrage.x25519.Identity.from_str(secret)]
    )
    content = json.loads(raw)
    assert set(content.pop("padding")) == {" "}
    assert len(raw) % PAD_TO == 0
    assert content == {
        "type": SEALED_TYPE,
        "package_id": "pkg-1",
        "created": "2026-12-03T10:00:00Z",
        "name": "Ana",
        "organization": "Org",
        "warc_sha256": WARC_SHA256,
    }


def _dearmored(text: str) -> bytes:
    import base64

    return base64.b64decode("".join(text.strip().split("\n")[1:-1]))


def test_sealing_refuses_nothing_to_seal_and_long_fields():
    _, public = _key()
    with pytest.raises(UsageError, match="nothing to seal"):
        _sealed(public, name=None, org=None)
    with pytest.raises(UsageError, match=f"at most {MAX_LABEL_CHARS}"):
        _sealed(public, name="x" * (MAX_LABEL_CHARS + 1))
    with pytest.raises(UsageError, match="already sealed"):
        seal_operator(_sealed(public), [public], package_id="p", created="c")


def test_unseal_checks_the_binding():
    secret, public = _key()
    op = _sealed(public)
    with pytest.raises(SealBindingError, match="made for package 'pkg-1'") as info:
        unseal_operator(_manifest(op, package_id="pkg-2"), [secret])
    assert info.value.exit_code == 1
    later = attrs.evolve(_manifest(op), created="2026-12-04T10:00:00Z")
    with pytest.raises(SealBindingError, match="moved here from another package"):
        unseal_operator(later, [secret])


def test_unseal_errors_are_seal_errors():
    secret, public = _key()
    with pytest.raises(SealError, match="no sealed operator"):
        unseal_operator(_manifest(Operator(name="x")), [secret])
    with pytest.raises(SealError, match="no sealed operator"):
        unseal_operator(_manifest(None), [secret])
    op = _sealed(public)
    with pytest.raises(SealError, match="none of the 1 identity"):
        unseal_operator(_manifest(op), [_key()[0]])
    with pytest.raises(SealError, match="identity 1 is not an age identity"):
        unseal_operator(_manifest(op), ["AGE-SECRET-KEY-1"])
    with pytest.raises(SealError, match="no identity given"):
        unseal_operator(_manifest(op), [])


def test_a_blob_that_decrypts_to_something_else_is_malformed():
    secret, public = _key()
    recipient = pyrage.x25519.Recipient.from_str(public)
    for plaintext, message in (
        (b"just text", "not valid JSON"),
        (b'{"type": "other"}', "not a evidence-sealed-operator/1 object"),
        (json.dumps({"type": SEALED_TYPE, "package_id": 1}).encode(), "no package_id"),
        (
            json.dumps(
                {"type": SEALED_TYPE, "package_id": "pkg-1", "created": "c", "name": 5}
            ).encode(),
            "name is not text",
        ),
        (b'{"type": 1, "type": 2}', "duplicate JSON key"),
        (b"x" * 20_000, "more than the limit"),
    ):
        armored = pyrage.encrypt(plaintext, [recipient], armored=True).decode()
        op = Operator(sealed=SealedOperator(format="age", recipients=(public,), ciphertext=armored))
        with pytest.raises(SealError, match="malformed") as info:
            unseal_operator(_manifest(op), [secret])
        assert message in str(info.value)


# --- the blob's structure ------------------------------------------------------------------


def _with(op: Operator, **changes: object) -> SealedOperator:
    assert op.sealed is not None
    return attrs.evolve(op.sealed, **changes)


def test_inspect_finds_broken_structure_without_a_key():
    _, a = _key()
    _, b = _key()
    op = _sealed(a, b)
    assert op.sealed is not None
    text = op.sealed.ciphertext
    cases = {
        "unknown format": _with(op, format="gpg"),
        "not an ASCII-armored": _with(op, ciphertext="plain"),
        "not an ASCII-armored age file": _with(op, ciphertext=text.replace("BEGIN AGE", "BEGIN X")),
        "not 64 columns": _with(op, ciphertext=text.replace("\n", "\n ", 2)),
        "1 listed recipient": _with(op, recipients=(a,)),
    }
    for message, sealed in cases.items():
        with pytest.raises(SealError, match=message):
            inspect_sealed(sealed)
        text_shown = operator_text(Operator(sealed=sealed))
        assert text_shown is not None and message in text_shown


def test_operator_text():
    _, a = _key()
    assert operator_text(None) is None
    assert operator_text(Operator(name="N", organization="O")) == "N / O"
    assert operator_text(_sealed(a)) == "operator identity sealed to 1 recipient"


# --- identity files ------------------------------------------------------------------------


def test_load_identities_reads_what_age_keygen_writes(tmp_path):
    secret, public = _key()
    path = tmp_path / "key.txt"
    path.write_text(f"# created: now\n# public key: {public}\n{secret}\n\n")
    assert load_identities(path) == (secret,)
    link = tmp_path / "link.txt"
    link.symlink_to(path)
    with pytest.raises(SealError, match="identity file"):
        load_identities(link)
    big = tmp_path / "big.txt"
    big.write_text("#" * 70_000)
    with pytest.raises(SealError, match="identity file"):
        load_identities(big)


# --- the manifest model ----------------------------------------------------------------------


def test_a_sealed_operator_round_trips_through_the_manifest_bytes():
    _, a = _key()
    m = _manifest(_sealed(a))
    raw = m.to_bytes()
    again = Manifest.from_bytes(raw)
    assert again.operator == m.operator
    assert again.to_bytes() == raw
    assert json.loads(raw)["operator"] == {"sealed": m.operator.sealed.to_json()}  # type: ignore[union-attr]


def test_old_operators_still_parse_and_a_mixed_one_is_refused():
    assert Operator.from_json({"name": "N"}, "operator") == Operator(name="N")
    sealed = {"format": "age", "recipients": ["age1x"], "ciphertext": "x"}
    with pytest.raises(ManifestError, match="sealed part and a plaintext"):
        Operator.from_json({"organization": "O", "sealed": sealed}, "operator")
    for bad, message in (
        ({**sealed, "recipients": []}, "1 to 16 recipients"),
        ({**sealed, "recipients": ["x" * 300]}, "at most 256 characters"),
        ({**sealed, "ciphertext": 5}, "not a string"),
        ({**sealed, "format": None}, "operator.sealed.format"),
    ):
        with pytest.raises(ManifestError, match=message):
            Operator.from_json({"sealed": bad}, "operator")


def test_the_sealed_blob_does_not_tell_how_long_the_name_is():
    # Without padding, the ciphertext grows one byte per byte of name: an
    # adversary with a list of candidates (an NGO's staff page) could rule
    # most of them out by the blob's size alone.
    # The header's size varies at random (age adds a "grease" stanza), which
    # says nothing about the name; the payload after the header's MAC line
    # is 16 bytes of nonce, the plaintext and a 16-byte tag.
    _, public = _key()

    def payload(op: Operator) -> int:
        assert op.sealed is not None
        binary = _dearmored(op.sealed.ciphertext)
        mac_line = binary.index(b"\n--- ") + 1
        return len(binary) - (binary.index(b"\n", mac_line) + 1)

    sizes = {
        payload(_sealed(public, name=name, org=org))
        for name, org in [
            ("A", None),
            ("Ana", "Org"),
            ("Ana María Fernández-López", "Comisión de Derechos Humanos del Estado"),
            ("x" * 300, "y" * 300),
        ]
    }
    assert len(sizes) == 1, sizes


def test_a_padded_seal_opens_to_the_fields_and_long_fields_still_fit():
    secret, public = _key()
    for name in ("A", "é" * MAX_LABEL_CHARS):
        op = _sealed(public, name=name, org="o" * MAX_LABEL_CHARS)
        opened = unseal_operator(_manifest(op), [secret])
        assert (opened.name, opened.organization) == (name, "o" * MAX_LABEL_CHARS)
        assert op.sealed is not None
        raw = pyrage.decrypt(
            _dearmored(op.sealed.ciphertext), [pyrage.x25519.Identity.from_str(secret)]
        )
        assert len(raw) % 1024 == 0


def test_unseal_checks_the_warc_binding_and_says_when_a_blob_has_none():
    secret, public = _key()
    opened = unseal_operator(_manifest(_sealed(public)), [secret])
    assert opened.bound_to_warc and opened.warnings == ()
    assert "WARC SHA-256 match" in opened.to_json()["binding"]
    # Same package id and creation time, other evidence: refused.
    with pytest.raises(SealBindingError, match="sealed for other evidence"):
        unseal_operator(_manifest(_sealed(public), warc_sha256="cd" * 32), [secret])
    # A blob sealed before the WARC was bound still opens, with a warning.
    old = unseal_operator(_manifest(_sealed(public, warc_sha256=None)), [secret])
    assert old.name == "Ana" and not old.bound_to_warc
    assert any("not the WARC" in w for w in old.warnings)
    assert "does not name the WARC" in old.to_json()["binding"]

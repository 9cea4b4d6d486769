"""C2SP signed notes and checkpoints.

The PeterNeumann key and note are the published example of Go's reference
implementation, golang.org/x/mod/sumdb/note (note_test.go): Ed25519 is
deterministic, so signing the same text with the same key must give the same
signature line byte for byte, and its key hash must be c74f20a3.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.keys import generate_keypair, key_id
from evidence.ledger import Checkpoint, LedgerError, note_key_hash, sign_note, verifier_key
from evidence.ledger.note import parse_note

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + (
        "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
        "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    ).encode()
)


def go_keys() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    pub = base64.b64decode(GO_VKEY.split("+", 2)[2])
    assert seed[0] == 1 and pub[0] == 1  # algorithm byte: Ed25519
    return (
        Ed25519PrivateKey.from_private_bytes(seed[1:]),
        Ed25519PublicKey.from_public_bytes(pub[1:]),
    )


def test_key_hash_and_signature_match_the_go_reference():
    priv, pub = go_keys()
    assert note_key_hash("PeterNeumann", pub).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", pub) == GO_VKEY
    assert sign_note(GO_TEXT, "PeterNeumann", priv) == GO_NOTE


def test_go_note_parses_and_verifies():
    _, pub = go_keys()
    body, sigs = parse_note(GO_NOTE)
    assert body == GO_TEXT
    from evidence.ledger.note import note_signers

    assert note_signers(body, sigs, [pub]) == ([key_id(pub)], [])
    tampered = body.replace(b"cryptography", b"cryptographY")
    assert note_signers(tampered, sigs, [pub]) == ([], [key_id(pub)])
    assert note_signers(body, sigs, [generate_keypair().public_key()]) == ([], [])


def make_cp(key: Ed25519PrivateKey, origin: str = "example.org/log", size: int = 5) -> bytes:
    return sign_note(Checkpoint.body_for(origin, size, bytes(range(32))), origin, key)


def test_checkpoint_roundtrip_and_signers():
    key = generate_keypair()
    raw = make_cp(key)
    assert raw.startswith(b"example.org/log\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n")
    cp = Checkpoint.from_bytes(raw)
    assert (cp.origin, cp.size, cp.root) == ("example.org/log", 5, bytes(range(32)))
    assert cp.signers([key.public_key()]) == ([key_id(key.public_key())], [])
    other = generate_keypair()
    cosigned = raw + sign_note(cp.body, "witness", other).split(b"\n\n", 1)[1]
    cp2 = Checkpoint.from_bytes(cosigned)
    assert len(cp2.signatures) == 2
    assert cp2.signers([key.public_key(), other.public_key()])[0] == sorted(
        [key_id(key.public_key()), key_id(other.public_key())]
    )


HOSTILE = {
    "no-signature": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n\n",
    "no-blank-line": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n",
    "hyphen-not-em-dash": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n\n- o AAAAAAAA\n",
    "bad-size": b"o\n01\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "negative-size": b"o\n-1\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "huge-size": b"o\n99999999999999999999\n"
    + base64.b64encode(bytes(32))
    + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "short-root": b"o\n1\n" + base64.b64encode(bytes(31)) + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "non-canonical-b64": b"o\n1\n"
    + base64.b64encode(bytes(32)).rstrip(b"=")
    + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "escape-in-origin": b"o\x1b[2J\n1\n"
    + base64.b64encode(bytes(32))
    + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "space-in-origin": b"o o\n1\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "not-utf8": b"\xff\n1\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 o AAAAAAAA\n",
    "too-big": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n" + b"x\n" * 40000 + b"\n",
    "too-many-signatures": b"o\n1\n"
    + base64.b64encode(bytes(32))
    + b"\n\n"
    + b"\xe2\x80\x94 o AAAAAAAA\n" * 101,
    "short-signature": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 o AAAA\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoints_are_refused(name):
    with pytest.raises(LedgerError):
        Checkpoint.from_bytes(HOSTILE[name])


def test_sign_note_refuses_bad_names_and_bodies():
    from evidence.errors import UsageError

    key = generate_keypair()
    with pytest.raises(UsageError):
        sign_note(b"x\n", "a name", key)
    with pytest.raises(UsageError):
        sign_note(b"x\n", "a+b", key)
    with pytest.raises(UsageError):
        sign_note(b"x\n", "name\n", key)
    with pytest.raises(UsageError):
        sign_note(b"x\n\ny\n", "a", key)

"""C2SP signed notes and tlog checkpoints with Ed25519 signatures (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import typing

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import LedgerError, UsageError
from evidence.keys import Keyring, key_id
from evidence.ledger._base import (
    DECIMAL_RE,
    ED25519_ALG,
    HASH_SIZE,
    MAX_CHECKPOINT_BYTES,
    MAX_NOTE_SIGNATURES,
    MAX_TREE_SIZE,
    NAME_RE,
    SIGNATURE_PREFIX,
)

# ---------------------------------------------------------------------------
# C2SP signed notes and checkpoints
# ---------------------------------------------------------------------------


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_hash(name: str, key: Ed25519PublicKey) -> bytes:
    """C2SP signed-note key hash: first 4 bytes of SHA-256(name ‖ LF ‖ 0x01 ‖ public key)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALG + _raw_public(key)).digest()[
        :4
    ]


def verifier_key(name: str, key: Ed25519PublicKey) -> str:
    """The C2SP/Go ``note`` verifier key string ``name+hash+base64(0x01 ‖ key)``."""
    blob = base64.b64encode(ED25519_ALG + _raw_public(key)).decode("ascii")
    return f"{name}+{note_key_hash(name, key).hex()}+{blob}"


def sign_note(body: bytes, name: str, key: Ed25519PrivateKey) -> bytes:
    """A C2SP signed note: ``body``, a blank line, one Ed25519 signature line."""
    if not NAME_RE.match(name):
        raise UsageError("a signature name must be printable ASCII without spaces or '+'")
    if not body.endswith(b"\n") or b"\n\n" in body:
        raise UsageError("a note body must end with one line feed and have no blank lines")
    blob = note_key_hash(name, key.public_key()) + key.sign(body)
    line = f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"
    return body + b"\n" + line.encode("utf-8")


@attrs.frozen
class NoteSignature:
    """One signature line of a signed note, unverified."""

    name: str
    key_hash: bytes
    signature: bytes


def parse_note(raw: bytes) -> tuple[bytes, tuple[NoteSignature, ...]]:
    """Split a C2SP signed note into its body and (unverified) signature lines.

    Strict: UTF-8, no control characters but line feeds, at most 64 KiB and
    100 signatures; the body ends at the last blank line, as in Go's note.Open.
    Raises LedgerError.
    """
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise LedgerError("a signed note is larger than 64 KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LedgerError("a signed note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in text) or "\x7f" in text:
        raise LedgerError("a signed note holds control characters")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise LedgerError("not a signed note (no blank line before the signatures)")
    body, sig_text = text[: split + 1], text[split + 2 :]
    sig_lines = sig_text.split("\n")[:-1]
    if not sig_lines or len(sig_lines) > MAX_NOTE_SIGNATURES:
        raise LedgerError("a signed note needs 1 to 100 signature lines")
    return body.encode("utf-8"), tuple(_parse_signature_line(line) for line in sig_lines)


def note_signers(
    body: bytes,
    signatures: typing.Sequence[NoteSignature],
    keys: typing.Iterable[Ed25519PublicKey],
) -> tuple[list[str], list[str]]:
    """Which keys signed ``body``: (ids whose signature verifies, ids whose claimed one does not).

    A signature line counts for a key when its key hash is that key's hash
    under the line's name, and the Ed25519 signature over ``body`` verifies.
    """
    good: list[str] = []
    bad: list[str] = []
    for key in keys:
        for sig in signatures:
            if not hmac.compare_digest(sig.key_hash, note_key_hash(sig.name, key)):
                continue
            try:
                if len(sig.signature) != 64:
                    raise InvalidSignature
                key.verify(sig.signature, body)
                good.append(key_id(key))
            except InvalidSignature:
                bad.append(key_id(key))
    return sorted(set(good)), sorted(set(bad) - set(good))


@attrs.frozen
class Checkpoint:
    """A parsed (unverified) C2SP checkpoint note."""

    raw: bytes
    body: bytes
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    signatures: tuple[NoteSignature, ...]

    @classmethod
    def body_for(cls, origin: str, size: int, root: bytes) -> bytes:
        """The checkpoint body (what the signatures cover)."""
        return f"{origin}\n{size}\n{base64.b64encode(root).decode('ascii')}\n".encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Checkpoint:
        """Parse a signed checkpoint strictly. Raises LedgerError."""
        body_bytes, signatures = parse_note(raw)
        body = body_bytes.decode("utf-8")
        lines = body.split("\n")[:-1]
        if len(lines) < 3 or any(not line for line in lines):
            raise LedgerError("a checkpoint body needs origin, size and root hash lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not NAME_RE.match(origin):
            raise LedgerError("the checkpoint origin is not printable ASCII without spaces")
        if not DECIMAL_RE.match(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise LedgerError("the checkpoint tree size is not a decimal number in range")
        root = b64decode_strict(root_text, "the checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise LedgerError("the checkpoint root hash is not 32 bytes")
        return cls(
            raw=raw,
            body=body_bytes,
            origin=origin,
            size=int(size_text),
            root=root,
            extensions=tuple(lines[3:]),
            signatures=signatures,
        )

    def signers(self, keys: typing.Iterable[Ed25519PublicKey]) -> tuple[list[str], list[str]]:
        """(key ids whose signature verifies, key ids whose claimed signature does not)."""
        return note_signers(self.body, self.signatures, keys)

    def text(self) -> str:
        return self.raw.decode("utf-8")


def b64decode_strict(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise LedgerError(f"{what} is not base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise LedgerError(f"{what} is not canonical base64")
    return data


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise LedgerError("a signature line does not start with an em dash and a space")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or not NAME_RE.match(parts[0]):
        raise LedgerError("a signature line is not '— <name> <base64>'")
    blob = b64decode_strict(parts[1], "a note signature")
    if len(blob) < 5:
        raise LedgerError("a note signature is too short")
    return NoteSignature(parts[0], blob[:4], blob[4:])


def load_ledger_keys(paths: typing.Iterable[str | os.PathLike[str]]) -> list[Ed25519PublicKey]:
    """Public keys the caller trusts to sign checkpoints (files or directories of .pub/.pem)."""
    ring = Keyring.from_paths(paths)
    return [k for kid in ring.key_ids if (k := ring.get(kid)) is not None]

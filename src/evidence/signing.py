"""Sign the exact bytes of ``evidence/manifest.json``.

A signature is 64 raw Ed25519 bytes in ``evidence/signatures/<key-id>.sig``;
the signer's public key goes beside it in ``evidence/keys/<key-id>.pub`` for
information only (a verifier never trusts it). Signing never touches
``manifest.json`` and keeps the bag valid: attachments are outside the tag
manifest by design.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import PackageError, SigningError
from evidence.keys import key_id, public_key_pem
from evidence.package import MANIFEST_PATH, attachment_dir, require_package, write_file_atomic

__all__ = [
    "SIGNATURE_SIZE",
    "attachments_for",
    "read_manifest_bytes",
    "sign_package",
    "signature_valid",
]

SIGNATURE_SIZE = 64


def signature_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def sign_package(
    package: str | os.PathLike[str],
    private_key: Ed25519PrivateKey,
    *,
    actor: str | None = None,
    note: str = "",
) -> str:
    """Add (or re-add, identically) this key's signature to a package. Returns the key id.

    A new signature also appends a custody event, ``signed`` for the first
    signature and ``countersigned`` when others exist, signed by the same key.

    Raises:
        PackageError: not a package, or it cannot be written.
        SigningError: a different signature by this key is already present.
    """
    root = require_package(package)
    manifest = read_manifest_bytes(root)
    public_key = private_key.public_key()
    kid = key_id(public_key)
    signature = private_key.sign(manifest)
    try:
        sig_dir = attachment_dir(root, "evidence/signatures")
        key_dir = attachment_dir(root, "evidence/keys")
        sig_path = sig_dir / f"{kid}.sig"
        if sig_path.exists():
            # Ed25519 is deterministic: the same key over the same bytes gives
            # the same signature, so an existing file is either identical or
            # was tampered with. Never overwrite silently.
            if sig_path.read_bytes() == signature:
                return kid
            raise SigningError(f"{sig_path} exists and differs; refusing to replace it")
        others = [p for p in sig_dir.iterdir() if p.suffix == ".sig"]
        write_file_atomic(key_dir / f"{kid}.pub", public_key_pem(public_key))
        write_file_atomic(sig_path, signature, exclusive=True)
    except OSError as exc:
        raise PackageError(f"cannot write signature into {root}: {exc.strerror or exc}") from exc
    from evidence.custody import append_event

    append_event(
        root,
        event="countersigned" if others else "signed",
        note=note or f"signed manifest.json with key {kid}",
        actor=actor,
        key=private_key,
    )
    return kid


def attachments_for(manifest: bytes, private_key: Ed25519PrivateKey) -> dict[str, bytes]:
    """The signature and public-key files for a package that is still being built."""
    public_key = private_key.public_key()
    kid = key_id(public_key)
    return {
        f"evidence/signatures/{kid}.sig": private_key.sign(manifest),
        f"evidence/keys/{kid}.pub": public_key_pem(public_key),
    }


def read_manifest_bytes(root: Path) -> bytes:
    """The exact bytes of a package's manifest."""
    try:
        return (root / MANIFEST_PATH).read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read {root / MANIFEST_PATH}: {exc.strerror}") from exc

"""Ed25519 signatures over the exact bytes of ``evidence/manifest.json``.

A signature is 64 raw Ed25519 bytes in ``evidence/signatures/<key-id>.sig``;
the signer's public key goes beside it in ``evidence/keys/<key-id>.pub`` for
information only (a verifier never trusts it). This module is pure: bytes in,
values out. Adding a signature to an existing package is
:func:`evidence.attach.sign_package`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.keys import key_id, public_key_pem

__all__ = [
    "SIGNATURE_SIZE",
    "attachments_for",
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


def attachments_for(manifest: bytes, private_key: Ed25519PrivateKey) -> dict[str, bytes]:
    """The signature and public-key files for ``manifest``, keyed by package-relative path."""
    public_key = private_key.public_key()
    kid = key_id(public_key)
    return {
        f"evidence/signatures/{kid}.sig": private_key.sign(manifest),
        f"evidence/keys/{kid}.pub": public_key_pem(public_key),
    }

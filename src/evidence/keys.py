"""Ed25519 keys: generation, encrypted storage, key ids, keyrings.

Key id
    Lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo DER, so
    ``openssl pkey -pubin -in k.pub -outform DER | sha256sum`` gives the same.

Private key storage
    PKCS#8 PEM (``ENCRYPTED PRIVATE KEY``), PBES2 with PBKDF2-HMAC-SHA256 at
    :data:`PBKDF2_ITERATIONS` iterations and AES-256-CBC, file mode 0600.
    ``cryptography``'s ``BestAvailableEncryption`` uses only 2,048 PBKDF2
    iterations, too few against offline guessing, and its configurable
    builder does not do PKCS#8; so we build the standard PBES2 structure
    ourselves from ``cryptography``'s primitives. Any PKCS#8 reader (OpenSSL,
    ``cryptography``) loads the result. 600,000 iterations follows OWASP's
    2023 advice for PBKDF2-HMAC-SHA256; scrypt was not chosen because
    OpenSSL's 32 MiB scrypt memory cap for PKCS#8 keeps its cost low.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import typing
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.errors import KeyFileError

__all__ = [
    "PBKDF2_ITERATIONS",
    "Keyring",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "pem_encode",
    "public_key_pem",
    "write_keypair",
]

PBKDF2_ITERATIONS = 600_000
MAX_KEY_FILE_BYTES = 64 * 1024

# DER-encoded object identifiers used in the PBES2 structure.
_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")
_OID_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")
_OID_HMAC_SHA256 = bytes.fromhex("06082a864886f70d0209")
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _encrypt_pkcs8(private_der: bytes, passphrase: bytes) -> bytes:
    # Imported here: only key generation needs them, and verification should
    # not pay their start-up time and memory.
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt = os.urandom(16)
    iv = os.urandom(16)
    kdf = PBKDF2HMAC(algorithm=SHA256(), length=32, salt=salt, iterations=PBKDF2_ITERATIONS)
    key = kdf.derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(private_der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    prf = _der(0x30, _OID_HMAC_SHA256 + b"\x05\x00")
    pbkdf2_params = _der(0x30, _der(0x04, salt) + _der_int(PBKDF2_ITERATIONS) + prf)
    kdf_alg = _der(0x30, _OID_PBKDF2 + pbkdf2_params)
    enc_alg = _der(0x30, _OID_AES256_CBC + _der(0x04, iv))
    algorithm = _der(0x30, _OID_PBES2 + _der(0x30, kdf_alg + enc_alg))
    return _der(0x30, algorithm + _der(0x04, encrypted))


def pem_encode(label: str, der: bytes) -> bytes:
    """RFC 7468 PEM text for DER bytes under ``label`` (64-character lines)."""
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keypair() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(private_key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, PBES2-encrypted with ``passphrase`` (see module docstring), or plain."""
    if passphrase is None:
        return private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    if not passphrase:
        raise KeyFileError("an empty passphrase is not allowed; use --no-passphrase explicitly")
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_encode("ENCRYPTED PRIVATE KEY", _encrypt_pkcs8(der, passphrase))


def write_keypair(path: str | os.PathLike[str], passphrase: bytes | None) -> str:
    """Generate a key pair; write PATH (mode 0600) and PATH.pub. Returns the key id.

    Refuses to overwrite either file.
    """
    priv_path = Path(path)
    pub_path = Path(f"{priv_path}.pub")
    key = generate_keypair()
    priv = private_key_pem(key, passphrase)
    pub = public_key_pem(key.public_key())
    for target in (priv_path, pub_path):
        if target.exists():
            raise KeyFileError(f"{target} already exists; refusing to overwrite a key")
    try:
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(priv)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(priv_path, 0o600)  # in case the umask widened nothing but a pre-set ACL did
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pub)
    except OSError as exc:
        raise KeyFileError(f"cannot write key to {priv_path}: {exc.strerror or exc}") from exc
    return key_id(key.public_key())


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    return data


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key, refusing files readable by group or others.

    Raises:
        KeyFileError: unsafe permissions, wrong passphrase, not an Ed25519 key.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{p} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {p}"
        )
    data = _read_key_file(p)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        if passphrase is None:
            raise KeyFileError(
                f"{p} is encrypted: give its passphrase (EVIDENCE_PASSPHRASE or the prompt)"
            ) from exc
        raise KeyFileError(f"{p} is not encrypted, but a passphrase was given") from exc
    except ValueError as exc:
        if b"ENCRYPTED" in data and passphrase:
            raise KeyFileError(f"wrong passphrase for {p} (or the key file is corrupt)") from exc
        raise KeyFileError(f"{p} is not a readable PEM private key") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others
        raise KeyFileError(f"{p} is not a usable private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{p} is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Load an Ed25519 public key (SubjectPublicKeyInfo PEM or DER)."""
    p = Path(path)
    data = _read_key_file(p)
    return public_key_from_bytes(data, str(p))


def public_key_from_bytes(data: bytes, name: str) -> Ed25519PublicKey:
    """Parse an Ed25519 public key from PEM or DER bytes. Raises KeyFileError."""
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except Exception as exc:  # ValueError, UnsupportedAlgorithm, ...
        raise KeyFileError(f"{name} is not a readable public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{name} is not an Ed25519 public key")
    return key


def key_id_of_file(path: str | os.PathLike[str], passphrase: bytes | None = None) -> str:
    """Key id of a public key file, or of a private key file (which may need its passphrase)."""
    p = Path(path)
    data = _read_key_file(p)
    if b"PRIVATE KEY" in data:
        return key_id(load_private_key(p, passphrase).public_key())
    return key_id(public_key_from_bytes(data, str(p)))


class Keyring:
    """The public keys a verifier trusts, by key id. Built only from what the caller gives."""

    def __init__(self, keys: typing.Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            self._keys[key_id(key)] = key

    @classmethod
    def from_paths(cls, paths: typing.Iterable[str | os.PathLike[str]]) -> Keyring:
        """Load trusted keys from files and directories (``*.pub`` and ``*.pem`` in a directory).

        Raises:
            KeyFileError: a path is missing, a file is not an Ed25519 public key,
                or a directory holds no keys. Failing here is deliberate: a typo
                in a trust path must not silently verify against fewer keys.
        """
        keys: list[Ed25519PublicKey] = []
        for raw in paths:
            p = Path(raw)
            if p.is_dir():
                found = sorted(
                    q for q in p.iterdir() if q.suffix in (".pub", ".pem") and q.is_file()
                )
                if not found:
                    raise KeyFileError(f"trust directory {p} holds no .pub or .pem keys")
                keys.extend(load_public_key(q) for q in found)
            elif p.is_file():
                keys.append(load_public_key(p))
            else:
                raise KeyFileError(f"trusted key {p} does not exist")
        return cls(keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

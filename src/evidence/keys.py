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
import contextlib
import hashlib
import os
import stat
import typing
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from evidence.errors import KeyFileError

__all__ = [
    "PBKDF2_ITERATIONS",
    "Keyring",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "pem_encode",
    "public_key_from_bytes",
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


def private_key_pem(private_key: PrivateKeyTypes, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, PBES2-encrypted with ``passphrase`` (see module docstring), or plain.

    Any private key: the Ed25519 signing key, and the P-384 WACZ key (wacz.py).
    """
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


def _make_parent(path: Path) -> None:
    """Create the missing directories above ``path`` with mode 0700 (only those we create)."""
    missing: list[Path] = []
    parent = path.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        # The umask may have taken bits away; a key directory is the owner's alone.
        os.chmod(directory, 0o700)


def write_keypair(path: str | os.PathLike[str], passphrase: bytes | None) -> str:
    """Generate a key pair; write PATH (mode 0600) and PATH.pub. Returns the key id.

    Missing directories above PATH are created with mode 0700 (so
    ``~/.evidence/newsroom.key`` works on a fresh machine). Refuses to
    overwrite anything: when PATH or PATH.pub exists in any form (a file, a
    directory, a dangling symbolic link), nothing is written, so a failure
    never leaves an orphaned private key.

    Raises:
        KeyFileError: a target exists, or the files cannot be written.
    """
    priv_path = Path(path)
    pub_path = Path(f"{priv_path}.pub")
    key = generate_keypair()
    priv = private_key_pem(key, passphrase)
    pub = public_key_pem(key.public_key())
    for target in (priv_path, pub_path):
        # lexists, not exists: a dangling link is something, and O_EXCL would refuse it later.
        if os.path.lexists(target):
            raise KeyFileError(f"{target} already exists; refusing to overwrite a key")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written: list[Path] = []
    try:
        _make_parent(priv_path)
        fd = os.open(priv_path, flags, 0o600)
        written.append(priv_path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(priv)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(priv_path, 0o600)  # in case the umask widened nothing but a pre-set ACL did
        fd = os.open(pub_path, flags, 0o644)
        written.append(pub_path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pub)
    except OSError as exc:
        # Something appeared at PATH.pub after the check, or the disk is full:
        # remove what we wrote, so no private key is left without its public key.
        for done in written:
            with contextlib.suppress(OSError):
                os.unlink(done)
        raise KeyFileError(f"cannot write key to {priv_path}: {exc.strerror or exc}") from exc
    return key_id(key.public_key())


def _read_key_file(path: Path) -> bytes:
    # O_NONBLOCK and a regular-file check: a FIFO given as a key must not hang us.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path} is too large to be a key file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key file")
    return data


def _looks_public(data: bytes) -> bool:
    """True for a public key file (PEM or DER SubjectPublicKeyInfo)."""
    if b"-----BEGIN PUBLIC KEY-----" in data:
        return True
    if data.lstrip().startswith(b"-----"):
        return False
    try:
        serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def load_private_key(
    path: str | os.PathLike[str], passphrase: bytes | str | None
) -> Ed25519PrivateKey:
    """Load an Ed25519 private key, refusing files readable by group or others.

    Args:
        path: a PKCS#8 PEM private key file.
        passphrase: its passphrase as bytes, or as str (encoded UTF-8);
            None for an unencrypted key.

    Raises:
        KeyFileError: unsafe permissions, wrong passphrase, a public key
            instead of a private one, not an Ed25519 key, or a passphrase
            that is neither bytes nor str.
    """
    p = Path(path)
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    elif passphrase is not None and not isinstance(passphrase, bytes):
        raise KeyFileError(
            f"the passphrase for {p} must be bytes or str, not {type(passphrase).__name__}"
        )
    data = _read_key_file(p)
    # Before the permission check: a public key is 0644 by design, and the
    # advice "chmod 600" would send the user the wrong way.
    if _looks_public(data):
        raise KeyFileError(
            f"{p} is a public key; --key needs the private key file "
            "(the one without .pub, created by 'evidence keygen')"
        )
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{p} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {p}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        # cryptography raises TypeError for exactly two cases: an encrypted
        # key without a passphrase, and a passphrase for an unencrypted key.
        if not passphrase:
            raise KeyFileError(
                f"{p} is encrypted: give its passphrase (EVIDENCE_PASSPHRASE or the prompt)"
            ) from exc
        raise KeyFileError(f"{p} is not encrypted, but a passphrase was given") from exc
    except ValueError as exc:
        if b"ENCRYPTED" in data and passphrase:
            raise KeyFileError(f"wrong passphrase for {p} (or the key file is corrupt)") from exc
        raise KeyFileError(f"{p} is not a readable PEM private key") from exc
    except UnsupportedAlgorithm as exc:
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
    except (ValueError, UnsupportedAlgorithm) as exc:
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

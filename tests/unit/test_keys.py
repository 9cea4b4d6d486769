from __future__ import annotations

import os
import subprocess
import sys

import pytest

from evidence.errors import KeyFileError
from evidence.keys import (
    Keyring,
    key_id,
    key_id_of_file,
    load_private_key,
    load_public_key,
    write_keypair,
)

EVIDENCE = [sys.executable, "-m", "evidence.cli"]


def test_keygen_writes_encrypted_0600_key_and_public_key(tmp_path):
    path = tmp_path / "k"
    kid = write_keypair(path, b"correct horse")
    assert (path.stat().st_mode & 0o777) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    key = load_private_key(path, b"correct horse")
    assert key_id(key.public_key()) == kid == key_id(load_public_key(f"{path}.pub"))


def test_kdf_is_pbkdf2_with_600000_iterations(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, b"pw")
    out = subprocess.run(
        ["openssl", "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "PBKDF2" in out and "hmacWithSHA256" in out and "aes-256-cbc" in out
    assert ":0927C0" in out  # 600000
    # OpenSSL can read the key with the passphrase: a standard PKCS#8 file.
    subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", "pass:pw", "-noout"], check=True
    )


def test_key_id_matches_openssl(tmp_path):
    path = tmp_path / "k"
    kid = write_keypair(path, None)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", f"{path}.pub", "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    import hashlib

    assert hashlib.sha256(der).hexdigest() == kid


def test_wrong_passphrase(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, b"right")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(path, b"wrong")


def test_group_readable_key_is_refused(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, b"pw")
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path, b"pw")


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, None)
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(path, None)


def test_not_a_key(tmp_path):
    bad = tmp_path / "bad.pub"
    bad.write_text("hello")
    with pytest.raises(KeyFileError):
        load_public_key(bad)
    with pytest.raises(KeyFileError, match="does not exist"):
        Keyring.from_paths([tmp_path / "missing.pub"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyFileError, match="holds no"):
        Keyring.from_paths([empty])


def test_non_ed25519_key_refused(tmp_path):
    rsa = tmp_path / "rsa.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            str(rsa),
        ],
        check=True,
        capture_output=True,
    )
    os.chmod(rsa, 0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519"):
        load_private_key(rsa, None)


def test_cli_keygen_and_key_id(tmp_path):
    env = {**os.environ, "EVIDENCE_PASSPHRASE": "s3cret-passphrase"}
    path = tmp_path / "k"
    proc = subprocess.run([*EVIDENCE, "keygen", str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    kid = proc.stdout.strip()
    assert len(kid) == 64
    for f in (path, f"{path}.pub"):
        proc = subprocess.run(
            [*EVIDENCE, "key-id", str(f)], capture_output=True, text=True, env=env
        )
        assert proc.stdout.strip() == kid
    assert key_id_of_file(path, b"s3cret-passphrase") == kid


def test_cli_wrong_passphrase_is_one_line(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, b"right")
    env = {**os.environ, "EVIDENCE_PASSPHRASE": "wrong"}
    proc = subprocess.run([*EVIDENCE, "key-id", str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "wrong passphrase" in proc.stderr


def test_cli_no_passphrase_and_no_terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EVIDENCE_PASSPHRASE"}
    proc = subprocess.run(
        [*EVIDENCE, "keygen", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "EVIDENCE_PASSPHRASE" in proc.stderr
    assert not (tmp_path / "k").exists()
    proc = subprocess.run(
        [*EVIDENCE, "keygen", str(tmp_path / "k"), "--no-passphrase"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0 and "NOT encrypted" in proc.stderr

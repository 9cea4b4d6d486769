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


# --- issue 11: what people hit first; issue 10: no orphaned private key ----


def test_keygen_creates_missing_parent_directories_0700(tmp_path):
    """The README's `evidence keygen ~/.evidence/newsroom.key` on a fresh machine."""
    path = tmp_path / "home" / ".evidence" / "newsroom.key"
    old = os.umask(0o022)
    try:
        kid = write_keypair(path, b"correct horse")
    finally:
        os.umask(old)
    for directory in (tmp_path / "home", path.parent):
        assert directory.is_dir() and (directory.stat().st_mode & 0o777) == 0o700, directory
    assert (path.stat().st_mode & 0o777) == 0o600
    assert key_id(load_public_key(f"{path}.pub")) == kid


def test_keygen_leaves_an_existing_parent_alone(tmp_path):
    tmp_path.chmod(0o755)
    write_keypair(tmp_path / "k", None)
    assert (tmp_path.stat().st_mode & 0o777) == 0o755


@pytest.mark.parametrize("occupant", ["dangling-link", "directory", "fifo"])
def test_anything_at_pub_path_is_refused_before_the_private_key_is_written(tmp_path, occupant):
    path = tmp_path / "k"
    pub = tmp_path / "k.pub"
    if occupant == "dangling-link":
        pub.symlink_to(tmp_path / "nowhere")
    elif occupant == "directory":
        pub.mkdir()
    else:
        os.mkfifo(pub)
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(path, b"correct horse")
    assert not os.path.lexists(path), "an orphaned private key was left behind"
    assert not (tmp_path / "nowhere").exists()


def test_str_passphrase_is_accepted(tmp_path):
    path = tmp_path / "k"
    kid = write_keypair(path, "pässphrase".encode())
    assert key_id(load_private_key(path, "pässphrase").public_key()) == kid
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_private_key(path, "other")


def test_passphrase_of_another_type_is_a_clear_error(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, b"pw-long-enough")
    with pytest.raises(KeyFileError, match="must be bytes or str, not int"):
        load_private_key(path, 1234)  # type: ignore[arg-type]


def test_str_passphrase_for_an_unencrypted_key_says_so(tmp_path):
    path = tmp_path / "k"
    write_keypair(path, None)
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase was given"):
        load_private_key(path, "pw")


@pytest.mark.parametrize("form", ["PEM", "DER"])
def test_public_key_given_as_private_key_says_so(tmp_path, form):
    path = tmp_path / "k"
    write_keypair(path, b"pw-long-enough")
    pub = tmp_path / "k.pub"
    if form == "DER":
        der = subprocess.run(
            ["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"],
            capture_output=True,
            check=True,
        ).stdout
        pub = tmp_path / "k.der"
        pub.write_bytes(der)
        pub.chmod(0o644)
    with pytest.raises(KeyFileError) as info:
        load_private_key(pub, b"pw-long-enough")
    assert "is a public key; --key needs the private key file" in str(info.value)
    assert "chmod" not in str(info.value)


def test_cli_sign_with_public_key_names_the_mistake(tmp_path, package_copy):
    path = tmp_path / "k"
    write_keypair(path, None)
    proc = subprocess.run(
        [*EVIDENCE, "sign", str(package_copy), "--key", f"{path}.pub"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "EVIDENCE_PASSPHRASE"},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "is a public key" in proc.stderr and "chmod" not in proc.stderr


def test_fifo_as_key_file_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "k"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_private_key(fifo, None)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_public_key(fifo)

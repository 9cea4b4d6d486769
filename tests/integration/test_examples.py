"""The scripts in examples/ run and do what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = str(Path(sys.executable).parent)


def test_capture_sign_verify(tmp_path):
    proc = subprocess.run(
        [sys.executable, EXAMPLES / "capture_sign_verify.py", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["outcome"] == "verified" and doc["status"] == 200


def test_verify_folder_and_by_hand(sealed_package, signer):
    proc = subprocess.run(
        [
            sys.executable,
            EXAMPLES / "verify_folder.py",
            str(sealed_package.parent),
            "--trust",
            str(signer.pub),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("verified")
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    proc = subprocess.run(
        ["bash", EXAMPLES / "verify_by_hand.sh", str(sealed_package), str(signer.pub)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ALL CHECKS PASSED" in proc.stdout and "digest pass" in proc.stdout


def test_verify_by_hand_fails_on_tampering(package_copy, signer):
    m = package_copy / "evidence" / "manifest.json"
    m.write_bytes(m.read_bytes().replace(b'"status": 200', b'"status": 201'))
    proc = subprocess.run(
        ["bash", EXAMPLES / "verify_by_hand.sh", str(package_copy), str(signer.pub)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "ALL CHECKS PASSED" not in proc.stdout


def test_demo_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "VERIFIED" in proc.stdout
    packages = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(packages) == 1
    pub = tmp_path / ".demo-keys" / f"{packages[0].name}.signer.pub"
    assert pub.is_file()
    again = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "verify", str(packages[0]), "--trust", str(pub)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0

"""docs/verifying-by-hand.md: the standard tools agree with `evidence verify`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from evidence.package import MANIFEST_PATH
from evidence.verifying import verify

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path) -> int:
    return subprocess.run(cmd, cwd=cwd, capture_output=True).returncode


def by_hand(pkg: Path, pub: Path, kid: str) -> dict[str, bool]:
    results = {
        "sha256sum payload": run(["sha256sum", "-c", "manifest-sha256.txt"], pkg) == 0,
        "sha256sum tags": run(["sha256sum", "-c", "tagmanifest-sha256.txt"], pkg) == 0,
        "openssl signature": run(
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                str(pub),
                "-rawin",
                "-in",
                MANIFEST_PATH,
                "-sigfile",
                f"evidence/signatures/{kid}.sig",
            ],
            pkg,
        )
        == 0,
        "warcio check": run([str(BIN / "warcio"), "check", "data/capture.warc.gz"], pkg) == 0,
        "bagit.py": run([str(BIN / "bagit.py"), "--validate", "."], pkg) == 0,
    }
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    results["key id"] = hashlib.sha256(der).hexdigest() == kid
    manifest_sum = subprocess.run(
        ["sha256sum", MANIFEST_PATH], cwd=pkg, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    first_event = json.loads((pkg / "evidence/custody.jsonl").read_bytes().splitlines()[0])
    results["custody links to manifest"] = first_event["prev"] == manifest_sum
    m = json.loads((pkg / MANIFEST_PATH).read_bytes())
    warc = (pkg / "data/capture.warc.gz").read_bytes()
    results["manifest file hash"] = m["files"][0]["sha256"] == hashlib.sha256(warc).hexdigest()
    return results


def test_standard_tools_pass_on_an_intact_package(sealed_package, signer):
    results = by_hand(sealed_package, signer.pub, signer.kid)
    assert all(results.values()), results
    assert verify(sealed_package, trust=[signer.pub]).ok


def test_standard_tools_catch_an_edited_manifest(package_copy, signer):
    path = package_copy / MANIFEST_PATH
    path.write_bytes(path.read_bytes().replace(b'"status": 200', b'"status": 404'))
    results = by_hand(package_copy, signer.pub, signer.kid)
    assert not results["openssl signature"]
    assert not results["sha256sum tags"]
    assert not verify(package_copy, trust=[signer.pub]).ok


def test_standard_tools_catch_a_changed_warc(package_copy, signer):
    warc = package_copy / "data/capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[-10] ^= 0xFF
    warc.write_bytes(bytes(data))
    results = by_hand(package_copy, signer.pub, signer.kid)
    assert not results["sha256sum payload"]
    # Both must catch it on their own (the old `not A or not B` could never fail,
    # as the manifest's file hash always differs after any change).
    assert not results["warcio check"]
    assert not results["manifest file hash"]
    assert not results["bagit.py"]
    assert results["openssl signature"]  # the manifest itself is untouched ...
    assert not verify(package_copy, trust=[signer.pub]).ok  # ... but it no longer matches

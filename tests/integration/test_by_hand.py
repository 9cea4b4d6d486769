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


def warcio_check(pkg: Path) -> bool:
    """As docs/verifying-by-hand.md says: exit 0 AND no WARNING.

    warcio check exits 0 when a record's closing CRLFs are damaged (a flipped
    byte near the end of a member), printing only a WARNING on stderr.
    """
    proc = subprocess.run(
        [str(BIN / "warcio"), "check", "data/capture.warc.gz"],
        cwd=pkg,
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0 and "WARNING" not in proc.stdout + proc.stderr


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
        "warcio check": warcio_check(pkg),
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


DOC = Path(__file__).resolve().parents[2] / "docs" / "verifying-by-hand.md"


def doc_block(marker: str) -> str:
    """The fenced shell block of docs/verifying-by-hand.md that contains ``marker``."""
    blocks = DOC.read_text().split("```sh\n")[1:]
    found = [b.split("```", 1)[0] for b in blocks if marker in b]
    assert len(found) == 1, marker
    return found[0]


def run_doc(block: str, pkg: Path, key: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "KEY": str(key),
        "TMPDIR": str(tmp),
        "HOME": str(tmp),
    }
    script = block.replace("/tmp/", f"{tmp}/")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=pkg, env=env, capture_output=True, text=True
    )


def test_custody_event_signature_by_hand_as_documented(package_copy, signer, tmp_path):
    block = doc_block("event.body")
    proc = run_doc(block, package_copy, signer.pub, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Signature Verified Successfully" in proc.stdout
    # An edited note no longer verifies, by hand as with `evidence verify`.
    log = package_copy / "evidence/custody.jsonl"
    lines = log.read_bytes().splitlines()
    event = json.loads(lines[0])
    event["note"] = "captured something else"
    lines[0] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    log.write_bytes(b"\n".join(lines) + b"\n")
    proc = run_doc(block, package_copy, signer.pub, tmp_path)
    assert proc.returncode != 0


def test_record_listing_and_payload_extraction_as_documented(sealed_package, signer, tmp_path):
    proc = run_doc(doc_block('["warc"]["records"]'), sealed_package, signer.pub, tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((sealed_package / MANIFEST_PATH).read_bytes())
    rows = [line.split() for line in proc.stdout.splitlines()]
    records = m["warc"]["records"]
    assert [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows] == [
        (rec["offset"], rec["length"], rec["sha256"], rec["type"]) for rec in records
    ]
    response = [rec for rec in records if rec["type"] == "response"][-1]  # after the redirect
    extract = doc_block("warcio extract --payload").splitlines()[0].split("|")[0]
    proc = run_doc(
        extract.replace("<offset>", str(response["offset"])), sealed_package, signer.pub, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "Nothing happened." in proc.stdout

"""WACZ export, verification of any WACZ (ours and foreign, forged), and import.

Real tools judge the result: py-wacz's ``wacz validate`` (judge-tools venv),
``zipinfo``, and plain ``cryptography`` for the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import typing
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from evidence.keys import generate_keypair, public_key_pem
from evidence.verifying import Outcome, Status, verify
from evidence.verifying.wacz import WACZTrust, verify_wacz
from evidence.wacz import export_wacz, import_wacz, load_wacz_key

P384 = ec.SECP384R1()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, sealed_package: Path, signer: typing.Any):
    d = tmp_path_factory.mktemp("wacz")
    pkg = d / sealed_package.name
    shutil.copytree(sealed_package, pkg)
    key_file = d / "signer.key"
    wacz_key = load_wacz_key(key_file, None)
    out = d / "out.wacz"
    info = export_wacz(pkg, out, key=signer.key, wacz_key=wacz_key)
    return type("Exported", (), {"pkg": pkg, "wacz": out, "info": info, "wacz_key": wacz_key})


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _write(path: Path, members: dict[str, bytes], stored: typing.Iterable[str] = ()) -> Path:
    keep = set(stored)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            method = zipfile.ZIP_STORED if name in keep or name.startswith("archive/") else 8
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, compress_type=method)
    return path


def _relist(members: dict[str, bytes]) -> dict[str, bytes]:
    """datapackage.json listing the members as they now are (digest left alone)."""
    dp = json.loads(members["datapackage.json"])
    dp["resources"] = [
        {
            "name": n.lower(),
            "path": n,
            "hash": "sha256:" + hashlib.sha256(d).hexdigest(),
            "bytes": len(d),
        }
        for n, d in members.items()
        if n not in ("datapackage.json", "datapackage-digest.json")
    ]
    members["datapackage.json"] = json.dumps(dp, indent=2).encode()
    return members


def _rehash_digest(members: dict[str, bytes]) -> dict[str, bytes]:
    dd = json.loads(members["datapackage-digest.json"])
    dd["hash"] = "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    members["datapackage-digest.json"] = json.dumps(dd).encode()
    return members


def test_export_layout_signature_and_binding(exported: typing.Any, signer: typing.Any) -> None:
    members = _members(exported.wacz)
    dp = json.loads(members["datapackage.json"])
    assert dp["profile"] == "data-package"
    assert dp["wacz_version"] == "1.1.1"
    listed = {r["path"] for r in dp["resources"]}
    assert listed == set(members) - {"datapackage.json", "datapackage-digest.json"}
    assert all(n.count("/") == 1 for n in listed)
    warc = (exported.pkg / "data" / "capture.warc.gz").read_bytes()
    assert members["archive/capture.warc.gz"] == warc
    assert (
        members["evidence/manifest.json"] == (exported.pkg / "evidence/manifest.json").read_bytes()
    )
    pages = members["pages/pages.jsonl"].decode().splitlines()
    assert json.loads(pages[0])["format"] == "json-pages-1.0"
    assert len(pages) == 2 and json.loads(pages[1])["url"].endswith("/")
    index = members["indexes/index.cdxj"].decode().splitlines()
    assert index == sorted(index) and all(" {" in line for line in index)
    # The signature, checked with plain cryptography.
    dd = json.loads(members["datapackage-digest.json"])
    sd = dd["signedData"]
    assert set(sd) == {"hash", "created", "software", "version", "signature", "publicKey"}
    assert (
        sd["hash"]
        == dd["hash"]
        == "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    )
    assert sd["created"] == dp["created"]
    raw = base64.b64decode(sd["signature"])
    assert len(raw) == 96
    pub = serialization.load_der_public_key(base64.b64decode(sd["publicKey"]))
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp384r1"
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    pub.verify(der, sd["hash"].encode("ascii"), ec.ECDSA(hashes.SHA256()))
    binding = json.loads(members["evidence/wacz-key-binding.json"])
    assert binding["wacz_public_key"] == sd["publicKey"]
    signer.key.public_key().verify(
        members["evidence/wacz-key-binding.sig"], members["evidence/wacz-key-binding.json"]
    )
    # An exported event was added to the source package, and it still verifies.
    assert b'"exported"' in (exported.pkg / "evidence/custody.jsonl").read_bytes()
    assert verify(exported.pkg, trust=[signer.pub]).outcome is Outcome.VERIFIED


def test_zipinfo_shows_the_warc_stored(exported: typing.Any) -> None:
    out = subprocess.run(
        ["zipinfo", str(exported.wacz)], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.endswith("archive/capture.warc.gz"))
    assert " stor " in line


def test_wacz_validate_accepts_the_export(exported: typing.Any, judge_tools: Path) -> None:
    proc = subprocess.run(
        [str(judge_tools / "wacz"), "validate", "-f", str(exported.wacz)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_verify_own_export(exported: typing.Any, signer: typing.Any) -> None:
    untrusted = verify_wacz(exported.wacz, trust=WACZTrust())
    assert untrusted.outcome is Outcome.UNTRUSTED, untrusted.to_text()
    assert untrusted.check("embedded").status is Status.PASS
    trusted = verify_wacz(exported.wacz, trust=WACZTrust.from_paths([signer.pub]))
    assert trusted.outcome is Outcome.VERIFIED, trusted.to_text()
    assert trusted.check("key-binding").status is Status.PASS
    assert any(signer.kid in s for s in trusted.trusted_signers)
    # The WACZ key's own public key works as a trust anchor too.
    pub = exported.wacz_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = exported.wacz.parent / "wacz-key.pem"
    path.write_bytes(pub)
    assert verify_wacz(exported.wacz, trust=WACZTrust.from_paths([path])).ok


def test_another_ed25519_key_is_not_trusted(exported: typing.Any, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(public_key_pem(generate_keypair().public_key()))
    report = verify_wacz(exported.wacz, trust=WACZTrust.from_paths([other]))
    assert report.outcome is Outcome.UNTRUSTED


def test_import_round_trip(exported: typing.Any, signer: typing.Any, tmp_path: Path) -> None:
    info = import_wacz(exported.wacz, tmp_path / "in")
    rebuilt = Path(info["package"])
    assert rebuilt.name == exported.pkg.name
    assert verify(rebuilt, trust=[signer.pub]).outcome is Outcome.VERIFIED
    for f in rebuilt.rglob("*"):
        if f.is_file() and f.name != "custody.jsonl":
            assert f.read_bytes() == (exported.pkg / f.relative_to(rebuilt)).read_bytes()


# --- forgeries -----------------------------------------------------------------


def _forged_content(exported: typing.Any, tmp_path: Path) -> dict[str, bytes]:
    members = _members(exported.wacz)
    pages = members["pages/pages.jsonl"].replace(b'"url": "', b'"url": "http://evil.example/')
    members["pages/pages.jsonl"] = pages
    return _relist(members)


def test_swapped_content_with_pasted_signed_data_digest_rehashed(
    exported: typing.Any, signer: typing.Any, tmp_path: Path
) -> None:
    members = _rehash_digest(_forged_content(exported, tmp_path))
    report = verify_wacz(
        _write(tmp_path / "f.wacz", members), trust=WACZTrust.from_paths([signer.pub])
    )
    assert report.outcome is Outcome.FAILED
    assert "signedData.hash" in report.check("digest").details[0].message


def test_swapped_content_with_digest_kept(
    exported: typing.Any, signer: typing.Any, tmp_path: Path
) -> None:
    members = _forged_content(exported, tmp_path)
    report = verify_wacz(
        _write(tmp_path / "f.wacz", members), trust=WACZTrust.from_paths([signer.pub])
    )
    assert report.outcome is Outcome.FAILED
    assert report.check("digest").status is Status.FAIL


@pytest.mark.parametrize("change", ["byte", "unlisted", "missing"])
def test_member_changes_are_caught(
    exported: typing.Any, signer: typing.Any, tmp_path: Path, change: str
) -> None:
    members = _members(exported.wacz)
    if change == "byte":
        data = bytearray(members["archive/capture.warc.gz"])
        data[100] ^= 1
        members["archive/capture.warc.gz"] = bytes(data)
    elif change == "unlisted":
        members["pages/extra.jsonl"] = b"{}\n"
    else:
        del members["indexes/index.cdxj"]
    report = verify_wacz(
        _write(tmp_path / "f.wacz", members), trust=WACZTrust.from_paths([signer.pub])
    )
    assert report.outcome is Outcome.FAILED
    assert report.check("resources").status is Status.FAIL

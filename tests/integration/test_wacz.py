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

from judge_tools import wayback

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


# --- foreign WACZs, made the way other tools make them ---------------------------


def _sign_foreign(
    members: dict[str, bytes], signed_extra: dict[str, typing.Any], created: str
) -> dict[str, bytes]:
    dp = json.loads(members["datapackage.json"])
    dp["created"] = created
    members["datapackage.json"] = json.dumps(dp).encode()
    digest = "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    signed = {"hash": digest, "created": created, "software": "test", "version": "0.1.0"}
    signed.update(signed_extra(digest) if callable(signed_extra) else signed_extra)
    members["datapackage-digest.json"] = json.dumps(
        {"path": "datapackage.json", "hash": digest, "signedData": signed}
    ).encode()
    return members


@pytest.fixture(scope="module")
def pywacz_file(exported: typing.Any, judge_tools: Path) -> Path:
    """A WACZ made by py-wacz ``create`` from our WARC (unsigned, as py-wacz makes them)."""
    warc = exported.wacz.parent / "capture.warc.gz"
    warc.write_bytes((exported.pkg / "data" / "capture.warc.gz").read_bytes())
    out = exported.wacz.parent / "pywacz.wacz"
    subprocess.run(
        [str(judge_tools / "wacz"), "create", "-o", str(out), str(warc)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_pywacz_create_is_intact_but_unsigned(pywacz_file: Path) -> None:
    report = verify_wacz(pywacz_file, trust=WACZTrust())
    assert report.outcome is Outcome.UNTRUSTED, report.to_text()
    assert report.check("resources").status is Status.PASS
    assert report.check("signature").status is Status.NOT_CHECKED


@pytest.mark.parametrize(("curve", "raw"), [(ec.SECP384R1(), True), (ec.SECP256R1(), False)])
def test_anonymous_signatures_raw_and_der(
    pywacz_file: Path, tmp_path: Path, curve: ec.EllipticCurve, raw: bool
) -> None:
    """ArchiveWeb.page signs raw r||s with P-384; a DER signature is accepted and named."""
    from evidence.wacz import sign_hash_raw

    key = ec.generate_private_key(curve)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign(digest: str) -> dict[str, str]:
        sig = (
            sign_hash_raw(key, digest)
            if raw
            else key.sign(digest.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return {
            "signature": base64.b64encode(sig).decode(),
            "publicKey": base64.b64encode(spki).decode(),
        }

    members = _sign_foreign(_members(pywacz_file), sign, "2026-01-01T00:00:00.000Z")
    path = _write(tmp_path / "anon.wacz", members)
    report = verify_wacz(path, trust=WACZTrust())
    assert report.outcome is Outcome.UNTRUSTED, report.to_text()
    assert ("raw r||s" if raw else "DER") in report.check("signature").summary
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert verify_wacz(path, trust=WACZTrust.from_paths([pem])).outcome is Outcome.VERIFIED


@pytest.fixture(scope="module")
def domain_ca(tmp_path_factory: pytest.TempPathFactory) -> typing.Any:
    from tests.servers import LocalCA

    return LocalCA(tmp_path_factory.mktemp("domain-ca"), hostname="archive.example")


@pytest.fixture(scope="module")
def tsa() -> typing.Iterator[typing.Any]:
    from tests.tsa import LocalTSA

    t = LocalTSA()
    yield t
    t.close()


def _domain_signed(
    pywacz_file: Path, tmp_path: Path, ca: typing.Any, tsa: typing.Any, **change: typing.Any
) -> Path:
    """An authsign-style domain signature: DER ECDSA by the domain key, an RFC 3161
    token over the signature text."""
    from evidence.clock import now
    from evidence.timestamping import request_timestamp

    created = now().strftime("%Y-%m-%dT%H:%M:%SZ")
    chain = ca.chain_pem.read_text()
    tsa_cert = (tsa.dir / "tsa.pem").read_text()

    def sign(digest: str) -> dict[str, str]:
        sig = base64.b64encode(
            ca.leaf_key.sign((change.get("text") or digest).encode(), ec.ECDSA(hashes.SHA256()))
        ).decode()
        token = request_timestamp(sig.encode(), tsa.url, roots=[tsa.root])
        return {
            "signature": sig,
            "domain": change.get("domain", "archive.example"),
            "domainCert": chain,
            "timeSignature": base64.b64encode(token.response).decode(),
            "timestampCert": tsa_cert,
        }

    members = _sign_foreign(_members(pywacz_file), sign, created)
    return _write(tmp_path / "domain.wacz", members)


def test_domain_signature_verifies_with_roots(
    pywacz_file: Path, tmp_path: Path, domain_ca: typing.Any, tsa: typing.Any
) -> None:
    path = _domain_signed(pywacz_file, tmp_path, domain_ca, tsa)
    without = verify_wacz(path, trust=WACZTrust())
    assert without.outcome is Outcome.UNTRUSTED, without.to_text()
    trust = WACZTrust.from_paths([], wacz_roots=[domain_ca.root_pem], tsa_roots=[tsa.root_pem])
    report = verify_wacz(path, trust=trust)
    assert report.outcome is Outcome.VERIFIED, report.to_text()
    assert report.trusted_signers == ("domain:archive.example",)


@pytest.mark.parametrize("forgery", ["garbage", "other-domain"])
def test_domain_signature_forgeries(
    pywacz_file: Path, tmp_path: Path, domain_ca: typing.Any, tsa: typing.Any, forgery: str
) -> None:
    change = {"text": "garbage"} if forgery == "garbage" else {"domain": "victim.example"}
    path = _domain_signed(pywacz_file, tmp_path, domain_ca, tsa, **change)
    trust = WACZTrust.from_paths([], wacz_roots=[domain_ca.root_pem], tsa_roots=[tsa.root_pem])
    report = verify_wacz(path, trust=trust)
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert report.check("signature").status is Status.FAIL


# --- the command line -----------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "evidence.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_cli_export_verify_import(sealed_package: Path, tmp_path: Path, signer: typing.Any) -> None:
    from evidence.keys import write_keypair

    pkg = tmp_path / sealed_package.name
    shutil.copytree(sealed_package, pkg)
    key = tmp_path / "k" / "me.key"
    write_keypair(key, b"correct horse battery")
    env = {"EVIDENCE_PASSPHRASE": "correct horse battery"}
    out = tmp_path / "p.wacz"
    proc = _cli("export", str(pkg), str(out), "--key", str(key), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k" / "me.key.wacz").stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED" in (tmp_path / "k" / "me.key.wacz").read_bytes()
    assert _cli("verify", str(out)).returncode == 3
    proc = _cli("verify", str(out), "--trust", f"{key}.pub", "--json")
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["outcome"] == "verified"
    again = tmp_path / "again.wacz"
    assert _cli("export", str(pkg), str(again), "--key", str(key), env=env).returncode == 0
    # The binding statement is the same bytes in every export (certified once).
    assert (
        _members(out)["evidence/wacz-key-binding.json"]
        == _members(again)["evidence/wacz-key-binding.json"]
    )
    proc = _cli("import", str(out), "--out", str(tmp_path / "in"), "--json")
    assert proc.returncode == 0, proc.stderr
    rebuilt = json.loads(proc.stdout)["package"]
    assert _cli("verify", rebuilt, "--trust", str(signer.pub)).returncode == 0
    # Not a zip at all: an input error, one line, no traceback.
    junk = tmp_path / "junk.wacz"
    junk.write_bytes(b"not a zip")
    proc = _cli("verify", str(junk))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_import_foreign_wacz_seals_it(
    pywacz_file: Path, tmp_path: Path, signer: typing.Any
) -> None:
    from evidence.custody import parse_log
    from evidence.manifest import Manifest

    info = import_wacz(pywacz_file, tmp_path / "in", key=signer.key, actor="NGO desk")
    assert info["foreign"] is True
    pkg = Path(info["package"])
    report = verify(pkg, trust=[signer.pub])
    assert report.outcome is Outcome.VERIFIED, report.to_text()
    assert (pkg / "data" / pywacz_file.name).read_bytes() == pywacz_file.read_bytes()
    manifest = Manifest.from_bytes((pkg / "evidence/manifest.json").read_bytes())
    recorded = manifest.extra["imported_wacz"]
    assert recorded["outcome"] == "intact-untrusted"
    assert recorded["sha256"] == hashlib.sha256(pywacz_file.read_bytes()).hexdigest()
    events = parse_log((pkg / "evidence/custody.jsonl").read_bytes()).events
    assert [e.event for e in events] == ["imported"]
    assert events[0].actor == "NGO desk"


def test_import_refuses_a_forged_wacz(exported: typing.Any, tmp_path: Path) -> None:
    from evidence.errors import VerificationError

    members = _rehash_digest(_forged_content(exported, tmp_path))
    with pytest.raises(VerificationError, match="does not verify"):
        import_wacz(_write(tmp_path / "f.wacz", members), tmp_path / "in")
    assert not (tmp_path / "in").exists() or not any((tmp_path / "in").iterdir())


def test_by_hand_steps_in_docs(exported: typing.Any, signer: typing.Any, tmp_path: Path) -> None:
    """docs/wacz.md's shell steps, run as written, with standard tools only."""
    doc = (Path(__file__).parents[2] / "docs" / "wacz.md").read_text()
    section = doc.split("## Verifying an export by hand", 1)[1]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    shutil.copy(exported.wacz, tmp_path / "out.wacz")
    shutil.copy(signer.pub, tmp_path / "signer.pub")
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "members OK" in proc.stdout
    assert "Verified OK" in proc.stdout
    assert "Signature Verified Successfully" in proc.stdout
    assert "binding names this key" in proc.stdout
    hashes = {line.split()[0].removeprefix("sha256:") for line in proc.stdout.splitlines()[1:4]}
    assert len(hashes) == 1


def test_our_index_matches_cdxj_indexer(exported: typing.Any, judge_tools: Path) -> None:
    """pywb's cdxj-indexer gives the same keys, times, offsets and lengths as our index."""
    warc = exported.wacz.parent / "for-indexer.warc.gz"
    warc.write_bytes((exported.pkg / "data" / "capture.warc.gz").read_bytes())
    proc = subprocess.run(
        [str(judge_tools / "cdxj-indexer"), str(warc)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    def rows(lines: typing.Iterable[str]) -> set[tuple[str, str, str, str, str]]:
        out = set()
        for line in lines:
            key, stamp, doc = line.split(" ", 2)
            d = json.loads(doc)
            out.add((key, stamp, d["url"], d["offset"], d["length"]))
        return out

    ours = _members(exported.wacz)["indexes/index.cdxj"].decode().splitlines()
    assert rows(ours) == rows(proc.stdout.splitlines())


def test_binding_problems(exported: typing.Any, signer: typing.Any, tmp_path: Path) -> None:
    """A binding that names another WACZ key fails; a binding by a key not given is not trust."""
    members = _members(exported.wacz)
    binding = json.loads(members["evidence/wacz-key-binding.json"])
    other = ec.generate_private_key(P384).public_key()
    binding["wacz_public_key"] = base64.b64encode(
        other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    raw = json.dumps(binding).encode()
    members["evidence/wacz-key-binding.json"] = raw
    members["evidence/wacz-key-binding.sig"] = signer.key.sign(raw)
    # Re-signed by the attacker's own WACZ key over a fresh hash: everything else holds.
    attacker = ec.generate_private_key(P384)
    members = _relist(members)
    digest = "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    from evidence.wacz import sign_hash_raw

    dd = json.loads(members["datapackage-digest.json"])
    dd["hash"] = digest
    dd["signedData"].update(
        hash=digest,
        signature=base64.b64encode(sign_hash_raw(attacker, digest)).decode(),
        publicKey=base64.b64encode(
            attacker.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
    )
    members["datapackage-digest.json"] = json.dumps(dd).encode()
    path = _write(tmp_path / "rebound.wacz", members)
    report = verify_wacz(path, trust=WACZTrust.from_paths([signer.pub]))
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert report.check("key-binding").status is Status.FAIL
    assert report.trusted_signers == ()


def test_ed25519_publickey_is_not_a_wacz_signature(pywacz_file: Path, tmp_path: Path) -> None:
    key = generate_keypair()

    def sign(digest: str) -> dict[str, str]:
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "signature": base64.b64encode(key.sign(digest.encode())).decode(),
            "publicKey": base64.b64encode(spki).decode(),
        }

    members = _sign_foreign(_members(pywacz_file), sign, "2026-01-01T00:00:00Z")
    report = verify_wacz(_write(tmp_path / "ed.wacz", members), trust=WACZTrust())
    assert report.check("signature").status is Status.NOT_CHECKED
    assert "not a WACZ signature algorithm" in report.check("signature").summary
    assert report.outcome is Outcome.UNTRUSTED


def test_export_refuses_a_damaged_package(
    package_copy: Path, signer: typing.Any, tmp_path: Path
) -> None:
    from evidence.errors import VerificationError

    warc = package_copy / "data" / "capture.warc.gz"
    data = bytearray(warc.read_bytes())
    data[200] ^= 1
    warc.write_bytes(bytes(data))
    wacz_key = load_wacz_key(tmp_path / "k.key", None)
    with pytest.raises(VerificationError, match="not exported"):
        export_wacz(package_copy, tmp_path / "x.wacz", key=signer.key, wacz_key=wacz_key)
    assert not (tmp_path / "x.wacz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_wacz_key_is_reused_and_guarded(tmp_path: Path) -> None:
    from evidence.errors import KeyFileError

    first = load_wacz_key(tmp_path / "me.key", b"a long passphrase")
    again = load_wacz_key(tmp_path / "me.key", b"a long passphrase")
    assert first.private_numbers() == again.private_numbers()
    with pytest.raises(KeyFileError):
        load_wacz_key(tmp_path / "me.key", b"the wrong passphrase")
    (tmp_path / "me.key.wacz").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_wacz_key(tmp_path / "me.key", b"a long passphrase")


def test_foreign_warc_records_are_checked(pywacz_file: Path, tmp_path: Path) -> None:
    """A record whose content no longer matches its own block digest fails, even when
    datapackage.json was rehashed to match the changed WARC."""
    import zlib

    report = verify_wacz(pywacz_file, trust=WACZTrust())
    assert report.check("warc").status is Status.PASS, report.to_text()
    members = _members(pywacz_file)
    name = next(n for n in members if n.startswith("archive/"))
    warc = members[name]
    out = b""
    rest = warc
    changed = False
    while rest:
        dec = zlib.decompressobj(31)
        record = dec.decompress(rest)
        member = rest[: len(rest) - len(dec.unused_data)]
        rest = dec.unused_data
        if not changed and b"Statement" in record:
            record = record.replace(b"Statement", b"Statemant", 1)
            c = zlib.compressobj(6, zlib.DEFLATED, 31)
            member = c.compress(record) + c.flush()
            changed = True
        out += member
    assert changed
    members[name] = out
    report = verify_wacz(_write(tmp_path / "w.wacz", _relist(members)), trust=WACZTrust())
    assert report.check("resources").status is Status.PASS
    assert report.check("warc").status is Status.FAIL
    assert "digest does not match" in report.to_text()


def test_keygen_makes_the_wacz_key_and_export_uses_it(sealed_package: Path, tmp_path: Path) -> None:
    env = {"EVIDENCE_PASSPHRASE": "correct horse battery"}
    key = tmp_path / "keys" / "desk.key"
    proc = _cli("keygen", str(key), env=env)
    assert proc.returncode == 0, proc.stderr
    wacz_key = Path(f"{key}.wacz")
    assert wacz_key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in wacz_key.read_bytes()
    assert "WACZ key" in proc.stderr
    pkg = tmp_path / sealed_package.name
    shutil.copytree(sealed_package, pkg)
    out = tmp_path / "d.wacz"
    assert _cli("export", str(pkg), str(out), "--key", str(key), env=env).returncode == 0
    binding = json.loads(_members(out)["evidence/wacz-key-binding.json"])
    pub = serialization.load_pem_public_key(Path(f"{key}.wacz.pub").read_bytes())
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(binding["wacz_public_key"]) == spki
    # A stale WACZ key at the new path is refused before anything is written.
    other = tmp_path / "keys" / "other.key"
    Path(f"{other}.wacz").write_bytes(b"stale")
    proc = _cli("keygen", str(other), env=env)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert not other.exists()


def test_pywb_replays_from_our_index(
    exported: typing.Any, tmp_path: Path, judge_tools: Path
) -> None:
    """pywb, given only the WACZ's WARC and OUR indexes/index.cdxj (no indexing of its
    own), replays the page and the redirect to it: the index is one a replay tool reads."""
    import urllib.error
    import urllib.request

    members = _members(exported.wacz)
    coll = tmp_path / "collections" / "evidence"
    (coll / "archive").mkdir(parents=True)
    (coll / "indexes").mkdir()
    (coll / "archive" / "capture.warc.gz").write_bytes(members["archive/capture.warc.gz"])
    (coll / "indexes" / "index.cdxj").write_bytes(members["indexes/index.cdxj"])
    page = json.loads(members["pages/pages.jsonl"].splitlines()[1])
    with wayback(judge_tools, tmp_path) as port:
        url = f"http://127.0.0.1:{port}/evidence/2026id_/{page['url']}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert b"Nothing happened." in resp.read()
        old = page["url"].rstrip("/") + "/old"

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: typing.Any) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(f"http://127.0.0.1:{port}/evidence/2026id_/{old}", timeout=10)
        info.value.close()
        assert info.value.code == 301


def test_imports_are_logged_in_a_ledgered_archive(
    exported: typing.Any, pywacz_file: Path, tmp_path: Path
) -> None:
    from evidence.ledger import init_ledger

    archive = tmp_path / "archive"
    archive.mkdir()
    init_ledger(archive)
    ours = import_wacz(exported.wacz, archive)
    theirs = import_wacz(pywacz_file, archive)
    assert ours["warnings"] == [] and theirs["warnings"] == []
    leaves = (archive / "ledger" / "leaves.txt").read_text()
    assert ours["package_id"] in leaves and theirs["package_id"] in leaves


def test_verify_many_paths_skips_a_wacz_among_packages(
    exported: typing.Any, sealed_package: Path, signer: typing.Any
) -> None:
    proc = _cli("verify", str(sealed_package), str(exported.wacz), "--trust", str(signer.pub))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" in proc.stderr and "out.wacz" in proc.stderr
    both = _cli("verify", str(exported.wacz), str(exported.wacz), "--trust", str(signer.pub))
    assert both.returncode == 0 and both.stdout.count("VERIFIED") == 2


def test_every_member_byte_counts(exported: typing.Any, signer: typing.Any, tmp_path: Path) -> None:
    """One changed byte in any member, datapackage files included, is a failure."""
    original = _members(exported.wacz)
    trust = WACZTrust.from_paths([signer.pub])
    for name in original:
        members = dict(original)
        data = bytearray(members[name])
        data[len(data) // 2] ^= 0x01
        members[name] = bytes(data)
        path = _write(tmp_path / "m.wacz", members)
        report = verify_wacz(path, trust=trust)
        assert report.outcome is Outcome.FAILED, (name, report.to_text())
        path.unlink()


def test_py_wacz_accepts_the_forgery_we_reject(
    exported: typing.Any, signer: typing.Any, tmp_path: Path, judge_tools: Path
) -> None:
    """The issue's measurement, kept as a test: `wacz validate` passes a WACZ whose
    content was swapped under the victim's pasted signedData (digest rehashed)."""
    members = _rehash_digest(_forged_content(exported, tmp_path))
    path = _write(tmp_path / "forged.wacz", members)
    proc = subprocess.run(
        [str(judge_tools / "wacz"), "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verify_wacz(path, trust=WACZTrust.from_paths([signer.pub])).outcome is Outcome.FAILED

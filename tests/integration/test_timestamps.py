"""RFC 3161 timestamps against a real local TSA (`openssl ts -reply`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from evidence.attach import add_timestamp
from evidence.capturing import capture
from evidence.errors import EvidenceError
from evidence.manifest import dumps
from evidence.package import MANIFEST_PATH, TAG_FILES
from evidence.timestamping import check_token, load_tsa_roots
from evidence.verifying import Outcome, Status, verify

from servers import RawServer
from tsa import LocalTSA, make_tsa_cert

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def tsa():
    t = LocalTSA()
    yield t
    t.close()


@pytest.fixture
def stamped(site, tmp_path, signer, tsa):
    s = site({"/": (200, [("Content-Type", "text/html")], b"<p>stamped</p>")})
    result = capture(
        s.url("/"),
        out=tmp_path / "out",
        sign_with=[signer.key],
        tsa_urls=[tsa.url],
        tsa_roots=load_tsa_roots([tsa.root_pem]),
    )
    assert result.warnings == ()
    return Path(result.path)


def tokens(pkg: Path) -> list[Path]:
    return sorted((pkg / "evidence" / "timestamps").glob("*.tsr"))


def ts_check(report):
    return [c for c in report.checks if c.name.startswith("timestamp")]


def test_capture_with_tsa_stores_request_and_response(stamped, signer, tsa):
    tsr = tokens(stamped)
    assert len(tsr) == 1
    assert tsr[0].with_suffix(".tsq").is_file()
    report = verify(stamped, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.ok, report.to_text()
    (check,) = ts_check(report)
    assert check.status is Status.PASS
    assert "existed no later than" in check.summary and "after the capture began" in check.summary
    assert any("does not prove" in n for n in report.notes)


def test_cli_verify_with_tsa_ca_and_require(stamped, signer, tsa):
    base = [*EVIDENCE, "verify", str(stamped), "--trust", str(signer.pub)]
    proc = subprocess.run(
        [*base, "--tsa-ca", str(tsa.root_pem), "--require-timestamp"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    # Without the TSA's root the token cannot be checked: NOT CHECKED, never PASS.
    proc = subprocess.run(base, capture_output=True, text=True)
    assert proc.returncode == 0
    assert "NOT CHECKED  Timestamp" in proc.stdout
    proc = subprocess.run([*base, "--require-timestamp"], capture_output=True, text=True)
    assert proc.returncode == 1


def test_no_token_is_not_checked_unless_required(sealed_package, signer, tsa):
    report = verify(sealed_package, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.ok
    assert report.check("timestamps").status is Status.NOT_CHECKED
    report = verify(
        sealed_package, trust=[signer.pub], tsa_roots=[tsa.root_pem], require_timestamp=True
    )
    assert report.outcome is Outcome.FAILED


def test_timestamp_command_adds_a_token_later(package_copy, signer, tsa):
    before = (package_copy / MANIFEST_PATH).read_bytes()
    proc = subprocess.run(
        [
            *EVIDENCE,
            "timestamp",
            str(package_copy),
            "--tsa",
            tsa.url,
            "--tsa-ca",
            str(tsa.root_pem),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "chain verified" in proc.stdout
    assert (package_copy / MANIFEST_PATH).read_bytes() == before
    add_timestamp(package_copy, tsa.url)  # a second token, from the same TSA
    assert len(tokens(package_copy)) == 2
    report = verify(
        package_copy, trust=[signer.pub], tsa_roots=[tsa.root_pem], require_timestamp=True
    )
    assert report.ok and len(ts_check(report)) == 2
    import bagit

    bagit.Bag(str(package_copy)).validate()


def test_tsa_down_during_capture_keeps_the_package(site, tmp_path, signer):
    dead = LocalTSA()
    dead.close()
    s = site({"/": (200, [], b"x")})
    proc = subprocess.run(
        [
            *EVIDENCE,
            "capture",
            s.url("/"),
            "--out",
            str(tmp_path),
            "--tsa",
            dead.url,
            "--key",
            str(_write_key(tmp_path, signer)),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "timestamp missing" in proc.stderr and "evidence timestamp" in proc.stderr
    pkg = Path(proc.stdout.strip())
    assert verify(pkg, trust=[signer.pub]).ok
    assert not (pkg / "evidence" / "timestamps").exists()


def drip(conn, _request):
    """A TSA that sends its headers, then one body byte every half second (for at most 40 s)."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    for _ in range(80):
        conn.sendall(b"0")
        time.sleep(0.5)


@pytest.fixture
def dripping_tsa():
    server = RawServer(drip)
    yield server
    server.close()


def test_tsa_dripping_its_body_times_out(package_copy, dripping_tsa):
    # Each byte came within the read timeout, so the exchange never ended (review: > 90 s).
    start = time.monotonic()
    proc = subprocess.run(
        [*EVIDENCE, "timestamp", str(package_copy), "--tsa", dripping_tsa.url(), "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start < 15
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "timed out" in proc.stderr
    assert not (package_copy / "evidence" / "timestamps").exists()


def test_tsa_dripping_during_capture_keeps_the_package(site, tmp_path, signer, dripping_tsa):
    s = site({"/": (200, [], b"x")})
    start = time.monotonic()
    result = capture(
        s.url("/"),
        out=tmp_path,
        sign_with=[signer.key],
        tsa_urls=[dripping_tsa.url()],
        tsa_timeout=3.0,
    )
    assert time.monotonic() - start < 15
    assert any("timestamp missing" in w and "timed out" in w for w in result.warnings)
    assert verify(Path(result.path), trust=[signer.pub]).ok


def _write_key(tmp_path: Path, signer) -> Path:
    path = tmp_path / "signer.key"
    path.write_bytes(
        signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("status", [500, 404])
def test_tsa_refusal_is_a_clear_error_and_stores_nothing(package_copy, status):
    bad = LocalTSA()
    bad.fail_with = status
    try:
        proc = subprocess.run(
            [*EVIDENCE, "timestamp", str(package_copy), "--tsa", bad.url],
            capture_output=True,
            text=True,
        )
    finally:
        bad.close()
    assert proc.returncode == 1  # a TSA failure is not a usage error (issue 9: exit codes by class)
    assert proc.stderr.count("\n") == 1 and f"HTTP {status}" in proc.stderr
    assert not (package_copy / "evidence" / "timestamps").exists()


def test_response_for_other_data_is_refused_on_receipt(package_copy, tsa):
    # A TSA that answers with a token for something else (a replay).
    other = tsa.reply(
        subprocess.run(
            ["openssl", "ts", "-query", "-data", "/dev/null", "-sha256", "-cert"],
            capture_output=True,
            check=True,
        ).stdout
    )
    digest = hashlib.sha256((package_copy / MANIFEST_PATH).read_bytes()).digest()
    check = check_token(other, digest, roots=[])
    assert any("different data" in p for p in check.problems)


# --- tokens that must fail verification ------------------------------------


def test_token_for_a_different_manifest(stamped, package_copy, signer, tsa):
    dest = package_copy / "evidence" / "timestamps"
    shutil.copytree(stamped / "evidence" / "timestamps", dest)
    report = verify(package_copy, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED
    (check,) = ts_check(report)
    assert check.status is Status.FAIL and "different data" in check.summary


def test_token_from_an_untrusted_tsa(stamped, signer):
    other = LocalTSA()
    other.close()
    report = verify(stamped, trust=[signer.pub], tsa_roots=[other.root_pem])
    assert report.outcome is Outcome.FAILED
    assert "trusted root" in ts_check(report)[0].summary


def test_token_carrying_its_own_self_signed_root(package_copy, signer, tsa):
    rogue = LocalTSA(self_signed=True, include_chain=True)
    try:
        add_timestamp(package_copy, rogue.url)  # accepted on receipt: no roots to check
    finally:
        rogue.close()
    report = verify(package_copy, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED
    assert "self-signed" in ts_check(report)[0].summary


def test_tsa_certificate_without_critical_eku(stamped, signer, tsa):
    """Swap the token's certificate for one with the same key but a non-critical EKU."""
    tsr = tokens(stamped)[0]
    data = tsr.read_bytes()
    old = tsa.cert.public_bytes(DER)
    assert old in data
    weak = make_tsa_cert(
        tsa.root,
        tsa.root_key,
        tsa.key,
        eku_critical=False,
        serial=tsa.cert.serial_number,
        ski_pad=3,
        not_after=tsa.cert.not_valid_after_utc,
    )
    new = weak.public_bytes(DER)
    assert len(new) == len(old)
    tsr.write_bytes(data.replace(old, new))
    report = verify(stamped, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED
    assert "critical timeStamping" in ts_check(report)[0].summary


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_token(stamped, signer, tsa, damage):
    tsr = tokens(stamped)[0]
    data = tsr.read_bytes()
    tsr.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x30\x82garbage" * 10, "empty": b""}[
            damage
        ]
    )
    report = verify(stamped, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED
    assert "not a readable RFC 3161 token" in ts_check(report)[0].summary


def test_gentime_before_the_capture(package_copy, signer, tsa):
    """A package claiming a capture in the future: its token predates the capture."""
    raw = json.loads((package_copy / MANIFEST_PATH).read_bytes())
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    raw["capture"]["started"] = future.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    manifest = dumps(raw)
    (package_copy / MANIFEST_PATH).write_bytes(manifest)
    (package_copy / "tagmanifest-sha256.txt").write_text(
        "".join(
            f"{hashlib.sha256((package_copy / t).read_bytes()).hexdigest()}  {t}\n"
            for t in TAG_FILES
        )
    )
    sig = package_copy / "evidence" / "signatures" / f"{signer.kid}.sig"
    sig.write_bytes(signer.key.sign(manifest))
    add_timestamp(package_copy, tsa.url, roots=load_tsa_roots([tsa.root_pem]))
    report = verify(package_copy, trust=[signer.pub], tsa_roots=[tsa.root_pem])
    assert report.outcome is Outcome.FAILED, report.to_text()
    assert "before the capture began" in ts_check(report)[0].summary


def test_token_stays_valid_after_the_tsa_certificate_expires(package_copy, signer):
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=3)
    short = LocalTSA(not_after=expires)
    try:
        add_timestamp(package_copy, short.url, roots=load_tsa_roots([short.root_pem]))
    finally:
        short.close()
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
    assert dt.datetime.now(dt.timezone.utc) > expires
    report = verify(
        package_copy, trust=[signer.pub], tsa_roots=[short.root_pem], require_timestamp=True
    )
    assert report.ok, report.to_text()


def test_openssl_ts_verify_agrees(stamped, signer, tsa):
    tsr = tokens(stamped)[0]
    cmd = ["openssl", "ts", "-verify", "-data", str(stamped / MANIFEST_PATH), "-in", str(tsr)]
    ok = subprocess.run([*cmd, "-CAfile", str(tsa.root_pem)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout
    assert verify(stamped, trust=[signer.pub], tsa_roots=[tsa.root_pem]).ok
    other = LocalTSA()
    other.close()
    bad = subprocess.run([*cmd, "-CAfile", str(other.root_pem)], capture_output=True, text=True)
    assert bad.returncode != 0
    assert not verify(stamped, trust=[signer.pub], tsa_roots=[other.root_pem]).ok


def test_certificates_out_of_der_order_give_a_clear_error(package_copy, tsa):
    """openssl ts can emit a certificate SET out of DER order; we must not crash."""
    chained = LocalTSA(include_chain=True)
    try:
        query = subprocess.run(
            [
                "openssl",
                "ts",
                "-query",
                "-data",
                str(package_copy / MANIFEST_PATH),
                "-sha256",
                "-cert",
            ],
            capture_output=True,
            check=True,
        ).stdout
        reply = chained.reply(query)
    finally:
        chained.close()
    a, b = chained.cert.public_bytes(DER), chained.root.public_bytes(DER)
    assert a in reply and b in reply
    i, j = sorted([(reply.index(a), a), (reply.index(b), b)])
    assert i[0] + len(i[1]) == j[0], "the two certificates are adjacent in the SET"
    swapped = reply[: i[0]] + j[1] + i[1] + reply[j[0] + len(j[1]) :]
    digest = hashlib.sha256((package_copy / MANIFEST_PATH).read_bytes()).digest()
    for token in (reply, swapped):
        result = check_token(token, digest, roots=load_tsa_roots([chained.root_pem]))
        assert all(isinstance(p, str) and p for p in result.problems)
    # One of the two orders is not DER order; whichever it is, the verdict is a clear string.
    (package_copy / "evidence" / "timestamps").mkdir()
    (package_copy / "evidence" / "timestamps" / "1-x.tsr").write_bytes(swapped)
    report = verify(package_copy, trust=[], tsa_roots=[chained.root_pem])
    assert report.exit_code in (1, 3)


def test_bad_tsa_root_file_is_a_usage_error(stamped, signer, tmp_path):
    bad = tmp_path / "root.pem"
    bad.write_text("not a certificate")
    proc = subprocess.run(
        [*EVIDENCE, "verify", str(stamped), "--trust", str(signer.pub), "--tsa-ca", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "not a certificate" in proc.stderr
    with pytest.raises(EvidenceError):
        load_tsa_roots([tmp_path / "missing.pem"])


def test_a_token_swapped_after_verification_is_never_shown_under_its_verdict(
    stamped, signer, tsa, tmp_path, monkeypatch
):
    """The court report read each token twice: the verifier's read, then its
    own for the genTime and TSA it shows. A token swapped in between (here one
    from a TSA no one trusts, over the same manifest) was shown as the time of
    a trusted TSA under the verdict on the original. Now the report refuses,
    as it does for a changed manifest, and nothing is written."""
    import evidence
    import evidence.verifying as verifying
    from evidence.errors import ReportError

    (token,) = tokens(stamped)
    other = LocalTSA()
    try:
        query = token.with_suffix(".tsq").read_bytes()
        forged = other.forge(query)
    finally:
        other.close()
    real_verify = verifying.verify

    def verify_then_swap(*args, **kwargs):
        report = real_verify(*args, **kwargs)
        token.write_bytes(forged)  # the attacker's write, between the two reads
        return report

    monkeypatch.setattr(verifying, "verify", verify_then_swap)
    out = tmp_path / "r.html"
    with pytest.raises(ReportError, match=r"timestamps/.*\.tsr changed while the report"):
        evidence.report(
            stamped, out=out, trust=[signer.pub], tsa_roots=[tsa.root_pem], record_custody=False
        )
    assert not out.exists()

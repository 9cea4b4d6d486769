"""The collection ledger end to end, with real packages captured from a local server.

30 packages are captured into an archive with a ledger, logged, and
checkpointed (signed, and timestamped by a local TSA); each test then works on
a copy and does one thing an archive holder might do behind the ledger's back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from evidence.attach import sign_package
from evidence.capturing import CaptureOptions, capture
from evidence.keys import generate_keypair, public_key_pem, write_keypair
from evidence.ledger import (
    Checkpoint,
    LeafEntry,
    Ledger,
    LedgerMismatchError,
    add_packages,
    append_if_present,
    check_consistency,
    check_inclusion,
    consistency_proof,
    inclusion_proof,
    init_ledger,
    make_checkpoint,
    sign_note,
    verify_ledger,
)
from evidence.ledger._base import CHECKPOINTS, HASHES, INDEX, LEAVES
from evidence.package import MANIFEST_PATH
from evidence.timestamping import load_tsa_roots
from evidence.verifying import Outcome, verify

from servers import Site
from tsa import LocalTSA

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
N = 30


def page(i: int) -> bytes:
    return f"<!DOCTYPE html><title>Statement {i}</title><p>Statement number {i}.</p>".encode()


@pytest.fixture(scope="module")
def tsa() -> typing.Iterator[LocalTSA]:
    t = LocalTSA()
    yield t
    t.close()


@pytest.fixture(scope="module")
def site() -> typing.Iterator[Site]:
    routes = {f"/{i}": (200, [("Content-Type", "text/html")], page(i)) for i in range(N + 5)}
    s = Site(routes)
    yield s
    s.close()


@pytest.fixture(scope="module")
def ledger_key(tmp_path_factory: pytest.TempPathFactory) -> typing.Any:
    key = generate_keypair()
    d = tmp_path_factory.mktemp("ledger-key")
    (d / "ledger.pub").write_bytes(public_key_pem(key.public_key()))
    return type("LedgerKey", (), {"key": key, "pub": d / "ledger.pub"})


OPTIONS = CaptureOptions(requisites=False)


@pytest.fixture(scope="module")
def archive_template(
    tmp_path_factory: pytest.TempPathFactory, site: Site, signer: typing.Any, ledger_key, tsa
) -> Path:
    """30 real signed packages, all logged, and one signed, timestamped checkpoint."""
    out = tmp_path_factory.mktemp("archive") / "archive"
    init_ledger(out, origin="example.org/evidence-ledger")
    for i in range(N):
        result = capture(site.url(f"/{i}"), out=out, options=OPTIONS, sign_with=[signer.key])
        # What capture will do once wired: log each new package as it lands.
        assert append_if_present(out, result.path) is not None
    cp = make_checkpoint(
        out, ledger_key.key, tsa_urls=[tsa.url], tsa_roots=load_tsa_roots([tsa.root_pem])
    )
    assert cp.number == 1 and cp.checkpoint.size == N
    return out


@pytest.fixture
def archive(archive_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "archive"
    shutil.copytree(archive_template, dest, symlinks=True)
    return dest


def packages(archive: Path) -> list[Path]:
    return sorted(p for p in archive.iterdir() if not p.name.startswith(".") and p.name != "ledger")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVIDENCE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def failing(report: typing.Any) -> dict[str, list[str]]:
    return {c.name: [f.kind for f in c.findings] for c in report.failures()}


# --- the intact archive ----------------------------------------------------


def test_intact_archive_verifies(archive, ledger_key, tsa):
    report = verify_ledger(
        archive, ledger_keys=[load_pub(ledger_key)], tsa_roots=load_tsa_roots([tsa.root_pem])
    )
    assert report.outcome == "verified", report.to_text()
    assert report.check("checkpoint-timestamps").status.value == "PASS"
    assert report.facts["tree_size"] == N


def test_cli_verify_without_key_says_not_checked(archive):
    proc = run("ledger", "verify", str(archive))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "signatures NOT CHECKED" in proc.stdout
    assert "VERIFIED" not in proc.stdout


def test_cli_verify_with_key_json(archive, ledger_key, tsa):
    proc = run(
        "ledger",
        "verify",
        str(archive),
        "--ledger-key",
        str(ledger_key.pub),
        "--tsa-ca",
        str(tsa.root_pem),
        "--json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["outcome"] == "verified"
    assert {c["name"] for c in doc["checks"]} >= {
        "ledger-storage",
        "checkpoint-signatures",
        "checkpoint-trees",
        "packages-present",
        "packages-unchanged",
        "packages-logged",
    }


def load_pub(ledger_key: typing.Any) -> typing.Any:
    return ledger_key.key.public_key()


# --- what an archive holder might do behind the ledger's back -------------


def test_deleted_package_is_detected(archive, ledger_key):
    victim = packages(archive)[7]
    shutil.rmtree(victim)
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert failing(report) == {"packages-present": ["logged-package-missing"]}, report.to_text()
    finding = report.check("packages-present").findings[0]
    assert finding.package_id == victim.name
    assert report.exit_code == 1
    proc = run("ledger", "verify", str(archive), "--ledger-key", str(ledger_key.pub))
    assert proc.returncode == 1
    assert victim.name in proc.stdout


def substitute(victim: Path, site: Site, signer: typing.Any, scratch: Path) -> None:
    """Replace ``victim`` by a different, valid package with the same id, signed by the same key.

    Everything a verifier checks is rebuilt for the new manifest: the bag files
    it implies, and the capture's own first custody event, signed by the key.
    """
    from evidence.custody import make_event
    from evidence.manifest import Manifest
    from evidence.seal import expected_bag_files

    fresh = Path(capture(site.url(f"/{N + 1}"), out=scratch, options=OPTIONS).path)
    manifest = json.loads((fresh / MANIFEST_PATH).read_bytes())
    manifest["package_id"] = victim.name
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (fresh / MANIFEST_PATH).write_bytes(raw)
    for name, data in expected_bag_files(Manifest.from_bytes(raw)).items():
        (fresh / name).write_bytes(data)
    for extra in ("signatures", "keys"):
        shutil.rmtree(fresh / "evidence" / extra, ignore_errors=True)
    first = make_event(
        prev_line=None,
        manifest=raw,
        seq=1,
        event="captured",
        note="captured again",
        key=signer.key,
        when=manifest["created"],
    )
    (fresh / "evidence" / "custody.jsonl").write_bytes(first + b"\n")
    shutil.rmtree(victim)
    fresh.rename(victim)
    sign_package(victim, signer.key)


def test_substituted_package_is_detected(archive, ledger_key, site, signer, tmp_path):
    victim = packages(archive)[12]
    substitute(victim, site, signer, tmp_path / "scratch")
    # The substitute is a valid package in its own right...
    assert verify(victim, trust=[signer.pub]).outcome is Outcome.VERIFIED
    # ...but not the one the ledger logged.
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert failing(report) == {"packages-unchanged": ["package-replaced"]}, report.to_text()
    f = report.check("packages-unchanged").findings[0]
    assert f.package_id == victim.name and f.expected != f.found
    # And add refuses to log it over the original.
    with pytest.raises(LedgerMismatchError):
        add_packages(archive, [victim])


def test_package_added_behind_the_ledgers_back_is_detected(archive, ledger_key, site, signer):
    from evidence.ledger import LEDGER_DIR

    # Capture into the archive with the ledger hidden, so nothing logs it.
    (archive / LEDGER_DIR).rename(archive / ".hidden-ledger")
    extra = Path(capture(site.url(f"/{N + 2}"), out=archive, options=OPTIONS).path)
    (archive / ".hidden-ledger").rename(archive / LEDGER_DIR)
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert failing(report) == {"packages-logged": ["package-not-logged"]}, report.to_text()
    assert report.check("packages-logged").findings[0].package_id == extra.name
    # Logging it afterwards is possible, and later checkpoints then include it.
    results = add_packages(archive)
    assert [r.entry.package_id for r in results if r.added] == [extra.name]
    assert verify_ledger(archive, ledger_keys=[load_pub(ledger_key)]).ok


def rewrite_log_without(archive: Path, drop: str) -> None:
    """Rebuild the ledger files from scratch without one leaf (what a forger would do)."""
    ledger = Ledger.open(archive)
    entries = [e for _, e in ledger.entries() if e.package_id != drop]
    d = archive / "ledger"
    for name in (LEAVES, INDEX, HASHES):
        (d / name).write_bytes(b"")
    fresh = Ledger.open(archive)
    for e in entries:
        fresh.append(e)


def test_rewritten_log_is_detected_by_the_signed_checkpoint(archive, ledger_key):
    victim = packages(archive)[3]
    shutil.rmtree(victim)
    rewrite_log_without(archive, victim.name)
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert failing(report) == {"checkpoint-trees": ["checkpoint-tree-rewritten"]}, report.to_text()


def test_rewritten_and_resigned_log_is_detected(archive, archive_template, ledger_key, tsa):
    published = archive.parent / "sent-to-the-newsroom.txt"
    shutil.copy(archive / "ledger" / CHECKPOINTS / "000001.txt", published)
    victim = packages(archive)[3]
    shutil.rmtree(victim)
    rewrite_log_without(archive, victim.name)
    # Re-sign checkpoint 1 over the rewritten tree with the same key.
    ledger = Ledger.open(archive)
    body = Checkpoint.body_for(ledger.origin, ledger.size, ledger.root())
    cp_path = archive / "ledger" / CHECKPOINTS / "000001.txt"
    cp_path.write_bytes(sign_note(body, ledger.origin, ledger_key.key))
    keys = [load_pub(ledger_key)]
    report = verify_ledger(archive, ledger_keys=keys)
    # The signature is valid and the log matches it: only the timestamp, made
    # over the original checkpoint bytes, no longer fits.
    assert failing(report) == {"checkpoint-timestamps": ["checkpoint-timestamp-invalid"]}, (
        report.to_text()
    )
    # Whoever holds the original checkpoint sees the rewrite.
    report = verify_ledger(archive, ledger_keys=keys, published=[published])
    assert "published-checkpoint-inconsistent" in failing(report)["published-checkpoints"]
    proc = run(
        "ledger", "verify", str(archive), "--ledger-key", str(ledger_key.pub),
        "--checkpoint", str(published),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "rewritten" in proc.stdout
    # Removing the tokens as well still leaves the held checkpoint.
    for tsr in (archive / "ledger" / CHECKPOINTS).glob("*.tsr"):
        tsr.unlink()
    report = verify_ledger(archive, ledger_keys=keys, published=[published])
    assert set(failing(report)) == {"published-checkpoints"}


def test_checkpoint_signed_by_another_key_is_not_trusted(archive, ledger_key):
    ledger = Ledger.open(archive)
    body = Checkpoint.body_for(ledger.origin, ledger.size, ledger.root())
    (archive / "ledger" / CHECKPOINTS / "000001.txt").write_bytes(
        sign_note(body, ledger.origin, generate_keypair())
    )
    for tsr in (archive / "ledger" / CHECKPOINTS).glob("*.tsr"):
        tsr.unlink()
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert report.outcome == "intact-untrusted", report.to_text()
    assert report.exit_code == 3


def test_deleted_checkpoint_is_detected(archive, ledger_key):
    make_checkpoint(archive, ledger_key.key)
    make_checkpoint(archive, ledger_key.key)
    (archive / "ledger" / CHECKPOINTS / "000002.txt").unlink()
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert "checkpoint-missing" in failing(report)["checkpoint-files"]


# --- proofs ------------------------------------------------------------------


def test_inclusion_proof_cli_and_check(archive, ledger_key, tsa, tmp_path):
    pkg = packages(archive)[5]
    proof = tmp_path / "proof.json"
    proc = run("ledger", "prove", str(archive), str(pkg), "--out", str(proof))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proof.read_text())
    assert doc["format"] == "evidence-inclusion-proof/1"
    assert doc["tree_size"] == N and len(doc["timestamps"]) == 1
    # The package travels alone with its proof.
    alone = tmp_path / "alone" / pkg.name
    shutil.copytree(pkg, alone)
    roots = load_tsa_roots([tsa.root_pem])
    report = check_inclusion(alone, proof, ledger_keys=[load_pub(ledger_key)], tsa_roots=roots)
    assert report.outcome == "verified", report.to_text()
    assert "genTime" in " ".join(report.check("inclusion-checkpoint-timestamp").details)
    no_key = check_inclusion(alone, proof, ledger_keys=None)
    assert no_key.exit_code == 3
    assert "NOT CHECKED" in no_key.to_text()
    # Another package with this proof fails.
    other = packages(archive)[6]
    report = check_inclusion(other, proof, ledger_keys=[load_pub(ledger_key)])
    assert failing(report) == {
        "inclusion-leaf": ["inclusion-wrong-package", "inclusion-manifest-differs"]
    }


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.__setitem__("leaf_index", d["leaf_index"] + 1),
        lambda d: d.__setitem__("tree_size", d["tree_size"] - 1),
        lambda d: d["audit_path"].reverse(),
        lambda d: d["audit_path"].pop(),
        lambda d: d["audit_path"].__setitem__(0, "00" * 32),
        lambda d: d["leaf"].__setitem__("time_added", "2020-01-01T00:00:00.000000Z"),
        lambda d: d.__setitem__("checkpoint", d["checkpoint"].replace("\n30\n", "\n31\n")),
    ],
    ids=["index", "size", "order", "short", "hash", "time", "checkpoint-size"],
)
def test_altered_inclusion_proofs_fail(archive, ledger_key, change):
    pkg = packages(archive)[9]
    doc = inclusion_proof(archive, str(pkg))
    change(doc)
    report = check_inclusion(pkg, json.dumps(doc).encode(), ledger_keys=[load_pub(ledger_key)])
    assert report.outcome == "failed", report.to_text()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"format": "evidence-inclusion-proof/2"}',
        b'{"format": "evidence-inclusion-proof/1", "format": "x"}',
        b"\xff\xfe",
        b'{"format": "evidence-inclusion-proof/1", "leaf_index": NaN}',
        b"[" * 100_000,
    ],
    ids=["empty", "list", "version", "duplicate", "utf16", "nan", "deep"],
)
def test_hostile_inclusion_proofs_fail_cleanly(archive, raw):
    report = check_inclusion(packages(archive)[0], raw, ledger_keys=None)
    assert failing(report) == {"inclusion-format": ["proof-malformed"]}


def test_inclusion_proof_with_extra_fields_or_huge_token_fails(archive):
    pkg = packages(archive)[0]
    doc = inclusion_proof(archive, str(pkg))
    doc["note"] = "hello"
    assert check_inclusion(pkg, json.dumps(doc).encode(), ledger_keys=None).outcome == "failed"
    del doc["note"]
    doc["timestamps"] = [base64.b64encode(b"x" * 10).decode()] * 20
    assert check_inclusion(pkg, json.dumps(doc).encode(), ledger_keys=None).outcome == "failed"


def test_consistency_proof_between_checkpoints(archive, ledger_key, site, signer, tmp_path):
    for i in range(3):
        r = capture(site.url(f"/{N + 3 + i % 2}"), out=archive, options=OPTIONS)
        append_if_present(archive, r.path)
        make_checkpoint(archive, ledger_key.key)
    proof = tmp_path / "consistency.json"
    proc = run("ledger", "consistency", str(archive), "1", "4", "--out", str(proof))
    assert proc.returncode == 0, proc.stderr
    # Only the proof file is needed to check it.
    proc = run("ledger", "consistency", "--check", str(proof), "--ledger-key", str(ledger_key.pub))
    assert proc.returncode == 0, proc.stdout
    assert check_consistency(proof, ledger_keys=None).exit_code == 3
    # Swapped, altered or mismatched proofs fail.
    doc = json.loads(proof.read_text())
    doc["old_checkpoint"], doc["new_checkpoint"] = doc["new_checkpoint"], doc["old_checkpoint"]
    assert check_consistency(json.dumps(doc).encode(), ledger_keys=None).outcome == "failed"
    doc = consistency_proof(archive, "2", "3")
    doc["proof"][0] = "11" * 32
    assert check_consistency(json.dumps(doc).encode(), ledger_keys=None).outcome == "failed"
    # An old checkpoint file as OLD works too.
    held = tmp_path / "held.txt"
    shutil.copy(archive / "ledger" / CHECKPOINTS / "000002.txt", held)
    assert consistency_proof(archive, str(held), "4")["proof"]


def test_cli_init_add_checkpoint_prove(tmp_path, site, signer):
    out = tmp_path / "newsroom archive"
    proc = run("ledger", "init", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["origin"] == "evidence-ledger/newsroom_archive"
    assert run("ledger", "init", str(out)).returncode == 2
    # Captured elsewhere and copied in (capture itself logs into a ledgered
    # archive): 'ledger add' logs what is not logged yet.
    elsewhere = tmp_path / "elsewhere"
    paths = []
    for i in range(3):
        made = Path(capture(site.url(f"/{i}"), out=elsewhere, options=OPTIONS).path)
        paths.append(str(made.rename(out / made.name)))
    proc = run("ledger", "add", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    added = json.loads(proc.stdout)
    assert [a["added"] for a in added] == [True, True, True]
    assert sorted(a["package"] for a in added) == sorted(paths)
    proc = run("ledger", "add", str(out))
    assert "0 package(s) added" in proc.stdout
    key = tmp_path / "ledger.key"
    write_keypair(key, b"correct horse")
    proc = run("ledger", "checkpoint", str(out), "--key", str(key), env={"EVIDENCE_PASSPHRASE": ""})
    assert proc.returncode == 2
    proc = run(
        "ledger", "checkpoint", str(out), "--key", str(key), "--json",
        env={"EVIDENCE_PASSPHRASE": "correct horse"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cp = json.loads(proc.stdout)
    assert cp["checkpoint"] == 1 and cp["tree_size"] == 3
    assert cp["verifier_key"].startswith("evidence-ledger/newsroom_archive+")
    text = (out / "ledger" / "checkpoints" / "000001.txt").read_text()
    assert text.startswith("evidence-ledger/newsroom_archive\n3\n")
    assert "\n\n\u2014 evidence-ledger/newsroom_archive " in text
    proc = run("ledger", "prove", str(out), Path(paths[1]).name)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["leaf_index"] in (0, 1, 2)
    proc = run(
        "ledger", "verify", str(out), "--ledger-key", f"{key}.pub",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "VERIFIED" in proc.stdout


def test_leaf_bytes_are_the_documented_line(archive):
    ledger = Ledger.open(archive)
    first = (archive / "ledger" / LEAVES).read_bytes().split(b"\n")[0] + b"\n"
    entry = ledger.leaf(0)
    assert entry.to_bytes() == first
    pid, sha, when = first.decode().rstrip("\n").split("\t")
    pkg = archive / pid
    assert sha == hashlib.sha256((pkg / MANIFEST_PATH).read_bytes()).hexdigest()
    assert LeafEntry.from_bytes(first) == entry and when.endswith("Z")


# --- the hashlib-only script of docs/ledger.md -----------------------------

EXAMPLE = Path(__file__).parents[2] / "examples" / "ledger_check.py"


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated, so the script cannot import this library even by accident.
    return subprocess.run(
        [sys.executable, "-I", str(EXAMPLE), *args], capture_output=True, text=True
    )


def test_hashlib_script_checks_inclusion(archive, tmp_path):
    pkg = packages(archive)[11]
    doc = inclusion_proof(archive, str(pkg))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(doc))
    manifest = str(pkg / MANIFEST_PATH)
    proc = run_example("inclusion", str(proof), manifest)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    # A different manifest, leaf, index or path: FAILED.
    other = str(packages(archive)[12] / MANIFEST_PATH)
    assert run_example("inclusion", str(proof), other).returncode == 1
    for change in (
        lambda d: d.__setitem__("leaf_index", d["leaf_index"] ^ 1),
        lambda d: d["leaf"].__setitem__("time_added", "2020-01-01T00:00:00.000000Z"),
        lambda d: d["audit_path"].__setitem__(0, "00" * 32),
        lambda d: d.__setitem__("tree_size", d["tree_size"] + 1),
    ):
        bad = json.loads(json.dumps(doc))
        change(bad)
        proof.write_text(json.dumps(bad))
        proc = run_example("inclusion", str(proof))
        assert proc.returncode == 1 and proc.stdout.startswith("FAILED"), proc.stdout


def test_hashlib_script_checks_consistency(archive, ledger_key, site, tmp_path):
    for i in range(2):
        append_if_present(
            archive, capture(site.url(f"/{N + i}"), out=archive, options=OPTIONS).path
        )
        make_checkpoint(archive, ledger_key.key)
    proof = tmp_path / "consistency.json"
    for old, new in (("1", "3"), ("2", "3"), ("1", "2"), ("3", "3")):
        proof.write_text(json.dumps(consistency_proof(archive, old, new)))
        proc = run_example("consistency", str(proof))
        assert proc.returncode == 0, (old, new, proc.stdout, proc.stderr)
    doc = consistency_proof(archive, "1", "3")
    doc["proof"][-1] = "ff" * 32
    proof.write_text(json.dumps(doc))
    assert run_example("consistency", str(proof)).returncode == 1


def test_by_hand_commands_of_the_docs_work(archive, ledger_key, tsa, tmp_path):
    """The openssl recipe of docs/ledger.md verifies a real checkpoint, and fails a forged one."""
    pkg = packages(archive)[4]
    (tmp_path / "proof.json").write_text(json.dumps(inclusion_proof(archive, str(pkg))))
    shutil.copy(ledger_key.pub, tmp_path / "ledger.pub")
    shutil.copy(archive / "ledger" / CHECKPOINTS / "000001-1.tsr", tmp_path)
    shutil.copy(tsa.root_pem, tmp_path / "tsa-root.pem")
    doc = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    recipe = doc.split("and that the ledger key signed it:\n\n```sh\n", 1)[1].split("```", 1)[0]
    script = "set -e\n" + "\n".join(
        line.split("  #")[0] for line in recipe.splitlines() if not line.startswith("#")
    )
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Signature Verified Successfully" in proc.stdout
    assert "Verification: OK" in proc.stdout
    # The same recipe on a checkpoint whose size was changed fails.
    doc_json = json.loads((tmp_path / "proof.json").read_text())
    doc_json["checkpoint"] = doc_json["checkpoint"].replace(f"\n{N}\n", f"\n{N - 1}\n")
    (tmp_path / "proof.json").write_text(json.dumps(doc_json))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Signature Verified Successfully" not in proc.stdout


def test_hostile_checkpoint_directory_gives_fails_not_tracebacks(archive, ledger_key):
    cps = archive / "ledger" / CHECKPOINTS
    (cps / "000001-1.tsr").write_bytes(b"\x30" * (2 * 1024 * 1024))
    (cps / "000001-2.tsr").write_bytes(b"not a token")
    (cps / "notes.txt").write_text("hello")
    os.symlink("/etc/hostname", cps / "000002.txt")
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    found = failing(report)
    assert found["checkpoint-timestamps"] == ["checkpoint-timestamp-invalid"] * 2
    assert found["checkpoint-files"].count("unexpected-file") == 2
    shutil.rmtree(cps)
    report = verify_ledger(archive, ledger_keys=[load_pub(ledger_key)])
    assert failing(report)["checkpoint-files"] == ["checkpoints-unreadable"]
    assert report.check("checkpoint-signatures").status.value == "NOT CHECKED"
    proc = run("ledger", "verify", str(archive), "--ledger-key", str(ledger_key.pub))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_missing_proof_file_is_a_usage_error(archive, tmp_path):
    from evidence.ledger import LedgerError

    with pytest.raises(LedgerError) as info:
        check_inclusion(packages(archive)[0], tmp_path / "nope.json", ledger_keys=None)
    assert info.value.exit_code == 2
    with pytest.raises(LedgerError):
        check_consistency(tmp_path / "nope.json", ledger_keys=None)
    assert run("ledger", "consistency", "--check", str(tmp_path / "nope.json")).returncode == 2


def test_verify_with_an_inclusion_proof_from_the_command_line(
    archive, ledger_key, signer, tsa, tmp_path
):
    """`evidence verify PKG --inclusion PROOF --ledger-key KEY` (issue 17), outside the archive."""
    pkg = packages(archive)[3]
    proof = tmp_path / "proof.json"
    assert run("ledger", "prove", str(archive), str(pkg), "--out", str(proof)).returncode == 0
    alone = tmp_path / "alone" / pkg.name
    shutil.copytree(pkg, alone)
    args = ["verify", str(alone), "--trust", str(signer.pub), "--inclusion", str(proof)]
    proc = run(*args, "--ledger-key", str(ledger_key.pub), "--tsa-ca", str(tsa.root_pem))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERIFIED" in proc.stdout
    proc = run(*args, "--json")  # no ledger key: the inclusion is intact but not trusted
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["package"]["outcome"] == "verified" and doc["inclusion"]["exit_code"] == 3
    other = packages(archive)[4]
    proc = run("verify", str(other), "--trust", str(signer.pub), "--inclusion", str(proof))
    assert proc.returncode == 1  # the proof is for another package
    proc = run("verify", str(alone), "--trust", str(signer.pub), "--ledger-key", "k.pub")
    assert proc.returncode == 2  # --ledger-key without --inclusion


def test_capture_logs_new_packages_when_the_archive_has_a_ledger(site, tmp_path):
    out = tmp_path / "archive"
    init_ledger(out)
    first = capture(site.url("/1"), out=out, options=OPTIONS)
    second = capture(site.url("/2"), out=out, options=OPTIONS)
    assert not first.warnings and not second.warnings
    report = verify_ledger(out, ledger_keys=None)
    assert report.check("packages-logged").status.value == "PASS", report.to_text()
    leaves = (out / "ledger" / LEAVES).read_text().splitlines()
    assert [line.split("\t")[0] for line in leaves] == [first.package_id, second.package_id]


def test_a_broken_ledger_costs_a_warning_not_the_capture(site, tmp_path):
    out = tmp_path / "archive"
    init_ledger(out)
    (out / "ledger" / "ledger.json").write_bytes(b"{not json")  # a damaged ledger
    result = capture(site.url("/1"), out=out, options=OPTIONS)
    assert Path(result.path).is_dir()
    assert any("not added to the ledger" in w for w in result.warnings), result.warnings
    assert verify(result.path, trust=[]).outcome is Outcome.UNTRUSTED

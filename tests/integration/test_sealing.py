"""The sealed operator end to end: real age keys (``age-keygen`` and pyrage), real
captures from a local site, ``age -d`` by hand, ``evidence unseal``, and hostile blobs.

The operator's name is a made-up string that appears nowhere else, so
"absent" means absent: every file of the package (the WARC decompressed
too), and everything the commands print, is searched for it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from test_queue import Workers, redis_server  # noqa: F401 - the fixture, shared

from evidence.capturing import CaptureOptions, Operator, capture
from evidence.custody import make_event
from evidence.errors import UsageError
from evidence.keys import key_id
from evidence.manifest import MAX_SEALED_CHARS, Manifest, dumps
from evidence.package import MANIFEST_PATH
from evidence.seal import expected_bag_files
from evidence.verifying import Outcome, verify

from servers import Site

pyrage = pytest.importorskip("pyrage", reason="the seal extra is part of the test extra")

EVIDENCE = [sys.executable, "-m", "evidence.cli"]
NAME = "Qelvira Marchetto-Yune"
ORG = "Halvard Rights Collective"
PAGE = b"<!DOCTYPE html><html><head><title>Sealed</title></head><body>ok</body></html>"


class AgeKey(typing.NamedTuple):
    identity: Path
    recipient: str


def _needs(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: .ci/run installs Debian's age package"
    return path


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    """A key made by age-keygen, as a legal team would make it."""
    keygen = _needs("age-keygen")
    path = tmp_path_factory.mktemp("age") / "team.txt"
    subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run([keygen, "-y", str(path)], check=True, capture_output=True, text=True)
    return AgeKey(path, public.stdout.strip())


@pytest.fixture(scope="module")
def pyrage_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    """A second legal team's key, made with pyrage and written as an identity file."""
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path_factory.mktemp("pyrage") / "other.txt"
    path.write_text(f"# a second team\n{identity}\n")
    return AgeKey(path, str(identity.to_public()))


@pytest.fixture(scope="module")
def page() -> typing.Iterator[Site]:
    s = Site({"/": (200, [("Content-Type", "text/html")], PAGE)})
    yield s
    s.close()


def _capture_sealed(out: Path, page: Site, signer: typing.Any, *recipients: str) -> Path:
    result = capture(
        page.url("/"),
        out=out,
        options=CaptureOptions(requisites=False),
        operator=Operator(name=NAME, organization=ORG),
        seal_operator_to=list(recipients),
        sign_with=[signer.key],
    )
    return Path(result.path)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, page, signer, age_key, pyrage_key) -> Path:
    """One signed package whose operator is sealed to both keys."""
    return _capture_sealed(
        tmp_path_factory.mktemp("sealed"), page, signer, age_key.recipient, pyrage_key.recipient
    )


@pytest.fixture
def sealed_copy(sealed: Path, tmp_path: Path) -> Path:
    dest = tmp_path / sealed.name
    shutil.copytree(sealed, dest)
    return dest


def _manifest(pkg: Path) -> Manifest:
    return Manifest.from_bytes((pkg / MANIFEST_PATH).read_bytes())


def _blob(pkg: Path, tmp_path: Path) -> Path:
    """The armored blob taken out of manifest.json, as docs/sealing.md shows (jq -r)."""
    data = json.loads((pkg / MANIFEST_PATH).read_bytes())
    path = tmp_path / "operator.age"
    path.write_text(data["operator"]["sealed"]["ciphertext"], encoding="ascii")
    return path


def _age_decrypt(blob: Path, identity: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_needs("age"), "-d", "-i", str(identity), str(blob)], capture_output=True, text=True
    )


def _assert_one_error_line(err: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evidence: error: "), err


def _absent(text: str | bytes, where: str) -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    for secret in (NAME, ORG, NAME.split()[0], ORG.split()[0]):
        assert secret.encode() not in data, f"{secret!r} found in {where}"
        assert secret.lower().encode() not in data.lower(), f"{secret!r} found in {where}"


def _every_file_lacks_the_name(root: Path) -> int:
    seen = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        _absent(data, str(path))
        if path.name.endswith(".gz"):
            _absent(gzip.decompress(data), f"{path} (decompressed)")
        seen += 1
    return seen


def sealed_pkg_in_ledger(out: Path, pkg: Path) -> bool:
    """The ledger under ``out`` lists the package (so its files were searched with it)."""
    return pkg.name.encode() in (out / "ledger" / "leaves.txt").read_bytes()


def _resign(pkg: Path, key: typing.Any, change: typing.Callable[[dict], None]) -> None:
    """Change the manifest and re-seal everything a verifier checks, as its signer could."""
    data = json.loads((pkg / MANIFEST_PATH).read_bytes())
    change(data)
    raw = dumps(data)
    (pkg / MANIFEST_PATH).write_bytes(raw)
    for name, body in expected_bag_files(Manifest.from_bytes(raw)).items():
        (pkg / name).write_bytes(body)
    (pkg / "evidence" / "signatures" / f"{key_id(key.public_key())}.sig").write_bytes(key.sign(raw))
    event = make_event(
        prev_line=None, manifest=raw, seq=1, event="captured", key=key, when=data["created"]
    )
    (pkg / "evidence" / "custody.jsonl").write_bytes(event + b"\n")


def _trust(signer: typing.Any) -> typing.Any:
    from evidence.keys import Keyring

    return Keyring.from_paths([str(signer.pub)])


# --- the package holds no plaintext; age -d opens it by hand ---------------------------


def test_cli_capture_writes_no_plaintext_anywhere_and_age_opens_it(
    page, age_key, pyrage_key, signer, tmp_path
):
    out = tmp_path / "archive"
    # A collection ledger in the archive: the capture is logged in it too.
    subprocess.run([*EVIDENCE, "ledger", "init", str(out)], check=True, capture_output=True)
    proc = subprocess.run(
        [
            *EVIDENCE,
            "capture",
            page.url("/"),
            "--out",
            str(out),
            "--json",
            "--no-requisites",
            "--operator-name",
            NAME,
            "--operator-org",
            ORG,
            "--seal-operator-to",
            age_key.recipient,
            "--seal-operator-to",
            pyrage_key.recipient,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    pkg = Path(json.loads(proc.stdout)["packages"][0]["package"])
    printed = [proc.stdout, proc.stderr]
    for argv in (
        ["show", str(pkg)],
        ["show", str(pkg), "--json"],
        ["verify", str(pkg), "--trust", str(signer.pub), "--json"],
        ["verify", str(pkg), "--trust", str(signer.pub)],
        ["custody", "show", str(pkg), "--json"],
    ):
        run = subprocess.run([*EVIDENCE, *argv], capture_output=True, text=True)
        assert "Traceback" not in run.stderr
        printed += [run.stdout, run.stderr]
    for i, text in enumerate(printed):
        _absent(text, f"command output {i}")
    assert "sealed to 2 recipient(s)" in printed[2]
    assert json.loads(printed[4])["sealed_operator"] == {
        "format": "age",
        "recipients": [age_key.recipient, pyrage_key.recipient],
        "problem": None,
    }
    assert json.loads(printed[6])["subject"]["operator"] == (
        "operator identity sealed to 2 recipients"
    )
    # Every file of the package, and of the archive beside it (the ledger).
    assert _every_file_lacks_the_name(out) >= 9  # bag files, WARC, manifest, custody, ledger
    assert sealed_pkg_in_ledger(out, pkg)
    warcinfo = gzip.decompress((pkg / "data/capture.warc.gz").read_bytes())
    assert b"operator-sealed: age, 2 recipient(s)" in warcinfo
    assert "Source-Organization" not in (pkg / "bag-info.txt").read_text()
    custody = json.loads((pkg / "evidence/custody.jsonl").read_text().splitlines()[0])
    assert custody["actor"] is None

    m = _manifest(pkg)
    assert m.operator is not None and m.operator.name is None and m.operator.organization is None
    assert m.operator.sealed is not None
    assert m.operator.sealed.recipients == (age_key.recipient, pyrage_key.recipient)
    blob = _blob(pkg, tmp_path)
    for key in (age_key, pyrage_key):  # both teams open it, with Debian's age
        opened = _age_decrypt(blob, key.identity)
        assert opened.returncode == 0, opened.stderr
        content = json.loads(opened.stdout)
        assert set(content.pop("padding")) <= {" "}
        assert content == {
            "type": "evidence-sealed-operator/1",
            "package_id": m.package_id,
            "created": m.created,
            "name": NAME,
            "organization": ORG,
            "warc_sha256": next(f.sha256 for f in m.files if f.path == m.warc_path),
        }


def test_the_operator_can_come_from_the_environment_not_the_process_list(page, age_key, tmp_path):
    """Any user can read a command line (ps); an environment only its owner and
    root. EVIDENCE_OPERATOR_NAME/ORG give the operator without the former; a
    flag still wins over the variable."""
    env = {**os.environ, "EVIDENCE_OPERATOR_NAME": NAME, "EVIDENCE_OPERATOR_ORG": ORG}
    argv = [*EVIDENCE, "capture", page.url("/"), "--json", "--no-requisites"]
    proc = subprocess.Popen(
        [*argv, "--out", str(tmp_path / "sealed"), "--seal-operator-to", age_key.recipient],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _absent(cmdline, "the process's command line")
    pkg = Path(json.loads(out)["packages"][0]["package"])
    _absent(out + err, "the output")
    assert _every_file_lacks_the_name(pkg) >= 5
    opened = json.loads(_age_decrypt(_blob(pkg, tmp_path), age_key.identity).stdout)
    assert (opened["name"], opened["organization"]) == (NAME, ORG)

    plain = subprocess.run(
        [*argv, "--out", str(tmp_path / "plain"), "--operator-name", "Given On The Line"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr
    m = _manifest(Path(json.loads(plain.stdout)["packages"][0]["package"]))
    assert m.operator is not None
    assert (m.operator.name, m.operator.organization, m.operator.sealed) == (
        "Given On The Line",
        ORG,
        None,
    )


def test_age_without_the_identity_cannot_open_it(sealed, tmp_path):
    stranger = tmp_path / "stranger.txt"
    subprocess.run([_needs("age-keygen"), "-o", str(stranger)], check=True, capture_output=True)
    opened = _age_decrypt(_blob(sealed, tmp_path), stranger)
    assert opened.returncode != 0
    assert NAME not in opened.stdout


def test_the_sealed_package_verifies(sealed, signer):
    report = verify(sealed, trust=_trust(signer))
    assert report.outcome is Outcome.VERIFIED, report.to_text()
    assert report.subject is not None
    assert report.subject.operator == "operator identity sealed to 2 recipients"
    assert "Operator:      operator identity sealed to 2 recipients" in report.to_text()


# --- evidence unseal -------------------------------------------------------------------


def test_unseal_with_either_key(cli, sealed, age_key, pyrage_key):
    for key in (age_key, pyrage_key):
        run = cli("unseal", sealed, "--identity", key.identity)
        assert run.code == 0, run.err
        assert f"Name:          {NAME}" in run.out
        assert f"Organization:  {ORG}" in run.out
        assert "Binding:       checked: the sealed package id, creation time and WARC" in run.out
        assert f"opened with {key.recipient}" in run.out
        assert "does not verify the package" in run.out
    run = cli("unseal", sealed, "-i", age_key.identity, "--json")
    doc = json.loads(run.out)
    assert run.code == 0
    assert (doc["name"], doc["organization"], doc["verified"]) == (NAME, ORG, False)
    assert doc["package_id"] == sealed.name and doc["warnings"] == []


def test_unseal_with_the_wrong_identity_is_one_clear_line(cli, sealed, tmp_path):
    wrong = tmp_path / "wrong.txt"
    subprocess.run([_needs("age-keygen"), "-o", str(wrong)], check=True, capture_output=True)
    run = cli("unseal", sealed, "--identity", wrong)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "none of the 1 identity key(s) given opens this sealed operator" in run.err
    _absent(run.out + run.err, "unseal output")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no age identity"),
        (b"# only a comment\n", "holds no age identity"),
        (b"AGE-SECRET-KEY-1NOTAKEY\n", "line 1 is not an age identity"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", "not an age identity file"),
        (b"age-encryption.org/v1\n-> scrypt x 18\n", "passphrase-protected"),
        (b"\xff\xfe\x00binary", "not ASCII text"),
    ],
    ids=["empty", "comment-only", "bad-key", "ssh-key", "passphrase-file", "binary"],
)
def test_unseal_refuses_bad_identity_files(cli, sealed, tmp_path, content, message):
    path = tmp_path / "id.txt"
    path.write_bytes(content)
    run = cli("unseal", sealed, "--identity", path)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert message in run.err


def test_unseal_refuses_a_missing_identity_file_and_a_package_without_a_seal(
    cli, sealed, package_copy, age_key, tmp_path
):
    run = cli("unseal", sealed, "--identity", tmp_path / "nope.txt")
    assert run.code == 2 and "does not exist" in run.err
    _assert_one_error_line(run.err)
    run = cli("unseal", package_copy, "--identity", age_key.identity)
    assert run.code == 2 and "has no sealed operator" in run.err
    _assert_one_error_line(run.err)
    run = cli("unseal", tmp_path, "--identity", age_key.identity)
    assert run.code == 2 and "not an evidence package" in run.err


def test_unseal_refuses_a_package_whose_manifest_does_not_parse(cli, sealed_copy, age_key):
    path = sealed_copy / MANIFEST_PATH
    path.write_bytes(path.read_bytes().replace(b'"format"', b'"format": 1, "format"', 1))
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "duplicate JSON key" in run.err


def _flip(armored: str) -> str:
    """One base64 character of the encrypted payload changed: still a well-formed blob.

    The payload is at the end of an age file, so the last full 64-column line is in it.
    """
    lines = armored.split("\n")
    index = max(i for i, line in enumerate(lines) if len(line) == 64 and "-" not in line)
    row = lines[index]
    lines[index] = row[:30] + ("A" if row[30] != "A" else "B") + row[31:]
    return "\n".join(lines)


# --- tampering and transplanting ---------------------------------------------------------


def test_a_changed_ciphertext_breaks_the_signature(sealed_copy, signer):
    path = sealed_copy / MANIFEST_PATH
    data = json.loads(path.read_bytes())
    data["operator"]["sealed"]["ciphertext"] = _flip(data["operator"]["sealed"]["ciphertext"])
    path.write_bytes(dumps(data))
    report = verify(sealed_copy, trust=_trust(signer))
    assert report.outcome is Outcome.FAILED
    failing = {c.name for c in report.failures()}
    assert f"signature:{signer.kid}" in failing, report.to_text()
    assert "bag.tags" in failing  # the tag manifest covers manifest.json too


def test_a_blob_moved_from_another_package_is_caught_by_unseal(
    cli, sealed, sealed_copy, page, signer, age_key, tmp_path
):
    other = _capture_sealed(tmp_path / "other", page, signer, age_key.recipient)
    theirs = json.loads((other / MANIFEST_PATH).read_bytes())["operator"]
    # The signer (or anyone who re-signs) puts another package's sealed part here.
    _resign(sealed_copy, signer.key, lambda d: d.update(operator=theirs))
    assert verify(sealed_copy, trust=_trust(signer)).outcome is Outcome.VERIFIED
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 1
    _assert_one_error_line(run.err)
    assert f"made for package '{other.name}'" in run.err
    assert "moved here from another package" in run.err
    assert NAME not in run.out


def test_a_blob_moved_with_its_id_and_time_onto_other_evidence_is_caught_by_unseal(
    cli, sealed, signer, age_key, tmp_path
):
    # A forger who can sign copies the victim's package id and creation time
    # too: those alone bind nothing. The sealed identity must name the
    # evidence itself (the WARC's SHA-256), or it can be put on words the
    # operator never captured.
    victim = json.loads((sealed / MANIFEST_PATH).read_bytes())
    lie = Site({"/": (200, [("Content-Type", "text/html")], b"<p>words never said</p>")})
    try:
        made = capture(
            lie.url("/"),
            out=tmp_path / "made",
            options=CaptureOptions(requisites=False),
            sign_with=[signer.key],
        )
    finally:
        lie.close()
    forged = tmp_path / "forged" / victim["package_id"]
    forged.parent.mkdir()
    Path(made.path).rename(forged)

    def transplant(d: dict) -> None:
        d.update(
            package_id=victim["package_id"], created=victim["created"], operator=victim["operator"]
        )

    _resign(forged, signer.key, transplant)
    assert verify(forged, trust=_trust(signer)).outcome is Outcome.VERIFIED
    run = cli("unseal", forged, "--identity", age_key.identity)
    assert run.code == 1, run.out
    _assert_one_error_line(run.err)
    assert "sealed for other evidence" in run.err
    assert NAME not in run.out


def test_a_blob_sealed_to_keys_the_manifest_does_not_list_is_reported(
    cli, sealed_copy, signer, age_key, pyrage_key
):
    def relist(d: dict) -> None:
        d["operator"]["sealed"]["recipients"] = [pyrage_key.recipient, pyrage_key.recipient]

    _resign(sealed_copy, signer.key, relist)
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 0
    assert "is not among the recipients the manifest lists" in run.err


def test_a_hostile_sealed_name_is_shown_safely(cli, sealed_copy, signer, age_key):
    # Anyone with the public key can seal anything: the name inside is untrusted text.
    m = _manifest(sealed_copy)
    hostile = {
        "type": "evidence-sealed-operator/1",
        "package_id": m.package_id,
        "created": m.created,
        "name": "\x1b[2J\x1b[1;32mPASS\u202e evil",
        "organization": "line\nforged: yes",
    }
    blob = pyrage.encrypt(
        dumps(hostile), [pyrage.x25519.Recipient.from_str(age_key.recipient)], armored=True
    ).decode()

    def replace(d: dict) -> None:
        d["operator"]["sealed"].update(ciphertext=blob, recipients=[age_key.recipient])

    _resign(sealed_copy, signer.key, replace)
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 0, run.err
    assert "\x1b" not in run.out and "\u202e" not in run.out
    assert "Name:          \\x1b[2J\\x1b[1;32mPASS⟪U+202E⟫ evil" in run.out
    assert "Organization:  line\\nforged: yes" in run.out
    assert not any(line.startswith("forged") for line in run.out.splitlines())
    doc = cli("unseal", sealed_copy, "--identity", age_key.identity, "--json")
    assert doc.out.isascii() and json.loads(doc.out)["name"] == hostile["name"]


# --- hostile blobs: clean errors in show, verify and unseal ----------------------------------


_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
_END = "-----END AGE ENCRYPTED FILE-----"


def _armor(body: bytes) -> str:
    import base64

    b64 = base64.b64encode(body).decode()
    rows = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join(
        ["-----BEGIN AGE ENCRYPTED FILE-----", *rows, "-----END AGE ENCRYPTED FILE-----"]
    )


HOSTILE = {
    "not-armored": ("hello, court", "not an ASCII-armored age file"),
    "bad-base64": (
        "-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n",
        "not 64 columns of base64",
    ),
    "not-age": (_armor(b"PK\x03\x04 a zip file\n"), "not an age v1 file"),
    "no-mac": (_armor(b"age-encryption.org/v1\n-> X25519 abc\nxyz\n"), "no MAC line"),
    "stanza-count": (
        _armor(b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n\x00\x01"),
        "1 X25519 stanza(s) for 2 listed recipient(s)",
    ),
    "control-chars": ("\x1b[2J\u202eFAKE", "not an ASCII-armored age file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_blobs_give_clean_errors(cli, sealed_copy, signer, age_key, case):
    blob, message = HOSTILE[case]
    _resign(sealed_copy, signer.key, lambda d: d["operator"]["sealed"].update(ciphertext=blob))
    run = cli("show", sealed_copy)
    assert run.code == 0, run.err
    assert message in run.out and "\x1b" not in run.out and "\u202e" not in run.out
    assert cli("show", sealed_copy, "--json").code == 0
    report = verify(sealed_copy, trust=_trust(signer))
    # The signed statement is intact; what it says about the operator is shown as malformed.
    assert report.outcome is Outcome.VERIFIED
    assert report.subject is not None and message in (report.subject.operator or "")
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "the sealed operator is malformed" in run.err and message in run.err


def test_a_corrupt_payload_is_one_line_at_unseal(cli, sealed_copy, signer, age_key):
    def corrupt(d: dict) -> None:
        d["operator"]["sealed"]["ciphertext"] = _flip(d["operator"]["sealed"]["ciphertext"])

    _resign(sealed_copy, signer.key, corrupt)
    run = cli("unseal", sealed_copy, "--identity", age_key.identity)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "the sealed operator is malformed: age cannot decrypt it" in run.err


def _rewrite_signed(pkg: Path, signer: typing.Any, change: typing.Callable[[dict], None]) -> None:
    """A manifest our parser refuses, signed by the signer (the bag files cannot be rebuilt)."""
    data = json.loads((pkg / MANIFEST_PATH).read_bytes())
    change(data)
    raw = dumps(data)
    (pkg / MANIFEST_PATH).write_bytes(raw)
    (pkg / "evidence/signatures" / f"{signer.kid}.sig").write_bytes(signer.key.sign(raw))


def test_a_huge_blob_is_refused_when_the_manifest_is_read(cli, sealed_copy, signer, age_key):
    huge = "A" * (MAX_SEALED_CHARS + 1)
    _rewrite_signed(sealed_copy, signer, lambda d: d["operator"]["sealed"].update(ciphertext=huge))
    for argv in (("show", sealed_copy), ("unseal", sealed_copy, "-i", age_key.identity)):
        run = cli(*argv)
        assert run.code == 2
        _assert_one_error_line(run.err)
        assert f"more than the limit of {MAX_SEALED_CHARS} for a sealed operator" in run.err
    report = verify(sealed_copy, trust=_trust(signer))
    assert report.outcome is Outcome.FAILED
    assert "for a sealed operator" in report.to_text()


def test_a_manifest_with_a_seal_and_a_plaintext_name_is_refused(cli, sealed_copy, signer):
    _rewrite_signed(sealed_copy, signer, lambda d: d["operator"].update(name="Someone"))
    run = cli("show", sealed_copy)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "sealed part and a plaintext name" in run.err
    report = verify(sealed_copy, trust=_trust(signer))
    assert report.outcome is Outcome.FAILED
    assert "sealed part and a plaintext name" in report.to_text()


# --- bad recipients fail before any connection ---------------------------------------------


@pytest.fixture
def listener() -> typing.Iterator[socket.socket]:
    """A listening socket that records whether anything connected to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def _nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(
    ("recipient", "message"),
    [
        ("age1bad", "not an age X25519 recipient"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample", "SSH recipients are not accepted"),
        # The pattern of a key with a broken bech32 checksum: a typo.
        ("age1" + "q" * 58, "not a valid age recipient"),
        ("AGE-SECRET-KEY-1" + "Q" * 58, "that is an age identity"),
    ],
    ids=["short", "ssh", "checksum", "secret-key"],
)
def test_a_bad_recipient_is_a_usage_error_before_any_connection(
    cli, listener, tmp_path, recipient, message
):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    run = cli(
        "capture", url, "--out", tmp_path, "--operator-name", NAME, "--seal-operator-to", recipient
    )
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert message in run.err
    assert "AGE-SECRET-KEY" not in run.err  # a secret key given by mistake is never echoed
    assert _nobody_connected(listener)
    with pytest.raises(UsageError, match=message):
        capture(url, out=tmp_path, operator=Operator(name=NAME), seal_operator_to=[recipient])
    assert _nobody_connected(listener)
    assert not any(tmp_path.iterdir())


def test_sealing_without_an_operator_or_with_a_presealed_one_is_refused(
    cli, listener, tmp_path, age_key, sealed
):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    run = cli("capture", url, "--out", tmp_path, "--seal-operator-to", age_key.recipient)
    assert run.code == 2 and "needs --operator-name or --operator-org" in run.err
    presealed = _manifest(sealed).operator
    with pytest.raises(UsageError, match="capture seals it itself"):
        capture(url, out=tmp_path, operator=presealed)
    assert _nobody_connected(listener)


# --- the court report ------------------------------------------------------------------------


def test_the_court_report_says_sealed_never_the_name(cli, sealed_copy, signer, tmp_path):
    out = tmp_path / "report.html"
    run = cli("report", sealed_copy, "--out", out, "--trust", signer.pub, "--no-custody-event")
    assert run.code == 0, run.err
    html = out.read_text(encoding="utf-8")
    assert "operator identity sealed to 2 recipients" in html
    _absent(html, "the court report")


# --- batch -----------------------------------------------------------------------------------


def test_batch_seals_every_package_and_its_state_holds_no_name(cli, age_key, tmp_path):
    from batch_site import BatchSite

    s = BatchSite()
    try:
        lst = tmp_path / "list.txt"
        lst.write_text(f"{s.url('/page/1')}\n{s.url('/page/2')}\n")
        out = tmp_path / "out"
        run = cli(
            "batch",
            lst,
            "--out",
            out,
            "--json",
            "--operator-name",
            NAME,
            "--operator-org",
            ORG,
            "--seal-operator-to",
            age_key.recipient,
            "--no-requisites",
        )
    finally:
        s.close()
    assert run.code == 0, run.err
    _absent(run.out + run.err, "batch output")
    # The packages, the CSV report and the resume state (sqlite) under out/.
    assert _every_file_lacks_the_name(out) > 10
    packages = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(packages) == 2
    for pkg in packages:
        run = cli("unseal", pkg, "--identity", age_key.identity, "--json")
        assert run.code == 0, run.err
        assert json.loads(run.out)["name"] == NAME


def test_batch_checks_recipients_before_it_starts(cli, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("http://127.0.0.1:9/\n")
    run = cli(
        "batch",
        lst,
        "--out",
        tmp_path / "out",
        "--operator-name",
        NAME,
        "--seal-operator-to",
        "age1nope",
    )
    assert run.code == 2
    assert "not an age X25519 recipient" in run.err
    assert not (tmp_path / "out").exists()


# --- Celery workers: the seal is the worker's own ----------------------------------------------


def test_a_task_cannot_carry_an_operator_or_a_seal():
    import uuid

    from evidence.queue import TaskRefusedError, check_task

    for field in ("operator", "seal_operator_to"):
        request = {"options": {}, field: ["age1" + "q" * 58]}
        with pytest.raises(TaskRefusedError, match=f"unknown request fields: {field}"):
            check_task(str(uuid.uuid4()), ["http://127.0.0.1:9/", request], CaptureOptions())


def test_a_worker_seals_with_its_own_recipients_and_forged_tasks_cannot_change_it(
    tmp_path, age_key, pyrage_key, request
):
    pytest.importorskip("celery", reason="the queue extra is part of the test extra")
    import uuid

    from batch_site import BatchSite
    from evidence.queue import TASK_NAME, make_app

    # test_queue's own redis-server fixture, on a database its tests do not use.
    broker = request.getfixturevalue("redis_server")
    workers = Workers(tmp_path, broker.url(15), tmp_path / "out")
    s = BatchSite()
    try:
        workers.start(
            "sealer",
            "--operator-name",
            NAME,
            "--seal-operator-to",
            age_key.recipient,
            concurrency=1,
        )
        app = make_app(workers.url)
        forged = {
            "recipient": [s.url("/page/1"), {"seal_operator_to": [pyrage_key.recipient]}],
            "operator": [s.url("/page/2"), {"operator": {"name": "Mallory"}}],
            "unsealed": [s.url("/page/3"), {"options": {"seal_operator_to": []}}],
        }
        sent = {
            k: app.send_task(TASK_NAME, args=a, task_id=str(uuid.uuid4()), queue="evidence")
            for k, a in forged.items()
        }
        sent["honest"] = app.send_task(
            TASK_NAME, args=[s.url("/page/4"), {}], task_id=str(uuid.uuid4()), queue="evidence"
        )
        got = {k: r.get(timeout=60) for k, r in sent.items()}
        app.close()
    finally:
        workers.stop_all()
        s.close()
    for name in forged:
        assert got[name]["kind"] == "refused-task", got[name]
    assert got["honest"]["status"] == "captured", got["honest"]
    assert set(s.hits) == {"/page/4"}
    pkg = Path(got["honest"]["package"])
    assert _manifest(pkg).operator.sealed.recipients == (age_key.recipient,)
    _absent(workers.log("sealer"), "the worker's log")
    _every_file_lacks_the_name(tmp_path / "out")
    opened = _age_decrypt(_blob(pkg, tmp_path), age_key.identity)
    assert json.loads(opened.stdout)["name"] == NAME


# --- without pyrage -------------------------------------------------------------------------


def test_without_pyrage_sealing_says_how_to_install_it_and_show_still_works(
    sealed, age_key, listener, tmp_path
):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    code = (
        "import sys; sys.modules['pyrage'] = None\n"
        "from evidence.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    commands = {
        "capture": [
            "capture",
            url,
            "--out",
            str(tmp_path),
            "--operator-name",
            NAME,
            "--seal-operator-to",
            age_key.recipient,
        ],
        "unseal": ["unseal", str(sealed), "--identity", str(age_key.identity)],
        "show": ["show", str(sealed)],
    }
    done = {
        name: subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
        )
        for name, argv in commands.items()
    }
    for name in ("capture", "unseal"):
        assert done[name].returncode == 2, done[name].stderr
        assert "pip install 'evidence-archive[seal]'" in done[name].stderr
        assert "Traceback" not in done[name].stderr
    assert done["show"].returncode == 0
    assert "sealed to 2 recipient(s)" in done["show"].stdout
    assert _nobody_connected(listener)


def test_a_name_from_the_environment_is_never_recorded_in_plaintext_unnoticed(page, tmp_path):
    """An exported EVIDENCE_OPERATOR_NAME stays set for every later command of
    that shell, with or without --seal-operator-to. A capture that records it
    in plaintext says so on stderr; an empty flag records no one at all."""
    env = {**os.environ, "EVIDENCE_OPERATOR_NAME": NAME, "EVIDENCE_OPERATOR_ORG": ORG}
    argv = [*EVIDENCE, "capture", page.url("/"), "--json", "--no-requisites"]
    plain = subprocess.run(
        [*argv, "--out", str(tmp_path / "plain")], env=env, capture_output=True, text=True
    )
    assert plain.returncode == 0, plain.stderr
    m = _manifest(Path(json.loads(plain.stdout)["packages"][0]["package"]))
    assert m.operator is not None and m.operator.name == NAME
    assert "EVIDENCE_OPERATOR_NAME" in plain.stderr and "NOT sealed" in plain.stderr
    _absent(plain.stderr, "the warning")

    nobody = subprocess.run(
        [*argv, "--out", str(tmp_path / "nobody"), "--operator-name", "", "--operator-org", ""],
        env=env,
        capture_output=True,
        text=True,
    )
    assert nobody.returncode == 0, nobody.stderr
    assert _manifest(Path(json.loads(nobody.stdout)["packages"][0]["package"])).operator is None
    assert "EVIDENCE_OPERATOR" not in nobody.stderr


@pytest.mark.parametrize("command", ["capture", "batch"])
def test_an_operator_that_cannot_be_recorded_is_one_usage_error_before_any_url(
    cli, listener, tmp_path, command
):
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    target = url
    if command == "batch":
        target = tmp_path / "list.txt"
        target.write_text(f"{url}\n{url}x\n")
    run = cli(command, target, "--out", tmp_path / "out", "--operator-org", "Org\x1b[2J")
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "must be printable text on one line" in run.err
    assert _nobody_connected(listener)


def test_an_operator_too_long_to_log_is_one_usage_error_before_any_url(cli, listener, tmp_path):
    """A name of 100,000 characters (from an exported variable, say) made a
    package whose own custody log fails verification: its first event is
    longer than a custody line may be. Refused before any URL, like any
    other operator that cannot be recorded."""
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    run = cli("capture", url, "--out", tmp_path / "out", "--operator-name", "x" * 100_000)
    assert run.code == 2
    _assert_one_error_line(run.err)
    assert "at most" in run.err
    assert _nobody_connected(listener)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

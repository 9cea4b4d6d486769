"""The corpus of broken packages in tests/assets/: right failing check, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from evidence.verifying import verify

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CORPUS = ASSETS / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
EXIT = {"verified": 0, "failed": 1, "not-a-package": 2, "intact-untrusted": 3}


def _generator():
    spec = importlib.util.spec_from_file_location("make_corpus", ASSETS / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def judge(pkg: Path, expected: dict) -> None:
    report = verify(pkg, trust=[])
    assert report.outcome.value == expected["outcome"], report.to_text()
    failing = {c.name for c in report.failures()}
    if expected["failing"]:
        assert expected["failing"] in failing, report.to_text()
    else:
        assert not failing
    warning = {c.name for c in report.checks if c.status.value == "WARN"}
    if expected.get("warning"):
        assert expected["warning"] in warning, report.to_text()
    # Whatever the package holds, both renderings work and stay printable.
    report.to_text().encode("utf-8")
    json.dumps(report.to_json(), ensure_ascii=False).encode("utf-8")


def committed(name: str, tmp_path: Path) -> Path:
    """The committed package, with what git cannot store put back."""
    restore = _generator().RESTORE.get(name)
    if restore is None:
        return CORPUS / name
    pkg = tmp_path / name
    shutil.copytree(CORPUS / name, pkg, symlinks=True)
    restore(pkg)
    return pkg


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_corpus(name, tmp_path):
    pkg = committed(name, tmp_path)
    judge(pkg, EXPECTED[name])
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "verify", str(pkg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT[EXPECTED[name]["outcome"]]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_every_case_has_a_readme_line():
    readme = (ASSETS / "README.md").read_text()
    for name in EXPECTED:
        assert f"`corpus/{name}/`" in readme


def test_generator_reproduces_the_verdicts(tmp_path):
    gen = _generator()
    expected = gen.generate(tmp_path / "corpus")
    assert expected == EXPECTED
    for name, exp in expected.items():
        judge(tmp_path / "corpus" / name, exp)


def test_huge_manifest_is_refused_with_bounded_memory(tmp_path):
    gen = _generator()
    base = gen.base_package(tmp_path / "base")
    pkg = tmp_path / "huge"
    shutil.copytree(base, pkg)
    gen.make_huge_manifest(pkg)
    tracemalloc.start()
    report = verify(pkg, trust=[])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.outcome.value == "failed"
    assert report.check("manifest").status.value == "FAIL"
    assert "larger than" in report.check("manifest").summary
    assert peak < 100 * 2**20


def test_forged_custody_signer_is_never_shown_as_signed(tmp_path):
    report = verify(committed("custody-forged-signer", tmp_path), trust=[])
    text = report.to_text()
    forged = [line for line in text.splitlines() if "2. " in line and "transferred" in line]
    assert len(forged) == 1, text
    assert "UNVERIFIABLE" in forged[0] and "signed by" not in forged[0]
    assert report.check("custody").status.value == "WARN"


def test_custody_keyid_is_never_a_path(tmp_path):
    report = verify(committed("custody-keyid-traversal", tmp_path), trust=[])
    assert any("key id is not 64" in f for f in report.check("custody").details), report.to_text()


@pytest.mark.parametrize("how", ["text", "json"])
def test_surrogates_never_crash_the_cli(how):
    args = ["--json"] if how == "json" else []
    proc = subprocess.run(
        [sys.executable, "-m", "evidence.cli", "verify", *args, str(CORPUS / "custody-surrogates")],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert b"Traceback" not in proc.stderr + proc.stdout
    out = proc.stdout.decode("utf-8")  # valid UTF-8
    if how == "json":
        doc = json.loads(out)
        assert "\u27eaU+D800\u27eb" in doc["package_id"]
    else:
        assert "\u27eaU+D800\u27eb" in out

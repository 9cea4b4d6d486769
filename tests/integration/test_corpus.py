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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_corpus(name):
    pkg = CORPUS / name
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

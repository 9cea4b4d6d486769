from __future__ import annotations

import subprocess
import sys

import evidence


def test_every_public_name_resolves():
    for name in evidence.__all__:
        assert getattr(evidence, name) is not None, name
    assert callable(evidence.capture)  # the function, not the evidence.capturing package


def test_import_is_lazy():
    """`import evidence` (and so `evidence --help`) loads no network or crypto library."""
    code = (
        "import sys, evidence, evidence.cli; evidence.cli.build_parser(); "
        "print(sorted(m for m in ('requests', 'urllib3', 'cryptography', 'warcio', "
        "'rfc3161_client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Every public name works however it is imported, and keeps working (issue 11)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import evidence


def test_no_public_name_is_a_subpackage() -> None:
    import pkgutil

    subpackages = {m.name for m in pkgutil.iter_modules(evidence.__path__)}
    assert not subpackages & set(evidence.__all__)


def test_verify_called_twice_in_one_process(sealed_package, signer) -> None:  # type: ignore[no-untyped-def]
    # The lazy loader used to be replaced by the subpackage of the same name
    # on first use: the second call raised "'module' object is not callable".
    package, public = sealed_package, signer.pub
    code = textwrap.dedent(
        f"""
        import evidence
        from evidence import verify as verify_from
        import evidence.verifying.report  # importing a submodule must not shadow anything
        for _ in range(3):
            assert evidence.verify({str(package)!r}, trust=[{str(public)!r}]).ok
            assert verify_from({str(package)!r}, trust=[{str(public)!r}]).ok
        assert callable(evidence.verify) and callable(evidence.capture)
        from evidence import capture, verify, verify_strict
        assert callable(capture) and callable(verify) and callable(verify_strict)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

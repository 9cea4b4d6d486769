"""Property: any mutation of any custody line either fails verification or is reported.

"Reported" means the report's custody findings differ from the intact
package's: the changed event is shown as it now reads. (The last holder can
always rewrite their own last, unsigned event; docs/custody.md says so. What
they cannot do is change anything and leave the report as it was.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence.attach import append_event
from evidence.keys import generate_keypair, public_key_pem
from evidence.verifying import Outcome, verify

LOG = "evidence/custody.jsonl"
MUTATIONS = st.sampled_from(["flip", "range", "truncate", "insert", "delete", "replace"])


@pytest.fixture(scope="module")
def custody_package(sealed_package, signer, tmp_path_factory):
    """A signed package whose log has a trusted courier's event and an unsigned one."""
    base = tmp_path_factory.mktemp("custody")
    pkg = base / sealed_package.name
    shutil.copytree(sealed_package, pkg)
    courier = generate_keypair()
    courier_pub = base / "courier.pub"
    courier_pub.write_bytes(public_key_pem(courier.public_key()))
    append_event(pkg, event="transferred", note="USB drive", actor="Courier", key=courier)
    append_event(pkg, event="checked", note="hashes compared")
    return pkg, [signer.pub, courier_pub]


def _shown(report) -> list[str]:
    return [f.text for f in report.check("custody").details]


def test_any_mutation_of_any_custody_line_fails_or_is_reported(custody_package):
    pkg, trust = custody_package
    original = verify(pkg, trust=trust)
    assert original.outcome is Outcome.VERIFIED, original.to_text()
    lines = (pkg / LOG).read_bytes().split(b"\n")[:-1]

    @given(st.data())
    def run(data) -> None:
        index = data.draw(st.integers(0, len(lines) - 1), label="line")
        line = lines[index]
        kind = data.draw(MUTATIONS, label="mutation")
        pos = data.draw(st.integers(0, len(line) - 1), label="offset")
        if kind == "flip":
            bit = data.draw(st.integers(1, 255), label="xor")
            mutated = line[:pos] + bytes([line[pos] ^ bit]) + line[pos + 1 :]
        elif kind == "range":
            size = data.draw(st.integers(1, 32), label="size")
            mutated = (
                line[:pos] + data.draw(st.binary(min_size=1, max_size=32)) + line[pos + size :]
            )
        elif kind == "truncate":
            mutated = line[:pos]
        elif kind == "insert":
            mutated = line[:pos] + data.draw(st.binary(min_size=1, max_size=16)) + line[pos:]
        elif kind == "delete":
            mutated = line[:pos] + line[pos + 1 :]
        else:
            mutated = data.draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
        if mutated == line:
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / pkg.name
            shutil.copytree(pkg, copy)
            changed = [*lines[:index], mutated, *lines[index + 1 :]]
            (copy / LOG).write_bytes(b"".join(x + b"\n" for x in changed))
            report = verify(copy, trust=trust)
            report.to_text().encode("utf-8")  # never a crash, never unprintable
            assert report.outcome is not Outcome.VERIFIED or _shown(report) != _shown(original), (
                index,
                kind,
                mutated,
            )

    run()

"""A short, bounded fuzz pass over every reader (longer runs: docs/testing.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from targets import TARGETS


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_reader_survives_arbitrary_bytes(name):
    @given(st.binary(max_size=4096))
    def run(data: bytes) -> None:
        TARGETS[name](data)

    run()


@given(st.binary(min_size=1, max_size=2048), st.integers(min_value=0))
def test_mutated_real_tokens_never_crash(data, position):
    """Bytes spliced into a structurally valid DER prefix reach deeper parser states."""
    prefix = bytes.fromhex("3082") + len(data).to_bytes(2, "big") + bytes.fromhex("3003020100")
    TARGETS["token"](prefix + data[position % len(data) :])

"""The one safe-display function (issue 10): nothing from a package reaches a
terminal, HTML or PDF able to move the cursor, reorder text or forge a line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evidence.display import safe


def test_escape_sequences_become_visible() -> None:
    assert safe("\x1b[8mhidden\x1b[0m") == "\\x1b[8mhidden\\x1b[0m"
    assert safe("PASS\nFAIL") == "PASS\\nFAIL"
    assert safe("a\x9bb") == "a\\x9bb"  # C1 CSI


def test_bidi_and_invisible_characters_become_visible() -> None:
    assert safe("gov\u202egpj.exe") == "gov⟪U+202E⟫gpj.exe"
    assert safe("a\u200bb\u2066c\ufeff") == "a⟪U+200B⟫b⟪U+2066⟫c⟪U+FEFF⟫"
    assert safe("\ud800") == "⟪U+D800⟫"  # a lone surrogate
    assert safe("a\u00a0b") == "a⟪U+00A0⟫b"


def test_ordinary_text_in_any_script_is_kept() -> None:
    for text in ("Statement on detentions", "新疆 拘留", "ئۇيغۇرچە", "Заявление", "é ü"):
        assert safe(text) == text


def test_a_literal_backslash_cannot_imitate_a_mark() -> None:
    assert safe("\\x1b") != safe("\x1b")


def test_long_values_are_cut_with_a_note() -> None:
    out = safe("x" * 5000, max_length=100)
    assert out.startswith("x" * 100) and "4900 more characters not shown" in out


@given(st.text())
def test_result_is_one_printable_line(text: str) -> None:
    out = safe(text, max_length=None)
    out.encode("utf-8")  # never a lone surrogate
    assert all(ch.isprintable() or ch == " " or ch == "\u3000" for ch in out)
    assert "\n" not in out and "\r" not in out

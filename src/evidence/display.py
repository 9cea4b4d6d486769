"""The one safe-display function: every string that came from a server or a
package passes through :func:`safe` before a terminal, an HTML page or a PDF
sees it.

A hostile server or package author controls titles, URLs, headers, custody
notes, certificate names and even directory names. Printed raw, an escape
sequence can rewrite the screen (a fake "VERIFIED" line, hidden text), a
right-to-left override can make ``gpj.exe`` read as ``exe.jpg``, and a line
break can forge a whole report line. :func:`safe` keeps every character
that is ordinary visible text (any script: Chinese, Uyghur, Russian) and
turns everything else into a visible mark:

- C0/C1 control characters and DEL: ``\\x1b``, ``\\n``, ``\\x9b``;
- bidi controls, zero-width and other format characters, unusual spaces,
  private-use, unassigned and lone surrogate code points: ``⟪U+202E⟫``.

The result is always one line, and encodes to UTF-8 without error.
"""

from __future__ import annotations

import unicodedata

__all__ = ["safe"]

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Spaces that read as a plain space in every script we expect.
_PLAIN_SPACES = {" ", "\u3000"}
_MARKED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}
DEFAULT_MAX_LENGTH = 2000


def _mark(ch: str) -> str:
    cp = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if cp < 0x20 or 0x7F <= cp < 0xA0:
        return f"\\x{cp:02x}"
    return f"\u27ea U+{cp:04X}\u27eb".replace(" ", "")


def safe(value: object, *, max_length: int | None = DEFAULT_MAX_LENGTH) -> str:
    """``value`` as one line of harmless, visible text.

    Args:
        value: any value; non-strings are shown with ``str()``.
        max_length: cut the *result* after this many characters and say how
            much was left out; ``None`` keeps everything.
    """
    text = value if isinstance(value, str) else str(value)
    out: list[str] = []
    length = 0
    for index, ch in enumerate(text):
        if ch == "\\" or (
            ch not in _PLAIN_SPACES and unicodedata.category(ch) in _MARKED_CATEGORIES
        ):
            piece = _mark(ch)
        else:
            piece = ch
        if max_length is not None and length + len(piece) > max_length:
            out.append(f"… [{len(text) - index} more characters not shown]")
            break
        out.append(piece)
        length += len(piece)
    return "".join(out)

"""Text from packs, keys and traces made safe to print on a terminal.

A pack's author chooses every string in its manifest and references; a newline in
``author`` could print a fake ``signature: trusted`` line, an ANSI escape could erase
lines, a bidi override could reorder what the reader sees. :func:`printable` turns
every character that moves the cursor, changes the terminal's state or reorders text
into a visible escape (``\\n``, ``\\x1b``, ``\\u202e``), so one field prints as one line
of exactly the characters it holds. :func:`printable_json` does the same for JSON
output without changing the values it encodes.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

# Unicode categories that never draw a glyph of their own: controls (C0, DEL, C1 such
# as U+0085 NEL and U+009B CSI), format characters (bidi overrides and isolates
# U+202A–U+202E / U+2066–U+2069, marks, zero-width characters, the BOM), lone
# surrogates (unprintable as UTF-8) and the line and paragraph separators U+2028/U+2029.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(char: str) -> bool:
    """True for a character that :func:`printable` escapes."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # JSON spells astral code points as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _replace_unsafe(text: str, escape: Callable[[str], str], keep: str = "") -> str:
    # str.isprintable() is False for a superset of the unsafe characters (it also refuses
    # e.g. U+3000), so the common case costs one C-level scan.
    if text.isprintable():
        return text
    return "".join(
        escape(c) if c not in keep and unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text
    )


def printable(value: Any) -> str:
    """``str(value)`` with every control, format and separator character escaped.

    The result holds no character that a terminal acts on, so it prints as exactly one
    line. Backslashes are kept as they are (paths stay readable); the escapes are only
    there to show that something invisible was in the text.
    """
    text = value if isinstance(value, str) else str(value)
    return _replace_unsafe(text, _escape)


def printable_json(data: Any, *, indent: int | None = 2, sort_keys: bool = True) -> str:
    """JSON text of ``data`` (non-ASCII kept readable) with every unsafe character as ``\\uXXXX``.

    ``json.dumps(ensure_ascii=False)`` escapes C0 controls but leaves C1 controls,
    bidi overrides and U+2028/U+2029 raw; here they are escaped too, so the JSON decodes
    to the same values and prints safely.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    # json.dumps escapes every C0 control inside strings: a raw newline is indentation.
    return _replace_unsafe(text, _json_escape, keep="\n")


__all__ = ["is_unsafe", "printable", "printable_json"]

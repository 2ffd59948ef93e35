"""``printable`` and ``printable_json``: text from packs, keys and traces made safe for a terminal."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lantern_studio.core.printable import is_unsafe, printable, printable_json

UNSAFE = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Every character of the attacks, and the rest of each class.
ATTACKS = ["\n", "\r", "\t", "\x1b", "\x07", "\x7f", "\x85", "\x9b", "\u200e", "\u200f", "\u061c", "\ufeff",
           *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029", "\ud800"]  # fmt: skip


@pytest.mark.parametrize("char", ATTACKS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_attack_character_is_escaped(char):
    shown = printable(f"a{char}b")
    assert shown.startswith("a\\") and shown.endswith("b") and not any(is_unsafe(c) for c in shown)


def test_common_escapes_read_as_python_would_write_them():
    assert printable("a\nb\tc\x1b[2J\u202ed\U000e0001") == "a\\nb\\tc\\x1b[2J\\u202ed\\U000e0001"


def test_printable_text_is_unchanged_including_non_ascii_and_backslashes():
    text = "Ann <ann@example.org> — café 日本語 C:\\keys\\a.pem"
    assert printable(text) == text


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.characters(codec=None, categories=None)))
def test_any_text_prints_as_one_line_of_safe_characters(text):
    shown = printable(text)
    assert not any(unicodedata.category(c) in UNSAFE for c in shown)
    assert len(f"{shown}\n".splitlines()) == 1  # no character any line splitter breaks at
    if text.isprintable():
        assert shown == text


@settings(max_examples=300, deadline=None)
@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec=None)),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                         max_leaves=12))  # fmt: skip
def test_printable_json_decodes_to_the_same_value_and_prints_safely(data):
    text = printable_json(data)
    assert json.loads(text) == data
    assert not any(unicodedata.category(c) in UNSAFE for c in text.replace("\n", ""))

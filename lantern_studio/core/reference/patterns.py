"""Reference-supplied regexes (Never detectors, Blip triggers, probe checks) that cannot hang a run.

Authors write Python ``re`` syntax, compiled case-insensitively, and a :class:`Pattern` answers
exactly as Python's ``re`` would, with two engines behind it:

* **RE2** (google-re2), linear in the text, whenever the pattern can be written in RE2's syntax
  with the same meaning. The pattern is translated token by token (``\\s`` spelled out, ``\\Z``
  as ``\\z``, ``{,n}`` as ``{0,n}``, classes rebuilt from code points), and RE2 only answers for
  texts where its answer provably equals Python's: ``\\b \\w \\d \\s`` and their negations, and
  classes with non-ASCII members, are ASCII-only in RE2, so such a pattern goes to RE2 only for
  an ASCII text; a pattern with ``$`` (which Python also matches before a final newline) only
  for a text that does not end in ``\\n``; and ``finditer`` hands over to the fallback at the
  first empty match, whose iteration rules differ.
* **mrab-regex** with a hard time budget (:data:`SEARCH_BUDGET_SECONDS`) for everything else:
  look-arounds, backreferences, atomic groups, and the texts above. It follows ``re``'s
  semantics (its version 0 is made for that).

When the budget runs out, ``search`` answers "no match" and ``finditer`` stops: a detector or a
trigger simply does not fire for that call and the run goes on. :meth:`Pattern.search_or_timeout`
raises :class:`PatternTimeout` instead, so that a probe can report the pattern as too slow.

Known differences from ``re`` (shared by both engines): Python's ``re`` also folds ``i`` with the
dotless ``ı`` and ``I`` with ``İ``, where RE2 and mrab-regex use Unicode simple case folding and
keep them apart; and ``\\B`` matches an empty text here, as in RE2, mrab-regex and Perl
(Python's ``re`` here never matches ``\\B`` on an empty string).
"""

from __future__ import annotations

import re
import string
import time
import warnings
from collections.abc import Iterator
from typing import Any

import re2
import regex

SEARCH_BUDGET_SECONDS = 0.1  # per search of the fallback engine; RE2 needs none
MAX_PATTERN_CHARS = 16 * 1024

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False
_FALLBACK_FLAGS = regex.IGNORECASE | regex.V0

# Python's \s for str, restricted to ASCII (RE2's \s lacks \v and \x1c-\x1f).
_SPACE_ITEMS = r"\x{9}-\x{d}\x{1c}-\x{20}"
_NOT_SPACE_ITEMS = r"\x{0}-\x{8}\x{e}-\x{1b}\x{21}-\x{10ffff}"
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


class PatternError(ValueError):
    """Neither engine can compile the pattern."""


class PatternTimeout(RuntimeError):
    """The fallback engine ran out of its time budget."""


class Pattern:
    """A compiled reference regex with the part of ``re.Pattern``'s interface callers use."""

    __slots__ = ("pattern", "flags", "_re2", "_fallback", "_unicode_sensitive", "_has_dollar")

    def __init__(self, source: str) -> None:
        if len(source) > MAX_PATTERN_CHARS:
            raise PatternError(f"longer than {MAX_PATTERN_CHARS // 1024} KB")
        with warnings.catch_warnings():  # "possible nested set" and the like: nothing an author sees
            warnings.simplefilter("ignore", FutureWarning)
            checked = re.compile(source, re.IGNORECASE)  # the syntax (and the errors) authors know
        self.pattern = source
        self.flags = checked.flags
        translated = _translate(source)
        self._re2: Any = None
        self._unicode_sensitive = self._has_dollar = False
        if translated is not None:
            re2_source, self._unicode_sensitive, self._has_dollar = translated
            try:
                self._re2 = re2.compile(re2_source, _RE2_OPTIONS)
            except re2.error:
                self._re2 = None
        try:
            self._fallback: Any = regex.compile(source, _FALLBACK_FLAGS)
        except (regex.error, RecursionError, OverflowError, MemoryError, ValueError, TypeError) as exc:
            if self._re2 is None:
                raise PatternError(str(exc) or type(exc).__name__) from None
            self._fallback = None

    @property
    def engine(self) -> str:
        """``"re2"`` when RE2 can run this pattern (for the texts it answers exactly), else ``"regex"``."""
        return "re2" if self._re2 is not None else "regex"

    def _re2_answers(self, text: str) -> bool:
        if self._re2 is None:
            return False
        if self._fallback is None:  # RE2 alone took the pattern: it answers everything
            return True
        if self._has_dollar and text.endswith("\n"):
            return False
        if self._unicode_sensitive and not text.isascii():
            return False
        return _encodable(text)

    def search_or_timeout(self, text: str) -> Any:
        """The first match or None; raises :class:`PatternTimeout` when the budget runs out."""
        if self._re2_answers(text):
            try:
                return self._re2.search(text)
            except UnicodeEncodeError:  # a lone surrogate, and no fallback to read it
                return None
        try:
            return self._fallback.search(text, timeout=SEARCH_BUDGET_SECONDS)
        except TimeoutError:
            raise PatternTimeout(f"the pattern /{self.pattern}/ took too long") from None

    def search(self, text: str) -> Any:
        """The first match, or None (also when the time budget ran out)."""
        try:
            return self.search_or_timeout(text)
        except PatternTimeout:
            return None

    def finditer(self, text: str) -> Iterator[Any]:
        """Matches left to right as ``re.finditer``; stops early if the time budget runs out."""
        start = 0
        if self._re2_answers(text):
            try:
                for m in self._re2.finditer(text):
                    if m.start() == m.end() and self._fallback is not None:
                        start = m.start()  # RE2's wrapper steps over empty matches differently
                        break
                    yield m
                else:
                    return
            except UnicodeEncodeError:
                return
        deadline = time.monotonic() + SEARCH_BUDGET_SECONDS
        try:
            for m in self._fallback.finditer(text, pos=start, timeout=SEARCH_BUDGET_SECONDS):
                yield m
                if time.monotonic() > deadline:
                    return
        except TimeoutError:
            return

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and (self.pattern, self.flags) == (other.pattern, other.flags)

    def __hash__(self) -> int:
        return hash((self.pattern, self.flags))

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r}, engine={self.engine!r})"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: RE2 reads UTF-8 only
        return False
    return True


# --------------------------------------------------------------------------- translation to RE2


class _Unsupported(Exception):
    """A construct RE2 cannot express with Python's meaning."""


def _translate(src: str) -> tuple[str, bool, bool] | None:
    """``(RE2 source, unicode sensitive, has $)`` with the meaning Python gives ``src``, or None.

    ``src`` already compiled with Python's ``re``, so only valid syntax reaches here. One pass,
    left to right; anything not understood is refused rather than guessed.
    """
    try:
        return _Translator(src).run()
    except (_Unsupported, IndexError, ValueError):
        return None


class _Translator:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.out: list[str] = []
        self.sensitive = False
        self.dollar = False

    def run(self) -> tuple[str, bool, bool]:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c == "\\":
                self._escape()
            elif c == "[":
                self._class()
            elif c == "(":
                self._group()
            elif c in ")|.^":
                self.out.append(c)
                self.i += 1
            elif c == "$":
                self.dollar = True
                self.out.append(c)
                self.i += 1
            elif c in "*+?":
                self.out.append(c)
                self.i += 1
                self._quantifier_suffix()
            elif c == "{":
                self._brace()
            else:
                self.out.append(_literal(ord(c)))
                self.i += 1
        return "".join(self.out), self.sensitive, self.dollar

    def _quantifier_suffix(self) -> None:
        nxt = self.src[self.i : self.i + 1]
        if nxt == "?":
            self.out.append("?")
            self.i += 1
        elif nxt == "+":  # possessive
            raise _Unsupported

    def _brace(self) -> None:
        """``{m}``, ``{m,}``, ``{,n}``, ``{m,n}`` as Python reads them; any other ``{`` is literal."""
        src, j = self.src, self.i + 1
        lo_start = j
        while j < len(src) and src[j] in string.digits:
            j += 1
        lo = src[lo_start:j]
        comma = j < len(src) and src[j] == ","
        hi = lo
        if comma:
            j += 1
            hi_start = j
            while j < len(src) and src[j] in string.digits:
                j += 1
            hi = src[hi_start:j]
        if src[self.i + 1 : self.i + 2] == "}" or j >= len(src) or src[j] != "}":
            self.out.append(_literal(ord("{")))
            self.i += 1
            return
        low = str(int(lo)) if lo else "0"
        high = str(int(hi)) if hi else ""
        self.out.append(f"{{{low},{high}}}" if comma else f"{{{low}}}")
        self.i = j + 1
        self._quantifier_suffix()

    def _escape(self) -> None:
        e = self.src[self.i + 1]
        self.i += 2
        if e in "dDwWbB":
            self.sensitive = True
            self.out.append("\\" + e)
        elif e == "s":
            self.sensitive = True
            self.out.append(f"[{_SPACE_ITEMS}]")
        elif e == "S":
            self.sensitive = True
            self.out.append(f"[{_NOT_SPACE_ITEMS}]")
        elif e == "A":
            self.out.append(r"\A")
        elif e == "Z":
            self.out.append(r"\z")
        else:
            self.out.append(_literal(self._escaped_char(e)))

    def _escaped_char(self, e: str) -> int:
        """The code point of a one-character escape (``\\n``, ``\\x41``, ``\\.``) whose letter is ``e``."""
        if e in _SIMPLE_ESCAPES and e != "b":
            return _SIMPLE_ESCAPES[e]
        if e in _HEX_DIGITS:
            n = _HEX_DIGITS[e]
            digits = self.src[self.i : self.i + n]
            self.i += n
            return int(digits, 16)
        if e in string.ascii_letters or e in string.digits:  # \N{…}, backreferences, octal
            raise _Unsupported
        return ord(e)

    def _class(self) -> None:
        src = self.src
        self.i += 1
        negate = src[self.i] == "^"
        if negate:
            self.i += 1
        items: list[str] = []
        first = True
        while True:
            if src[self.i] == "]" and not first:
                self.i += 1
                break
            first = False
            atom = self._class_atom()
            if src[self.i] == "-" and src[self.i + 1] != "]":
                self.i += 1
                end = self._class_atom()
                if not (isinstance(atom, int) and isinstance(end, int)):
                    raise _Unsupported
                if end >= 0x80:
                    self.sensitive = True
                items.append(f"\\x{{{atom:x}}}-\\x{{{end:x}}}")
            elif isinstance(atom, int):
                items.append(f"\\x{{{atom:x}}}")
            else:
                items.append(atom)
        self.out.append("[" + ("^" if negate else "") + "".join(items) + "]")

    def _class_atom(self) -> int | str:
        """A code point, or the RE2 text of a class escape (``\\d``…)."""
        c = self.src[self.i]
        if c != "\\":
            self.i += 1
            if ord(c) >= 0x80:
                self.sensitive = True
            return ord(c)
        e = self.src[self.i + 1]
        self.i += 2
        if e in "dDwW":
            self.sensitive = True
            return "\\" + e
        if e == "s":
            self.sensitive = True
            return _SPACE_ITEMS
        if e == "S":
            self.sensitive = True
            return _NOT_SPACE_ITEMS
        if e == "b":
            return 8  # backspace inside a class
        code = self._escaped_char(e)
        if code >= 0x80:
            self.sensitive = True
        return code

    def _group(self) -> None:
        src = self.src
        if src[self.i + 1 : self.i + 2] != "?":
            self.out.append("(")
            self.i += 1
            return
        kind = src[self.i + 2]
        if kind == ":":
            self.out.append("(?:")
            self.i += 3
        elif kind == "P" and src[self.i + 3] == "<":
            end = src.index(">", self.i)
            self.out.append(src[self.i : end + 1])
            self.i = end + 1
        elif kind == "#":  # a comment runs to the first unescaped ")"
            j = self.i + 3
            while src[j] != ")":
                j += 2 if src[j] == "\\" else 1
            self.i = j + 1
        elif kind in "imsxauL-":
            j = self.i + 2
            while src[j] in "imsxauL-":
                j += 1
            flags = src[self.i + 2 : j]
            if set(flags) - set("ims-") or src[j] not in ":)":
                raise _Unsupported
            self.out.append("(?" + flags + src[j])
            self.i = j + 1
        else:  # look-arounds, named backreferences, conditionals, atomic groups
            raise _Unsupported


def _literal(code: int) -> str:
    char = chr(code)
    if char in string.ascii_letters or char in string.digits or char == " " or code >= 0x80:
        return char if not 0xD800 <= code <= 0xDFFF else f"\\x{{{code:x}}}"
    return f"\\x{{{code:x}}}"


def compile_pattern(source: str) -> Pattern:
    """A :class:`Pattern` for ``source``; ``re.error`` for bad syntax, PatternError if no engine takes it."""
    return Pattern(source)


__all__ = ["MAX_PATTERN_CHARS", "Pattern", "PatternError", "PatternTimeout", "SEARCH_BUDGET_SECONDS",
           "compile_pattern"]

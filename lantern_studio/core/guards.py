"""Guards the closed loop applies to the plant's next-token scores, so that steering toward
the reference never turns into a copy of it or into a broken answer.

A guard answers one question per token: which token ids must not come next. Each is pure
(text in, ids out), cheap per token (it looks only at the tail of the answer and at small
precomputed tables of the vocabulary), and tested without a model.

- ``CopyGuard``: no more than ``max_run`` consecutive words of the reference (that the
  prompt does not contain). The sidecar has read the reference and small models love to
  recite their context; guidance amplifies exactly that.
- ``FormGuard``: no Markdown heading at a line start, no speaker label copied from the
  reference's examples, no run of blank lines.
- ``RepeatGuard``: no token that would repeat a span of ``ngram`` tokens already in the
  answer (an answer that says the same sentence three times is not an answer).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from .answer_checks import words

_LABEL = re.compile(r"^[ \t]*((?:\*\*|__)?[^\W\d_][\w .'’-]{0,30}?:(?:\*\*|__)?)\s", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n[ \t\r]*\n[ \t\r]*\n")
_TAIL_CHARS = 400


class Vocabulary:
    """Decoded token pieces and the lookup tables the guards share (built once per model)."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.text = [p.decode("utf-8", "replace") for p in pieces]
        # stripped lower-case word-start piece -> ids, separately for pieces with and without
        # leading whitespace (only the former start a new word right after a letter)
        self.spaced: dict[str, list[int]] = defaultdict(list)
        self.bare: dict[str, list[int]] = defaultdict(list)
        self.heading: list[int] = []  # pieces that start a heading at a line start
        self.inner_heading: list[int] = []  # pieces holding "\n#": a heading inside the piece
        self.newline: list[int] = []  # pieces holding a newline
        for i, t in enumerate(self.text):
            stripped = t.lstrip()
            if stripped and stripped[0].isalnum():
                key = stripped.lower()
                (self.spaced if stripped != t else self.bare)[key].append(i)
            if t.lstrip(" \t").startswith("#"):
                self.heading.append(i)
            if "\n" in t:
                self.newline.append(i)
                if re.search(r"\n[ \t]{0,3}#", t):
                    self.inner_heading.append(i)
        self._prefix_cache: dict[tuple[str, bool], list[int]] = {}

    def starting(self, word: str, spaced_only: bool) -> list[int]:
        """Ids of pieces that begin ``word`` (a non-empty prefix of it, or the word itself)."""
        key = (word, spaced_only)
        if key not in self._prefix_cache:
            out: list[int] = []
            tables = (self.spaced,) if spaced_only else (self.spaced, self.bare)
            for n in range(1, len(word) + 1):
                for table in tables:
                    out.extend(table.get(word[:n], ()))
            self._prefix_cache[key] = out
        return self._prefix_cache[key]


class CopyGuard:
    """Bans the start of the next word when the answer already ends with ``max_run``
    consecutive words of the reference and the reference goes on with that word."""

    def __init__(self, vocab: Vocabulary, source: str, prompt: str, max_run: int) -> None:
        self.vocab = vocab
        self.max_run = max_run
        allowed = _grams(words(prompt), max_run + 1)
        self.next_words: dict[tuple[str, ...], set[str]] = defaultdict(set)
        src = words(source)
        for i in range(len(src) - max_run):
            gram = tuple(src[i:i + max_run + 1])
            if gram not in allowed:
                self.next_words[gram[:-1]].add(gram[-1])

    def banned(self, text: str) -> list[int]:
        if self.max_run <= 0 or not self.next_words:
            return []
        tail = text[-_TAIL_CHARS:]
        seq = words(tail)
        if len(seq) < self.max_run:
            return []
        following = self.next_words.get(tuple(seq[-self.max_run:]))
        if not following:
            return []
        # After a letter the bare spellings are banned too: otherwise the model glues the
        # copied word on ("muchparacetamol") and the copy goes on in non-words.
        out: list[int] = []
        for word in following:
            out.extend(self.vocab.starting(word, spaced_only=False))
        return out


class FormGuard:
    """No heading at a line start, no speaker label of the reference's examples at a line
    start (``**Pharmacist:**``), no run of blank lines."""

    def __init__(self, vocab: Vocabulary, source: str) -> None:
        self.vocab = vocab
        labels = {m.group(1).strip() for m in _LABEL.finditer(source)}
        # a label line in the reference is markup of its examples, not something to answer with
        self.label_starts: list[int] = []
        for label in labels:
            for i, t in enumerate(vocab.text):
                s = t.lstrip()
                if s and len(s) <= len(label) and label.lower().startswith(s.lower()) and not s[0].isalnum():
                    self.label_starts.append(i)
        self.label_starts = sorted(set(self.label_starts))

    def banned(self, text: str) -> list[int]:
        out: list[int] = list(self.vocab.inner_heading)
        at_line_start = not text.strip() or text.rstrip(" \t").endswith("\n")
        if at_line_start:
            out.extend(self.vocab.heading)
            out.extend(self.label_starts)
        tail = text[-8:]
        out.extend(i for i in self.vocab.newline if _BLANK_RUN.search(tail + self.vocab.text[i]))
        return out


class RepeatGuard:
    """Bans the token that would complete a repeat of an ``ngram``-token span of the answer."""

    def __init__(self, ngram: int) -> None:
        self.n = ngram

    def banned(self, answer: Sequence[int]) -> list[int]:
        n = self.n
        if n <= 1 or len(answer) < n:
            return []
        key = tuple(answer[-(n - 1):])
        out = []
        for i in range(len(answer) - n + 1):
            if tuple(answer[i:i + n - 1]) == key:
                out.append(answer[i + n - 1])
        return out


def _grams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}


__all__ = ["Vocabulary", "CopyGuard", "FormGuard", "RepeatGuard"]

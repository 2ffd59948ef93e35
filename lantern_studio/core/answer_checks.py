"""What a person sees at a glance in an answer: a copy of the reference, or a broken answer.

A probe passes only if its patterns hold *and* the answer neither leaks the reference nor is
degenerate. Both checks are pure functions of text, linear in its length, and give a short
reason (or None) so that reports can say what went wrong.
"""

from __future__ import annotations

import re
from collections import Counter

LEAK_RUN = 9  # this many consecutive words of the reference, not in the prompt, are a copy
REPEATS = 3  # one sentence this many times is a loop, not an answer
NOTE_WRAPPERS = ("(note:", "[note:", "reminder:")  # blip wrappers an answer must not show

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n[ \t\r]*\n[ \t\r]*\n")
_SENTENCE_END = re.compile(r"(?<![.!?…])[.!?…]++(?=\s|$)|\n")  # possessive: linear on "....…"
_TEMPLATE_MARK = re.compile(r"<\|[a-z_]{2,20}\|>|<(?:start|end)_of_turn>")


def words(text: str) -> list[str]:
    """Lower-case words (letters and digits, inner apostrophes kept)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def _ngrams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}


def copied_run(answer: str, source: str, exclude: str = "", n: int = LEAK_RUN) -> str | None:
    """The longest run of at least ``n`` consecutive words of ``answer`` that also stands in
    ``source`` (and is not made only of ``exclude``'s n-grams), or None."""
    src = _ngrams(words(source), n) - _ngrams(words(exclude), n)
    if not src:
        return None
    ans = words(answer)
    best: tuple[int, int] | None = None
    i = 0
    while i + n <= len(ans):
        if tuple(ans[i:i + n]) not in src:
            i += 1
            continue
        j = i + 1  # extend the run while each next window is still a copy
        while j + n <= len(ans) and tuple(ans[j:j + n]) in src:
            j += 1
        span = (i, j + n - 1)
        if best is None or span[1] - span[0] > best[1] - best[0]:
            best = span
        i = j
    return None if best is None else " ".join(ans[best[0]:best[1]])


def leak(answer: str, rendered_reference: str, prompt: str = "") -> str | None:
    """Why ``answer`` reads as the reference itself rather than an answer, or None: a
    Markdown heading, a run of ``LEAK_RUN`` words of the rendered reference that the prompt
    does not contain, a blip's wrapper, or a chat template's marker."""
    m = _HEADING.search(answer)
    if m:
        line = answer[m.start():].split("\n", 1)[0].strip()
        return f"a Markdown heading: {_short(line)!r}"
    lowered = answer.lower()
    for wrapper in NOTE_WRAPPERS:
        if wrapper in lowered and wrapper not in prompt.lower():
            return f"a blip's wrapper: {wrapper!r}"
    m = _TEMPLATE_MARK.search(answer)
    if m:
        return f"a chat template marker: {m.group(0)!r}"
    run = copied_run(answer, rendered_reference, prompt) if rendered_reference else None
    if run:
        return f"{len(run.split())} words copied from the reference: {_short(run)!r}"
    return None


def degenerate(answer: str) -> str | None:
    """Why ``answer`` is not a usable answer, or None: empty, runs of blank lines, one
    sentence ``REPEATS`` or more times, or a phrase looping on itself."""
    if not answer.strip():
        return "empty"
    if _BLANK_RUN.search(answer):
        return "runs of blank lines"
    sentences = [" ".join(words(s)) for s in _SENTENCE_END.split(answer)]
    counts = Counter(s for s in sentences if s)
    if counts:
        sentence, n = counts.most_common(1)[0]
        if n >= REPEATS:
            return f"one sentence {n} times: {_short(sentence)!r}"
    loop = _looping_phrase(words(answer))
    if loop:
        return f"a phrase looping on itself: {_short(loop)!r}"
    return None


def _looping_phrase(seq: list[str], max_len: int = 8) -> str | None:
    """A word said 5 times back to back (``no, no, no, no, no``), or a phrase of 2–8 words
    said 4 times back to back (``1 2 1 2 1 2 1 2``), wherever the run starts."""
    for size in range(1, max_len + 1):
        need = 5 if size == 1 else 4
        for start in range(size):
            run = 1
            for i in range(start + size, len(seq) - size + 1, size):
                if seq[i:i + size] == seq[i - size:i]:
                    run += 1
                    if run >= need:
                        return " ".join(seq[i:i + size])
                else:
                    run = 1
    return None


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["LEAK_RUN", "REPEATS", "words", "copied_run", "leak", "degenerate"]

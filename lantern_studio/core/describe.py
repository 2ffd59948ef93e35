"""Plain words for what the engine measures: an error as "N× less likely", a probe's failing
regex as an example of what it looks for. The studio's tooltips and cells read these."""

from __future__ import annotations

import math
import re

from .reference.patterns import compile_pattern

try:  # the regex parser of the standard library (public as sre_parse before 3.11)
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

AGREES = 0.1  # |error| below this (10 %) reads as "about as likely"
FAILED_RE = re.compile(r"\A(expect|forbid) /(.*)/\Z", re.S)
MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 40
_DIGITS = "123456789"


def likelihood_factor(error: float) -> float:
    """How many times less (error > 0) or more (error < 0) likely the reference makes a token."""
    return math.exp(min(abs(error), 50.0))


def format_factor(factor: float) -> str:
    if factor >= 1000:
        return "over 1000×"
    if factor >= 10:
        return f"{factor:.0f}×"
    return f"{factor:.1f}×"


def describe_error(error: float | None, what: str = "word") -> str:
    """"the reference makes this word 12× less likely" — the error in a sentence."""
    if error is None:
        return f"this {what} was not scored against the reference"
    if abs(error) < AGREES:
        return f"the reference finds this {what} about as likely as the model does"
    direction = "less" if error > 0 else "more"
    return f"the reference makes this {what} {format_factor(likelihood_factor(error))} {direction} likely"


def pattern_examples(pattern: str, limit: int = MAX_EXAMPLES) -> list[str]:
    """Up to ``limit`` short texts the pattern matches, one per alternative (optional parts kept)."""
    try:
        parsed = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return []
    try:
        found = _examples(list(parsed), 0, limit)
    except RecursionError:
        return []
    out: list[str] = []
    for text in found:
        text = text.strip()[:MAX_EXAMPLE_CHARS]
        if text and text not in out:
            out.append(text)
    return out[:limit]


def _examples(nodes, depth: int, limit: int) -> list[str]:
    """Texts the parsed nodes match: each alternative once, optional parts present, repeats
    at their minimum; at most ``limit`` of them."""
    if depth > 40:
        return [""]
    results = [""]
    for op, av in nodes:
        options = _node_options(op, av, depth, limit)
        if not options:
            continue
        results = [r + o for r in results for o in options][:limit]
    return results


def _node_options(op, av, depth: int, limit: int) -> list[str]:
    if op == _sre.LITERAL:
        return [chr(av)]
    if op in (_sre.NOT_LITERAL, _sre.ANY):
        return ["…"]
    if op == _sre.IN:
        return [_class_example(av)]
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT)):
        lo, hi, sub = av
        pieces = _examples(sub, depth + 1, limit)
        if lo == 0 and hi != 1:  # x* or x{0,n}: anything or nothing
            return ["…"] if any(p == "…" for p in pieces) else [""]
        count = max(lo, 1)
        out = []
        for piece in pieces:
            if len(piece) == 1 and piece.isdigit():
                out.append(_DIGITS[:min(count, 4)])
            elif piece == "…":
                out.append("…")
            else:
                out.append(piece * min(count, 3))
        return out
    if op == _sre.SUBPATTERN:
        return _examples(av[-1], depth + 1, limit)
    if op == _sre.BRANCH:
        out = []
        for branch in av[1]:
            out.extend(_examples(branch, depth + 1, limit))
        return out or [""]
    if op == getattr(_sre, "ATOMIC_GROUP", None):
        return _examples(av, depth + 1, limit)
    return []  # anchors, back references, look-arounds: nothing to show


def _class_example(items) -> str:
    for op, av in items:
        if op == _sre.LITERAL:
            return chr(av)
        if op == _sre.RANGE:
            return chr(av[0])
        if op == _sre.CATEGORY:
            if av == _sre.CATEGORY_DIGIT:
                return "1"
            if av == _sre.CATEGORY_SPACE:
                return " "
            if av == _sre.CATEGORY_WORD:
                return "a"
        if op == _sre.NEGATE:
            return "…"
    return "…"


def describe_probe_failure(failed: str | None, answer: str = "") -> str:
    """A probe's failing expectation in words: 'did not mention anything like “4 g” or “4000 mg”'
    for ``expect /…/``, 'said “aspirin”, which the probe forbids' for ``forbid /…/``; any other
    reason (a failed run) is returned as it is."""
    if not failed:
        return "passed"
    m = FAILED_RE.match(failed)
    if not m:
        return failed
    kind, pattern = m.groups()
    if kind == "forbid":
        try:  # the reference's own pattern: run it in the linear engine, within its budget
            found = compile_pattern(pattern).search(answer) if answer else None
        except (ValueError, re.error):
            found = None
        if found and found.group(0).strip():
            return f"said “{_short(found.group(0))}”, which the probe forbids"
        examples = pattern_examples(pattern)
        return f"said something the probe forbids ({_or(examples)})" if examples else \
            "said something the probe forbids"
    examples = pattern_examples(pattern)
    if not examples:
        return "did not say what the probe expects"
    return f"did not mention anything like {_or(examples)}"


def _short(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _or(examples: list[str]) -> str:
    quoted = [f"“{e}”" for e in examples]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def short_text(text: str, limit: int = 36) -> str:
    """One line of at most ``limit`` characters (an ellipsis marks a cut)."""
    return _short(text, limit)


_FILE_UNSAFE = re.compile(r"[^a-z0-9]+")


def file_name_for(title: str | None, slug: str | None = None) -> str:
    """A file name a reference's title suggests: 'OTC analgesic counselling' → 'otc-analgesic-counselling.md'."""
    for text in (title, slug):
        stem = _FILE_UNSAFE.sub("-", (text or "").lower()).strip("-")[:60].strip("-")
        if stem and stem != "untitled-reference":
            return stem + ".md"
    return "reference.md"

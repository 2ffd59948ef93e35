"""A reference focused on one question: the title, the intent, the style and the few rules
that bear on the question, instead of the whole document.

Small models attend poorly over a long system message and recite what they read; the rules
nearest to the question, in a short context, are the ones they follow (measured on the tune
split: docs/evaluation.md). Relevance is lexical — shared content words weighted by how rare
they are among the reference's rules, plus the expert's own ``Blips`` triggers — so it is
cheap, deterministic and explainable in the studio.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from .answer_checks import words
from .reference import BlipCandidate, Reference, render_reference

_STOP = frozenset("""a an and are as at be been but by can could do does for from has have how i if in
into is it its may me my no not of on or our should so than that the their them then there these they
this to too up us was we were what when where which who why will with would you your yours""".split())


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> list[str]:
    return [_stem(w) for w in words(text) if w not in _STOP and len(w) > 1]


@dataclass(frozen=True)
class Ranked:
    candidate: BlipCandidate
    score: float


def rank_rules(reference: Reference, question: str) -> list[Ranked]:
    """Always, Never and Blips items ranked by relevance to ``question`` (best first; ties
    keep document order)."""
    rules = [c for c in reference.blip_candidates() if c.kind in ("always", "never", "blip")]
    if not rules:
        return []
    docs = [Counter(_terms(c.text)) for c in rules]
    df = Counter(t for d in docs for t in d)
    n = len(rules)
    q = Counter(_terms(question))
    ranked = []
    for c, d in zip(rules, docs):
        shared = sum(math.log(1 + n / df[t]) for t in q if t in d)
        score = shared / math.sqrt(sum(d.values()) or 1)
        if c.trigger is not None and c.trigger.search(question):
            score += 1.0  # the expert said so
        ranked.append(Ranked(c, score))
    order = {id(r): i for i, r in enumerate(ranked)}
    return sorted(ranked, key=lambda r: (-r.score, order[id(r)]))


def focused_text(reference: Reference, question: str, k: int) -> str:
    """What the model reads in place of the whole reference: the one rendering
    (``render_reference``) of the title, Intent, Style and the ``k`` most relevant Always and
    Never items, then the most relevant expert blips among those ``k`` as reminders. With
    ``k == 0`` it is the whole rendered reference."""
    if k <= 0:
        return render_reference(reference)
    chosen = {r.candidate.id: r.candidate for r in rank_rules(reference, question)[:k] if r.score > 0}
    exclude = set()
    for section in reference.sections:
        if section.kind not in ("intent", "style", "always", "never"):
            exclude.add(section.id)
        elif section.kind in ("always", "never"):
            exclude.update(item.id for item in section.items if item.id not in chosen)
    text = render_reference(reference, exclude=exclude)
    reminders = [c.text for c in chosen.values() if c.kind == "blip"]
    if reminders:
        text += "\n\n## Reminders\n" + "\n".join(f"- {t}" for t in reminders)
    return text


__all__ = ["rank_rules", "focused_text", "Ranked"]

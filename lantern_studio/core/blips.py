"""Which blip to inject: an expert blip whose trigger matches wins; otherwise the candidate
whose tokens overlap most with what the sidecar preferred over the window, or, with
``blip_choice: scored``, the one that most raises the plant's likelihood of the sidecar's
preferred continuation (the generation evaluates the shortlist in one batch).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from .focus import rank_rules
from .reference import BlipCandidate, Reference
from .settings import LoopSettings

_WORD = re.compile(r"[a-z0-9]{3,}")

# Given a shortlist, how much each would raise the plant's likelihood of the sidecar's
# preferred continuation (None when it cannot be measured now).
GainEvaluator = Callable[[Sequence[BlipCandidate]], "list[float] | None"]


def content_words(text: str) -> set[str]:
    """Lower-case words of three or more letters/digits: what overlap is measured on."""
    return set(_WORD.findall(text.lower()))


class BlipPicker:
    def __init__(self, reference: Reference, loop: LoopSettings, shortlist: int = 5) -> None:
        self.loop = loop
        self.reference = reference
        self.shortlist = shortlist
        self.candidates = reference.blip_candidates()
        self.used: Counter[str] = Counter()
        self._words = {c.id: content_words(c.text) for c in self.candidates}

    def choose(self, prompt: str, answer: str, rewound: str, preferred: list[str],
               source_id: str | None, gains: GainEvaluator | None = None) -> BlipCandidate | None:
        """The blip to inject now, or None when the reference offers none."""
        if not self.candidates:
            return None
        by_id = {c.id: c for c in self.candidates}
        if source_id in by_id:  # a Never detector fired: remind of that very rule
            return self._take(by_id[source_id])
        context = f"{prompt}\n{answer[-400:]}{rewound}"
        for c in self.candidates:
            if c.kind == "blip" and c.trigger is not None and not self.used[c.id] and c.trigger.search(context):
                return self._take(c)
        if self.loop.blip_choice == "relevant":
            fresh = [r.candidate for r in rank_rules(self.reference, f"{prompt} {rewound}") if r.score > 0]
            fresh.sort(key=lambda c: self.used[c.id])  # stable: relevance order within each use count
            if fresh:
                return self._take(fresh[0])
        ranked = self.rank_by_overlap(preferred)
        if self.loop.blip_choice == "scored" and gains is not None:
            shortlist = ranked[:self.shortlist]
            measured = gains(shortlist)
            if measured:
                return self._take(shortlist[int(np.argmax(measured))])
        return self._take(ranked[0])

    def opening(self, prompt: str) -> BlipCandidate | None:
        """The rule most relevant to the question, for a blip before the first token."""
        ranked = [r.candidate for r in rank_rules(self.reference, prompt) if r.score > 0]
        return self._take(ranked[0]) if ranked else None

    def rank_by_overlap(self, preferred: list[str]) -> list[BlipCandidate]:
        """Candidates ordered by overlap with the sidecar's preferred tokens; fresh ones first
        on ties, and each earlier use halves a candidate's weight so the loop varies its blips."""
        wanted = Counter(w for t in preferred for w in content_words(t))
        order = {"blip": 0, "always": 1, "never": 2, "intent": 3}

        def score(c: BlipCandidate) -> tuple[float, int, int]:
            words = self._words[c.id]
            overlap = sum(wanted[w] for w in words) / math.sqrt(len(words) or 1)
            if c.kind == "blip" and c.trigger is not None:
                overlap *= 0.5  # triggered blips are for their trigger; elsewhere they are a fallback
            return (overlap * 0.5 ** self.used[c.id], -self.used[c.id], -order.get(c.kind, 4))

        return sorted(self.candidates, key=score, reverse=True)

    def _take(self, c: BlipCandidate) -> BlipCandidate:
        self.used[c.id] += 1
        return c

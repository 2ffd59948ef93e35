"""Which blip to inject (DESIGN §4): an expert blip whose trigger matches wins; otherwise the
candidate whose tokens overlap most with what the sidecar preferred over the window, or,
with ``blip_choice: scored``, the one that most raises the plant's likelihood of the
sidecar's preferred continuation (candidates evaluated in one batch on scratch sequences).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from .backend import FIRST_SCRATCH, PLANT, SIDECAR, Feed
from .reference import BlipCandidate, Reference
from .scoring import log_softmax_rows
from .settings import LoopSettings

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine, _Run

_WORD = re.compile(r"[a-z0-9]{3,}")
CONTINUATION = 6  # tokens of the sidecar's preferred continuation used by the scored choice


def content_words(text: str) -> set[str]:
    """Lower-case words of three or more letters/digits: what overlap is measured on."""
    return set(_WORD.findall(text.lower()))


class BlipPicker:
    def __init__(self, engine: "Engine", reference: Reference, loop: LoopSettings) -> None:
        self.engine = engine
        self.loop = loop
        self.candidates = reference.blip_candidates()
        self.used: Counter[str] = Counter()
        self._words = {c.id: content_words(c.text) for c in self.candidates}

    def choose(self, prompt: str, answer: str, rewound: str, preferred: list[str],
               source_id: str | None, run: "_Run | None" = None) -> BlipCandidate | None:
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
        ranked = self.rank_by_overlap(preferred)
        if self.loop.blip_choice == "scored" and run is not None:
            best = self.best_scored(ranked, run)
            if best is not None:
                return self._take(best)
        return self._take(ranked[0])

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

    def best_scored(self, ranked: list[BlipCandidate], run: "_Run") -> BlipCandidate | None:
        """Batch-evaluate the top candidates on scratch sequences; None without scratch room."""
        b = run.b
        slots = b.n_seq - FIRST_SCRATCH - 1
        if slots < 1:
            return None
        continuation = self._sidecar_continuation(run)
        if not continuation:
            return None
        shortlist = ranked[:slots]
        plant_len = b.length(PLANT)
        feeds, lengths = [], []
        for i, cand in enumerate(shortlist):
            seq = FIRST_SCRATCH + 1 + i
            b.share_prefix(PLANT, seq, plant_len)
            blip = self.engine.blip_tokens(cand.text, self.loop.blip_style)
            feeds.append(Feed(seq, blip + continuation[:-1], len(blip) - 1))
            lengths.append(len(blip))
        try:
            rows = b.forward(feeds)
        finally:
            for i in range(len(shortlist)):
                b.truncate(FIRST_SCRATCH + 1 + i, 0)
        gains = []
        for r in rows:
            lp = log_softmax_rows(r)
            gains.append(float(sum(lp[k, t] for k, t in enumerate(continuation))))
        return shortlist[int(np.argmax(gains))]

    def _sidecar_continuation(self, run: "_Run") -> list[int]:
        """The sidecar's greedy continuation from the current point, on a scratch sequence."""
        b = run.b
        seq = FIRST_SCRATCH
        side = b.tokens(SIDECAR)
        if not side:
            return []
        b.share_prefix(SIDECAR, seq, len(side) - 1)
        out: list[int] = []
        feed = [side[-1]]
        try:
            for _ in range(CONTINUATION):
                row = b.forward([Feed(seq, feed, 0)])[0][-1]
                tok = int(np.argmax(row))
                if b.is_end(tok):
                    break
                out.append(tok)
                feed = [tok]
        finally:
            b.truncate(seq, 0)
        return out

    def _take(self, c: BlipCandidate) -> BlipCandidate:
        self.used[c.id] += 1
        return c

"""Token choice: greedy, or temperature / top-k / top-p with a seeded generator."""

from __future__ import annotations

import numpy as np

from .settings import SamplingSettings


class Sampler:
    """Picks the next token from a log-probability (or logits) row; same seed ⇒ same tokens."""

    def __init__(self, settings: SamplingSettings) -> None:
        self.settings = settings
        self._rng = np.random.Generator(np.random.PCG64(settings.seed))

    def pick(self, scores: np.ndarray) -> int:
        s = self.settings
        if s.greedy:
            return int(np.argmax(scores))
        scaled = scores.astype(np.float64) / s.temperature
        if 0 < s.top_k < scaled.size:
            keep = np.argpartition(scaled, -s.top_k)[-s.top_k:]
        else:
            keep = np.arange(scaled.size)
        keep = keep[np.argsort(scaled[keep])[::-1]]
        probs = np.exp(scaled[keep] - scaled[keep[0]])
        probs /= probs.sum()
        if s.top_p < 1.0:
            cut = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
            keep, probs = keep[:cut], probs[:cut] / probs[:cut].sum()
        return int(keep[self._rng.choice(keep.size, p=probs)])

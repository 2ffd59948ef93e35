"""Full-vocabulary rows from a server's top-k log-probabilities.

A server returns the log-probabilities of its k most likely tokens only. The engine wants a
whole row per position, so the rest of the probability mass is spread evenly over the other
tokens: for a token outside the top k this is the best guess the answer allows (its true
value is at most the k-th probability and the mean of the tail is exactly this fill). The
filled entries all hold one value, strictly below every returned one, so they can still be
told apart after a shift such as log-softmax: that is what ``is_filled`` checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# The fill is kept at least this far below the smallest returned log-probability, so that
# float32 arithmetic on the row never merges a filled entry with a returned one.
_FILL_GAP = 0.01
# When the returned entries already carry (nearly) all the mass, the tail still gets a tiny
# probability rather than -inf: a token outside the top-k stays possible.
_MIN_TAIL = 1e-12


def fill_logprob(top_logprobs: Sequence[float], n_vocab: int) -> float | None:
    """The log-probability given to each token outside the top-k (None: no token is outside)."""
    rest = n_vocab - len(top_logprobs)
    if rest <= 0:
        return None
    mass = math.fsum(math.exp(lp) for lp in top_logprobs)
    fill = math.log(max(1.0 - mass, _MIN_TAIL) / rest)
    if top_logprobs:
        fill = min(fill, min(top_logprobs) - _FILL_GAP)
    return fill


def row_from_top(ids: Sequence[int], logprobs: Sequence[float], n_vocab: int) -> np.ndarray:
    """A float32 log-probability row: the returned entries, the rest filled (see module)."""
    fill = fill_logprob(logprobs, n_vocab)
    row = np.full(n_vocab, np.float32(-np.inf if fill is None else fill), dtype=np.float32)
    if ids:
        row[np.asarray(ids, dtype=np.int64)] = np.asarray(logprobs, dtype=np.float32)
    return row


def is_filled(row: np.ndarray, token: int) -> bool:
    """True when ``row[token]`` is a fill value of ``row_from_top`` (also after adding a
    constant to the row): it equals the row's minimum and that minimum is shared."""
    value = row[token]
    low = row.min()
    return bool(value <= low) and int(np.count_nonzero(row == low)) > 1


__all__ = ["fill_logprob", "row_from_top", "is_filled"]

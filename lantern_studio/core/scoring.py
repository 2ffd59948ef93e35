"""Per-position scoring math on float32 rows: log-softmax, top-k, divergence."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities of one logits row (float32, numerically stable)."""
    row = np.asarray(logits, dtype=np.float32)
    shifted = row - row.max()
    return shifted - np.float32(np.log(np.exp(shifted).sum(dtype=np.float64)))


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of a (n, vocab) array."""
    rows = np.asarray(logits, dtype=np.float32)
    shifted = rows - rows.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True, dtype=np.float64)).astype(np.float32)
    return shifted - lse


# Entries this far below the maximum are rarely in the top k; the cut is exact either way.
_TOP_WINDOW = np.float32(12.0)


def top_k(logp: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the k largest entries, largest first.

    A comparison against ``max - 12`` keeps a handful of candidates (a tenth of the cost of
    argpartition over 49,152 entries, paid twice per token); every entry left out is below
    every candidate, so when at least k remain they hold the top k exactly.
    """
    idx = np.flatnonzero(logp >= logp.max() - _TOP_WINDOW)
    if len(idx) < k:
        idx = np.argpartition(logp, -k)[-k:]
    elif len(idx) > k:
        idx = idx[np.argpartition(logp[idx], -k)[-k:]]
    return idx[np.argsort(logp[idx], kind="stable")[::-1]]


def divergence(logp_ref: np.ndarray, logp_plant: np.ndarray) -> float:
    """KL(p_ref || p_plant) in nats."""
    return float(np.dot(np.exp(logp_ref), logp_ref - logp_plant))


def guided(logp_plant: np.ndarray, logp_ref: np.ndarray, gamma: float) -> np.ndarray:
    """``plant + γ·(ref − plant)``; log-probs differ from logits by a constant per row, so
    the resulting distribution is the guided mix up to normalisation."""
    if gamma == 0.0:
        return logp_plant
    return logp_plant + np.float32(gamma) * (logp_ref - logp_plant)

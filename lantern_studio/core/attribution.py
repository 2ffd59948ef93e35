"""Attribution: how much each reference item moves the answer.

The influence of an item is the change in the sidecar's log-likelihood of the answer when the
item is removed. Removal is done in the KV cache: a scratch sequence shares the sidecar's
cells (no copy), the item's token span is knocked out, and the answer is scored again; several
items run side by side in one batch. Tokens after the item were encoded while it was present,
so this measures the item's direct influence on the answer, at the cost of scoring the answer
once per item (re-encoding the rest of the reference per item would cost several times more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .backend import SIDECAR, Feed
from .engine import Engine
from .errors import Cancelled, LanternError
from .reference import Reference, render_reference


@dataclass
class Attribution:
    items: list[tuple[str, float]]  # (id, Δ log-likelihood of the answer), most influential first
    token_item: list[str | None] = field(default_factory=list)  # most influential item per token
    token_delta: list[float] = field(default_factory=list)
    answer_logp: float = 0.0

    def to_json(self) -> dict:
        return {"answer_logp": self.answer_logp,
                "items": [{"id": i, "influence": d} for i, d in self.items],
                "tokens": [{"index": k, "item": i, "influence": d}
                           for k, (i, d) in enumerate(zip(self.token_item, self.token_delta))]}


def item_spans(engine: Engine, reference: Reference, prompt: str) -> tuple[list[int], dict[str, tuple[int, int]]]:
    """The sidecar's prompt tokens and, per item id, the token span its text occupies."""
    rendered = render_reference(reference)
    tokens = engine.conversation(rendered, prompt)
    pieces = [engine.backend.pieces()[t] for t in tokens]
    offsets = np.cumsum([0] + [len(p) for p in pieces])  # byte offset where each token starts
    full = b"".join(pieces)
    base = full.find(rendered.encode("utf-8"))
    if base < 0:
        raise LanternError("The reference could not be located in the sidecar's prompt for attribution.")
    spans: dict[str, tuple[int, int]] = {}
    whole = rendered.encode("utf-8")
    for item_id in reference.all_ids():
        without = render_reference(reference, exclude={item_id}).encode("utf-8")
        if without == whole:
            continue
        pre = _common_prefix(whole, without)
        suf = _common_prefix(whole[::-1], without[::-1])
        end = max(pre, len(whole) - suf)
        a = int(np.searchsorted(offsets, base + pre, side="right") - 1)
        b = int(np.searchsorted(offsets, base + end, side="left"))
        if b > a:
            spans[item_id] = (a, b)
    return tokens, spans


def attribute(engine: Engine, reference: Reference, prompt: str, answer: str,
              should_stop: Callable[[], bool] | None = None) -> Attribution:
    """Influence of every section and item of ``reference`` on ``answer`` (a finished output).
    ``should_stop`` is asked before each batch of items; True raises Cancelled."""
    answer_tokens = engine.tokenize_answer(answer)
    if not answer_tokens:
        return Attribution([])
    with engine.exclusive(), engine.scratch() as slots:
        prompt_tokens, spans = item_spans(engine, reference, prompt)
        b = engine.backend
        full = b.forward([engine.prefill(SIDECAR, prompt_tokens)])
        first = _logp(full[0][-1], answer_tokens[0])
        base_lp = np.concatenate([[first], b.forward([Feed(SIDECAR, answer_tokens[:-1], 0, answer_tokens[1:])])[0]])
        b.truncate(SIDECAR, len(prompt_tokens))
        if not slots:
            raise LanternError("Attribution needs extra sequences in the context (extra_sequences > 0).")
        ids = list(spans)
        deltas: dict[str, np.ndarray] = {}
        # The last prompt token is fed again on each scratch copy so that the first answer
        # token is scored without the item too.
        n_keep = len(prompt_tokens) - 1
        for g in range(0, len(ids), len(slots)):
            engine.check_cancel()
            if should_stop is not None and should_stop():
                raise Cancelled("Explain was cancelled.")
            group = ids[g:g + len(slots)]
            feeds = []
            for seq, item_id in zip(slots, group):
                b.share_prefix(SIDECAR, seq, n_keep)
                a, e = spans[item_id]
                b.knock_out(seq, a, min(e, n_keep))
                feeds.append(Feed(seq, [prompt_tokens[-1]] + answer_tokens[:-1], 0, answer_tokens))
            try:
                for item_id, lp in zip(group, b.forward(feeds)):
                    deltas[item_id] = base_lp - lp  # > 0: the item made the answer more likely
            finally:
                for seq in slots:
                    b.truncate(seq, 0)
    ranked = sorted(((i, float(d.sum())) for i, d in deltas.items()), key=lambda x: -abs(x[1]))
    if deltas:
        matrix = np.vstack([deltas[i] for i in ids])
        best = np.abs(matrix).argmax(axis=0)
        token_item = [ids[k] for k in best]
        token_delta = [float(matrix[k, t]) for t, k in enumerate(best)]
    else:
        token_item, token_delta = [None] * len(answer_tokens), [0.0] * len(answer_tokens)
    return Attribution(ranked, token_item, token_delta, float(base_lp.sum()))


def _logp(row: np.ndarray, token: int) -> float:
    m = row.max()
    return float(row[token] - (m + np.log(np.exp(row - m).sum(dtype=np.float64))))


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i

"""Explain: attribute a finished answer to the reference's items, and place the result on
reference lines (the editor's margin heat) and on answer characters (click a token)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .errors import Cancelled
from .events import Done
from .reference import Reference


@dataclass
class Explanation:
    """An Attribution plus what is needed to place it: the answer's token texts and the reference hash."""

    attribution: object  # lantern_studio.core.attribution.Attribution
    pieces: list[str]  # text of each attributed answer token (the answer re-tokenised)
    reference_sha256: str
    prompt: str
    answer: str
    _starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        pos, self._starts = 0, []
        for p in self.pieces:
            self._starts.append(pos)
            pos += len(p)

    @property
    def items(self) -> list[tuple[str, float]]:
        return list(self.attribution.items)  # type: ignore[attr-defined]

    def item_at_offset(self, offset: int) -> tuple[str, float] | None:
        """The most influential item of the answer token covering character ``offset``."""
        if not self._starts:
            return None
        k = max(0, bisect.bisect_right(self._starts, offset) - 1)
        att = self.attribution
        if k >= len(att.token_item) or att.token_item[k] is None:  # type: ignore[attr-defined]
            return None
        return att.token_item[k], float(att.token_delta[k])  # type: ignore[attr-defined]


def explain_events(engine, reference: Reference, prompt: str, answer: str,
                   should_stop: Callable[[], bool] | None = None) -> Iterator[object]:
    """Attribute ``answer`` to ``reference``'s items; yields an Explanation, then Done.
    ``should_stop`` is asked between batches of items; a stop ends with Done(cancelled)."""
    from .attribution import attribute
    t0 = time.perf_counter()
    if should_stop is not None and should_stop():
        yield Done({"stop_reason": "cancelled"})
        return
    try:
        att = attribute(engine, reference, prompt, answer, should_stop=should_stop)
    except Cancelled:
        yield Done({"stop_reason": "cancelled"})
        return
    pieces = [engine.piece(t) for t in engine.tokenize_answer(answer)]
    yield Explanation(att, pieces, reference.sha256, prompt, answer)
    yield Done({"stop_reason": "explained", "items": len(att.items), "elapsed_s": time.perf_counter() - t0})


def heat_by_line(reference: Reference, items: list[tuple[str, float]]) -> dict[int, tuple[str, float]]:
    """{1-based line: (item id, influence)}; where two ids share a line the stronger one wins."""
    heat: dict[int, tuple[str, float]] = {}
    for item_id, value in items:
        line = reference.line_of(item_id)
        if line and (line not in heat or abs(value) > abs(heat[line][1])):
            heat[line] = (item_id, value)
    return heat


def answer_offset(transcript, index: int) -> int | None:
    """Character offset of token ``index`` in the visible answer (None if it was rewound)."""
    pos = 0
    for tok in transcript.answer_tokens:
        if tok.index == index:
            return pos
        pos += len(tok.text)
    return None

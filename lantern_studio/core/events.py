"""Typed events of a run. The engine, the loop, the CLI, the studio and traces all share them.

Each event is a plain dataclass that turns into one JSON object (``to_json``) and back
(``event_from_json``); the ``kind`` field names the class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Union

from .errors import TraceError

TopK = list[tuple[str, float]]


@dataclass(slots=True)
class TokenEvent:
    """One emitted token of the plant, scored against the reference.

    ``error`` is ``logp_plant - logp_ref`` (positive: the reference finds the token less
    likely, i.e. drift); ``divergence`` is ``KL(p_ref || p_plant)`` at that position.
    Scores are ``None`` in modes without a sidecar (``none``, ``prompt``).
    ``control`` is the controller signal ``u_t`` (blip mode) or the guidance scale (guide).
    Events are never changed once yielded: a later ``RewindEvent`` says which tokens left the
    answer, and ``Transcript`` applies it, so a replayed trace equals the live stream.
    """

    index: int
    token_id: int
    text: str
    logp_plant: float | None = None
    logp_ref: float | None = None
    error: float | None = None
    divergence: float | None = None
    top_plant: TopK = field(default_factory=list)
    top_ref: TopK = field(default_factory=list)
    control: float | None = None
    # True when a score is an estimate: a remote server returned only its top-k, and the
    # token (on either side) was outside it (docs/remote.md).
    approx: bool = False
    kind: str = "token"


@dataclass(slots=True)
class BlipEvent:
    """A blip injected into the plant's context (never into the visible answer)."""

    index: int
    text: str
    source_id: str
    reason: str
    rewound: int = 0
    kind: str = "blip"


@dataclass(slots=True)
class RewindEvent:
    """The last ``count`` tokens of the visible answer, the first of which is the token with
    index ``from_index``, left the answer (they stay in the trace)."""

    from_index: int
    count: int
    kind: str = "rewind"


@dataclass(slots=True)
class RuleHit:
    """A ``Never`` detector matched the answer."""

    index: int
    source_id: str
    match: str
    kind: str = "rule"


@dataclass(slots=True)
class ScoreUpdate:
    """Re-scored reference side of existing tokens (after a reference edit, or late chunks)."""

    start: int
    logp_ref: list[float]
    error: list[float]
    divergence: list[float]
    top_ref: list[TopK]
    kind: str = "rescore"


@dataclass(slots=True)
class Done:
    """The run ended normally; ``stats`` holds counts, timings and the stop reason."""

    stats: dict[str, Any] = field(default_factory=dict)
    kind: str = "done"


@dataclass(slots=True)
class Failed:
    """The run ended with an error; ``message`` is one sentence for the user."""

    message: str
    kind: str = "failed"


Event = Union[TokenEvent, BlipEvent, RewindEvent, RuleHit, ScoreUpdate, Done, Failed]

EVENT_TYPES: dict[str, type] = {
    cls.__dataclass_fields__["kind"].default: cls  # type: ignore[attr-defined]
    for cls in (TokenEvent, BlipEvent, RewindEvent, RuleHit, ScoreUpdate, Done, Failed)
}


def event_to_json(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (tuples become lists)."""
    return asdict(event)


def event_from_json(obj: dict[str, Any]) -> Event:
    """Rebuild an event from ``event_to_json`` output; raises TraceError on anything else."""
    if not isinstance(obj, dict):
        raise TraceError("A trace line is not a JSON object.")
    kind = obj.get("kind")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise TraceError(f"A trace line has an unknown event kind {kind!r}.")
    names = {f.name for f in fields(cls)}
    unknown = set(obj) - names
    if unknown:
        raise TraceError(f"A {kind!r} event has unknown fields: {', '.join(sorted(unknown))}.")
    data = dict(obj)
    try:
        if cls is TokenEvent:
            for key in ("top_plant", "top_ref"):
                if key in data:
                    data[key] = _top_k(data[key])
        elif cls is ScoreUpdate and "top_ref" in data:
            data["top_ref"] = [_top_k(row) for row in data["top_ref"]]
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise TraceError(f"A {kind!r} event is malformed ({exc}).") from None


def _top_k(rows: Any) -> TopK:
    return [(str(t), float(lp)) for t, lp in rows]


class Transcript:
    """The state a stream of events describes: every token, which are still in the answer,
    the blips and rule hits. The studio, the CLI and the tests all read runs through it."""

    def __init__(self) -> None:
        self.tokens: list[TokenEvent] = []
        self.rewound: set[int] = set()
        self.visible: list[int] = []  # indices of tokens in the answer, in order
        self.blips: list[BlipEvent] = []
        self.rewinds: list[RewindEvent] = []
        self.rules: list[RuleHit] = []
        self.done: Done | None = None
        self.failed: Failed | None = None
        self._by_index: dict[int, TokenEvent] = {}
        self._position: dict[int, int] = {}  # token index -> place in self.tokens

    def apply(self, event: Event) -> None:
        if isinstance(event, TokenEvent):
            self._position[event.index] = len(self.tokens)
            self.tokens.append(event)
            self._by_index[event.index] = event
            self.visible.append(event.index)
        elif isinstance(event, RewindEvent):
            cut = len(self.visible) - event.count
            self.rewound.update(self.visible[cut:])
            del self.visible[cut:]
            self.rewinds.append(event)
        elif isinstance(event, BlipEvent):
            self.blips.append(event)
        elif isinstance(event, RuleHit):
            self.rules.append(event)
        elif isinstance(event, ScoreUpdate):
            # New TokenEvents, never changed old ones: another Transcript (a history record,
            # a trace being written) may hold the same events and must keep the old scores.
            for k, i in enumerate(range(event.start, event.start + len(event.logp_ref))):
                tok = self._by_index.get(i)
                if tok is not None:
                    new = replace(tok, logp_ref=event.logp_ref[k], error=event.error[k],
                                  divergence=event.divergence[k], top_ref=event.top_ref[k])
                    self._by_index[i] = new
                    self.tokens[self._position[i]] = new
        elif isinstance(event, Done):
            self.done = event
        elif isinstance(event, Failed):
            self.failed = event

    def extend(self, events) -> "Transcript":
        for e in events:
            self.apply(e)
        return self

    def token(self, index: int) -> TokenEvent | None:
        return self._by_index.get(index)

    @property
    def answer(self) -> str:
        return "".join(self._by_index[i].text for i in self.visible)

    @property
    def answer_tokens(self) -> list[TokenEvent]:
        return [self._by_index[i] for i in self.visible]


def answer_text(events: list[Event]) -> str:
    """The visible answer of a list of events."""
    return Transcript().extend(events).answer

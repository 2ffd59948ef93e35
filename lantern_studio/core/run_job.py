"""Run an event stream to its end and read what it gave: the one way the CLI, probes,
evaluations and benchmarks consume a run (the studio applies the same events live)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .events import Event, Transcript


@dataclass(frozen=True, slots=True)
class RunStats:
    """The typed view of ``Done.stats``. Every field has a neutral default, because a trace
    written by an older version, a re-score or a cancelled run carries only some of them."""

    mode: str = ""
    stop_reason: str = ""
    tokens: int = 0  # answer tokens at the end
    emitted: int = 0  # tokens ever emitted, rewound ones included
    rewound: int = 0
    blips: int = 0
    prompt_tokens: int = 0
    sidecar_prompt_tokens: int = 0
    elapsed_s: float = 0.0
    generation_s: float = 0.0
    decode_s: float = 0.0  # the part of generation_s spent inside llama_decode
    tokens_per_s: float = 0.0
    context_used: int = 0
    context_size: int = 0
    mean_error: float | None = None
    max_error: float | None = None
    drift_tokens: int = 0
    # guide mode: who picked the tokens ("both", "sidecar", "plant") and why (the question's
    # gain in log-likelihood from the focused reference, in nats)
    drive: str = ""
    question_gain: float | None = None

    def to_dict(self, errors: Sequence[float] = ()) -> dict[str, Any]:
        """The stats as ``Done.stats``; with ``errors``, their mean, maximum and drift count."""
        out = asdict(self)
        if errors:
            arr = np.asarray(errors, dtype=np.float64)
            out.update(mean_error=float(arr.mean()), max_error=float(arr.max()), drift_tokens=int((arr > 0).sum()))
        else:
            for key in ("mean_error", "max_error", "drift_tokens"):
                out.pop(key)
        if not self.drive:
            out.pop("drive")
        if self.question_gain is None:
            out.pop("question_gain")
        return out

    def drive_note(self) -> str | None:
        """Why guidance did not mix the two models, in a few words (None when it did)."""
        if self.drive == "plant":
            gain = f" ({self.question_gain:+.1f} nats)" if self.question_gain is not None else ""
            return f"the reference does not bear on the question{gain}: the model answered alone"
        if self.drive == "sidecar":
            return "no rule bears on the question: guided by the reference's intent and style only"
        return None

    @classmethod
    def from_dict(cls, stats: dict[str, Any] | None) -> "RunStats":
        """Known keys of a stats mapping; unknown keys are ignored, wrong types dropped."""
        stats = stats or {}
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in stats:
                continue
            value = stats[f.name]
            default = f.default
            if isinstance(default, str) and isinstance(value, str):
                out[f.name] = value
            elif isinstance(default, int) and not isinstance(default, bool) and isinstance(value, int):
                out[f.name] = value
            elif (isinstance(default, float) or default is None) and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                out[f.name] = float(value)
        return cls(**out)


@dataclass(frozen=True)
class RunResult:
    transcript: Transcript

    @property
    def answer(self) -> str:
        return self.transcript.answer

    @property
    def stats(self) -> RunStats:
        return RunStats.from_dict(self.transcript.done.stats if self.transcript.done else None)

    @property
    def failed(self) -> str | None:
        """The run's one-sentence error, or None."""
        return self.transcript.failed.message if self.transcript.failed else None

    @property
    def cancelled(self) -> bool:
        return self.stats.stop_reason == "cancelled"


def collect(events: Iterable[Event]) -> RunResult:
    """Apply every event of a run to a fresh Transcript."""
    return RunResult(Transcript().extend(events))


__all__ = ["RunStats", "RunResult", "collect"]

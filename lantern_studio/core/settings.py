"""Small validated settings dataclasses: sampling, engine and the control loop."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import SettingsError

MODES = ("none", "prompt", "observe", "blip", "guide")
REWIND_RE = re.compile(r"^(none|sentence|tokens:(\d+))$")
BLIP_STYLES = ("system-turn", "inline-note")
BLIP_CHOICES = ("overlap", "scored", "relevant")


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    """How the plant picks tokens. ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 0
    max_tokens: int = 200

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_int_range("top_k", self.top_k, 0, 100_000)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        _check_int_range("seed", self.seed, 0, 2**32 - 1)
        _check_int_range("max_tokens", self.max_tokens, 1, 100_000)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """Everything the control loop needs. The defaults are the best variant measured on the
    suite's tune split (``eval/tune/``, `lantern eval`; docs/evaluation.md reports the test
    split): guidance at a fixed γ = 1.5 from a sidecar that reads only the rules that bear on
    the question (``focus``), among the tokens that sidecar finds plausible, with the guards
    and rule rewinds. When no rule bears on the question the sidecar drives alone (γ = 1). On
    tune, γ = 1.3 and 2 tied with 1.5 but copied more of the reference word for word; γ = 1
    (the sidecar alone, at observe's speed) was 7 probes behind. For blip mode, an opening
    reminder of the most relevant rules and a high threshold did best."""

    mode: str = "guide"
    threshold: float = 3.0
    kp: float = 1.0
    ki: float = 0.3
    kd: float = 0.0
    window: int = 8
    cooldown: int = 24
    max_blips: int = 4
    rewind: str = "sentence"
    blip_style: str = "inline-note"
    blip_choice: str = "relevant"
    gamma: float = 1.5  # the fixed scale, used when gamma_max <= gamma_min
    gamma_min: float = 0.0
    gamma_max: float = 0.0
    guide_rewind: bool = False  # guide mode: the controller rewinds drift and redoes it at 2·γ
    chunk: int = 8
    # Guide mode: only tokens with p_plant ≥ plausibility · max p_plant are eligible (0: all).
    plausibility: float = 0.0
    # ... and with p_ref ≥ plausibility_ref · max p_ref (0: no such cut).
    plausibility_ref: float = 0.1
    # Guarded modes (prompt, blip, guide): at most this many reference words in a row (0: off),
    # no token repeating an n-gram of the answer (0: off), no headings/labels/blank runs.
    copy_guard: int = 6
    repeat_guard: int = 8
    form_guard: bool = True
    # The model reads the title, Intent, Style and only the ``focus`` rules most relevant to
    # the question (0: the whole reference).
    focus: int = 2
    # Guide mode: when the focused reference makes the question less than this many nats more
    # likely (summed over its tokens) than no reference does, it does not bear on the
    # question and the plant answers alone, watched by the sidecar (0: never). 9 is about
    # the middle of the range that does best on tune (every threshold in (7.7, 10.7] nats).
    relevance: float = 9.0
    # Guarded modes: nats added to the end of the turn after a finished sentence (0: off).
    end_bias: float = 0.0
    # Blip mode: before the first token, remind the plant of the ``focus`` rules most relevant
    # to the question (when any rule is relevant at all).
    start_blip: bool = True
    # prompt and guide modes: a Never detector's match is taken back and written again.
    rule_rewind: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"Loop setting 'mode' must be one of {', '.join(MODES)}, not {self.mode!r}.")
        _check_range("threshold", self.threshold, 0.0, 100.0)
        for name in ("kp", "ki", "kd", "gamma", "gamma_min", "gamma_max"):
            _check_range(name, getattr(self, name), -100.0, 100.0)
        _check_int_range("window", self.window, 1, 4096)
        _check_int_range("cooldown", self.cooldown, 0, 100_000)
        _check_int_range("max_blips", self.max_blips, 0, 1000)
        _check_int_range("chunk", self.chunk, 1, 512)
        _check_range("plausibility", self.plausibility, 0.0, 1.0)
        _check_range("plausibility_ref", self.plausibility_ref, 0.0, 1.0)
        _check_int_range("copy_guard", self.copy_guard, 0, 1000)
        _check_int_range("repeat_guard", self.repeat_guard, 0, 1000)
        _check_int_range("focus", self.focus, 0, 1000)
        _check_range("end_bias", self.end_bias, 0.0, 20.0)
        _check_range("relevance", self.relevance, 0.0, 1000.0)
        if not isinstance(self.rewind, str) or not REWIND_RE.match(self.rewind):
            raise SettingsError(f"Loop setting 'rewind' must be none, sentence or tokens:N, not {self.rewind!r}.")
        if self.blip_style not in BLIP_STYLES:
            raise SettingsError(f"Loop setting 'blip_style' must be one of {', '.join(BLIP_STYLES)}, not {self.blip_style!r}.")
        if self.blip_choice not in BLIP_CHOICES:
            raise SettingsError(f"Loop setting 'blip_choice' must be one of {', '.join(BLIP_CHOICES)}, not {self.blip_choice!r}.")

    @property
    def rewind_tokens(self) -> int | None:
        """N for ``tokens:N``, 0 for ``none``, None for ``sentence``."""
        m = REWIND_RE.match(self.rewind)
        assert m is not None
        if m.group(1) == "none":
            return 0
        return int(m.group(2)) if m.group(2) else None

    @property
    def adaptive_guide(self) -> bool:
        return self.gamma_max > self.gamma_min

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **changes: Any) -> "LoopSettings":
        """A copy with ``changes`` applied (validated); unknown names are errors."""
        return replace(self, **loop_overrides(changes))

    @classmethod
    def from_mapping(cls, data: Any, base: "LoopSettings | None" = None) -> "LoopSettings":
        """Settings from a front-matter ``loop`` mapping; unknown keys and wrong types are errors."""
        if data is None:
            return base or cls()
        if not isinstance(data, dict):
            raise SettingsError("The 'loop' settings must be a mapping of names to values.")
        return replace(base or cls(), **loop_overrides(data))


_LOOP_TYPES: dict[str, type] = {f.name: f.type for f in fields(LoopSettings)}  # type: ignore[misc]


def loop_overrides(data: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of loop settings; ints are accepted where floats are expected."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _LOOP_TYPES:
            known = ", ".join(sorted(_LOOP_TYPES))
            raise SettingsError(f"Unknown loop setting {key!r} (known: {known}).")
        expected = _LOOP_TYPES[key]
        if expected in ("float", float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"Loop setting {key!r} must be a number, not {value!r}.")
            value = float(value)
        elif expected in ("int", int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"Loop setting {key!r} must be a whole number, not {value!r}.")
        elif expected in ("bool", bool):
            if not isinstance(value, bool):
                raise SettingsError(f"Loop setting {key!r} must be true or false, not {value!r}.")
        elif expected in ("str", str):
            if not isinstance(value, str):
                raise SettingsError(f"Loop setting {key!r} must be text, not {value!r}.")
        out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the llama.cpp context is made."""

    n_ctx: int = 4096
    n_threads: int = 0  # 0: one per core
    # Any batch size scores bit-identically (see LlamaContext; measured up to 256). Larger
    # batches barely speed up prompt processing here, and cancelling waits for one batch.
    n_batch: int = 32
    extra_sequences: int = 6  # for attribution batches
    # The sidecar in its own context, decoded beside the plant on half the threads (2+ threads).
    sidecar_context: bool = True

    def __post_init__(self) -> None:
        _check_int_range("n_ctx", self.n_ctx, 256, 1 << 20)
        _check_int_range("n_threads", self.n_threads, 0, 1024)
        _check_int_range("n_batch", self.n_batch, 1, 256)
        _check_int_range("extra_sequences", self.extra_sequences, 0, 62)
        if not isinstance(self.sidecar_context, bool):
            raise SettingsError(f"Setting 'sidecar_context' must be true or false, not {self.sidecar_context!r}.")


def parse_value(raw: str) -> Any:
    """A setting's value as typed on a command line: true/false, a whole number, a number, or
    the text itself (the settings then check its type)."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _check_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise SettingsError(f"Setting {name!r} must be a number between {lo:g} and {hi:g}, not {value!r}.")


def _check_int_range(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SettingsError(f"Setting {name!r} must be a whole number between {lo} and {hi}, not {value!r}.")


__all__ = ["MODES", "SamplingSettings", "LoopSettings", "EngineSettings", "loop_overrides", "parse_value"]

"""Probes: every probe of a reference, in each mode, greedy and seeded.

A probe passes only if a person would accept the answer: its ``expect``/``forbid`` patterns
hold, and the answer neither leaks the reference nor is degenerate (``answer_checks``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from dataclasses import asdict, dataclass

from .answer_checks import degenerate, leak
from .engine import Engine
from .errors import LanternError
from .run_job import collect
from .reference import Probe, Reference, render_reference
from .settings import MODES, LoopSettings, SamplingSettings, SettingsError

PROBE_SAMPLING = SamplingSettings(temperature=0.0, seed=0, max_tokens=120)


@dataclass
class ProbeResult:
    reference: str
    probe: int
    prompt: str
    mode: str
    passed: bool
    failed: str | None  # the first reason it failed: a pattern, a leak, a degenerate answer, the run
    blips: int
    tokens_per_s: float
    answer: str
    leak: str | None = None  # why the answer reads as a copy of the reference
    degenerate: str | None = None  # why the answer is not usable (empty, looping, blank runs)
    pattern_failed: str | None = None  # the failing expect/forbid pattern, whatever the rest
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out = asdict(self)
        out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything a probe check found in one answer."""

    pattern_failed: str | None
    leak: str | None
    degenerate: str | None

    @property
    def passed(self) -> bool:
        return self.pattern_failed is None and self.leak is None and self.degenerate is None

    @property
    def failed(self) -> str | None:
        if self.degenerate is not None:
            return f"degenerate answer: {self.degenerate}"
        if self.leak is not None:
            return f"leaks the reference: {self.leak}"
        return self.pattern_failed


def judge(probe: Probe, answer: str, rendered_reference: str) -> Verdict:
    """The probe's patterns, the leak check and the degenerate check on one answer."""
    return Verdict(probe.check(answer), leak(answer, rendered_reference, probe.prompt), degenerate(answer))


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise SettingsError(f"Unknown mode {', '.join(bad) or '(none given)'}; choose from {', '.join(MODES)}.")
    return modes


def run_probes(engine: Engine, reference: Reference, modes: Iterable[str],
               loop: LoopSettings | None = None, sampling: SamplingSettings = PROBE_SAMPLING,
               progress: Callable[[int, int, str], None] | None = None) -> Iterator[ProbeResult]:
    """Yield one result per (probe, mode), probes in order, modes in the order given."""
    modes = list(modes)
    base = loop or reference.loop
    total = len(reference.probes) * len(modes)
    done = 0
    rendered = render_reference(reference)
    for i, probe in enumerate(reference.probes, start=1):
        for mode in modes:
            if progress:
                progress(done, total, f"{reference.slug} probe {i} ({mode})")
            result = collect(engine.run(probe.prompt, reference, base.updated(mode=mode), sampling))
            if result.failed is not None:
                raise LanternError(result.failed)
            if result.cancelled:
                return
            v = judge(probe, result.answer, rendered)
            yield ProbeResult(reference.slug, i, probe.prompt, mode, v.passed, v.failed,
                              len(result.transcript.blips), result.stats.tokens_per_s, result.answer,
                              v.leak, v.degenerate, v.pattern_failed, probe.tags)
            done += 1
    if progress:
        progress(done, total, "done")


def empty_counts() -> dict[str, int]:
    return {"passed": 0, "total": 0, "leak": 0, "degenerate": 0, "pattern_passed": 0}


def tally(rows: Iterable, key: Callable[[Any], str]) -> dict[str, dict[str, int]]:
    """{key(row): {"passed", "total", "leak", "degenerate", "pattern_passed"}} in the order keys
    first appear, for any rows with ``passed``, ``leak``, ``degenerate`` and ``pattern_failed``;
    ``pattern_passed`` counts answers whose patterns hold, whatever else."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        row = out.setdefault(key(r), empty_counts())
        row["total"] += 1
        row["passed"] += int(r.passed)
        row["leak"] += int(r.leak is not None)
        row["degenerate"] += int(r.degenerate is not None)
        row["pattern_passed"] += int(r.pattern_failed is None)
    return out


def summarise(results: Iterable[ProbeResult]) -> dict[str, dict[str, int]]:
    """The counts per mode, in the order modes first appear."""
    return tally(results, lambda r: r.mode)

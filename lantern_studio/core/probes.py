"""Probes (DESIGN §5): every probe of a reference, in each mode, greedy and seeded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from .engine import Engine
from .errors import LanternError
from .events import Transcript
from .reference import Reference
from .settings import MODES, LoopSettings, SamplingSettings, SettingsError

PROBE_SAMPLING = SamplingSettings(temperature=0.0, seed=0, max_tokens=120)


@dataclass
class ProbeResult:
    reference: str
    probe: int
    prompt: str
    mode: str
    passed: bool
    failed: str | None  # the failing expectation, or why the run failed
    blips: int
    tokens_per_s: float
    answer: str

    def to_json(self) -> dict:
        return asdict(self)


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
    for i, probe in enumerate(reference.probes, start=1):
        for mode in modes:
            if progress:
                progress(done, total, f"{reference.slug} probe {i} ({mode})")
            tr = Transcript().extend(engine.run(probe.prompt, reference, base.updated(mode=mode), sampling))
            if tr.failed is not None:
                raise LanternError(tr.failed.message)
            stats = tr.done.stats if tr.done else {}
            if stats.get("stop_reason") == "cancelled":
                return
            failed = probe.check(tr.answer)
            yield ProbeResult(reference.slug, i, probe.prompt, mode, failed is None, failed,
                              len(tr.blips), float(stats.get("tokens_per_s", 0.0)), tr.answer)
            done += 1
    if progress:
        progress(done, total, "done")


def summarise(results: Iterable[ProbeResult]) -> dict[str, dict[str, int]]:
    """{mode: {"passed": n, "total": m}} in the order modes first appear."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        row = out.setdefault(r.mode, {"passed": 0, "total": 0})
        row["total"] += 1
        row["passed"] += int(r.passed)
    return out

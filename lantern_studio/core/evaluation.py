"""`lantern eval`: loop variants × references × probes, always from scratch.

An evaluation records what it ran on — the package version, a hash of the core sources, the
model's sha256, the engine and sampling settings — beside every answer and verdict, so a
table can always be traced to the code that made it, and a stale one is detected (a test
re-runs probes of the committed evaluation and requires the same answers).

The project's suite is split by folder: ``references/`` (shipped samples), ``eval/tune/``
(where defaults are chosen) and ``eval/test/`` (what the docs report).
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .engine import Engine
from .errors import LanternError, SettingsError
from .probes import empty_counts, judge, tally
from .reference import Reference, load_reference, render_reference
from .run_job import collect
from .settings import LoopSettings, SamplingSettings, parse_value

FORMAT = "lantern-eval"
FORMAT_VERSION = 1
EVAL_SAMPLING = SamplingSettings(temperature=0.0, seed=0, max_tokens=120)
_CORE = Path(__file__).resolve().parent

# name -> loop overrides applied over LoopSettings() (never the reference's own loop block,
# so every reference is measured under the same settings). "default" is what a new user gets;
# the baselines switch Lantern's additions off so that they are what the literature measures.
_FIXED = {"gamma_min": 0.0, "gamma_max": 0.0}  # adaptive guidance off: γ = gamma
_UNGUARDED = {"copy_guard": 0, "repeat_guard": 0, "form_guard": False, "rule_rewind": False}
_PLAIN = {**_UNGUARDED, "focus": 0}  # the whole reference, no guards: the usual practice
_CFG = {**_PLAIN, **_FIXED, "plausibility": 0.0, "plausibility_ref": 0.0}  # CFG / CAD as published
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "none": {"mode": "none"},
    "prompt": {"mode": "prompt", **_PLAIN},
    "observe": {"mode": "observe"},
    # the default without one of its parts
    "default-whole-reference": {"focus": 0},
    "default-no-guards": dict(_UNGUARDED),
    "default-no-relevance-gate": {"relevance": 0.0},
    # fixed-γ guidance without Lantern's additions (context-aware decoding, CFG)
    "guide-1.5": {"mode": "guide", "gamma": 1.5, **_CFG},
    "guide-2": {"mode": "guide", "gamma": 2.0, **_CFG},
    "guide-3": {"mode": "guide", "gamma": 3.0, **_CFG},
    # the default at γ = 1: the focused sidecar alone picks the tokens (observe's speed)
    "default-gamma-1": {"gamma": 1.0},
    "blip": {"mode": "blip"},
    "blip-system-turn": {"mode": "blip", "blip_style": "system-turn"},
}
DEFAULT_VARIANTS = ("default", "none", "prompt", "default-whole-reference", "default-no-guards",
                    "default-no-relevance-gate", "guide-1.5", "guide-2", "guide-3", "default-gamma-1", "blip", "blip-system-turn")


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """A known variant name, or ``name:key=value,key=value`` for an ad-hoc one."""
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not sep:
        if name not in VARIANTS:
            raise SettingsError(f"Unknown variant {name!r}; known: {', '.join(VARIANTS)} (or name:key=value,…).")
        return name, dict(VARIANTS[name])
    changes: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq:
            raise SettingsError(f"The variant setting {part!r} must look like key=value.")
        changes[key.strip()] = parse_value(raw.strip())
    LoopSettings().updated(**changes)  # validate now, not after an hour of runs
    return name, changes


@dataclass(frozen=True)
class SuiteEntry:
    split: str
    reference: Reference


def split_of(path: Path) -> str:
    """The suite split a reference file belongs to, from its folder's name."""
    folder = path.resolve().parent.name
    return {"references": "shipped", "_shipped": "shipped"}.get(folder, folder)


def load_suite(paths: Iterable[Path]) -> list[SuiteEntry]:
    """Every reference under the given files or folders (``*.md``, sorted), with its split."""
    entries = []
    for path in paths:
        files = sorted(path.glob("*.md")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise LanternError(f"The folder {path} holds no reference (*.md) files.")
        for file in files:
            if file.name.lower() == "readme.md":
                continue
            ref = load_reference(file)
            if ref.probes:
                entries.append(SuiteEntry(split_of(file), ref))
    if not entries:
        raise LanternError("The suite has no references with probes.")
    return entries


def core_sources_hash() -> str:
    """sha256 over the core's Python sources (names and bytes, in name order)."""
    h = hashlib.sha256()
    for path in sorted(_CORE.rglob("*.py")):
        h.update(path.relative_to(_CORE).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class EvalRow:
    variant: str
    split: str
    reference: str
    probe: int
    prompt: str
    tags: list[str]
    passed: bool
    failed: str | None
    pattern_failed: str | None
    leak: str | None
    degenerate: str | None
    blips: int
    rewound: int
    tokens: int
    tokens_per_s: float
    answer: str


@dataclass
class Evaluation:
    meta: dict[str, Any]
    variants: dict[str, dict[str, Any]]  # name -> full LoopSettings as run
    rows: list[EvalRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "meta": self.meta,
                "variants": self.variants, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Evaluation":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LanternError("The file is not a Lantern evaluation (format lantern-eval).")
        return cls(data["meta"], data["variants"], [EvalRow(**r) for r in data["rows"]])

    def table(self, split: str | None = None, tag: str | None = None) -> dict[str, dict[str, int]]:
        """{variant: {passed, total, leak, degenerate, pattern_passed}} over the rows kept."""
        kept = [r for r in self.rows if (split is None or r.split == split) and (tag is None or tag in r.tags)]
        counted = tally(kept, lambda r: r.variant)
        return {v: counted.get(v, empty_counts()) for v in self.variants}


def run_meta(engine: Engine, sampling: SamplingSettings, suite: Sequence[SuiteEntry]) -> dict[str, Any]:
    backend = engine.backend
    return {
        "package_version": __version__,
        "core_sha256": core_sources_hash(),
        "model": engine.model_name,
        "model_sha256": backend.model_sha256(),
        "model_file": Path(getattr(backend, "model_path", "")).name,
        "engine": asdict(getattr(backend, "settings")) if hasattr(backend, "settings") else {},
        "threads": getattr(backend, "n_threads", None),
        "sampling": asdict(sampling),
        "references": {e.reference.slug: {"split": e.split, "sha256": e.reference.sha256,
                                          "probes": len(e.reference.probes)} for e in suite},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def evaluate(engine: Engine, suite: Sequence[SuiteEntry], variants: Sequence[tuple[str, dict[str, Any]]],
             sampling: SamplingSettings = EVAL_SAMPLING,
             progress: Callable[[int, int, str], None] | None = None) -> Iterator[EvalRow]:
    """Run every probe of every reference under every variant; yields rows as they finish."""
    total = len(variants) * sum(len(e.reference.probes) for e in suite)
    done = 0
    for name, changes in variants:
        loop = LoopSettings().updated(**changes)
        for entry in suite:
            ref = entry.reference
            rendered = render_reference(ref)
            for i, probe in enumerate(ref.probes, start=1):
                if progress:
                    progress(done, total, f"{name} {ref.slug}#{i}")
                result = collect(engine.run(probe.prompt, ref, loop, sampling))
                if result.transcript.failed is not None:
                    raise LanternError(f"{name} {ref.slug}#{i}: {result.transcript.failed.message}")
                if result.cancelled:
                    return
                v = judge(probe, result.answer, rendered)
                yield EvalRow(name, entry.split, ref.slug, i, probe.prompt, list(probe.tags), v.passed, v.failed,
                              v.pattern_failed, v.leak, v.degenerate, result.stats.blips, result.stats.rewound,
                              result.stats.tokens, round(result.stats.tokens_per_s, 2), result.answer)
                done += 1
    if progress:
        progress(done, total, "done")


__all__ = ["VARIANTS", "DEFAULT_VARIANTS", "EVAL_SAMPLING", "Evaluation", "EvalRow", "SuiteEntry",
           "parse_variant", "load_suite", "split_of", "core_sources_hash", "run_meta", "evaluate"]

"""Steered throughput against plain generation: same model, prompt, token count and threads,
runs alternated, medians reported as ratios measured in one run (DESIGN §8)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

from .core.backend import PLANT, Feed
from .core.engine import Engine
from .core.events import Transcript
from .core.reference import Reference
from .core.settings import LoopSettings, SamplingSettings

BENCH_PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def plain_decode(engine: Engine, prompt: str, n_tokens: int) -> float:
    """Greedy decode of exactly ``n_tokens`` on one sequence, no scoring: tokens per second."""
    b = engine.backend
    tokens = engine.conversation("", prompt)
    engine.clear_scratch()
    b.truncate(1, 0)
    rows = b.forward([engine.prefill(PLANT, tokens)])
    tok = int(np.argmax(rows[0][-1]))
    t0 = time.perf_counter()
    for _ in range(n_tokens):
        row = b.forward([Feed(PLANT, [tok], 0)])[0][-1]
        tok = int(np.argmax(row))
    return n_tokens / (time.perf_counter() - t0)


def steered(engine: Engine, reference: Reference | None, loop: LoopSettings, prompt: str,
            n_tokens: int) -> dict:
    """One run's Done stats (tokens_per_s, emitted, sidecar_prompt_tokens, …)."""
    tr = Transcript().extend(engine.run(prompt, reference, loop, SamplingSettings(max_tokens=n_tokens)))
    if tr.failed is not None or tr.done is None:
        raise RuntimeError(tr.failed.message if tr.failed else "the run did not finish")
    return tr.done.stats


def run_bench(engine: Engine, reference: Reference | None, tokens: int = 128, repeats: int = 5,
              extra_modes: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    say = progress or (lambda _m: None)
    # Warm-up: page the weights in and fill the caches once.
    steered(engine, reference, LoopSettings(mode="observe"), BENCH_PROMPT, 16)
    variants: dict[str, LoopSettings] = {
        "observe": LoopSettings(mode="observe"),
        "chunk1": LoopSettings(mode="observe", chunk=1),
    }
    if extra_modes:
        variants["blip"] = (reference.loop if reference else LoopSettings()).updated(mode="blip")
        variants["guide"] = LoopSettings(mode="guide", gamma=1.5)
    samples: dict[str, list[float]] = {"plain": [], **{k: [] for k in variants}}
    n = tokens
    sidecar_prompt = 0
    for r in range(repeats):
        say(f"round {r + 1}/{repeats}")
        for name, loop in variants.items():
            stats = steered(engine, reference, loop, BENCH_PROMPT, tokens)
            samples[name].append(float(stats["tokens_per_s"]))
            if name == "observe":
                n = min(n, int(stats["emitted"]))
                sidecar_prompt = int(stats["sidecar_prompt_tokens"])
        samples["plain"].append(plain_decode(engine, BENCH_PROMPT, n))
    med = {k: statistics.median(v) for k, v in samples.items()}
    out = {"model": engine.model_name, "tokens": n, "repeats": repeats,
           "threads": engine.backend.settings.n_threads if hasattr(engine.backend, "settings") else None,
           # The sidecar attends over its whole prompt, so the ratios fall as the reference grows.
           "sidecar_prompt_tokens": sidecar_prompt,
           "plain_tok_s": round(med["plain"], 2)}
    for name in variants:
        out[f"{name}_tok_s"] = round(med[name], 2)
        out[f"{name}_ratio"] = round(med[name] / med["plain"], 3)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out

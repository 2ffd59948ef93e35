"""Steered throughput against plain generation: same model, prompt, token count and threads,
runs alternated, medians reported as ratios measured in one run."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

from .core.backend import PLANT, Feed
from .core.engine import Engine
from .core.focus import rank_rules
from .core.run_job import collect
from .core.reference import Reference
from .core.settings import LoopSettings, SamplingSettings

BENCH_PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def plain_decode(engine: Engine, prompt: str, n_tokens: int) -> tuple[float, float]:
    """Greedy decode of exactly ``n_tokens`` on one sequence, no scoring: (tokens per second,
    seconds spent inside llama_decode)."""
    b = engine.backend
    tokens = engine.conversation("", prompt)
    engine.clear_scratch()
    b.truncate(1, 0)
    rows = b.forward([engine.prefill(PLANT, tokens)])
    tok = int(np.argmax(rows[0][-1]))
    d0 = _decode_seconds(engine)
    t0 = time.perf_counter()
    for _ in range(n_tokens):
        row = b.forward([Feed(PLANT, [tok], 0)])[0][-1]
        tok = int(np.argmax(row))
    return n_tokens / (time.perf_counter() - t0), _decode_seconds(engine) - d0


def _model_file(engine: Engine) -> dict:
    """Which file and weight format was measured (formats of one model share its name)."""
    from .core.gguf import GGUFError, read_header

    path = getattr(engine.backend, "model_path", None)
    if path is None:
        return {}
    try:
        weight = read_header(path).weight_type()
    except (OSError, GGUFError):
        weight = None
    return {"model_file": str(path), "weight_type": weight}


def _decode_seconds(engine: Engine) -> float:
    return float(getattr(engine.backend, "decode_seconds", 0.0))


def on_topic_prompt(reference: Reference | None) -> str:
    """A question some rule of ``reference`` bears on (its first such probe), so that the
    default loop is measured guiding, not in its fallback for questions no rule bears on."""
    for probe in reference.probes if reference else ():
        if any(r.score > 0 for r in rank_rules(reference, probe.prompt)):
            return probe.prompt
    return BENCH_PROMPT


def steered(engine: Engine, reference: Reference | None, loop: LoopSettings, prompt: str,
            n_tokens: int) -> dict:
    """One run's Done stats (tokens_per_s, emitted, sidecar_prompt_tokens, decode_s, …)."""
    result = collect(engine.run(prompt, reference, loop, SamplingSettings(max_tokens=n_tokens)))
    if result.failed is not None or result.transcript.done is None:
        raise RuntimeError(result.failed or "the run did not finish")
    return result.stats.to_dict()


def run_bench(engine: Engine, reference: Reference | None, tokens: int = 128, repeats: int = 5,
              extra_modes: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Each round runs every variant right after a plain decode of the same length, so a
    ratio compares two runs a second apart: on a shared machine whose speed drifts by 10%
    from minute to minute, the median of these paired ratios is far steadier than a ratio
    of medians taken minutes apart."""
    say = progress or (lambda _m: None)
    variants: dict[str, LoopSettings] = {
        # what a new user gets (LoopSettings()), whatever its mode, on a question it guides
        "default": LoopSettings(),
        # the modes with the whole reference in the sidecar: the attention cost of a long one
        "observe": LoopSettings(mode="observe", focus=0),
        "chunk1": LoopSettings(mode="observe", chunk=1, focus=0),
    }
    if extra_modes:
        variants["blip"] = (reference.loop if reference else LoopSettings()).updated(mode="blip", focus=0)
        # guidance away from γ = 1 needs both distributions at every token
        variants["guide"] = LoopSettings(mode="guide", gamma=1.5, gamma_min=0.0, gamma_max=0.0, focus=0)
    default_prompt = on_topic_prompt(reference)
    # A first observe run pages the weights in and sets the token count (a run may end its
    # turn before ``tokens``).
    first = steered(engine, reference, variants["observe"], BENCH_PROMPT, tokens)
    n = min(tokens, int(first["emitted"]))
    sidecar_prompt = int(first["sidecar_prompt_tokens"])
    plain: list[float] = []
    speed: dict[str, list[float]] = {k: [] for k in variants}
    ratio: dict[str, list[float]] = {k: [] for k in variants}
    decode_ratio: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        say(f"round {r + 1}/{repeats}")
        for name, loop in variants.items():
            base, base_decode = plain_decode(engine, BENCH_PROMPT, n)
            prompt = default_prompt if name == "default" else BENCH_PROMPT
            stats = steered(engine, reference, loop, prompt, tokens)
            tok_s = float(stats["tokens_per_s"])
            plain.append(base)
            speed[name].append(tok_s)
            ratio[name].append(tok_s / base)
            if base_decode > 0 and stats.get("decode_s", 0) > 0:
                # Both sides per emitted token, counting llama_decode alone.
                decode_ratio[name].append((base_decode / n) / (stats["decode_s"] / int(stats["emitted"])))
    out = {"model": engine.model_name, **_model_file(engine), "tokens": n, "repeats": repeats,
           "threads": getattr(engine.backend, "n_threads", None),
           "contexts": getattr(engine.backend, "n_contexts", 1),
           # The sidecar attends over its whole prompt, so the ratios fall as the reference grows.
           "sidecar_prompt_tokens": sidecar_prompt,
           "default_prompt": default_prompt,
           "plain_tok_s": round(statistics.median(plain), 2)}
    for name in variants:
        out[f"{name}_tok_s"] = round(statistics.median(speed[name]), 2)
        out[f"{name}_ratio"] = round(statistics.median(ratio[name]), 3)
        out[f"{name}_ratio_range"] = [round(min(ratio[name]), 3), round(max(ratio[name]), 3)]
        if decode_ratio[name]:
            # What the ratio would be if the Python side of the loop cost nothing.
            out[f"{name}_decode_ratio"] = round(statistics.median(decode_ratio[name]), 3)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out

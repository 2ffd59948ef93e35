"""At pull time: make a built-in's fast copy, measure it against the original, and choose.

The copy becomes the built-in's default only if its quality passed offline (``QUALITY``:
probe pass rates and log-prob deltas do not depend on the machine, and take too long for a
pull), it scores exactly here (chunk 8 = chunk 1 on a run with a shipped reference, bit for
bit) and a short paired bench finds its steered throughput clearly higher here
(``MIN_SPEEDUP``). Otherwise the original stays the default and the record says why. Either
way the copy is kept, so ``name:FORMAT`` can load it, and both sha256s are recorded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import references_dir
from .errors import Cancelled, LanternError
from .fastcopy import make_fast_copy
from .models import BUILTINS, copy_path, installed_path, is_installed, sha256_file, write_manifest

MIN_SPEEDUP = 1.10  # below this the gain is within what a shared machine's noise can fake
# Offline quality verdicts, (built-in, format) -> None if the copy may be the default, else
# why not. From benchmarks/bench_formats.py (docs/performance.md, "Model formats").
QUALITY: dict[tuple[str, str], str | None] = {
    ("smollm2", "Q4_0"): "requantizing Q4_1 to Q4_0 rounds every weight twice: the copy passes 5 fewer of the "
                         "60 test probes under the default loop and a quarter of its top-1 tokens differ",
}
BENCH_TOKENS = 48
BENCH_ROUNDS = 3
EXACT_TOLERANCE = 1e-4


def prepare_fast_copy(name: str, progress: Callable[[str], None] | None = None,
                      cancel: Callable[[], bool] | None = None, n_threads: int = 0,
                      rounds: int = BENCH_ROUNDS, tokens: int = BENCH_TOKENS) -> dict:
    """Make ``name``'s fast copy, measure it, record the choice in ``<name>.json``; returns
    the record. A copy that cannot be made leaves the original as the choice (recorded)."""
    model = BUILTINS[name]
    say = progress or (lambda _m: None)
    if not is_installed(name):
        raise LanternError(f"The model '{name}' is not installed; run 'lantern models pull {name}'.")
    fmt = model.fast_format
    original = installed_path(name)
    record: dict = {"original": {"file": original.name, "sha256": model.sha256, "size": model.size},
                    "copies": {}, "chosen": "original"}
    if fmt is None:
        record["reason"] = "the original's format is batched on this machine"
        write_manifest(name, record)
        return record
    target = copy_path(name, fmt)
    say(f"Preparing a {fmt} copy of {model.title} for this machine's kernels…")
    t0 = time.perf_counter()
    try:
        make_fast_copy(original, target, fmt, progress=lambda _f, m: None, cancel=cancel, n_threads=n_threads)
    except Cancelled:
        raise
    except LanternError as exc:
        record["reason"] = f"no {fmt} copy could be made ({exc})"
        write_manifest(name, record)
        say(f"Keeping the original: {record['reason']}")
        return record
    made_s = time.perf_counter() - t0
    say("Checking the copy: exact scoring and a short benchmark…")
    try:
        measured = compare_speed(original, target, n_threads, rounds, tokens, cancel)
    except Cancelled:
        raise
    except LanternError as exc:  # e.g. out of memory with both loaded: the pull itself succeeded
        record["reason"] = f"the {fmt} copy could not be measured ({exc})"
        write_manifest(name, record)
        say(f"Keeping the original: {record['reason']}")
        return record
    entry = {"file": target.name, "format": fmt, "sha256": sha256_file(target), "size": target.stat().st_size,
             "made_from_sha256": model.sha256, "seconds_to_make": round(made_s, 1), **measured}
    record["copies"][fmt] = entry
    speedup = measured["observe_speedup"]
    verdict = QUALITY.get((name, fmt), f"the quality of a {fmt} copy of {name} has not been measured")
    if verdict is not None:
        record["reason"] = (f"{verdict} (docs/performance.md); the {fmt} copy, {speedup:.2f}x the steered "
                            f"tokens/s here, loads as {name}:{fmt}")
    elif measured["exact_max_abs_diff"] > EXACT_TOLERANCE or not measured["exact_same_tokens"]:
        record["reason"] = (f"the {fmt} copy does not score exactly here (chunk 8 vs chunk 1 differ by "
                            f"{measured['exact_max_abs_diff']:.2g}); exact scores come first")
    elif speedup < MIN_SPEEDUP:
        record["reason"] = (f"the {fmt} copy was not clearly faster here ({speedup:.2f}x the original's "
                            f"steered tokens/s, {MIN_SPEEDUP:.2f}x needed)")
    else:
        record["chosen"] = fmt
        record["reason"] = (f"{fmt} copy: {speedup:.2f}x the original's steered tokens/s at pull time "
                            f"({measured['copy_observe_tok_s']:.0f} vs {measured['original_observe_tok_s']:.0f}), "
                            "exact scoring checked")
    write_manifest(name, record)
    say(f"{model.name} will use {'the ' + fmt + ' copy' if record['chosen'] != 'original' else 'the original'}: "
        f"{record['reason']}.")
    return record


def compare_speed(original: Path, copy: Path, n_threads: int = 0, rounds: int = BENCH_ROUNDS,
                  tokens: int = BENCH_TOKENS, cancel: Callable[[], bool] | None = None) -> dict:
    """Observe-mode runs with a shipped reference, the two files alternated in each round
    (the order swapped every round); the speed-up is the median of the rounds' ratios."""
    from .engine import Engine
    from .reference import empty_reference, load_reference
    from .settings import EngineSettings, LoopSettings

    sample = references_dir() / "otc-analgesics.md"
    reference = load_reference(sample) if sample.is_file() else empty_reference()
    loop = LoopSettings(mode="observe")
    settings = EngineSettings(n_threads=n_threads)
    with Engine.load(original, settings) as a, Engine.load(copy, settings) as b:
        exact = _exactness(b, reference)
        for engine in (a, b):  # page the weights in
            steered(engine, reference, loop, BENCH_PROMPT, 8)
        speeds: dict[str, list[float]] = {"a": [], "b": []}
        for r in range(rounds):
            order = (("a", a), ("b", b)) if r % 2 == 0 else (("b", b), ("a", a))
            for key, engine in order:
                if cancel is not None and cancel():
                    raise Cancelled("The preparation was cancelled.")
                speeds[key].append(float(steered(engine, reference, loop, BENCH_PROMPT, tokens)["tokens_per_s"]))
    ratios = [y / x for x, y in zip(speeds["a"], speeds["b"])]
    return {"original_observe_tok_s": round(statistics.median(speeds["a"]), 1),
            "copy_observe_tok_s": round(statistics.median(speeds["b"]), 1),
            "observe_speedup": round(statistics.median(ratios), 3), "bench_rounds": rounds, "bench_tokens": tokens,
            **exact}


BENCH_PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def steered(engine, reference, loop, prompt: str, tokens: int) -> dict:
    from .events import Transcript
    from .settings import SamplingSettings

    tr = Transcript().extend(engine.run(prompt, reference, loop, SamplingSettings(max_tokens=tokens)))
    if tr.failed is not None or tr.done is None:
        raise LanternError(tr.failed.message if tr.failed else "The benchmark run did not finish.")
    return {**tr.done.stats, "tokens": tr.tokens}


def _exactness(engine, reference) -> dict:
    from .settings import LoopSettings

    runs = [steered(engine, reference, LoopSettings(mode="observe", chunk=chunk), BENCH_PROMPT, 24)["tokens"]
            for chunk in (8, 1)]
    same = [t.token_id for t in runs[0]] == [t.token_id for t in runs[1]]
    diff = max((abs(x.logp_ref - y.logp_ref) for x, y in zip(*runs)), default=0.0)
    return {"exact_same_tokens": same, "exact_max_abs_diff": float(diff)}


__all__ = ["prepare_fast_copy", "compare_speed", "MIN_SPEEDUP"]

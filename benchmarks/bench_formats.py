"""Model formats: the same model requantized, measured against the file as pulled.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_formats [--formats Q4_0,Q8_0] [--json]
        [--bench-repeats 5] [--no-bench] [--no-probes] [--model smollm2:original]

For each format (the original first), in one process, one model loaded at a time:

- exactness: chunk 8 = chunk 1 (the otc-analgesics sample, more than 512 cells), batch
  scoring (``Engine.score_text``) = the live run, the plant's log-probs = llama-cpp-python's
  own high-level ``Llama`` with the same attention set-up, 1 thread = 2 threads: max |Δ|;
- quality against the original: the original's greedy answers to every shipped probe
  prompt, teacher-forced through each file, plant (no reference) and sidecar (with the
  reference): mean and max |Δ log p| per token, and how often the two files' top-1 token
  differs; plus the greedy answers each file writes itself (how many differ, where);
- probe pass rates (mode none and the default loop) on the whole shipped suite;
- ``run_bench`` (paired ratios against plain greedy decoding).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lantern_studio.bench import run_bench
from lantern_studio.core.backend import PLANT, SIDECAR, Feed
from lantern_studio.core.engine import Engine
from lantern_studio.core.events import Transcript
from lantern_studio.core.fastcopy import make_fast_copy
from lantern_studio.core.gguf import read_header
from lantern_studio.core.models import resolve_model
from lantern_studio.core.probes import PROBE_SAMPLING
from lantern_studio.core.reference import load_reference, render_reference
from lantern_studio.core.scoring import log_softmax, log_softmax_rows
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings
from lantern_studio.paths import references_dir

EXACT_PROMPT = "Give me three tips for sleeping better."


def say(msg: str) -> None:
    print(f"formats: {msg}", file=sys.stderr, flush=True)


def run(engine: Engine, prompt: str, reference, loop: LoopSettings, sampling=SamplingSettings(max_tokens=40)):
    tr = Transcript().extend(engine.run(prompt, reference, loop, sampling))
    if tr.failed is not None:
        raise RuntimeError(tr.failed.message)
    return tr


def exactness(engine: Engine, path: Path, threads: int) -> dict:
    from llama_cpp import GGML_TYPE_F16, GGML_TYPE_Q8_0, Llama

    ref = load_reference(references_dir() / "otc-analgesics.md")
    a = run(engine, EXACT_PROMPT, ref, LoopSettings(mode="observe", chunk=8))
    b = run(engine, EXACT_PROMPT, ref, LoopSettings(mode="observe", chunk=1))
    same_tokens = [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    chunk = max(abs(x.logp_ref - y.logp_ref) for x, y in zip(a.tokens, b.tokens))
    scored = Transcript().extend(engine.score_text(ref, EXACT_PROMPT, a.answer))
    score_ref = max(abs(x.logp_ref - y.logp_ref) for x, y in zip(scored.tokens, a.tokens))
    score_plant = max(abs(x.logp_plant - y.logp_plant) for x, y in zip(scored.tokens, a.tokens))
    plain = run(engine, EXACT_PROMPT, None, LoopSettings(mode="none"))
    beside = max(abs(x.logp_plant - y.logp_plant) for x, y in zip(plain.tokens, a.tokens))
    prompt_tokens = engine.conversation("", EXACT_PROMPT)
    answer = [t.token_id for t in plain.tokens]
    llm = Llama(model_path=str(path), logits_all=True, n_ctx=512, n_batch=32, flash_attn=True,
                type_k=GGML_TYPE_Q8_0, type_v=GGML_TYPE_F16, verbose=False, n_threads=threads or None)
    try:
        llm.eval(prompt_tokens + answer)
        scores = np.asarray(llm.scores[: len(prompt_tokens) + len(answer)])
    finally:
        llm.close()
    theirs = [float(log_softmax(scores[len(prompt_tokens) - 1 + i])[tok]) for i, tok in enumerate(answer)]
    high_level = float(np.abs(np.array([t.logp_plant for t in plain.tokens]) - np.array(theirs)).max())
    other = 2 if getattr(engine.backend, "n_threads", 1) == 1 else 1
    with Engine.load(path, EngineSettings(n_threads=other)) as second:
        c = run(second, EXACT_PROMPT, ref, LoopSettings(mode="observe", chunk=8))
    thread = max(abs(x.logp_ref - y.logp_ref) for x, y in zip(a.tokens, c.tokens))
    return {"sidecar_cells": a.done.stats["sidecar_prompt_tokens"] + len(a.tokens),
            "chunk8_vs_chunk1_same_tokens": same_tokens, "chunk8_vs_chunk1_max": chunk,
            "score_text_vs_live_ref_max": score_ref, "score_text_vs_live_plant_max": score_plant,
            "plant_alone_vs_beside_sidecar_max": beside, "plant_vs_llama_cpp_high_level_max": high_level,
            f"threads_{engine.backend.n_threads}_vs_{other}_max": thread,
            "same_tokens_across_threads": [t.token_id for t in a.tokens] == [t.token_id for t in c.tokens]}


def probe_items() -> list[tuple[object, str]]:
    items = []
    for path in sorted(references_dir().glob("*.md")):
        ref = load_reference(path)
        items.extend((ref, p.prompt) for p in ref.probes)
    return items


def teacher_forced(engine: Engine, prompt_tokens: list[int], answer: list[int], seq: int) -> tuple[np.ndarray, np.ndarray]:
    """log p(answer[i]) and the argmax of each row, the prompt then the answer fed as one."""
    b = engine.backend
    engine.clear_scratch()
    b.truncate(PLANT, 0)
    b.truncate(SIDECAR, 0)
    tokens = prompt_tokens + answer
    rows = b.forward([Feed(seq, tokens, len(prompt_tokens) - 1)])[0][: len(answer)]
    lp = log_softmax_rows(rows)
    return lp[np.arange(len(answer)), answer], lp.argmax(axis=1)


def quality_runs(engine: Engine, items, answers: list[list[int]] | None) -> dict:
    """With ``answers`` None, generate the greedy answers; always teacher-force the given ones."""
    own = []
    for ref, prompt in items:
        tr = run(engine, prompt, None, LoopSettings(mode="none"), PROBE_SAMPLING)
        own.append([t.token_id for t in tr.tokens])
    answers = answers or own
    forced = []
    for (ref, prompt), answer in zip(items, answers):
        if not answer:
            forced.append(None)
            continue
        plant = teacher_forced(engine, engine.conversation("", prompt), answer, PLANT)
        side = teacher_forced(engine, engine.conversation(render_reference(ref), prompt), answer, SIDECAR)
        forced.append((plant, side))
    return {"own": own, "answers": answers, "forced": forced}


def compare(base: dict, other: dict) -> dict:
    out = {}
    for side, k in (("plant", 0), ("sidecar", 1)):
        deltas, disagree, n = [], 0, 0
        for a, b in zip(base["forced"], other["forced"]):
            if a is None:
                continue
            (lp_a, top_a), (lp_b, top_b) = a[k], b[k]
            deltas.append(np.abs(lp_a - lp_b))
            disagree += int((top_a != top_b).sum())
            n += len(top_a)
        d = np.concatenate(deltas)
        out[side] = {"tokens": int(n), "mean_abs_dlogp": round(float(d.mean()), 4),
                     "p99_abs_dlogp": round(float(np.quantile(d, 0.99)), 4), "max_abs_dlogp": round(float(d.max()), 4),
                     "top1_disagreement": round(disagree / n, 4)}
    same = [x == y for x, y in zip(base["own"], other["own"])]
    first_diff = []
    for x, y in zip(base["own"], other["own"]):
        if x != y:
            first_diff.append(next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y))))
    out["greedy_answers_identical"] = f"{sum(same)}/{len(same)}"
    out["greedy_first_difference_median_token"] = statistics.median(first_diff) if first_diff else None
    return out


def pass_rates(engine: Engine, suite: Path) -> dict:
    """Probe pass counts on every reference in ``suite``, model alone and the default loop;
    also which probes passed, so two files can be compared probe by probe."""
    from lantern_studio.core.probes import run_probes

    out: dict = {}
    for label, loop in (("none", LoopSettings(mode="none")), ("guide (default loop)", LoopSettings())):
        passed: list[str] = []
        total = 0
        for path in sorted(suite.glob("*.md")):
            ref = load_reference(path)
            for r in run_probes(engine, ref, [loop.mode], loop=loop):
                if r.passed:
                    passed.append(f"{ref.slug}#{r.probe}")
                total += 1
        out[label] = {"passed": len(passed), "total": total, "which": passed}
    return out


def paired_bench(files: list[tuple[str, Path]], threads: int, rounds: int, tokens: int = 128) -> dict:
    """Every file loaded at once; in each round, for each variant, each file runs a plain
    decode and then the variant, the order of the files rotating from round to round. Two
    ratios come out: steered / plain within a file (as ``lantern bench``), and a file's
    tokens/s over the original's in the same round: on a machine whose speed drifts, both
    compare runs seconds apart."""
    from lantern_studio.bench import BENCH_PROMPT, plain_decode, steered

    ref = load_reference(references_dir() / "otc-analgesics.md")
    variants = {"observe": LoopSettings(mode="observe"), "blip": ref.loop.updated(mode="blip"),
                "guide": LoopSettings(mode="guide", gamma=1.5)}
    engines = [(label, Engine.load(path, EngineSettings(n_threads=threads))) for label, path in files]
    try:
        n = tokens
        for _, engine in engines:  # page in, and the token count every file can reach
            n = min(n, int(steered(engine, ref, variants["observe"], BENCH_PROMPT, tokens)["emitted"]))
        speed = {label: {v: [] for v in ["plain", *variants]} for label, _ in engines}
        within = {label: {v: [] for v in variants} for label, _ in engines}
        across = {label: {v: [] for v in ["plain", *variants]} for label, _ in engines}
        for r in range(rounds):
            order = engines[r % len(engines):] + engines[: r % len(engines)]
            say(f"paired round {r + 1}/{rounds}")
            got: dict[str, dict[str, float]] = {label: {} for label, _ in engines}
            for name, loop in variants.items():
                for label, engine in order:
                    base, _ = plain_decode(engine, BENCH_PROMPT, n)
                    tok_s = float(steered(engine, ref, loop, BENCH_PROMPT, n)["tokens_per_s"])
                    got[label].setdefault("plain", base)
                    got[label][name] = tok_s
                    speed[label][name].append(tok_s)
                    within[label][name].append(tok_s / base)
                    if name == "observe":
                        speed[label]["plain"].append(base)
            first = engines[0][0]
            for label, _ in engines:
                for v in ["plain", *variants]:
                    across[label][v].append(got[label][v] / got[first][v])
    finally:
        for _, engine in engines:
            engine.close()
    med = statistics.median
    out = {"tokens": n, "rounds": rounds, "threads": threads or os.cpu_count()}
    for label, _ in engines:
        row = {}
        for v in ["plain", *variants]:
            row[f"{v}_tok_s"] = round(med(speed[label][v]), 1)
            row[f"{v}_vs_original"] = round(med(across[label][v]), 3)
            row[f"{v}_vs_original_range"] = [round(min(across[label][v]), 3), round(max(across[label][v]), 3)]
            if v in within[label]:
                row[f"{v}_ratio"] = round(med(within[label][v]), 3)
                row[f"{v}_ratio_range"] = [round(min(within[label][v]), 3), round(max(within[label][v]), 3)]
        out[label] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2:original", help="the original (a built-in spec or a path)")
    ap.add_argument("--formats", default="Q4_0,Q8_0")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bench-repeats", type=int, default=5)
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--paired", action="store_true", help="only the cross-file paired bench (all files loaded at once)")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--no-original-probes", action="store_true", help="probe pass rates for the copies only")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--suite", type=Path, default=None, help="references whose probes give the pass rates (default: the shipped ones)")
    ap.add_argument("--keep", metavar="DIR", help="write the copies here and keep them")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    original = resolve_model(args.model)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lantern-formats-"))
    files = [("original " + (read_header(original).weight_type() or "?"), original)]
    for ftype in [f.strip().upper() for f in args.formats.split(",") if f.strip()]:
        t0 = time.perf_counter()
        dst = workdir / f"{original.stem.rsplit('.', 1)[0]}.{ftype}.gguf"
        if not dst.exists():
            from lantern_studio.core.fastcopy import TARGET_TYPES
            from lantern_studio.core.llama_native import quantize_model

            if ftype in TARGET_TYPES:
                make_fast_copy(original, dst, ftype, n_threads=args.threads)
            else:  # measured for the table, never offered as a fast copy
                quantize_model(original, dst, ftype, args.threads)
        say(f"{ftype}: {dst} ({dst.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
        files.append((f"requantized {ftype}", dst))
    if args.paired:
        result = paired_bench(files, args.threads, args.bench_repeats)
        print(json.dumps(result, indent=2) if args.json else json.dumps(result))
        return 0
    items = probe_items()
    report: dict = {"threads": args.threads or os.cpu_count(), "files": {}}
    base = None
    for label, path in files:
        say(f"{label}: loading")
        entry: dict = {"path": str(path), "size_mb": round(path.stat().st_size / 1e6, 1)}
        with Engine.load(path, EngineSettings(n_threads=args.threads)) as engine:
            t0 = time.perf_counter()
            entry["exactness"] = exactness(engine, path, args.threads)
            say(f"{label}: exactness {entry['exactness']} ({time.perf_counter() - t0:.0f} s)")
            if not args.no_quality:
                t0 = time.perf_counter()
                q = quality_runs(engine, items, base["answers"] if base else None)
                if base is None:
                    base = q
                entry["quality_vs_original"] = compare(base, q)
                say(f"{label}: quality {entry['quality_vs_original']} ({time.perf_counter() - t0:.0f} s)")
            if not args.no_probes and not (args.no_original_probes and path == original):
                t0 = time.perf_counter()
                entry["probe_pass"] = pass_rates(engine, args.suite or references_dir())
                say(f"{label}: probes { {k: (v['passed'], v['total']) for k, v in entry['probe_pass'].items()} } "
                    f"({time.perf_counter() - t0:.0f} s)")
            if not args.no_bench:
                entry["bench"] = run_bench(engine, load_reference(references_dir() / "otc-analgesics.md"),
                                           tokens=128, repeats=args.bench_repeats, progress=lambda m: say(f"{label}: bench {m}"))
                say(f"{label}: bench {entry['bench']}")
        report["files"][label] = entry
    print(json.dumps(report, indent=2) if args.json else json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

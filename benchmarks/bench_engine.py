"""Engine benchmarks, reported as ratios measured in one run (never as timed tests).

    .venv/bin/python -m benchmarks.bench_engine [--json] [--threads N] [--model NAME|PATH]

(from the repository root; the package must be importable: installed, or PYTHONPATH=.)

- steered throughput vs plain greedy decode (observe, chunk-1, blip, guide): `lantern bench`,
  with the shipped otc-analgesics reference and with an empty one
- peak RSS of `lantern run` with the default model (a child process)
- attribution of n items vs scoring n × output tokens in batch (same answer, same prefix)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from lantern_studio.bench import run_bench
from lantern_studio.core.attribution import attribute, item_spans
from lantern_studio.core.backend import FIRST_SCRATCH, SIDECAR, Feed
from lantern_studio.core.engine import Engine
from lantern_studio.core.events import Transcript
from lantern_studio.core.reference import empty_reference, load_reference
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings
from lantern_studio.paths import references_dir

REFERENCE = references_dir() / "otc-analgesics.md"
PROMPT = "How much paracetamol can I take for a headache?"


def run_rss_mb(model: str | None) -> float:
    """Peak RSS of a `lantern run` child process (observe mode, 120 tokens)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "lantern_studio.cli", "run", "--reference", str(REFERENCE),
                    "--prompt", PROMPT, "--mode", "observe", "--max-tokens", "120",
                    *(["--model", model] if model else [])],
                   check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024


def attribution_ratio(engine: Engine, repeats: int = 3) -> dict:
    ref = load_reference(REFERENCE)
    tr = Transcript().extend(engine.run(PROMPT, ref, LoopSettings(mode="observe"), SamplingSettings(max_tokens=60)))
    answer = tr.answer
    answer_tokens = engine.tokenize_answer(answer)
    prompt_tokens, spans = item_spans(engine, ref, PROMPT)
    n = len(spans)
    b = engine.backend
    att_times, base_times = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        attribute(engine, ref, PROMPT, answer)
        att_times.append(time.perf_counter() - t)
        # Baseline: score the answer n times in batch from the same cached prompt prefix.
        engine.clear_scratch()
        b.forward([engine.prefill(SIDECAR, prompt_tokens)])
        b.truncate(SIDECAR, len(prompt_tokens) - 1)
        t = time.perf_counter()
        slots = list(range(FIRST_SCRATCH, b.n_seq))
        for g in range(0, n, len(slots)):
            feeds = []
            for seq in slots[: min(len(slots), n - g)]:
                b.share_prefix(SIDECAR, seq, len(prompt_tokens) - 1)
                feeds.append(Feed(seq, [prompt_tokens[-1]] + answer_tokens[:-1], 0, answer_tokens))
            b.forward(feeds)
            for seq in slots:
                b.truncate(seq, 0)
        base_times.append(time.perf_counter() - t)
    att, base = min(att_times), min(base_times)
    return {"items": n, "answer_tokens": len(answer_tokens), "attribution_s": round(att, 3),
            "batch_scoring_s": round(base, 3), "attribution_ratio": round(att / base, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default=None, help="a built-in name (smollm2, smollm2:original) or a GGUF path")
    args = ap.parse_args()
    engine = Engine.load(args.model, EngineSettings(n_threads=args.threads))
    out = run_bench(engine, load_reference(REFERENCE), tokens=128, repeats=args.repeats,
                    progress=lambda m: print(f"bench: {m}", file=sys.stderr))
    # The same runs with an empty reference: the sidecar then holds only the conversation,
    # which isolates the cost of scoring from the cost of attending over a long reference.
    floor = run_bench(engine, empty_reference(), tokens=128, repeats=args.repeats, extra_modes=False,
                      progress=lambda m: print(f"bench (empty reference): {m}", file=sys.stderr))
    out["empty_reference"] = {k: floor[k] for k in ("sidecar_prompt_tokens", "plain_tok_s", "observe_tok_s",
                                                    "observe_ratio", "observe_ratio_range", "observe_decode_ratio",
                                                    "chunk1_tok_s", "chunk1_ratio", "chunk1_ratio_range",
                                                    "chunk1_decode_ratio") if k in floor}
    out["attribution"] = attribution_ratio(engine)
    engine.close()
    out["lantern_run_max_rss_mb"] = round(run_rss_mb(args.model), 1)
    print(json.dumps(out, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

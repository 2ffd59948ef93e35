"""Which weight formats llama.cpp batches on this machine: the cost of a 9-token batch (the
plant's token and a sidecar chunk of 8) against a single token, per format.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_kernels [--formats Q4_0,Q4_1,...] [--json]

A format with a batched kernel (repacked rows, or tinyBLAS tiles) multiplies a batch of 9
for little more than one token; one without multiplies row by column and a batch of 9
costs several tokens. Each format is a copy of the default model made with the fast-copy
quantizer (the original's own format is measured on the original). Singles and batches
alternate in every round; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lantern_studio.core.backend import PLANT, Feed, LlamaCppBackend
from lantern_studio.core.fastcopy import make_fast_copy
from lantern_studio.core.gguf import read_header
from lantern_studio.core.llama_native import QUANT_FTYPES
from lantern_studio.core.models import resolve_model
from lantern_studio.core.settings import EngineSettings


def batch_cost(path: Path, threads: int, rounds: int, context: int = 64) -> dict:
    backend = LlamaCppBackend(path, EngineSettings(n_threads=threads))
    try:
        prompt = list(range(1000, 1000 + context))
        backend.forward([Feed(PLANT, prompt, None)])
        single, batch, ratios = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            for k in range(9):
                backend.forward([Feed(PLANT, [2000 + k], 0)])
            one = (time.perf_counter() - t) / 9
            backend.truncate(PLANT, context)
            t = time.perf_counter()
            backend.forward([Feed(PLANT, list(range(2000, 2009)), 0)])
            nine = time.perf_counter() - t
            backend.truncate(PLANT, context)
            single.append(one)
            batch.append(nine)
            ratios.append(nine / one)
    finally:
        backend.close()
    return {"single_ms": round(statistics.median(single) * 1000, 2), "batch9_ms": round(statistics.median(batch) * 1000, 2),
            "batch9_over_single": round(statistics.median(ratios), 2),
            "range": [round(min(ratios), 2), round(max(ratios), 2)]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2:original")
    ap.add_argument("--formats", default="Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,IQ4_NL,Q4_K_M,Q5_K_M,Q6_K")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    original = resolve_model(args.model)
    own = read_header(original).weight_type()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lantern-kernels-"))
    out = {}
    for fmt in [f.strip().upper() for f in args.formats.split(",") if f.strip()]:
        if fmt == own:
            path = original
        else:
            if fmt not in QUANT_FTYPES:
                print(f"kernels: skipping unknown format {fmt}", file=sys.stderr)
                continue
            path = workdir / f"model.{fmt}.gguf"
            if not path.exists():
                from lantern_studio.core import fastcopy

                if fmt in fastcopy.TARGET_TYPES:
                    make_fast_copy(original, path, fmt)
                else:  # formats a fast copy never targets, measured for the table only
                    from lantern_studio.core.llama_native import quantize_model

                    quantize_model(original, path, fmt)
        layer_type = read_header(path).weight_type()
        out[fmt] = {"layers": layer_type, **batch_cost(path, args.threads, args.rounds)}
        print(f"kernels: {fmt} ({layer_type}): {out[fmt]}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2) if args.json else json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

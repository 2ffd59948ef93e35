"""`lantern bench`: steered throughput against plain generation."""

from __future__ import annotations

import argparse
import sys

from ..core.reference import load_reference
from ..paths import references_dir
from ._common import add_model_args, load_engine, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="steered throughput against plain greedy decoding, as ratios")
    p.add_argument("--reference", metavar="F", help="reference for the sidecar (default: a shipped sample)")
    p.add_argument("--tokens", type=int, default=128, help="tokens per run")
    p.add_argument("--repeats", type=int, default=5, help="alternated rounds; medians are reported")
    add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from ..bench import run_bench

    ref_path = args.reference or references_dir() / "otc-analgesics.md"
    reference = load_reference(ref_path)
    with load_engine(args) as engine:
        result = run_bench(engine, reference, args.tokens, args.repeats,
                           progress=lambda m: print(f"bench: {m}", file=sys.stderr))
    if args.json:
        print_json(result)
        return 0
    fmt = f" ({result['weight_type']})" if result.get("weight_type") else ""
    where = ", the sidecar in its own context" if result.get("contexts") == 2 else ""
    print(f"model {result['model']}{fmt}, {result['tokens']} tokens, {result['threads']} threads{where}, "
          f"sidecar prompt {result['sidecar_prompt_tokens']} tokens, {result['repeats']} rounds")
    print(f"plain greedy     {result['plain_tok_s']:8.1f} tok/s")
    if result.get("default_prompt"):
        print(f"(default: the loop's defaults on “{result['default_prompt']}”, a question a rule bears on)")
    for name in ("default", "observe", "chunk1", "blip", "guide"):
        if f"{name}_tok_s" in result:
            lo, hi = result[f"{name}_ratio_range"]
            decode = result.get(f"{name}_decode_ratio")
            tail = f"  (llama_decode alone {decode:.3f})" if decode is not None else ""
            print(f"{name:<16} {result[name + '_tok_s']:8.1f} tok/s  ratio {result[name + '_ratio']:.3f}"
                  f"  [{lo:.3f}–{hi:.3f}]{tail}")
    print(f"max RSS {result['max_rss_mb']} MB")
    return 0

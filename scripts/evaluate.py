"""Run the shipped probe suite under several loop variants and write docs/evaluation.md.

The matrix in docs/evaluation.md is produced by this script from real runs (greedy, seed 0,
default model); defaults in LoopSettings are chosen from it.

    .venv/bin/python scripts/evaluate.py [--variants a,b] [--max-tokens N] [--out docs/evaluation]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from lantern_studio.core.engine import Engine
from lantern_studio.core.events import Transcript
from lantern_studio.core.reference import load_reference
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings
from lantern_studio.paths import references_dir

# label -> loop overrides (applied over LoopSettings(), not the reference's own loop block,
# so every reference is measured under the same settings).
FIXED = {"gamma_min": 0.0, "gamma_max": 0.0}  # adaptive guidance off: γ = gamma
VARIANTS: dict[str, dict] = {
    "none": {"mode": "none"},
    "prompt": {"mode": "prompt"},
    "observe": {"mode": "observe"},
    "guide-1.5": {"mode": "guide", "gamma": 1.5, **FIXED},
    "guide-2": {"mode": "guide", "gamma": 2.0, **FIXED},
    "guide-3": {"mode": "guide", "gamma": 3.0, **FIXED},
    "blip-system-turn": {"mode": "blip", "blip_style": "system-turn"},
    "blip-inline-note": {"mode": "blip", "blip_style": "inline-note"},
    "blip-inline-scored": {"mode": "blip", "blip_style": "inline-note", "blip_choice": "scored"},
    # Adaptive variants name γ_min-γ_max; "guide-adaptive" is the 0.1.0 default (1.5-2.5).
    "guide-adaptive": {"mode": "guide", "gamma_min": 1.5, "gamma_max": 2.5, "threshold": 1.5},
    "guide-adaptive-1.2-2": {"mode": "guide", "gamma_min": 1.2, "gamma_max": 2.0, "threshold": 1.0},
    "guide-adaptive-1.5-3-t3": {"mode": "guide", "gamma_min": 1.5, "gamma_max": 3.0, "threshold": 3.0},
    "guide-redo": {"mode": "guide", "gamma": 1.5, **FIXED, "guide_rewind": True},
    "guide-redo-2": {"mode": "guide", "gamma": 2.0, **FIXED, "guide_rewind": True},
    "guide-adaptive-2-3": {"mode": "guide", "gamma_min": 2.0, "gamma_max": 3.0, "threshold": 1.5},
    "guide-adaptive-1.8-2.5": {"mode": "guide", "gamma_min": 1.8, "gamma_max": 2.5, "threshold": 1.5},
}
DEFAULT_VARIANTS = ("none,prompt,observe,guide-1.5,guide-2,guide-3,blip-system-turn,blip-inline-note,"
                    "guide-adaptive,guide-adaptive-1.2-2,guide-adaptive-1.5-3-t3,guide-adaptive-1.8-2.5,"
                    "guide-adaptive-2-3,guide-redo,guide-redo-2")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--merge", nargs="*", default=None, metavar="JSON",
                    help="only write the report from these result files (runs nothing)")
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="docs/evaluation")
    ap.add_argument("--references", nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    ap.add_argument("--force", action="store_true", help="re-run variants already in the results file")
    args = ap.parse_args()
    labels = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in labels if v not in VARIANTS]
    if unknown:
        print(f"unknown variants: {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.references] if args.references else sorted(references_dir().glob("*.md"))
    refs = [load_reference(p) for p in paths]
    if args.merge is not None:
        merged: dict = {}
        for name in args.merge:
            merged.update(json.loads(Path(name).read_text()))
        ordered = {k: merged[k] for k in labels if k in merged}
        Path(args.out + ".json").write_text(json.dumps(ordered, indent=1, ensure_ascii=False))
        write_markdown(ordered, refs, Path(args.out + ".md"), args.max_tokens)
        return 0
    sampling = SamplingSettings(temperature=0.0, seed=0, max_tokens=args.max_tokens)
    out_json = Path(args.out + ".json")
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    engine = Engine.load(args.model, EngineSettings(n_threads=args.threads))
    t0 = time.perf_counter()
    for label in labels:
        if label in results and not args.force:
            continue
        loop = LoopSettings().updated(**VARIANTS[label])
        rows = []
        for ref in refs:
            for i, probe in enumerate(ref.probes, start=1):
                tr = Transcript().extend(engine.run(probe.prompt, ref, replace(loop), sampling))
                failed = probe.check(tr.answer) if tr.failed is None else tr.failed.message
                rows.append({"reference": ref.slug, "probe": i, "passed": failed is None, "failed": failed,
                             "blips": len(tr.blips), "answer": tr.answer,
                             "tokens_per_s": (tr.done.stats.get("tokens_per_s") if tr.done else 0)})
        passed = sum(r["passed"] for r in rows)
        results[label] = {"settings": VARIANTS[label], "passed": passed, "total": len(rows), "rows": rows}
        print(f"{label:<20} {passed}/{len(rows)}  ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    write_markdown({k: results[k] for k in labels if k in results}, refs, Path(args.out + ".md"), args.max_tokens)
    return 0


def write_markdown(results: dict, refs, path: Path, max_tokens: int) -> None:
    labels = list(results)
    lines = ["# Evaluation: the shipped probe suite", "",
             "Generated by `scripts/evaluate.py` from real runs of the default model "
             f"(SmolLM2-135M-Instruct Q4_1, greedy, seed 0, at most {max_tokens} tokens). "
             "Do not edit by hand; re-run the script.", "",
             "## Pass rate per variant", "", "| variant | settings | passed | rate |", "| --- | --- | --- | --- |"]
    for label in labels:
        r = results[label]
        lines.append(f"| {label} | `{json.dumps(r['settings'])}` | {r['passed']}/{r['total']} | {100 * r['passed'] / max(1, r['total']):.0f}% |")
    rate = {k: v["passed"] / max(1, v["total"]) for k, v in results.items()}
    closed = [k for k in results if k.startswith("guide-adaptive") or k.startswith("blip") or k == "guide-redo"]
    fixed = [k for k in results if k.startswith("guide-") and k[6:].replace(".", "").isdigit()]
    if closed and fixed and "prompt" in rate:
        best = max(closed, key=rate.get)
        best_fixed = max(fixed, key=rate.get)
        lead = rate[best] - rate["prompt"]
        beats_fixed = rate[best] > rate[best_fixed]
        goal = "met" if lead >= 0.20 and beats_fixed else "not met"
        defaults = LoopSettings()
        is_default = defaults.updated(**results[best]["settings"]) == defaults
        lines += ["", "## Reading", "",
                  f"The best closed-loop variant, **{best}**, passes {100 * rate[best]:.0f}% of the probes: "
                  f"{100 * lead:+.0f} points against `prompt` mode "
                  f"({100 * rate['prompt']:.0f}%) and {100 * (rate[best] - rate[best_fixed]):+.0f} points against the "
                  f"best fixed-γ guidance, {best_fixed} ({100 * rate[best_fixed]:.0f}%). The goal (at least +20 "
                  f"points against `prompt` and above every fixed γ) is **{goal}**. "
                  + (f"`LoopSettings` defaults are {best}'s settings. " if is_default else
                     f"`LoopSettings` defaults (mode {defaults.mode}, γ {defaults.gamma_min}–{defaults.gamma_max}) "
                     f"are not {best}'s settings. ")
                  + "`observe` gives exactly the `none` tokens: it measures and does not act."]
    lines += ["", "## Per reference", "", "| reference | " + " | ".join(labels) + " |",
              "| --- |" + " --- |" * len(labels)]
    for ref in refs:
        cells = []
        for label in labels:
            rows = [x for x in results[label]["rows"] if x["reference"] == ref.slug]
            cells.append(f"{sum(x['passed'] for x in rows)}/{len(rows)}")
        lines.append(f"| {ref.slug} | " + " | ".join(cells) + " |")
    lines += ["", "## Probe × variant", "", "| probe | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    for ref in refs:
        for i in range(1, len(ref.probes) + 1):
            cells = []
            for label in labels:
                row = next((x for x in results[label]["rows"] if x["reference"] == ref.slug and x["probe"] == i), None)
                cells.append("—" if row is None else ("pass" if row["passed"] else "fail"))
            lines.append(f"| {ref.slug} #{i} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())

"""`lantern eval`: loop variants over a suite of references, from scratch."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.errors import LanternError
from ._common import add_model_args, load_engine, print_json


def default_suite() -> list[Path]:
    """The shipped samples and, in a checkout, the tune and test splits beside them."""
    from ..paths import references_dir

    shipped = references_dir()
    found = [shipped]
    for split in ("tune", "test"):
        folder = shipped.parent / "eval" / split
        if folder.is_dir():
            found.append(folder)
    return found


def register(sub: argparse._SubParsersAction) -> None:
    from ..core.evaluation import DEFAULT_VARIANTS

    p = sub.add_parser("eval", help="run loop variants over a suite of references, from scratch")
    p.add_argument("--suite", nargs="+", type=Path, metavar="DIR|FILE",
                   help="reference folders or files (default: references/ and eval/tune, eval/test)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="V",
                   help="known names (see --list) or ad-hoc ones as name:key=value,key=value")
    p.add_argument("--split", default=None, help="only these splits, e.g. tune or test,shipped")
    p.add_argument("--max-tokens", type=int, default=120, metavar="N")
    p.add_argument("--out", type=Path, metavar="FILE.json", help="write the full evaluation (meta + every answer)")
    p.add_argument("--report", type=Path, metavar="FILE.md", help="write the Markdown report (needs --out)")
    p.add_argument("--list", action="store_true", help="list the known variants and exit")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.set_defaults(func=eval_command)


def eval_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..core.eval_report import render_markdown
    from ..core.evaluation import EVAL_SAMPLING, VARIANTS, Evaluation, evaluate, load_suite, parse_variant, run_meta
    from ..core.settings import LoopSettings

    if args.list:
        for name, changes in VARIANTS.items():
            print(f"{name:<20} {json.dumps(changes) if changes else '(the defaults)'}")
        return 0
    if args.report and not args.out:
        raise LanternError("--report needs --out: the report must name the run it was made from.")
    variants = [parse_variant(v) for v in args.variants]
    names = [n for n, _ in variants]
    if len(set(names)) != len(names):
        raise LanternError("Two variants have the same name; give each a name of its own.")
    suite = load_suite(args.suite or default_suite())
    if args.split:
        wanted = {s.strip() for s in args.split.split(",") if s.strip()}
        suite = [e for e in suite if e.split in wanted]
        if not suite:
            raise LanternError(f"The suite has no references in the split(s) {', '.join(sorted(wanted))}.")
    sampling = replace(EVAL_SAMPLING, max_tokens=args.max_tokens)

    def progress(done: int, total: int, what: str) -> None:
        print(f"\reval {done}/{total} {what:<60}", end="", file=sys.stderr, flush=True)

    with load_engine(args, quiet=True) as engine:
        ev = Evaluation(run_meta(engine, sampling, suite),
                        {n: LoopSettings().updated(**c).to_dict() for n, c in variants})
        ev.meta["complete"] = False
        for row in evaluate(engine, suite, variants, sampling, progress):
            ev.rows.append(row)
            if args.out and len(ev.rows) % 20 == 0:  # a long run leaves its rows behind if it dies
                atomic_write(args.out, json.dumps(ev.to_json(), indent=1, ensure_ascii=False) + "\n")
        ev.meta["complete"] = True
        ev.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(file=sys.stderr)
    if args.out:
        atomic_write(args.out, json.dumps(ev.to_json(), indent=1, ensure_ascii=False) + "\n")
    if args.report:
        atomic_write(args.report, render_markdown(ev, args.out.name))
    if args.json:
        print_json(ev.to_json())
        return 0
    splits = sorted({r.split for r in ev.rows})
    for split in splits:
        table = ev.table(split)
        print(f"[{split}] variant  accepted  patterns-hold  leaks  degenerate")
        for name, cell in table.items():
            print(f"  {name:<24} {cell['passed']:>3}/{cell['total']:<4} {cell['pattern_passed']:>5} "
                  f"{cell['leak']:>7} {cell['degenerate']:>8}")
    return 0

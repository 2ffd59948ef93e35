"""`lantern score`: score any answer text against a reference, token by token."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import LanternError
from ..core.run_job import collect
from ._common import add_model_args, load_engine, load_reference_arg, print_json, token_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a given answer text against a reference",
                       description="Score an answer (from a file, or '-' for stdin) token by token.")
    p.add_argument("--reference", required=True, metavar="F")
    p.add_argument("--prompt", required=True, metavar="P")
    p.add_argument("--answer-file", required=True, metavar="A", help="the answer text; '-' reads stdin")
    add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=score_command)


def score_command(args: argparse.Namespace) -> int:
    reference = load_reference_arg(args.reference)
    answer = _read_answer(args.answer_file)
    with load_engine(args) as engine:
        result = collect(engine.score_text(reference, args.prompt, answer))
    if result.failed is not None:
        raise LanternError(result.failed)
    tr = result.transcript
    stats = tr.done.stats if tr.done else {}
    if args.json:
        print_json({"reference": reference.slug if reference else None, "prompt": args.prompt,
                    "model": engine.model_name, "tokens": [token_json(t) for t in tr.tokens],
                    "stats": stats})
        return 0
    print(f"{'#':>4}  {'error':>7}  {'KL':>6}  token")
    for t in tr.tokens:
        print(f"{t.index:>4}  {t.error:>7.3f}  {t.divergence:>6.3f}  {t.text!r}")
    print(f"mean error {stats.get('mean_error', 0):.3f}, max {stats.get('max_error', 0):.3f}, "
          f"{stats.get('drift_tokens', 0)} of {stats.get('tokens', 0)} tokens drift")
    return 0


def _read_answer(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LanternError(f"The answer file {name} does not exist.") from None
    except UnicodeDecodeError:
        raise LanternError(f"The answer file {name} is not UTF-8 text.") from None
    except OSError as exc:
        raise LanternError(f"The answer file {name} cannot be read ({exc.strerror}).") from None

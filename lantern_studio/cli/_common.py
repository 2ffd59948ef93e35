"""Pieces shared by the CLI commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..core.engine import Engine

from ..core.errors import LanternError
from ..core.printable import printable_json
from ..core.reference import Reference, load_reference
from ..core.settings import MODES, EngineSettings, LoopSettings, SamplingSettings, parse_value


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="F|URL", help="a built-in model name, a local .gguf path or a model server's "
                   "http://HOST:PORT (default: smollm2); a server's API key comes from LANTERN_API_KEY or the keyring")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: one per core)")
    p.add_argument("--ctx", type=int, default=EngineSettings().n_ctx, help="context size in tokens")


def add_sampling_args(p: argparse.ArgumentParser, max_tokens: int = 200) -> None:
    p.add_argument("--max-tokens", type=int, default=max_tokens, metavar="N")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")


def add_loop_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, help="none, prompt, observe, blip or guide (default: the reference's loop "
                   f"block, else {LoopSettings().mode}; none without a reference)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a loop setting, e.g. --set threshold=2 --set rewind=tokens:4")


def load_engine(args: argparse.Namespace, quiet: bool = False) -> "Engine":
    from ..core.engine import Engine  # imported here: `lantern keys` must not need llama.cpp

    settings = EngineSettings(n_ctx=args.ctx, n_threads=args.threads)
    if not quiet and sys.stderr.isatty():
        print("Loading model…", file=sys.stderr, end="\r")
    return Engine.load(args.model, settings)


def load_reference_arg(path: str | None) -> Reference | None:
    return load_reference(Path(path)) if path else None


def loop_settings(args: argparse.Namespace, reference: Reference | None) -> LoopSettings:
    """The reference's loop block over the defaults, then ``--set`` and ``--mode``. Without a
    reference there is nothing to steer toward: the mode is ``none``."""
    base = reference.loop if reference is not None else LoopSettings(mode="none")
    changes: dict[str, Any] = {}
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep:
            raise LanternError(f"The setting {item!r} must look like NAME=VALUE.")
        changes[name.strip()] = parse_value(raw.strip())
    if args.mode:
        changes["mode"] = args.mode
    return base.updated(**changes)


def sampling_settings(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)


def print_json(obj: Any, *, sort_keys: bool = False) -> None:
    """JSON on stdout, two-space indented, with no raw control or bidi character (``printable_json``)."""
    sys.stdout.write(printable_json(obj, indent=2, sort_keys=sort_keys) + "\n")


def token_json(ev) -> dict[str, Any]:
    return {"index": ev.index, "text": ev.text, "token_id": ev.token_id, "logp_plant": ev.logp_plant,
            "logp_ref": ev.logp_ref, "error": ev.error, "divergence": ev.divergence,
            "control": ev.control, "top_plant": ev.top_plant, "top_ref": ev.top_ref}

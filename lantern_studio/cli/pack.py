"""``lantern pack export / inspect / verify / import``: reference packs (docs/packs.md)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import PackError
from ..core.keys import NAME_RE, KeyStore, load_private_pem
from ..core.pack import export_pack, import_pack, read_pack, verify_pack

_VERDICT_TEXT = {
    "trusted": "trusted",
    "valid-unknown": "valid — unknown signer",
    "unsigned": "unsigned",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pack", help="export, inspect, verify and import reference packs")
    sub = parser.add_subparsers(dest="pack_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("export", help="write references (and what they link to) into a .lantern pack")
    p.add_argument("references", nargs="+", metavar="F", help="reference files; the first is the entry")
    p.add_argument("-o", "--output", required=True, metavar="X.lantern", help="the pack to write")
    p.add_argument("--sign", metavar="KEY", help="sign with this key name (lantern keys list) or PEM file")
    p.add_argument("--include-traces", nargs="+", default=[], metavar="T", help="sample trace .jsonl files")
    p.add_argument("--name", help="pack name (default: the entry's title)")
    p.add_argument("--version", dest="pack_version", metavar="VERSION", help="pack version (default: the entry's)")
    p.add_argument("--description", help="one-paragraph description")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("inspect", help="show a pack's manifest, files, author, status and signer")
    p.add_argument("pack", metavar="X")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="check a pack; exit 0 only if it is valid")
    p.add_argument("pack", metavar="X")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("import", help="check a pack and write its references into a directory")
    p.add_argument("pack", metavar="X")
    p.add_argument("--into", required=True, metavar="DIR", help="directory to write the references into")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_import)


def cmd_export(args: argparse.Namespace) -> int:
    key = None
    if args.sign:
        # A key name in the store wins; otherwise a path to a PEM private key file.
        store = KeyStore()
        named = NAME_RE.match(args.sign) and (store.keys_dir / f"{args.sign}.pem").is_file()
        if not named and Path(args.sign).is_file():
            key = load_private_pem(Path(args.sign))
        else:
            key = store.load_private(args.sign)
    out = export_pack(
        args.references,
        args.output,
        name=args.name,
        version=args.pack_version,
        description=args.description,
        signing_key=key,
        trace_paths=args.include_traces,
    )
    pack = read_pack(out)  # the same checks a recipient runs
    if args.json:
        _print_json(
            {
                "pack": str(out),
                "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                "verdict": pack.verdict,
                "signer": pack.signer,
                "files": sorted(pack.manifest["files"]),
            }
        )
    else:
        refs, traces = len(pack.references), len(pack.traces)
        signed = f", signed by {pack.signer_name or pack.signer}" if pack.signer else ", unsigned"
        print(f"Wrote {out}: {refs} reference{'s' * (refs != 1)}, {traces} trace{'s' * (traces != 1)}{signed}.")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.json:
        try:
            pack = read_pack(args.pack)
        except PackError as exc:
            _print_json({"pack": args.pack, "verdict": "invalid", "error": str(exc)})
            return 1
        _print_json(pack.to_dict())
        return 0
    pack = read_pack(args.pack)
    info = pack.to_dict()
    lines = [
        f"pack:        {info['pack']}",
        f"name:        {info['name']} ({info['slug']}) {info['version'] or ''}".rstrip(),
        f"author:      {info['author'] or '-'}",
        f"status:      {info['status'] or '-'}",
        f"created:     {info['created'] or '-'}",
        f"entry:       {info['entry']}",
        f"signature:   {_verdict_line(pack)}",
    ]
    if info["description"]:
        lines.append(f"description: {info['description']}")
    lines.append("references:")
    lines += [
        f"  {r['path']}  {r['title']}  v{r['version'] or '?'}  {r['status'] or '-'}  {r['author'] or '-'}"
        for r in info["references"]
    ]
    lines.append("files:")
    lines += [f"  {f['sha256']}  {f['size']:>9}  {f['path']}" for f in info["files"]]
    lines.append("loop:        " + ", ".join(f"{k}={v}" for k, v in sorted(pack.manifest["loop"].items())))
    print("\n".join(lines))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_pack(args.pack)
    if args.json:
        _print_json({"pack": args.pack, **result.to_dict()})
        return 0 if result.ok else 1
    if not result.ok:
        raise PackError(result.error or "The pack is invalid.")
    signer = ""
    if result.signer:
        signer = f" ({result.signer_name}, {result.signer})" if result.signer_name else f" ({result.signer})"
    print(f"{_VERDICT_TEXT[result.verdict]}{signer}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    written = import_pack(args.pack, args.into, overwrite=args.overwrite)
    if args.json:
        _print_json({"pack": args.pack, "into": args.into, "written": [str(p) for p in written]})
    else:
        for path in written:
            print(path)
    return 0


def _verdict_line(pack: Any) -> str:
    text = _VERDICT_TEXT[pack.verdict]
    if pack.signer:
        text += f" (signer {pack.signer_name + ', ' if pack.signer_name else ''}{pack.signer})"
    return text


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")

"""``lantern pack export / inspect / verify / import``: reference packs (docs/packs.md).

Everything printed from a pack goes through :func:`~lantern_studio.core.printable.printable`
(text) or ``print_json`` (JSON): a pack's author chooses those strings, and a newline or
an escape sequence in them must not forge or erase a line. A signer is always shown with
its fingerprint, never by name alone.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from ..core.errors import PackError
from ..core.keys import NAME_RE, KeyStore, load_private_pem
from ..core.pack import Pack, PackMeta, export_pack, import_pack, read_pack, verify_pack
from ..core.printable import printable
from ._common import print_json

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
        named = NAME_RE.fullmatch(args.sign) and (store.keys_dir / f"{args.sign}.pem").is_file()
        if not named and Path(args.sign).is_file():
            key = load_private_pem(Path(args.sign))
        else:
            key = store.load_private(args.sign)
    meta = PackMeta(
        name=args.name,
        version=args.pack_version,
        description=args.description,
        signing_key=key,
        trace_paths=args.include_traces,
    )
    out = export_pack(args.references, args.output, meta)
    pack = read_pack(out)  # the same checks a recipient runs
    if args.json:
        print_json(
            {
                "pack": str(out),
                "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                "verdict": pack.verdict,
                "signer": pack.signer,
                "files": sorted(pack.manifest["files"]),
            },
            sort_keys=True,
        )
    else:
        refs, traces = len(pack.references), len(pack.traces)
        signed = f", signed by {_signer(pack.signer, pack.signer_name)}" if pack.signer else ", unsigned"
        print(
            f"Wrote {printable(out)}: {refs} reference{'s' * (refs != 1)}, "
            f"{traces} trace{'s' * (traces != 1)}{signed}."
        )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.json:
        try:
            pack = read_pack(args.pack)
        except PackError as exc:
            print_json({"pack": args.pack, "verdict": "invalid", "error": str(exc)}, sort_keys=True)
            return 1
        print_json(pack.to_dict(), sort_keys=True)
        return 0
    pack = read_pack(args.pack)
    _warn_trust_error(pack.trust_error)
    print("\n".join(inspect_lines(pack)))
    return 0


def inspect_lines(pack: Pack) -> list[str]:
    """What ``pack inspect`` prints: one line per field, each value escaped (so one line each)."""
    info = pack.to_dict()
    p = printable
    lines = [
        f"pack:        {p(info['pack'])}",
        f"name:        {p(info['name'])} ({p(info['slug'])}) {p(info['version'] or '')}".rstrip(),
        f"author:      {p(info['author'] or '-')}",
        f"status:      {p(info['status'] or '-')}",
        f"created:     {p(info['created'] or '-')}",
        f"entry:       {p(info['entry'])}",
        f"signature:   {_verdict_line(pack)}",
    ]
    if info["description"]:
        lines.append(f"description: {p(info['description'])}")
    lines.append("references:")
    lines += [
        f"  {p(r['path'])}  {p(r['title'])}  v{p(r['version'] or '?')}  "
        f"{p(r['status'] or '-')}  {p(r['author'] or '-')}"
        for r in info["references"]
    ]
    lines.append("files:")
    lines += [f"  {f['sha256']}  {f['size']:>9}  {p(f['path'])}" for f in info["files"]]
    lines.append("loop:        " + ", ".join(f"{p(k)}={p(v)}" for k, v in sorted(pack.manifest["loop"].items())))
    return lines


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_pack(args.pack)
    if args.json:
        print_json({"pack": args.pack, **result.to_dict()}, sort_keys=True)
        return 0 if result.ok else 1
    if not result.ok:
        raise PackError(result.error or "The pack is invalid.")
    _warn_trust_error(result.trust_error)
    signer = f" ({_signer(result.signer, result.signer_name)})" if result.signer else ""
    print(f"{_VERDICT_TEXT[result.verdict]}{signer}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    written = import_pack(args.pack, args.into, overwrite=args.overwrite)
    if args.json:
        print_json({"pack": args.pack, "into": args.into, "written": [str(p) for p in written]}, sort_keys=True)
    else:
        for path in written:
            print(printable(path))
    return 0


def _signer(fingerprint: str, name: str | None) -> str:
    """``NAME, FINGERPRINT`` for a trusted signer, else the fingerprint alone."""
    return f"{printable(name)}, {fingerprint}" if name else fingerprint


def _verdict_line(pack: Any) -> str:
    text = _VERDICT_TEXT[pack.verdict]
    if pack.signer:
        text += f" (signer {_signer(pack.signer, pack.signer_name)})"
    return text


def _warn_trust_error(error: str | None) -> None:
    if error:
        print(f"lantern: warning: {printable(error)} The signer could not be looked up.", file=sys.stderr)

"""``lantern keys generate / list / trust / export-public``: signing keys and the trust store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import KeyStoreError
from ..core.keys import KeyStore, parse_public_key, public_pem, write_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="signing keys and the trust store of known signers")
    sub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("generate", help="make a new Ed25519 signing key (and trust it)")
    p.add_argument("--name", default="default", help="key name (default: default)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("list", help="your keys and the signers you trust")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("trust", help="trust a signer's public key (PEM file, base64 text or file)")
    p.add_argument("public_key", metavar="PUBKEY_OR_FILE")
    p.add_argument("--name", help="a name for the signer (default: its fingerprint)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_trust)

    p = sub.add_parser("export-public", help="print the public half of one of your keys as PEM")
    p.add_argument("name", nargs="?", default="default", metavar="NAME", help="key name (default: default)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the PEM to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print name, fingerprint, base64 key and PEM as JSON")
    p.set_defaults(func=cmd_export_public)


def cmd_generate(args: argparse.Namespace) -> int:
    info = KeyStore().generate(args.name)
    if args.json:
        _print_json(info.to_dict())
    else:
        print(f"Generated key {info.name!r} ({info.fingerprint}) in {info.path}; it is in your trust store.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = KeyStore()
    own, trusted = store.list_keys(), store.trusted()
    if args.json:
        _print_json(
            {
                "keys": [k.to_dict() for k in own],
                "trusted": [
                    {"name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key} for k in trusted
                ],
            }
        )
        return 0
    print("your keys:" if own else "your keys: none (lantern keys generate)")
    for k in own:
        print(f"  {k.fingerprint}  {k.name}  {k.path}")
    print("trusted signers:" if trusted else "trusted signers: none")
    for k in trusted:
        print(f"  {k.fingerprint}  {k.name}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    text = args.public_key
    path = Path(text)
    if not text.startswith("-----BEGIN") and len(text) < 4096 and path.is_file():
        try:
            if path.stat().st_size > 64 * 1024:
                raise KeyStoreError(f"{path} is too large to be a public key.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise KeyStoreError(f"The public key file {path} cannot be read as text.") from None
    elif not text.lstrip().startswith("-----BEGIN"):
        try:
            parse_public_key(text)
        except KeyStoreError:
            raise KeyStoreError(
                f"The argument {_short(text)!r} is neither a readable file nor a public key (PEM or base64 of 32 raw bytes)."
            ) from None
    info = KeyStore().trust(parse_public_key(text), name=args.name)
    if args.json:
        _print_json({"name": info.name, "fingerprint": info.fingerprint, "public_key": info.public_key})
    else:
        print(f"Trusted {info.name!r} ({info.fingerprint}).")
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    info = KeyStore().public_key(args.name)
    pem = public_pem(info.public_bytes)
    if args.output:
        try:
            write_atomic(Path(args.output), pem.encode("ascii"))
        except OSError as exc:
            raise KeyStoreError(
                f"The public key could not be written to {args.output} ({exc.strerror or exc})."
            ) from None
    if args.json:
        _print_json({"name": info.name, "fingerprint": info.fingerprint, "public_key": info.public_key, "pem": pem})
    elif not args.output:
        sys.stdout.write(pem)
    return 0


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")

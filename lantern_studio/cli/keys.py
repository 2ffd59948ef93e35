"""``lantern keys generate / list / trust / untrust / export-public``: signing keys and the trust store.

Names and paths are printed through :func:`~lantern_studio.core.printable.printable`, and a
signer is always shown with its fingerprint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.errors import KeyStoreError
from ..core.keys import KeyStore, parse_public_key, public_pem
from ..core.printable import printable
from ..core.regular_files import read_regular
from ._common import print_json

_MAX_PUBLIC_KEY_FILE = 64 * 1024


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

    p = sub.add_parser("untrust", help="remove a signer from the trust store")
    p.add_argument("signer", metavar="NAME|FINGERPRINT")
    p.add_argument("--json", action="store_true", help="print the removed signer as JSON")
    p.set_defaults(func=cmd_untrust)

    p = sub.add_parser("export-public", help="print the public half of one of your keys as PEM")
    p.add_argument("name", nargs="?", default="default", metavar="NAME", help="key name (default: default)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the PEM to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print name, fingerprint, base64 key and PEM as JSON")
    p.set_defaults(func=cmd_export_public)


def cmd_generate(args: argparse.Namespace) -> int:
    info = KeyStore().generate(args.name)
    if args.json:
        print_json(info.to_dict(), sort_keys=True)
    else:
        print(
            f"Generated key {info.name!r} ({info.fingerprint}) in {printable(info.path)}; it is in your trust store."
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = KeyStore()
    own, trusted = store.list_keys(), store.trusted()
    if args.json:
        print_json(
            {
                "keys": [k.to_dict() for k in own],
                "trusted": [
                    {"name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key} for k in trusted
                ],
            },
            sort_keys=True,
        )
        return 0
    print("your keys:" if own else "your keys: none (lantern keys generate)")
    for k in own:
        print(f"  {k.fingerprint}  {printable(k.name)}  {printable(k.path)}")
    print("trusted signers:" if trusted else "trusted signers: none")
    for k in trusted:
        print(f"  {k.fingerprint}  {printable(k.name)}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    text = args.public_key
    path = Path(text)
    if not text.startswith("-----BEGIN") and len(text) < 4096 and path.exists():
        try:
            text = read_regular(path, _MAX_PUBLIC_KEY_FILE).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = f" ({exc.strerror})" if isinstance(exc, OSError) and exc.strerror else ""
            raise KeyStoreError(f"The public key file {path} cannot be read as text{reason}.") from None
    elif not text.lstrip().startswith("-----BEGIN"):
        try:
            parse_public_key(text)
        except KeyStoreError:
            raise KeyStoreError(
                f"The argument {_short(text)!r} is neither a readable file nor a public key (PEM or base64 of 32 raw bytes)."
            ) from None
    info = KeyStore().trust(parse_public_key(text), name=args.name)
    if args.json:
        print_json({"name": info.name, "fingerprint": info.fingerprint, "public_key": info.public_key}, sort_keys=True)
    else:
        print(f"Trusted {info.name!r} ({info.fingerprint}).")
    return 0


def cmd_untrust(args: argparse.Namespace) -> int:
    info = KeyStore().untrust(args.signer)
    if info is None:
        raise KeyStoreError(f"No trusted key has the name or fingerprint {args.signer!r}.")
    if args.json:
        print_json({"name": info.name, "fingerprint": info.fingerprint, "public_key": info.public_key}, sort_keys=True)
    else:
        print(f"No longer trusted: {info.name!r} ({info.fingerprint}).")
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    info = KeyStore().public_key(args.name)
    pem = public_pem(info.public_bytes)
    if args.output:
        try:
            atomic_write(Path(args.output), pem.encode("ascii"))
        except OSError as exc:
            raise KeyStoreError(
                f"The public key could not be written to {args.output} ({exc.strerror or exc})."
            ) from None
    if args.json:
        print_json(
            {"name": info.name, "fingerprint": info.fingerprint, "public_key": info.public_key, "pem": pem},
            sort_keys=True,
        )
    elif not args.output:
        sys.stdout.write(pem)
    return 0


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."

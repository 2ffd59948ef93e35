"""``signature.json``: an Ed25519 signature over the stored bytes of ``manifest.json``."""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..ed25519_check import public_key_problem
from ..errors import PackError
from ..keys import raw_public_bytes
from .manifest import SIGNATURE_ALGORITHM, canonical_json, show


def sign_manifest(manifest_bytes: bytes, key: Ed25519PrivateKey) -> bytes:
    """The bytes of ``signature.json`` for ``manifest_bytes``."""
    return canonical_json(
        {
            "algorithm": SIGNATURE_ALGORITHM,
            "public_key": base64.b64encode(raw_public_bytes(key)).decode("ascii"),
            "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii"),
        }
    )


def check_signature(data: bytes, manifest_bytes: bytes) -> bytes:
    """The signer's raw public key if ``signature.json`` verifies over ``manifest_bytes``.

    The key must be a usable Ed25519 public key (not small-order, canonically encoded):
    a small-order key makes one forged signature verify for every manifest.
    """
    try:
        sig = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackError("The pack's signature.json is not valid UTF-8 JSON.") from None
    if not isinstance(sig, dict) or set(sig) != {"algorithm", "public_key", "signature"}:
        raise PackError("The pack's signature.json must hold exactly algorithm, public_key and signature.")
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise PackError(f"The pack's signature algorithm {show(sig['algorithm'])} is not supported (only ed25519).")
    try:
        public_key = base64.b64decode(sig["public_key"], validate=True)
        signature = base64.b64decode(sig["signature"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise PackError("The pack's signature.json holds a key or signature that is not base64.") from None
    if len(public_key) != 32 or len(signature) != 64:
        raise PackError("The pack's signature.json holds a key or signature of the wrong length for Ed25519.")
    problem = public_key_problem(public_key)
    if problem is not None:
        raise PackError(f"The pack's signing key {problem}; the pack is refused.")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError):
        raise PackError("The pack's signature does not verify against its manifest.json.") from None
    return public_key

"""Ed25519 signing keys and the trust store of known signers.

Private keys live as unencrypted PKCS#8 PEM files in ``<config dir>/keys/<name>.pem``
(the directory 0700, each file 0600); ``lantern_studio.paths.config_dir()`` honours
``LANTERN_CONFIG_DIR``. The trust store is ``<config dir>/trusted_keys.json``::

    {"format": "lantern-trust-store", "version": 1,
     "keys": [{"fingerprint": "…", "name": "…", "public_key": "<base64 raw 32 bytes>"}]}

A key's fingerprint is the first 16 hex digits of the sha256 of its raw 32-byte public
key. A key made with :meth:`KeyStore.generate` is trusted at once, so packs you sign
yourself read as *trusted* on your own machine. Names in the trust store are unique:
trusting a second, different key under a name already in use is refused, so a name
always means one key (and every signer is shown with its fingerprint as well).

Public keys are checked with :func:`check_public_key` wherever they come in (trusting,
reading the store, verifying a pack): small-order and non-canonical points, which
``cryptography`` accepts, are refused. Key files and the trust store are opened only
if they are regular files, and read only up to a size limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import paths
from .atomic import atomic_write
from .ed25519_check import public_key_problem
from .errors import KeyStoreError
from .regular_files import open_regular, read_bounded

TRUST_STORE_FORMAT = "lantern-trust-store"
TRUST_STORE_VERSION = 1
#: Key and signer names; always used with ``fullmatch`` (``$`` would let a final newline through).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{16}")
_MAX_KEY_FILE = 64 * 1024
_MAX_TRUST_STORE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A public key with its fingerprint and name; ``path`` is set for your own private keys."""

    name: str
    fingerprint: str
    public_key: str  # base64 of the raw 32 bytes
    path: Path | None = None

    @property
    def public_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "public_key": self.public_key,
            "path": str(self.path) if self.path else None,
        }


def fingerprint(public_key: bytes) -> str:
    """First 16 hex digits of the sha256 of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def raw_public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(public_key: bytes) -> str:
    """SubjectPublicKeyInfo PEM of a raw public key (what ``openssl pkeyutl -pubin`` reads)."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def check_public_key(public_key: bytes) -> bytes:
    """``public_key`` if it is a usable Ed25519 public key, else :class:`KeyStoreError`.

    Refuses non-canonical encodings and small-order points (see :mod:`.ed25519_check`):
    with those, a forged signature verifies.
    """
    problem = public_key_problem(bytes(public_key))
    if problem is not None:
        raise KeyStoreError(f"The public key {problem}; it is not a usable Ed25519 key.")
    return bytes(public_key)


def parse_public_key(text: str) -> bytes:
    """Raw public key bytes from a PEM block or base64 of the raw 32 bytes.

    Raises :class:`KeyStoreError` for anything else (an RSA key, a private key, junk,
    a small-order or non-canonical point).
    """
    text = text.strip()
    if text.startswith("-----BEGIN"):
        if "PRIVATE KEY" in text.split("\n", 1)[0]:
            raise KeyStoreError("That is a private key; give the public key (lantern keys export-public).")
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
            raise KeyStoreError("The PEM block is not a readable public key.") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyStoreError("The public key is not an Ed25519 key.")
        return check_public_key(raw_public_bytes(key))
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError("The public key is neither PEM nor base64 of 32 raw bytes.") from None
    if len(raw) != 32:
        raise KeyStoreError(f"The public key decodes to {len(raw)} bytes, not the 32 of an Ed25519 key.")
    return check_public_key(raw)


def load_private_pem(path: Path, *, check_permissions: bool = True) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PEM file; refused if others can read it.

    Only a regular file (a link to one is followed) is opened, and at most 64 KB read:
    a FIFO or a device in its place is refused at once instead of hanging.
    """
    path = Path(path)
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            data = read_bounded(fh, _MAX_KEY_FILE, str(path))
    except OSError as exc:
        raise KeyStoreError(f"The key file {path} cannot be read ({exc.strerror or exc}).") from None
    if check_permissions and os.name == "posix" and st.st_mode & 0o077:
        raise KeyStoreError(f"The private key file {path} is readable by other users; run chmod 600 on it.")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyStoreError(f"The key file {path} is password-protected, which is not supported.") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyStoreError(f"The key file {path} is not a readable PEM private key.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"The key file {path} does not hold an Ed25519 key.")
    return key


class KeyStore:
    """Your signing keys and the signers you trust, kept in the user's config dir."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.config_dir()

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def trust_path(self) -> Path:
        return self.root / "trusted_keys.json"

    # -- own keys -------------------------------------------------------

    def key_path(self, name: str) -> Path:
        _check_name(name)
        return self.keys_dir / f"{name}.pem"

    def generate(self, name: str = "default") -> KeyInfo:
        """Make a new Ed25519 key ``name`` (never replacing one) and trust it.

        Both or neither: the trust store is read and the name checked before the key is
        written, and the key file is removed again if the trust store cannot be written.
        """
        path = self.key_path(name)
        if os.path.lexists(path):
            raise KeyStoreError(f"A key named {name!r} already exists at {path}.")
        keys = self._read_trust()
        key = Ed25519PrivateKey.generate()
        raw = raw_public_bytes(key)
        info = KeyInfo(name, fingerprint(raw), _b64(raw))
        _check_name_free(keys, info)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            self.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if os.name == "posix":
                os.chmod(self.keys_dir, 0o700)
            atomic_write(path, pem, mode=0o600)
            if os.name == "posix":
                os.chmod(path, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"The key {name!r} could not be written to {path} ({exc.strerror or exc}).") from None
        keys[info.fingerprint] = info
        try:
            self._write_trust(keys)
        except BaseException:
            try:
                path.unlink()
            except OSError:  # the trust-store error is the one to report
                pass
            raise
        return KeyInfo(name, info.fingerprint, info.public_key, path)

    def list_keys(self) -> list[KeyInfo]:
        """Your own keys, by name; files that are not readable keys are skipped.

        A key with loose permissions is still listed; using it is what gets refused.
        """
        out = []
        if not self.keys_dir.is_dir():
            return out
        for path in sorted(self.keys_dir.glob("*.pem")):
            if not NAME_RE.fullmatch(path.stem):
                continue
            try:
                raw = raw_public_bytes(load_private_pem(path, check_permissions=False))
            except KeyStoreError:
                continue
            out.append(KeyInfo(path.stem, fingerprint(raw), _b64(raw), path))
        return out

    def load_private(self, name: str) -> Ed25519PrivateKey:
        """Your private key ``name``."""
        path = self.key_path(name)
        if not path.exists():
            known = ", ".join(k.name for k in self.list_keys()) or "none; run lantern keys generate"
            raise KeyStoreError(f"There is no key named {name!r} (known: {known}).")
        return load_private_pem(path)

    def public_key(self, name: str) -> KeyInfo:
        """The public half of your key ``name``."""
        raw = raw_public_bytes(self.load_private(name))
        return KeyInfo(name, fingerprint(raw), _b64(raw), self.key_path(name))

    # -- trust store ----------------------------------------------------

    def trusted(self) -> list[KeyInfo]:
        """Every trusted signer, by fingerprint."""
        return sorted(self._read_trust().values(), key=lambda k: k.fingerprint)

    def lookup(self, public_key: bytes) -> KeyInfo | None:
        """The trust-store entry of exactly this public key, or None."""
        info = self._read_trust().get(fingerprint(public_key))
        if info is not None and info.public_bytes == public_key:
            return info
        return None

    def trust(self, public_key: bytes, name: str | None = None) -> KeyInfo:
        """Add (or rename) a trusted signer; ``name`` defaults to the fingerprint.

        Refused: a key that is not a usable Ed25519 public key, and a name that another
        trusted key already has (or that is another key's fingerprint).
        """
        check_public_key(public_key)
        fp = fingerprint(public_key)
        if name is None:
            name = fp
        _check_name(name)
        keys = self._read_trust()
        info = KeyInfo(name, fp, _b64(public_key))
        _check_name_free(keys, info)
        keys[fp] = info
        self._write_trust(keys)
        return info

    def find_trusted(self, name_or_fingerprint: str) -> KeyInfo:
        """The trusted signer with this fingerprint (16 hex digits) or name."""
        keys = self._read_trust()
        if name_or_fingerprint in keys:
            return keys[name_or_fingerprint]
        named = [k for k in keys.values() if k.name == name_or_fingerprint]
        if len(named) == 1:
            return named[0]
        if named:  # only a hand-edited store can hold this
            fps = ", ".join(k.fingerprint for k in named)
            raise KeyStoreError(
                f"Several trusted keys are named {name_or_fingerprint!r} ({fps}); give the fingerprint."
            )
        raise KeyStoreError(f"No trusted key has the name or fingerprint {name_or_fingerprint!r}.")

    def untrust(self, name_or_fingerprint: str) -> KeyInfo | None:
        """Remove a signer (by fingerprint or name) from the trust store; None if it was not there."""
        keys = self._read_trust()
        try:
            info = self.find_trusted(name_or_fingerprint)
        except KeyStoreError as exc:
            if str(exc).startswith("No trusted key"):
                return None
            raise
        del keys[info.fingerprint]
        self._write_trust(keys)
        return info

    def _read_trust(self) -> dict[str, KeyInfo]:
        path = self.trust_path
        try:
            with open_regular(path) as fh:
                raw_data = read_bounded(fh, _MAX_TRUST_STORE, str(path))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeyStoreError(f"The trust store {path} cannot be read ({exc.strerror or exc}).") from None
        try:
            data = json.loads(raw_data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise KeyStoreError(f"The trust store {path} is not readable JSON.") from None
        if (
            not isinstance(data, dict)
            or data.get("format") != TRUST_STORE_FORMAT
            or not isinstance(data.get("keys"), list)
        ):
            raise KeyStoreError(f"The trust store {path} is not a Lantern trust store.")
        if data.get("version") != TRUST_STORE_VERSION:
            raise KeyStoreError(f"The trust store {path} has version {data.get('version')!r}; this build reads 1.")
        out: dict[str, KeyInfo] = {}
        for item in data["keys"]:
            try:
                raw = base64.b64decode(item["public_key"], validate=True)
                name = item["name"]
            except (TypeError, KeyError, ValueError, binascii.Error):
                raise KeyStoreError(f"The trust store {path} has a malformed entry.") from None
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                raise KeyStoreError(f"The trust store {path} has an entry whose name is not a valid key name.")
            if len(raw) != 32:
                raise KeyStoreError(f"The trust store {path} has a key that is not 32 bytes.")
            problem = public_key_problem(raw)
            if problem is not None:
                raise KeyStoreError(f"The trust store {path} has a key that {problem}.")
            fp = fingerprint(raw)
            out[fp] = KeyInfo(name, fp, _b64(raw))
        return out

    def _write_trust(self, keys: dict[str, KeyInfo]) -> None:
        data = {
            "format": TRUST_STORE_FORMAT,
            "version": TRUST_STORE_VERSION,
            "keys": [
                {"fingerprint": k.fingerprint, "name": k.name, "public_key": k.public_key}
                for k in sorted(keys.values(), key=lambda k: k.fingerprint)
            ],
        }
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.trust_path, text.encode("utf-8"), mode=0o600)
        except OSError as exc:
            raise KeyStoreError(
                f"The trust store {self.trust_path} could not be written ({exc.strerror or exc})."
            ) from None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise KeyStoreError(
            f"Key name {name!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )


def _check_name_free(keys: dict[str, KeyInfo], info: KeyInfo) -> None:
    """Refuse ``info.name`` if another trusted key has it, or if it is another key's fingerprint."""
    for other in keys.values():
        if other.fingerprint != info.fingerprint and other.name == info.name:
            raise KeyStoreError(
                f"The name {info.name!r} already belongs to the trusted key {other.fingerprint}; "
                "choose another name, or run lantern keys untrust first."
            )
    if _FINGERPRINT_RE.fullmatch(info.name) and info.name != info.fingerprint:
        raise KeyStoreError(f"The name {info.name!r} looks like a fingerprint but is not this key's.")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


__all__ = [
    "NAME_RE",
    "KeyInfo",
    "KeyStore",
    "check_public_key",
    "fingerprint",
    "load_private_pem",
    "parse_public_key",
    "public_pem",
    "raw_public_bytes",
]

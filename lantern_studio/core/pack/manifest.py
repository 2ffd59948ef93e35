"""The pack's manifest: its constants, limits, canonical bytes, parsing and schema.

Every name pattern here is used with ``fullmatch``: ``re.match`` with ``$`` accepts a
final newline (``"beta.md\\n"``), which would reach the file system on import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import LanternError, PackError
from ..settings import LoopSettings

FORMAT = "lantern-pack"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
SIGNATURE_ALGORITHM = "ed25519"

#: ``trusted``: signer in the trust store; ``valid-unknown``: good signature, signer not
#: trusted; ``unsigned``: no signature; ``invalid``: a check failed (the pack is refused).
VERDICTS = ("trusted", "valid-unknown", "unsigned", "invalid")

SLUG_RE = re.compile(r"[a-z0-9-]{1,100}")
REFERENCE_NAME_RE = re.compile(r"references/([a-z0-9-]{1,100})\.md")
TRACE_NAME_RE = re.compile(r"traces/([a-z0-9][a-z0-9._-]{0,99})\.jsonl")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Names a Windows import would turn into devices.
WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)})
MANIFEST_KEYS = frozenset({
    "format", "format_version", "name", "slug", "version", "author", "created",
    "description", "entry", "loop", "model_hint", "files",
})  # fmt: skip
REQUIRED_KEYS = ("format", "format_version", "name", "slug", "entry", "loop", "files")
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackLimits:
    """Bounds that a pack must respect before anything in it is read.

    ``max_total_bytes`` bounds what is decompressed; ``max_references``,
    ``max_reference_total_bytes`` and ``max_reference_lines`` bound the parsing work,
    which costs far more per byte than reading (up to ~30 µs per line of Markdown):
    all three are checked before any reference is parsed (docs/security.md has the figures).
    """

    max_entries: int = 1000
    max_reference_bytes: int = 2 * MiB
    max_trace_bytes: int = 20 * MiB
    max_manifest_bytes: int = 1 * MiB
    max_signature_bytes: int = 4096
    max_total_bytes: int = 64 * MiB
    max_ratio: int = 100
    # Entries smaller than this cannot bomb anything; tiny files compress absurdly well.
    ratio_floor: int = 64 * 1024
    max_references: int = 256
    max_reference_total_bytes: int = 4 * MiB
    max_reference_lines: int = 100_000

    def for_entry(self, name: str) -> int:
        if name == MANIFEST:
            return self.max_manifest_bytes
        if name == SIGNATURE:
            return self.max_signature_bytes
        if name.startswith("traces/"):
            return self.max_trace_bytes
        return self.max_reference_bytes

    @property
    def max_pack_bytes(self) -> int:
        # Stored entries plus headers and the central directory of max_entries files.
        return self.max_total_bytes + 1 * MiB + self.max_entries * 512


DEFAULT_LIMITS = PackLimits()


def canonical_json(data: Any) -> bytes:
    """The canonical bytes of a manifest: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest from its stored bytes: UTF-8 JSON, no duplicate keys, format and version, canonical."""
    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackError("The pack's manifest.json is not valid UTF-8 JSON.") from None
    if not isinstance(manifest, dict):
        raise PackError("The pack's manifest.json is not a JSON object.")
    if manifest.get("format") != FORMAT:
        raise PackError(f"The manifest's format is {show(manifest.get('format'))}, not {FORMAT!r}.")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackError("The manifest's format_version is missing or not a whole number.")
    if version not in SUPPORTED_VERSIONS:
        raise PackError(
            f"The pack has format version {version}, which this Lantern Studio does not read "
            f"(it reads {', '.join(map(str, SUPPORTED_VERSIONS))})."
        )
    try:
        canonical = canonical_json(manifest)
    except (ValueError, RecursionError):  # e.g. a lone surrogate, which UTF-8 cannot encode
        canonical = b""
    if canonical != data:
        raise PackError("The pack's manifest.json is not in canonical form (sorted keys, compact separators).")
    return manifest


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_manifest(m: dict[str, Any]) -> None:
    """The manifest schema (format and version are checked on parse)."""
    for key in sorted(set(m) - MANIFEST_KEYS):
        raise PackError(f"The manifest has an unknown field {show(key)}.")
    for key in REQUIRED_KEYS:
        if key not in m:
            raise PackError(f"The manifest has no {key!r} field.")
    for key in ("name", "slug", "entry"):
        if not isinstance(m[key], str) or not m[key] or len(m[key]) > 1000:
            raise PackError(f"The manifest's {key!r} must be non-empty text.")
    for key in ("version", "author", "created", "description"):
        if m.get(key) is not None and (not isinstance(m[key], str) or len(m[key]) > 100_000):
            raise PackError(f"The manifest's {key!r} must be text or null.")
    if not SLUG_RE.fullmatch(m["slug"]):
        raise PackError("The manifest's 'slug' must use only a-z, 0-9 and '-'.")
    files = m["files"]
    if not isinstance(files, dict) or not files:
        raise PackError("The manifest's 'files' must map file names to sha256 digests.")
    for name, digest in files.items():
        if not (REFERENCE_NAME_RE.fullmatch(name) or TRACE_NAME_RE.fullmatch(name)):
            raise PackError(f"The manifest lists {show(name)}, which is not a reference or trace path.")
        if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
            raise PackError(f"The manifest's sha256 for {show(name)} is not 64 lowercase hex digits.")
    if not REFERENCE_NAME_RE.fullmatch(m["entry"]) or m["entry"] not in files:
        raise PackError(f"The manifest's entry {show(m['entry'])} is not one of the pack's references.")
    try:
        LoopSettings.from_mapping(m["loop"])
    except LanternError as exc:
        raise PackError(f"The manifest's loop settings are invalid: {clause(exc)}.") from None
    hint = m.get("model_hint")
    if hint is not None:
        if not isinstance(hint, dict) or set(hint) - {"family", "name", "sha256"}:
            raise PackError("The manifest's 'model_hint' must hold only family, name and sha256.")
        for key, value in hint.items():
            if value is not None and not isinstance(value, str):
                raise PackError(f"The manifest's model_hint {key!r} must be text or null.")
        if hint.get("sha256") is not None and not SHA256_RE.fullmatch(hint["sha256"]):
            raise PackError("The manifest's model_hint sha256 is not 64 lowercase hex digits.")


def opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def clause(exc: BaseException) -> str:
    """An error's sentence without its final full stop, to embed in another sentence."""
    return str(exc).strip().rstrip(".")


def show(value: Any) -> str:
    """A value quoted for an error message: ``repr`` (which escapes control characters), cut at 80."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

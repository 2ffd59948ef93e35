"""Reference packs: deterministic export, a reader that never trusts its input, safe import.

A ``.lantern`` pack is a zip holding ``manifest.json``, ``references/<slug>.md``,
optional ``traces/<name>.jsonl`` and an optional ``signature.json`` (docs/packs.md).
The manifest pins every other file by sha256; the signature is Ed25519 over the exact
stored bytes of ``manifest.json``, which are its canonical form
``json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
encoded as UTF-8. The manifest names its own format version ``format_version``
because ``version`` is the pack's version.

The package, one concern per module:

* :mod:`.manifest` — constants, :class:`PackLimits`, canonical bytes, manifest schema;
* :mod:`.zipsafe` — the archive's layout, its directory, bounded and hashed entry reads;
* :mod:`.signature` — signing and checking ``signature.json``;
* :mod:`.export` — :func:`export_pack` and :class:`PackMeta`;
* :mod:`.read` — :func:`read_pack`, :func:`verify_pack`, :class:`Pack`;
* :mod:`.install` — :func:`import_pack`.

The threat model and the limits are in docs/security.md.
"""

from __future__ import annotations

from .export import PackMeta, export_pack
from .install import import_pack
from .manifest import (
    DEFAULT_LIMITS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    SLUG_RE,
    VERDICTS,
    PackLimits,
    canonical_json,
)
from .read import Pack, Verification, read_pack, verify_pack

__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "SIGNATURE",
    "SLUG_RE",
    "VERDICTS",
    "Pack",
    "PackLimits",
    "PackMeta",
    "Verification",
    "canonical_json",
    "export_pack",
    "import_pack",
    "read_pack",
    "verify_pack",
]

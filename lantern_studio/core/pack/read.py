"""Reading a pack: every check, in order, and the verdict.

:func:`read_pack` raises :class:`PackError` with one sentence naming the failed check;
it never raises anything else for a hostile file.
"""

from __future__ import annotations

import base64
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KeyStoreError, LanternError, PackError
from ..keys import KeyStore, fingerprint
from ..reference import Reference, parse_reference
from ..regular_files import open_regular
from ..settings import LoopSettings
from .manifest import (
    DEFAULT_LIMITS,
    MANIFEST,
    REFERENCE_NAME_RE,
    SIGNATURE,
    PackLimits,
    check_manifest,
    clause,
    opt_str,
    parse_manifest,
    show,
)
from .signature import check_signature
from .zipsafe import ZIP_ERRORS, ByteBudget, check_directory, check_layout, read_entry


@dataclass(frozen=True)
class Pack:
    """A pack that passed every check.

    ``references`` and ``traces`` map in-pack paths (``references/a.md``) to content;
    ``parsed`` holds the parsed references. ``signer`` is the signing key's fingerprint
    (None if unsigned) and ``signer_name`` its trust-store name when ``verdict == "trusted"``.
    ``trust_error`` is set when the trust store could not be read: the verdict of a
    signed pack is then ``valid-unknown``, never ``trusted``.
    """

    path: Path
    manifest: dict[str, Any]
    references: dict[str, str]
    traces: dict[str, bytes]
    parsed: dict[str, Reference]
    verdict: str
    signer: str | None = None
    signer_name: str | None = None
    public_key: str | None = None  # base64 raw 32 bytes
    sizes: dict[str, int] = field(default_factory=dict)
    trust_error: str | None = None

    @property
    def entry(self) -> Reference:
        return self.parsed[self.manifest["entry"]]

    @property
    def loop(self) -> LoopSettings:
        return LoopSettings.from_mapping(self.manifest["loop"])

    def to_dict(self) -> dict[str, Any]:
        """The stable ``lantern pack inspect --json`` shape (docs/packs.md)."""
        m = self.manifest
        out = {
            "pack": str(self.path),
            "verdict": self.verdict,
            "signer": None
            if self.signer is None
            else {"fingerprint": self.signer, "name": self.signer_name, "public_key": self.public_key},
            "name": m["name"],
            "slug": m["slug"],
            "version": m.get("version"),
            "author": m.get("author"),
            "status": self.entry.status,
            "created": m.get("created"),
            "description": m.get("description"),
            "entry": m["entry"],
            "files": [{"path": p, "sha256": m["files"][p], "size": self.sizes.get(p, 0)} for p in sorted(m["files"])],
            "references": [
                {
                    "path": p,
                    "slug": r.slug,
                    "title": r.title,
                    "version": opt_str(r.version),
                    "author": opt_str(r.author),
                    "status": opt_str(r.status),
                    "links": list(r.links),
                }
                for p, r in sorted(self.parsed.items())
            ],
            "manifest": m,
        }
        if self.trust_error is not None:
            out["trust_error"] = self.trust_error
        return out


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :func:`verify_pack`: a verdict, and the failed check when invalid."""

    verdict: str
    signer: str | None = None
    signer_name: str | None = None
    error: str | None = None
    trust_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict != "invalid"

    def to_dict(self) -> dict[str, Any]:
        out = {"verdict": self.verdict, "valid": self.ok, "signer": self.signer,
               "signer_name": self.signer_name, "error": self.error}  # fmt: skip
        if self.trust_error is not None:
            out["trust_error"] = self.trust_error
        return out


def read_pack(
    path: str | os.PathLike[str],
    trust_store: KeyStore | None = None,
    *,
    limits: PackLimits = DEFAULT_LIMITS,
) -> Pack:
    """Open and check a pack; raise :class:`PackError` naming the first failed check.

    Checks, in order: that the path is a regular file and its size; the zip directory
    (entry count, safe and allowed names, no links or other special files, no
    duplicates, declared sizes, compression ratio, no encryption, how many references
    and how many bytes of them); the archive's layout (no stub before it, nothing after
    it, no comment, entries back to back); ``manifest.json`` (size, UTF-8 JSON,
    canonical bytes, format and version); the signature (and that its key is not a
    weak one); the manifest schema; that the files in the zip and in the manifest are
    the same; every file's size (enforced while reading) and sha256; that references
    are UTF-8 and parse, with slugs matching their file names; that traces are UTF-8
    JSON lines. ``trust_store`` defaults to the user's :class:`KeyStore`.
    """
    path = Path(path)
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise PackError(f"The pack {path} cannot be read ({exc.strerror or exc}).") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limits.max_pack_bytes:
            raise PackError(f"The pack is {size} bytes, more than the size limit of a pack.")
        try:
            zf = zipfile.ZipFile(fh)
        except ZIP_ERRORS as exc:
            raise PackError(f"The file is not a readable zip archive ({type(exc).__name__}).") from None
        with zf:
            infos = zf.infolist()
            by_name = check_directory(infos, limits)
            check_layout(fh, size, infos)
            manifest, manifest_bytes, contents, public_key = _read_contents(zf, by_name, limits)

    references: dict[str, str] = {}
    traces: dict[str, bytes] = {}
    for name, data in contents.items():
        if name.startswith("references/"):
            try:
                references[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise PackError(f"Pack reference {show(name)} is not valid UTF-8.") from None
        else:
            problem = trace_problem(data)
            if problem:
                raise PackError(f"Pack trace {show(name)} {problem}.")
            traces[name] = data
    parsed = parse_references(references)
    if manifest["entry"] not in parsed:
        raise PackError(f"The manifest's entry {show(manifest['entry'])} is not one of the pack's references.")

    verdict, signer_name, trust_error = "unsigned", None, None
    if public_key is not None:
        verdict = "valid-unknown"
        try:
            known = (trust_store if trust_store is not None else KeyStore()).lookup(public_key)
        except KeyStoreError as exc:
            known, trust_error = None, str(exc)
        if known is not None:
            verdict, signer_name = "trusted", known.name
    return Pack(
        path=path,
        manifest=manifest,
        references=references,
        traces=traces,
        parsed=parsed,
        verdict=verdict,
        signer=fingerprint(public_key) if public_key is not None else None,
        signer_name=signer_name,
        public_key=base64.b64encode(public_key).decode("ascii") if public_key is not None else None,
        sizes={name: len(data) for name, data in contents.items()},
        trust_error=trust_error,
    )


def _read_contents(
    zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], limits: PackLimits
) -> tuple[dict[str, Any], bytes, dict[str, bytes], bytes | None]:
    """Manifest, its bytes, every listed file (hash-checked) and the signer's key, from an open pack."""
    total = ByteBudget(limits.max_total_bytes)
    parse_budget = ByteBudget(
        limits.max_reference_total_bytes, "The pack's references hold more than the {mb} MB limit when read."
    )
    manifest_bytes, _ = read_entry(zf, by_name.get(MANIFEST), MANIFEST, limits, total)
    manifest = parse_manifest(manifest_bytes)

    public_key = None
    if SIGNATURE in by_name:
        raw_sig, _ = read_entry(zf, by_name[SIGNATURE], SIGNATURE, limits, total)
        public_key = check_signature(raw_sig, manifest_bytes)

    check_manifest(manifest)
    listed = set(manifest["files"])
    present = set(by_name) - {MANIFEST, SIGNATURE}
    for name in sorted(listed - present):
        raise PackError(f"The manifest lists {show(name)}, which is not in the pack.")
    for name in sorted(present - listed):
        raise PackError(f"The pack holds {show(name)}, which the manifest does not list.")

    contents: dict[str, bytes] = {}
    lines = 0
    for name in sorted(listed):
        budget = parse_budget if name.startswith("references/") else None
        data, digest = read_entry(zf, by_name[name], name, limits, total, budget)
        if digest != manifest["files"][name]:
            raise PackError(f"Pack entry {show(name)} does not match its sha256 in the manifest.")
        if budget is not None:
            lines += data.count(b"\n") + 1
            if lines > limits.max_reference_lines:
                raise PackError(
                    f"The pack's references hold more than {limits.max_reference_lines} lines in total "
                    "(parsing them would take too long)."
                )
        contents[name] = data
    return manifest, manifest_bytes, contents, public_key


def verify_pack(path: str | os.PathLike[str], trust_store: KeyStore | None = None) -> Verification:
    """Like :func:`read_pack` but returns the verdict, with ``invalid`` and the failed check."""
    try:
        pack = read_pack(path, trust_store)
    except PackError as exc:
        return Verification("invalid", error=str(exc))
    return Verification(pack.verdict, pack.signer, pack.signer_name, trust_error=pack.trust_error)


def parse_references(references: dict[str, str]) -> dict[str, Reference]:
    parsed: dict[str, Reference] = {}
    slugs: set[str] = set()
    for name, text in sorted(references.items()):
        try:
            ref = parse_reference(text, Path(name))
        except LanternError as exc:
            raise PackError(f"Pack reference {show(name)} does not parse: {clause(exc)}.") from None
        except Exception as exc:  # noqa: BLE001 - the reader promises PackError for any hostile text
            raise PackError(f"Pack reference {show(name)} does not parse ({type(exc).__name__}).") from None
        expected = REFERENCE_NAME_RE.fullmatch(name).group(1)  # type: ignore[union-attr]
        if ref.slug in slugs:
            raise PackError(f"Two references in the pack have the slug {show(ref.slug)}.")
        if ref.slug != expected:
            raise PackError(
                f"Pack reference {show(name)} has slug {show(ref.slug)}, which does not match its file name."
            )
        slugs.add(ref.slug)
        parsed[name] = ref
    return parsed


def trace_problem(data: bytes) -> str | None:
    """Why ``data`` is not UTF-8 JSON lines, or None.

    Lines end at "\\n" only: a trace's text may hold U+2028 or U+0085, which
    ``str.splitlines`` would wrongly split at.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                return f"is not JSON lines (line {number})"
    return None

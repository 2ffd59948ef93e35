"""Reference packs: deterministic export, a reader that never trusts its input, safe import.

A ``.lantern`` pack is a zip holding ``manifest.json``, ``references/<slug>.md``,
optional ``traces/<name>.jsonl`` and an optional ``signature.json`` (DESIGN section 6).
The manifest pins every other file by sha256; the signature is Ed25519 over the exact
stored bytes of ``manifest.json``, which are its canonical form
``json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
encoded as UTF-8. The manifest names its own format version ``format_version``
because ``version`` is the pack's version (the design sketch used one key for both).

:func:`read_pack` runs every check and raises :class:`PackError` with one sentence
naming the failed check; it never raises anything else for a hostile file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import LanternError, PackError
from .keys import KeyStore, fingerprint, raw_public_bytes
from .reference import Reference, parse_reference
from .settings import LoopSettings

FORMAT = "lantern-pack"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
SIGNATURE_ALGORITHM = "ed25519"

#: ``trusted``: signer in the trust store; ``valid-unknown``: good signature, signer not
#: trusted; ``unsigned``: no signature; ``invalid``: a check failed (the pack is refused).
VERDICTS = ("trusted", "valid-unknown", "unsigned", "invalid")

SLUG_RE = re.compile(r"^[a-z0-9-]+$")
_REFERENCE_NAME_RE = re.compile(r"^references/([a-z0-9-]{1,100})\.md$")
_TRACE_NAME_RE = re.compile(r"^traces/([a-z0-9][a-z0-9._-]{0,99})\.jsonl$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Names a Windows import would turn into devices.
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_S_IFMT = 0o170000
_S_IFLNK = 0o120000
_S_IFREG = 0o100000
_MANIFEST_KEYS = {
    "format", "format_version", "name", "slug", "version", "author", "created",
    "description", "entry", "loop", "model_hint", "files",
}  # fmt: skip
_REQUIRED_KEYS = ("format", "format_version", "name", "slug", "entry", "loop", "files")
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackLimits:
    """Bounds that a pack must respect before anything in it is read."""

    max_entries: int = 1000
    max_reference_bytes: int = 2 * MiB
    max_trace_bytes: int = 20 * MiB
    max_manifest_bytes: int = 1 * MiB
    max_signature_bytes: int = 4096
    max_total_bytes: int = 64 * MiB
    max_ratio: int = 100
    # Entries smaller than this cannot bomb anything; tiny files compress absurdly well.
    ratio_floor: int = 64 * 1024

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


@dataclass(frozen=True)
class Pack:
    """A pack that passed every check.

    ``references`` and ``traces`` map in-pack paths (``references/a.md``) to content;
    ``parsed`` holds the parsed references. ``signer`` is the signing key's fingerprint
    (None if unsigned) and ``signer_name`` its trust-store name when ``verdict == "trusted"``.
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

    @property
    def entry(self) -> Reference:
        return self.parsed[self.manifest["entry"]]

    @property
    def loop(self) -> LoopSettings:
        return LoopSettings.from_mapping(self.manifest["loop"])

    def to_dict(self) -> dict[str, Any]:
        """The stable ``lantern pack inspect --json`` shape (docs/packs.md)."""
        m = self.manifest
        return {
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
                    "version": _opt_str(r.version),
                    "author": _opt_str(r.author),
                    "status": _opt_str(r.status),
                    "links": list(r.links),
                }
                for p, r in sorted(self.parsed.items())
            ],
            "manifest": m,
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :func:`verify_pack`: a verdict, and the failed check when invalid."""

    verdict: str
    signer: str | None = None
    signer_name: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict != "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "valid": self.ok, "signer": self.signer,
                "signer_name": self.signer_name, "error": self.error}  # fmt: skip


# ---------------------------------------------------------------------------
# Export


def canonical_json(data: Any) -> bytes:
    """The canonical bytes of a manifest: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def export_pack(
    reference_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    trace_paths: Iterable[str | os.PathLike[str]] = (),
    loop: LoopSettings | Mapping[str, Any] | None = None,
    model_hint: Mapping[str, Any] | None = None,
    created: str | None = None,
    limits: PackLimits = DEFAULT_LIMITS,
) -> Path:
    """Write a deterministic pack of ``reference_paths`` (the first is the entry) to ``out_path``.

    References named in ``links`` are looked up by slug in the linking file's directory
    and packed too. ``loop`` defaults to the entry's loop settings; ``name``, ``version``
    and the author come from the entry unless given. ``created`` defaults to
    ``SOURCE_DATE_EPOCH`` (as UTC ISO 8601) and is null without it: the wall clock would
    make two exports of the same files differ. Entries are sorted, dated 1980-01-01 and
    mode 0644, so the same inputs give byte-identical packs (Ed25519 signing is
    deterministic too). The zip is written beside ``out_path`` and moved into place.
    """
    if not reference_paths:
        raise PackError("A pack needs at least one reference.")
    refs = _collect_references([Path(p) for p in reference_paths], limits)
    entry_slug = refs[0][0].slug
    files: dict[str, bytes] = {f"references/{ref.slug}.md": data for ref, data in refs}
    for trace_name, data in _collect_traces(trace_paths, limits):
        files[trace_name] = data
    if len(files) + 2 > limits.max_entries:
        raise PackError(f"A pack holds at most {limits.max_entries} files.")
    if sum(len(d) for d in files.values()) > limits.max_total_bytes:
        raise PackError(f"The files add up to more than the {limits.max_total_bytes // MiB} MB limit of a pack.")

    entry = refs[0][0]
    try:
        if loop is None:
            loop_dict = entry.loop.to_dict()
        elif isinstance(loop, LoopSettings):
            loop_dict = loop.to_dict()
        else:
            loop_dict = LoopSettings.from_mapping(dict(loop)).to_dict()
    except LanternError as exc:
        raise PackError(f"The loop settings cannot be packed: {_clause(exc)}.") from None
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name if name is not None else (entry.title or entry.slug),
        "slug": entry_slug,
        "version": version if version is not None else _opt_str(entry.version),
        "author": _opt_str(entry.author),
        "created": created if created is not None else _created_from_env(),
        "description": description if description is not None else "",
        "entry": f"references/{entry_slug}.md",
        "loop": loop_dict,
        "model_hint": dict(model_hint) if model_hint is not None else None,
        "files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(files.items())},
    }
    _check_manifest(manifest)  # what we write must pass our own reader
    manifest_bytes = canonical_json(manifest)
    if len(manifest_bytes) > limits.max_manifest_bytes:
        raise PackError("The manifest would be larger than the manifest size limit.")
    entries = dict(files)
    entries[MANIFEST] = manifest_bytes
    if signing_key is not None:
        entries[SIGNATURE] = canonical_json(
            {
                "algorithm": SIGNATURE_ALGORITHM,
                "public_key": base64.b64encode(raw_public_bytes(signing_key)).decode("ascii"),
                "signature": base64.b64encode(signing_key.sign(manifest_bytes)).decode("ascii"),
            }
        )

    out = Path(out_path)
    if out.is_dir():
        raise PackError(f"The output {out} is a directory.")
    tmp = _temp_beside(out)
    try:
        with os.fdopen(_create_exclusive(tmp), "wb") as fh:
            with zipfile.ZipFile(fh, "w") as zf:
                for arcname in sorted(entries):
                    zf.writestr(_zip_info(arcname, entries[arcname], limits), entries[arcname])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PackError(f"The pack could not be written to {out} ({exc.strerror or exc}).") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _collect_references(paths: list[Path], limits: PackLimits) -> list[tuple[Reference, bytes]]:
    """The given references plus everything their links reach, in discovery order."""
    by_slug: dict[str, tuple[Reference, bytes, Path]] = {}
    dir_index: dict[Path, dict[str, Path]] = {}
    loaded: dict[Path, tuple[Reference, bytes]] = {}  # each file is read and parsed once
    queue = list(paths)
    order: list[str] = []
    pending_links: list[tuple[Reference, Path]] = []
    while queue or pending_links:
        if queue:
            path = queue.pop(0)
            ref, data = _load_for_pack(path, limits, loaded)
            known = by_slug.get(ref.slug)
            if known is not None:
                if known[2].resolve() != path.resolve():
                    raise PackError(f"Two references have the slug {ref.slug!r}: {known[2]} and {path}.")
                continue
            by_slug[ref.slug] = (ref, data, path)
            order.append(ref.slug)
            pending_links.append((ref, path))
            continue
        ref, path = pending_links.pop(0)
        for link in ref.links:
            if link in by_slug:
                continue
            target = _find_by_slug(path.parent, link, dir_index, limits, loaded)
            if target is None:
                raise PackError(
                    f"Reference {ref.slug!r} links to {link!r}, but no reference with that slug is in {path.parent}."
                )
            queue.append(target)
    return [(by_slug[s][0], by_slug[s][1]) for s in order]


def _load_for_pack(
    path: Path, limits: PackLimits, cache: dict[Path, tuple[Reference, bytes]] | None = None
) -> tuple[Reference, bytes]:
    key = path.resolve()
    if cache is not None and key in cache:
        return cache[key]
    try:
        if path.stat().st_size > limits.max_reference_bytes:
            raise PackError(f"Reference {path} is larger than the {limits.max_reference_bytes // MiB} MB limit.")
        data = path.read_bytes()
    except OSError as exc:
        raise PackError(f"Reference {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PackError(f"Reference {path} is not valid UTF-8.") from None
    try:
        ref = parse_reference(text, path)
    except LanternError as exc:
        raise PackError(f"Reference {path} does not parse: {_clause(exc)}.") from None
    if not SLUG_RE.match(ref.slug or "") or len(ref.slug) > 100:
        raise PackError(f"Reference {path} has slug {ref.slug!r}; a pack needs [a-z0-9-], at most 100 characters.")
    if ref.slug in _WINDOWS_RESERVED:
        raise PackError(f"Reference {path} has slug {ref.slug!r}, a reserved device name on Windows.")
    if cache is not None:
        cache[key] = (ref, data)
    return ref, data


def _find_by_slug(
    directory: Path,
    slug: str,
    index: dict[Path, dict[str, Path]],
    limits: PackLimits,
    cache: dict[Path, tuple[Reference, bytes]],
) -> Path | None:
    """The reference in ``directory`` whose slug is ``slug``: ``<slug>.md`` first, else a scan."""
    guess = directory / f"{slug}.md"
    if guess.is_file():
        try:
            if _load_for_pack(guess, limits, cache)[0].slug == slug:
                return guess
        except PackError:
            pass
    key = directory.resolve()
    if key not in index:
        found: dict[str, Path] = {}
        for candidate in sorted(directory.glob("*.md")):
            try:
                ref, _ = _load_for_pack(candidate, limits, cache)
            except PackError:
                continue  # an unrelated broken file is not this link's problem
            found.setdefault(ref.slug, candidate)
        index[key] = found
    return index[key].get(slug)


def _collect_traces(trace_paths: Iterable[str | os.PathLike[str]], limits: PackLimits) -> list[tuple[str, bytes]]:
    out: dict[str, bytes] = {}
    for raw in trace_paths:
        path = Path(raw)
        if path.suffix.lower() != ".jsonl":
            raise PackError(f"Trace {path} must be a .jsonl file.")
        stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip(".-_") or "trace"
        arcname = f"traces/{stem[:100]}.jsonl"
        if arcname in out:
            raise PackError(f"Two traces would both be stored as {arcname}.")
        try:
            if path.stat().st_size > limits.max_trace_bytes:
                raise PackError(f"Trace {path} is larger than the {limits.max_trace_bytes // MiB} MB limit.")
            data = path.read_bytes()
        except OSError as exc:
            raise PackError(f"Trace {path} cannot be read ({exc.strerror or exc}).") from None
        problem = _trace_problem(data)
        if problem:
            raise PackError(f"Trace {path} {problem}.")
        out[arcname] = data
    return sorted(out.items())


def _zip_info(arcname: str, data: bytes, limits: PackLimits) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
    info.create_system = 3  # Unix, so external_attr carries the mode on every platform
    info.external_attr = _FILE_MODE << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    # An entry our reader would call a bomb is stored uncompressed instead.
    if len(data) >= limits.ratio_floor:
        deflated = zlib.compressobj(6, zlib.DEFLATED, -15)
        size = len(deflated.compress(data)) + len(deflated.flush())
        if size * limits.max_ratio < len(data):
            info.compress_type = zipfile.ZIP_STORED
    return info


def _created_from_env() -> str | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        seconds = int(value)
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        raise PackError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, not {value!r}.") from None


# ---------------------------------------------------------------------------
# Reading


def read_pack(
    path: str | os.PathLike[str],
    trust_store: KeyStore | None = None,
    *,
    limits: PackLimits = DEFAULT_LIMITS,
) -> Pack:
    """Open and check a pack; raise :class:`PackError` naming the first failed check.

    Checks, in order: the file's size; the zip directory (entry count, safe and allowed
    names, no links or other special files, no duplicates, declared sizes, compression
    ratio, no encryption); ``manifest.json`` (size, UTF-8 JSON, canonical bytes, format
    and version); the signature; the manifest schema; that the files in the zip and in
    the manifest are the same; every file's size (enforced while reading) and sha256;
    that references are UTF-8 and parse, with slugs matching their file names; that
    traces are UTF-8 JSON lines. ``trust_store`` defaults to the user's :class:`KeyStore`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise PackError(f"{path} is not a file.")
    except OSError as exc:
        raise PackError(f"The pack {path} cannot be read ({exc.strerror or exc}).") from None
    if size > limits.max_pack_bytes:
        raise PackError(f"The pack is {size} bytes, more than the size limit of a pack.")
    try:
        zf = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise PackError(f"The file is not a readable zip archive ({type(exc).__name__}).") from None
    with zf:
        try:
            infos = zf.infolist()
        except _ZIP_ERRORS:  # pragma: no cover - infolist is a plain list today
            raise PackError("The zip directory cannot be read.") from None
        by_name = _check_directory(infos, limits)
        total = _Counter(limits.max_total_bytes)

        manifest_bytes = _read_entry(zf, by_name.get(MANIFEST), MANIFEST, limits, total)
        manifest = _parse_manifest(manifest_bytes)

        signer = public_key = None
        if SIGNATURE in by_name:
            raw_sig = _read_entry(zf, by_name[SIGNATURE], SIGNATURE, limits, total)
            public_key = _check_signature(raw_sig, manifest_bytes)
            signer = fingerprint(public_key)

        _check_manifest(manifest)
        listed = set(manifest["files"])
        present = set(by_name) - {MANIFEST, SIGNATURE}
        for name in sorted(listed - present):
            raise PackError(f"The manifest lists {_show(name)}, which is not in the pack.")
        for name in sorted(present - listed):
            raise PackError(f"The pack holds {_show(name)}, which the manifest does not list.")

        references: dict[str, str] = {}
        traces: dict[str, bytes] = {}
        sizes: dict[str, int] = {}
        for name in sorted(listed):
            data = _read_entry(zf, by_name[name], name, limits, total)
            if hashlib.sha256(data).hexdigest() != manifest["files"][name]:
                raise PackError(f"Pack entry {_show(name)} does not match its sha256 in the manifest.")
            sizes[name] = len(data)
            if name.startswith("references/"):
                try:
                    references[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise PackError(f"Pack reference {_show(name)} is not valid UTF-8.") from None
            else:
                problem = _trace_problem(data)
                if problem:
                    raise PackError(f"Pack trace {_show(name)} {problem}.")
                traces[name] = data

    parsed = _parse_references(references)
    if manifest["entry"] not in parsed:
        raise PackError(f"The manifest's entry {_show(manifest['entry'])} is not one of the pack's references.")

    verdict, signer_name = "unsigned", None
    if public_key is not None:
        store = trust_store if trust_store is not None else KeyStore()
        known = store.lookup(public_key)
        verdict = "trusted" if known is not None else "valid-unknown"
        signer_name = known.name if known is not None else None
    return Pack(
        path=path,
        manifest=manifest,
        references=references,
        traces=traces,
        parsed=parsed,
        verdict=verdict,
        signer=signer,
        signer_name=signer_name,
        public_key=base64.b64encode(public_key).decode("ascii") if public_key is not None else None,
        sizes=sizes,
    )


def verify_pack(path: str | os.PathLike[str], trust_store: KeyStore | None = None) -> Verification:
    """Like :func:`read_pack` but returns the verdict, with ``invalid`` and the failed check."""
    try:
        pack = read_pack(path, trust_store)
    except PackError as exc:
        return Verification("invalid", error=str(exc))
    return Verification(pack.verdict, pack.signer, pack.signer_name)


# Everything zipfile and zlib raise on a malformed archive.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    IndexError,
    KeyError,
)


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise PackError(f"The pack holds more than the {self.limit // MiB} MB total limit when read.")


def _check_directory(infos: list[zipfile.ZipInfo], limits: PackLimits) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > limits.max_entries:
        raise PackError(f"The pack has {len(infos)} entries, more than the limit of {limits.max_entries}.")
    seen: dict[str, zipfile.ZipInfo] = {}
    declared_total = 0
    for info in infos:
        name = info.filename
        _check_name(name)
        mode = info.external_attr >> 16
        if mode & _S_IFMT == _S_IFLNK:
            raise PackError(f"Pack entry {_show(name)} is a symbolic link.")
        if mode & _S_IFMT not in (0, _S_IFREG) or info.external_attr & 0x10:
            raise PackError(f"Pack entry {_show(name)} is not a regular file.")
        if not (name in (MANIFEST, SIGNATURE) or _REFERENCE_NAME_RE.match(name) or _TRACE_NAME_RE.match(name)):
            raise PackError(
                f"Pack entry {_show(name)} is not allowed "
                "(only manifest.json, signature.json, references/<slug>.md and traces/<name>.jsonl)."
            )
        stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
        if stem in _WINDOWS_RESERVED:
            raise PackError(f"Pack entry {_show(name)} uses a name reserved for devices on Windows.")
        if name in seen:
            raise PackError(f"Pack entry {_show(name)} appears more than once.")
        seen[name] = info
        if info.flag_bits & 0x1:
            raise PackError(f"Pack entry {_show(name)} is encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackError(f"Pack entry {_show(name)} uses an unsupported compression method.")
        limit = limits.for_entry(name)
        if info.file_size > limit:
            raise PackError(
                f"Pack entry {_show(name)} declares {info.file_size} bytes, more than its limit of {limit} bytes."
            )
        if info.file_size >= limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise PackError(
                f"Pack entry {_show(name)} has a compression ratio above {limits.max_ratio}:1 (a zip bomb)."
            )
        declared_total += info.file_size
    if declared_total > limits.max_total_bytes:
        raise PackError(
            f"The pack declares {declared_total} bytes in total, more than the limit of {limits.max_total_bytes}."
        )
    return seen


def _check_name(name: str) -> None:
    if not name or "\x00" in name:
        raise PackError(f"Pack entry {_show(name)} has an empty or NUL-containing name.")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise PackError(f"Pack entry {_show(name)} has an absolute path.")
    if ".." in re.split(r"[/\\]", name):
        raise PackError(f"Pack entry {_show(name)} has a '..' component that would escape the target directory.")


def _read_entry(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo | None,
    name: str,
    limits: PackLimits,
    total: _Counter,
) -> bytes:
    """The entry's bytes, read in chunks and cut off at its declared size and limit."""
    if info is None:
        raise PackError(f"The pack has no {name}.")
    cap = min(limits.for_entry(name), info.file_size)
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(1 << 16, cap + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                total.add(len(chunk))
                if len(out) > cap:
                    raise PackError(f"Pack entry {_show(name)} holds more data than it declares.")
    except PackError:
        raise
    except _ZIP_ERRORS as exc:
        raise PackError(f"Pack entry {_show(name)} is corrupt ({_clause(exc) or type(exc).__name__}).") from None
    if len(out) != info.file_size:
        raise PackError(f"Pack entry {_show(name)} holds {len(out)} bytes, not the {info.file_size} it declares.")
    return bytes(out)


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackError("The pack's manifest.json is not valid UTF-8 JSON.") from None
    if not isinstance(manifest, dict):
        raise PackError("The pack's manifest.json is not a JSON object.")
    if manifest.get("format") != FORMAT:
        raise PackError(f"The manifest's format is {_show(manifest.get('format'))}, not {FORMAT!r}.")
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
    except (ValueError, RecursionError):  # pragma: no cover - parse already refused these
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


def _check_signature(data: bytes, manifest_bytes: bytes) -> bytes:
    """The signer's raw public key if ``signature.json`` verifies over ``manifest_bytes``."""
    try:
        sig = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PackError("The pack's signature.json is not valid UTF-8 JSON.") from None
    if not isinstance(sig, dict) or set(sig) != {"algorithm", "public_key", "signature"}:
        raise PackError("The pack's signature.json must hold exactly algorithm, public_key and signature.")
    if sig["algorithm"] != SIGNATURE_ALGORITHM:
        raise PackError(f"The pack's signature algorithm {_show(sig['algorithm'])} is not supported (only ed25519).")
    try:
        public_key = base64.b64decode(sig["public_key"], validate=True)
        signature = base64.b64decode(sig["signature"], validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise PackError("The pack's signature.json holds a key or signature that is not base64.") from None
    if len(public_key) != 32 or len(signature) != 64:
        raise PackError("The pack's signature.json holds a key or signature of the wrong length for Ed25519.")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError):
        raise PackError("The pack's signature does not verify against its manifest.json.") from None
    return public_key


def _check_manifest(m: dict[str, Any]) -> None:
    """The manifest schema (format and version are checked on parse)."""
    for key in sorted(set(m) - _MANIFEST_KEYS):
        raise PackError(f"The manifest has an unknown field {_show(key)}.")
    for key in _REQUIRED_KEYS:
        if key not in m:
            raise PackError(f"The manifest has no {key!r} field.")
    for key in ("name", "slug", "entry"):
        if not isinstance(m[key], str) or not m[key] or len(m[key]) > 1000:
            raise PackError(f"The manifest's {key!r} must be non-empty text.")
    for key in ("version", "author", "created", "description"):
        if m.get(key) is not None and (not isinstance(m[key], str) or len(m[key]) > 100_000):
            raise PackError(f"The manifest's {key!r} must be text or null.")
    if not SLUG_RE.match(m["slug"]):
        raise PackError("The manifest's 'slug' must use only a-z, 0-9 and '-'.")
    files = m["files"]
    if not isinstance(files, dict) or not files:
        raise PackError("The manifest's 'files' must map file names to sha256 digests.")
    for name, digest in files.items():
        if not (_REFERENCE_NAME_RE.match(name) or _TRACE_NAME_RE.match(name)):
            raise PackError(f"The manifest lists {_show(name)}, which is not a reference or trace path.")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise PackError(f"The manifest's sha256 for {_show(name)} is not 64 lowercase hex digits.")
    if not _REFERENCE_NAME_RE.match(m["entry"]) or m["entry"] not in files:
        raise PackError(f"The manifest's entry {_show(m['entry'])} is not one of the pack's references.")
    try:
        LoopSettings.from_mapping(m["loop"])
    except LanternError as exc:
        raise PackError(f"The manifest's loop settings are invalid: {_clause(exc)}.") from None
    hint = m.get("model_hint")
    if hint is not None:
        if not isinstance(hint, dict) or set(hint) - {"family", "name", "sha256"}:
            raise PackError("The manifest's 'model_hint' must hold only family, name and sha256.")
        for key, value in hint.items():
            if value is not None and not isinstance(value, str):
                raise PackError(f"The manifest's model_hint {key!r} must be text or null.")
        if hint.get("sha256") is not None and not _SHA256_RE.match(hint["sha256"]):
            raise PackError("The manifest's model_hint sha256 is not 64 lowercase hex digits.")


def _parse_references(references: dict[str, str]) -> dict[str, Reference]:
    parsed: dict[str, Reference] = {}
    slugs: set[str] = set()
    for name, text in sorted(references.items()):
        try:
            ref = parse_reference(text, Path(name))
        except LanternError as exc:
            raise PackError(f"Pack reference {_show(name)} does not parse: {_clause(exc)}.") from None
        except Exception as exc:  # noqa: BLE001 - the reader promises PackError for any hostile text
            raise PackError(f"Pack reference {_show(name)} does not parse ({type(exc).__name__}).") from None
        expected = _REFERENCE_NAME_RE.match(name).group(1)  # type: ignore[union-attr]
        if ref.slug in slugs:
            raise PackError(f"Two references in the pack have the slug {_show(ref.slug)}.")
        if ref.slug != expected:
            raise PackError(
                f"Pack reference {_show(name)} has slug {_show(ref.slug)}, which does not match its file name."
            )
        slugs.add(ref.slug)
        parsed[name] = ref
    return parsed


def _trace_problem(data: bytes) -> str | None:
    """Why ``data`` is not UTF-8 JSON lines, or None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                return f"is not JSON lines (line {number})"
    return None


# ---------------------------------------------------------------------------
# Import


def import_pack(
    path: str | os.PathLike[str],
    into_dir: str | os.PathLike[str],
    overwrite: bool = False,
    trust_store: KeyStore | None = None,
) -> list[Path]:
    """Check a pack fully, then write its references to ``into_dir/<slug>.md`` and traces to ``into_dir/traces/``.

    Nothing is written if any check fails or if a target exists and ``overwrite`` is
    false. Each file goes to a temporary file beside its target; once all are written
    they are moved into place with ``os.replace``. Returns the written paths.
    """
    pack = read_pack(path, trust_store)
    into = Path(into_dir)
    if into.exists() and not into.is_dir():
        raise PackError(f"Import refused: {into} is not a directory.")
    plan: list[tuple[Path, bytes]] = []
    for name, text in sorted(pack.references.items()):
        plan.append((into / name.split("/", 1)[1], text.encode("utf-8")))
    for name, data in sorted(pack.traces.items()):
        plan.append((into / "traces" / name.split("/", 1)[1], data))
    for target, _ in plan:
        if target.is_symlink() or target.exists():
            if target.is_dir() and not target.is_symlink():
                raise PackError(f"Import refused: {target} is a directory.")
            if not overwrite:
                raise PackError(f"Import refused: {target} already exists (use --overwrite to replace it).")
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_beside(target)
            with os.fdopen(_create_exclusive(tmp), "wb") as fh:
                staged.append((tmp, target))
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise PackError(f"Import failed while writing into {into} ({exc.strerror or exc}).") from None
    return [target for target, _ in plan]


# ---------------------------------------------------------------------------
# Helpers


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _create_exclusive(path: Path) -> int:
    # 0o666 less the umask, like any file the user makes; O_EXCL never follows a planted link.
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _clause(exc: BaseException) -> str:
    """An error's sentence without its final full stop, to embed in another sentence."""
    return str(exc).strip().rstrip(".")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = [
    "DEFAULT_LIMITS",
    "FORMAT",
    "FORMAT_VERSION",
    "VERDICTS",
    "Pack",
    "PackLimits",
    "Verification",
    "canonical_json",
    "export_pack",
    "import_pack",
    "read_pack",
    "verify_pack",
]

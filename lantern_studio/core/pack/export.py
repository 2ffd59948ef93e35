"""Writing a pack: collect the references (following links) and traces, build a
deterministic zip, check it as a reader would, save it atomically."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..atomic import atomic_write
from ..errors import LanternError, PackError
from ..reference import Reference, parse_reference
from ..regular_files import FileTooLargeError, read_regular
from ..settings import LoopSettings
from .manifest import (
    DEFAULT_LIMITS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    SLUG_RE,
    WINDOWS_RESERVED,
    MiB,
    PackLimits,
    canonical_json,
    check_manifest,
    clause,
    opt_str,
)
from .read import trace_problem
from .signature import sign_manifest

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # regular file, rw-r--r--
_TRACE_STEM_RE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class PackMeta:
    """What a pack says about itself, beyond its files. ``None`` means "from the entry reference".

    ``created`` defaults to ``SOURCE_DATE_EPOCH`` (as UTC ISO 8601) and is null without
    it: the wall clock would make two exports of the same files differ.
    """

    name: str | None = None
    version: str | None = None
    description: str | None = None
    signing_key: Ed25519PrivateKey | None = None
    trace_paths: Sequence[str | os.PathLike[str]] = ()
    loop: LoopSettings | Mapping[str, Any] | None = None
    model_hint: Mapping[str, Any] | None = None
    created: str | None = None


def export_pack(
    reference_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    meta: PackMeta | None = None,
    *,
    limits: PackLimits = DEFAULT_LIMITS,
    **fields: Any,
) -> Path:
    """Write a deterministic pack of ``reference_paths`` (the first is the entry) to ``out_path``.

    ``meta`` holds the name, version, description, signing key, traces, loop settings,
    model hint and date (:class:`PackMeta`); the same names given as keywords
    (``export_pack(refs, out, name="x")``) are folded into it, for older callers.
    References named in ``links`` are looked up by slug in the linking file's directory
    and packed too. Entries are sorted, dated 1980-01-01 and mode 0644, so the same
    inputs give byte-identical packs (Ed25519 signing is deterministic too).

    Refused with :class:`PackError`: an output that is (or is a link to, or a hard link
    of) one of the inputs, anything the reader would refuse, and a place that cannot be
    written (one sentence; nothing is left behind).
    """
    try:
        meta = replace(meta or PackMeta(), **fields)
    except TypeError:
        unknown = ", ".join(sorted(set(fields) - set(PackMeta.__dataclass_fields__)))
        raise TypeError(f"export_pack() got unexpected keyword arguments: {unknown}") from None
    if not reference_paths:
        raise PackError("A pack needs at least one reference.")
    out = Path(out_path)
    loaded = _collect_references([Path(p) for p in reference_paths], limits)
    refs = [(ref, data) for ref, data, _ in loaded]
    traces = _collect_traces(meta.trace_paths, limits)
    _refuse_output_among_inputs(out, [path for _, _, path in loaded] + [path for _, _, path in traces])
    files: dict[str, bytes] = {f"references/{ref.slug}.md": data for ref, data in refs}
    for trace_name, data, _ in traces:
        files[trace_name] = data
    if len(files) + 2 > limits.max_entries:
        raise PackError(f"A pack holds at most {limits.max_entries} files.")
    if len(refs) > limits.max_references:
        raise PackError(f"A pack holds at most {limits.max_references} references.")
    if sum(len(d) for d in files.values()) > limits.max_total_bytes:
        raise PackError(f"The files add up to more than the {limits.max_total_bytes // MiB} MB limit of a pack.")
    if sum(len(d) for _, d in refs) > limits.max_reference_total_bytes:
        raise PackError(
            f"The references add up to more than the {limits.max_reference_total_bytes // MiB} MB limit of a pack."
        )
    if sum(d.count(b"\n") + 1 for _, d in refs) > limits.max_reference_lines:
        raise PackError(f"The references add up to more than the {limits.max_reference_lines} lines a pack may hold.")

    manifest_bytes = canonical_json(_manifest(refs[0][0], files, meta))
    if len(manifest_bytes) > limits.max_manifest_bytes:
        raise PackError("The manifest would be larger than the manifest size limit.")
    entries = dict(files)
    entries[MANIFEST] = manifest_bytes
    if meta.signing_key is not None:
        entries[SIGNATURE] = sign_manifest(manifest_bytes, meta.signing_key)

    if out.is_dir():
        raise PackError(f"The output {out} is a directory.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for arcname in sorted(entries):
            zf.writestr(_zip_info(arcname, entries[arcname], limits), entries[arcname])
    try:
        atomic_write(out, buffer.getvalue())
    except OSError as exc:
        raise PackError(f"The pack could not be written to {out} ({exc.strerror or exc}).") from None
    return out


def _manifest(entry: Reference, files: dict[str, bytes], meta: PackMeta) -> dict[str, Any]:
    try:
        if meta.loop is None:
            loop_dict = entry.loop.to_dict()
        elif isinstance(meta.loop, LoopSettings):
            loop_dict = meta.loop.to_dict()
        else:
            loop_dict = LoopSettings.from_mapping(dict(meta.loop)).to_dict()
    except LanternError as exc:
        raise PackError(f"The loop settings cannot be packed: {clause(exc)}.") from None
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": meta.name if meta.name is not None else (entry.title or entry.slug),
        "slug": entry.slug,
        "version": meta.version if meta.version is not None else opt_str(entry.version),
        "author": opt_str(entry.author),
        "created": meta.created if meta.created is not None else _created_from_env(),
        "description": meta.description if meta.description is not None else "",
        "entry": f"references/{entry.slug}.md",
        "loop": loop_dict,
        "model_hint": dict(meta.model_hint) if meta.model_hint is not None else None,
        "files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(files.items())},
    }
    check_manifest(manifest)  # what we write must pass our own reader
    return manifest


def _refuse_output_among_inputs(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output path that names one of the inputs: the same path, a link to it, or a hard link."""
    try:
        out_stat = out.stat()
    except OSError:
        out_stat = None  # nothing there yet (or unreadable): it cannot be an input we read
    out_resolved = out.resolve()
    for path in inputs:
        same = path.resolve() == out_resolved
        if not same and out_stat is not None:
            try:
                st = path.stat()
                same = (st.st_dev, st.st_ino) == (out_stat.st_dev, out_stat.st_ino)
            except OSError:
                pass
        if same:
            raise PackError(f"The output {out} is one of the pack's inputs ({path}); choose another file name.")


def _collect_references(paths: list[Path], limits: PackLimits) -> list[tuple[Reference, bytes, Path]]:
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
    return [by_slug[s] for s in order]


def _load_for_pack(
    path: Path, limits: PackLimits, cache: dict[Path, tuple[Reference, bytes]] | None = None
) -> tuple[Reference, bytes]:
    key = path.resolve()
    if cache is not None and key in cache:
        return cache[key]
    try:
        data = read_regular(path, limits.max_reference_bytes)
    except OSError as exc:
        if isinstance(exc, FileTooLargeError):
            raise PackError(
                f"Reference {path} is larger than the {limits.max_reference_bytes // MiB} MB limit."
            ) from None
        raise PackError(f"Reference {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PackError(f"Reference {path} is not valid UTF-8.") from None
    try:
        ref = parse_reference(text, path)
    except LanternError as exc:
        raise PackError(f"Reference {path} does not parse: {clause(exc)}.") from None
    if not SLUG_RE.fullmatch(ref.slug or ""):
        raise PackError(f"Reference {path} has slug {ref.slug!r}; a pack needs [a-z0-9-], at most 100 characters.")
    if ref.slug in WINDOWS_RESERVED:
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


def _collect_traces(trace_paths: Iterable[str | os.PathLike[str]], limits: PackLimits) -> list[tuple[str, bytes, Path]]:
    out: dict[str, tuple[bytes, Path]] = {}
    for raw in trace_paths:
        path = Path(raw)
        if path.suffix.lower() != ".jsonl":
            raise PackError(f"Trace {path} must be a .jsonl file.")
        stem = _TRACE_STEM_RE.sub("-", path.stem.lower()).strip(".-_") or "trace"
        arcname = f"traces/{stem[:100]}.jsonl"
        if arcname in out:
            raise PackError(f"Two traces would both be stored as {arcname}.")
        try:
            data = read_regular(path, limits.max_trace_bytes)
        except OSError as exc:
            if isinstance(exc, FileTooLargeError):
                raise PackError(f"Trace {path} is larger than the {limits.max_trace_bytes // MiB} MB limit.") from None
            raise PackError(f"Trace {path} cannot be read ({exc.strerror or exc}).") from None
        problem = trace_problem(data)
        if problem:
            raise PackError(f"Trace {path} {problem}.")
        out[arcname] = (data, path)
    return [(name, data, path) for name, (data, path) in sorted(out.items())]


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

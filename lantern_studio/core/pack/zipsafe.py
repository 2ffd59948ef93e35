"""Zip safety: what a pack's archive must look like before any entry is read.

Three layers: :func:`check_layout` (the bytes: a zip from offset 0 to its end-of-central-
directory record, no stub, no trailing data, no comment, entries that tile the file
without gaps or overlaps), :func:`check_directory` (the names, kinds, sizes and ratios
the central directory declares) and :func:`read_entry` (the data, streamed with a cap
and hashed as it arrives, so a lying directory gains nothing).
"""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
import zlib
from typing import BinaryIO

from ..errors import PackError
from .manifest import (
    MANIFEST,
    REFERENCE_NAME_RE,
    SIGNATURE,
    TRACE_NAME_RE,
    WINDOWS_RESERVED,
    MiB,
    PackLimits,
    clause,
    show,
)

# Everything zipfile and zlib raise on a malformed archive.
ZIP_ERRORS = (
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

_S_IFMT = 0o170000
_S_IFLNK = 0o120000
_S_IFREG = 0o100000
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory, 22 bytes without its comment
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes before name and extra
_DATA_DESCRIPTOR_FLAG = 0x08
_ABSOLUTE_RE = re.compile(r"[A-Za-z]:")
_SEPARATOR_RE = re.compile(r"[/\\]")


class ByteBudget:
    """A running total of bytes read that refuses to pass ``limit``."""

    def __init__(self, limit: int, what: str = "The pack holds more than the {mb} MB total limit when read.") -> None:
        self.limit = limit
        self.used = 0
        self._what = what

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise PackError(self._what.format(mb=self.limit // MiB))


def check_layout(fh: BinaryIO, size: int, infos: list[zipfile.ZipInfo]) -> None:
    """The archive is exactly a zip: local entries from offset 0, back to back, then the
    central directory, then the end record (with no comment) at the very end of the file.

    A prepended stub or trailing data would be bytes no signature covers, which a
    polyglot file hides content in; overlapping entries are a known bomb technique.
    Packs written by :func:`~.export.export_pack` always pass.
    """
    if size < _EOCD.size:
        raise PackError("The file is not a readable zip archive (too short).")
    try:
        fh.seek(size - _EOCD.size)
        record = _EOCD.unpack(fh.read(_EOCD.size))
    except ZIP_ERRORS:
        raise PackError("The file is not a readable zip archive (its end record cannot be read).") from None
    signature, disk, cd_disk, _, entries, cd_size, cd_offset, comment_length = record
    if signature != b"PK\x05\x06":
        raise PackError("The pack has data after the end of its zip archive, or a zip comment; a pack has neither.")
    if comment_length:  # pragma: no cover - the signature check above already fails for a comment
        raise PackError("The pack has a zip comment; a pack has none.")
    if disk or cd_disk or entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        raise PackError("The pack is a multi-disk or ZIP64 archive, which a pack never needs.")
    if cd_offset + cd_size != size - _EOCD.size:
        raise PackError(
            "The pack has data before its zip archive or between its entries and their directory "
            "(a prepended stub or hidden bytes)."
        )
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            raise PackError(
                f"Pack entry {show(info.filename)} does not start where the previous one ends "
                "(hidden bytes, a prepended stub or overlapping entries)."
            )
        try:
            fh.seek(info.header_offset)
            header = _LOCAL.unpack(fh.read(_LOCAL.size))
        except ZIP_ERRORS:
            raise PackError(f"Pack entry {show(info.filename)} has no readable local header.") from None
        if header[0] != b"PK\x03\x04":
            raise PackError(f"Pack entry {show(info.filename)} has no local header where the directory says.")
        name_length, extra_length = header[9], header[10]
        position = info.header_offset + _LOCAL.size + name_length + extra_length + info.compress_size
        if info.flag_bits & _DATA_DESCRIPTOR_FLAG:
            fh.seek(position)
            position += 16 if fh.read(4) == b"PK\x07\x08" else 12
    if position != cd_offset:
        raise PackError("The pack's entries do not end where its zip directory begins (hidden bytes).")


def check_directory(infos: list[zipfile.ZipInfo], limits: PackLimits) -> dict[str, zipfile.ZipInfo]:
    """Names, kinds, sizes and ratios as the central directory declares them; returns entries by name."""
    if len(infos) > limits.max_entries:
        raise PackError(f"The pack has {len(infos)} entries, more than the limit of {limits.max_entries}.")
    seen: dict[str, zipfile.ZipInfo] = {}
    declared_total = declared_references = references = 0
    for info in infos:
        name = info.filename
        check_name(name)
        mode = info.external_attr >> 16
        if mode & _S_IFMT == _S_IFLNK:
            raise PackError(f"Pack entry {show(name)} is a symbolic link.")
        if mode & _S_IFMT not in (0, _S_IFREG) or info.external_attr & 0x10:
            raise PackError(f"Pack entry {show(name)} is not a regular file.")
        is_reference = REFERENCE_NAME_RE.fullmatch(name) is not None
        if not (name in (MANIFEST, SIGNATURE) or is_reference or TRACE_NAME_RE.fullmatch(name)):
            raise PackError(
                f"Pack entry {show(name)} is not allowed "
                "(only manifest.json, signature.json, references/<slug>.md and traces/<name>.jsonl)."
            )
        stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
        if stem in WINDOWS_RESERVED:
            raise PackError(f"Pack entry {show(name)} uses a name reserved for devices on Windows.")
        if name in seen:
            raise PackError(f"Pack entry {show(name)} appears more than once.")
        seen[name] = info
        if info.flag_bits & 0x1:
            raise PackError(f"Pack entry {show(name)} is encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackError(f"Pack entry {show(name)} uses an unsupported compression method.")
        limit = limits.for_entry(name)
        if info.file_size > limit:
            raise PackError(
                f"Pack entry {show(name)} declares {info.file_size} bytes, more than its limit of {limit} bytes."
            )
        if info.file_size >= limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise PackError(
                f"Pack entry {show(name)} has a compression ratio above {limits.max_ratio}:1 (a zip bomb)."
            )
        declared_total += info.file_size
        if is_reference:
            references += 1
            declared_references += info.file_size
    if declared_total > limits.max_total_bytes:
        raise PackError(
            f"The pack declares {declared_total} bytes in total, more than the limit of {limits.max_total_bytes}."
        )
    if references > limits.max_references:
        raise PackError(f"The pack has {references} references, more than the limit of {limits.max_references}.")
    if declared_references > limits.max_reference_total_bytes:
        raise PackError(
            f"The pack's references declare {declared_references} bytes in total, more than the limit of "
            f"{limits.max_reference_total_bytes} (parsing them would take too long)."
        )
    return seen


def check_name(name: str) -> None:
    if not name or "\x00" in name:
        raise PackError(f"Pack entry {show(name)} has an empty or NUL-containing name.")
    if name.startswith(("/", "\\")) or _ABSOLUTE_RE.match(name):
        raise PackError(f"Pack entry {show(name)} has an absolute path.")
    if ".." in _SEPARATOR_RE.split(name):
        raise PackError(f"Pack entry {show(name)} has a '..' component that would escape the target directory.")


def read_entry(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo | None,
    name: str,
    limits: PackLimits,
    total: ByteBudget,
    budget: ByteBudget | None = None,
) -> tuple[bytes, str]:
    """The entry's bytes and their sha256, read in chunks and cut off at its declared size and limit.

    ``total`` counts every byte read from the pack; ``budget`` (if given) a second,
    narrower total such as the references' parse budget.
    """
    if info is None:
        raise PackError(f"The pack has no {name}.")
    cap = min(limits.for_entry(name), info.file_size)
    out = bytearray()
    digest = hashlib.sha256()
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(min(1 << 16, cap + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                digest.update(chunk)
                total.add(len(chunk))
                if budget is not None:
                    budget.add(len(chunk))
                if len(out) > cap:
                    raise PackError(f"Pack entry {show(name)} holds more data than it declares.")
    except PackError:
        raise
    except ZIP_ERRORS as exc:
        raise PackError(f"Pack entry {show(name)} is corrupt ({clause(exc) or type(exc).__name__}).") from None
    if len(out) != info.file_size:
        raise PackError(f"Pack entry {show(name)} holds {len(out)} bytes, not the {info.file_size} it declares.")
    return bytes(out), digest.hexdigest()

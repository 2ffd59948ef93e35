"""A bounded, read-only parser of a GGUF file's header: metadata and tensor descriptions.

It reads what ``models list`` and the fast-copy check need (architecture, name, chat
template, fine-tune hints, the type of each tensor) without loading weights, and it is
safe on hostile files: every count and length is checked against the file's size and
fixed limits before anything is allocated, arrays are skipped rather than stored, and
the whole parse reads at most ``MAX_HEADER_BYTES``. Anything unexpected raises
``GGUFError`` with one sentence. Pure Python, so a crafted file cannot reach native code.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
MAX_HEADER_BYTES = 64 << 20  # a 262k-token vocabulary takes ~6 MB; nothing real needs 64
MAX_KV = 100_000
MAX_TENSORS = 1_000_000
MAX_KEY = 65_536
MAX_STRING_KEPT = 1 << 20  # strings longer than this (none that we read) are skipped
MAX_DIMS = 8

# gguf_type
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_FIXED = {_U8: "<B", _I8: "<b", _U16: "<H", _I16: "<h", _U32: "<I", _I32: "<i", _F32: "<f",
          _BOOL: "<?", _U64: "<Q", _I64: "<q", _F64: "<d"}

# ggml_type -> (name, block size in elements, bytes per block)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}


class GGUFError(ValueError):
    """The file is not a GGUF header this reader accepts."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return GGML_TYPES.get(self.type_id, (f"type{self.type_id}", 1, 0))[0]


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, object] = field(default_factory=dict)  # scalars and short strings only
    arrays: dict[str, int] = field(default_factory=dict)  # array key -> length (values skipped)
    tensors: list[TensorInfo] = field(default_factory=list)
    header_bytes: int = 0

    def get_str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def weight_type(self) -> str | None:
        """The type holding most of the weights of the layers' matrices, e.g. "Q4_1" (the
        token embedding, often kept at Q8_0 and as large as all layers in a small model
        with a big vocabulary, does not count unless there is nothing else)."""
        for layers_only in (True, False):
            counts: dict[str, int] = {}
            for t in self.tensors:
                if len([d for d in t.shape if d > 1]) >= 2 and (t.name.startswith("blk.") or not layers_only):
                    counts[t.type_name] = counts.get(t.type_name, 0) + t.n_elements
            if counts:
                return max(counts, key=counts.__getitem__)
        return None

    def type_counts(self) -> dict[str, int]:
        """Number of elements per tensor type."""
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.type_name] = counts.get(t.type_name, 0) + t.n_elements
        return counts

    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)


class _Reader:
    """Reads forward through a file in 1 MB blocks, never past ``limit`` bytes."""

    BLOCK = 1 << 20

    def __init__(self, fh: io.BufferedReader, file_size: int, limit: int) -> None:
        self.fh = fh
        self.file_size = file_size
        self.limit = min(limit, file_size)
        self.buf = b""
        self.off = 0  # position in buf
        self.base = 0  # file position of buf[0]

    @property
    def pos(self) -> int:
        return self.base + self.off

    def _ensure(self, n: int) -> None:
        if n < 0 or self.pos + n > self.limit:
            self._fail(n)
        if len(self.buf) - self.off >= n:
            return
        rest = self.buf[self.off:]
        self.base += self.off
        want = min(max(n - len(rest), self.BLOCK), self.limit - self.base - len(rest))
        more = self.fh.read(want)
        self.buf, self.off = rest + more, 0
        if len(self.buf) < n:
            raise GGUFError("The GGUF header is truncated.")

    def take(self, n: int) -> bytes:
        self._ensure(n)
        data = self.buf[self.off:self.off + n]
        self.off += n
        return data

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.limit:
            self._fail(n)
        if len(self.buf) - self.off >= n:
            self.off += n
            return
        target = self.pos + n
        self.fh.seek(target)
        self.buf, self.off, self.base = b"", 0, target

    def skip_strings(self, count: int) -> None:
        """Skip ``count`` length-prefixed strings (a vocabulary) without a call per string."""
        unpack = struct.unpack_from
        while count:
            self._ensure(8)
            buf, off, end = self.buf, self.off, len(self.buf)
            while count and off + 8 <= end:
                n = unpack("<Q", buf, off)[0]
                if off + 8 + n > end:
                    break
                off += 8 + n
                count -= 1
            self.off = off
            if count:  # the next string straddles the block: take it the slow way
                self.skip(self.u64())
                count -= 1

    def _fail(self, n: int) -> None:
        if self.pos + n > self.file_size:
            raise GGUFError("The GGUF header is truncated or claims more data than the file holds.")
        raise GGUFError(f"The GGUF header is larger than {MAX_HEADER_BYTES >> 20} MB, which no model needs.")

    def unpack(self, fmt: str) -> object:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def u32(self) -> int:
        return int(self.unpack("<I"))  # type: ignore[arg-type]

    def u64(self) -> int:
        return int(self.unpack("<Q"))  # type: ignore[arg-type]

    def string(self, keep: int) -> str | None:
        n = self.u64()
        if n > keep:
            self.skip(n)
            return None
        return self.take(n).decode("utf-8", "replace")


def read_header(path: str | os.PathLike[str], limit: int = MAX_HEADER_BYTES) -> GGUFHeader:
    """Parse the header of the GGUF file at ``path`` (GGUFError if it is not one; OSError if
    it cannot be read). Opens only regular files, so a FIFO or a device cannot block it."""
    path = Path(path)
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        r = _Reader(fh, size, limit)
        if size < 8 or r.take(4) != MAGIC:
            raise GGUFError("The file does not start with the GGUF signature.")
        version = r.u32()
        if version not in (2, 3):
            raise GGUFError(f"GGUF version {version} is not supported (only versions 2 and 3).")
        n_tensors, n_kv = r.u64(), r.u64()
        if n_kv > MAX_KV or n_tensors > MAX_TENSORS:
            raise GGUFError("The GGUF header claims an implausible number of entries.")
        head = GGUFHeader(version)
        for _ in range(n_kv):
            key = r.string(MAX_KEY)
            if key is None:
                raise GGUFError("A GGUF metadata key is implausibly long.")
            vtype = r.u32()
            if vtype == _ARR:
                head.arrays[key] = _skip_array(r)
            else:
                value = _value(r, vtype)
                if value is not None:
                    head.metadata[key] = value
        for _ in range(n_tensors):
            name = r.string(MAX_KEY)
            if name is None:
                raise GGUFError("A GGUF tensor name is implausibly long.")
            n_dims = r.u32()
            if n_dims > MAX_DIMS:
                raise GGUFError(f"The tensor {name!r} claims {n_dims} dimensions.")
            shape = tuple(r.u64() for _ in range(n_dims))
            type_id = r.u32()
            r.u64()  # offset of the data
            head.tensors.append(TensorInfo(name, shape, type_id))
        head.header_bytes = r.pos
        return head


def _value(r: _Reader, vtype: int) -> object:
    if vtype == _STR:
        return r.string(MAX_STRING_KEPT)
    fmt = _FIXED.get(vtype)
    if fmt is None:
        raise GGUFError(f"The GGUF header holds a value of unknown type {vtype}.")
    return r.unpack(fmt)


def _skip_array(r: _Reader) -> int:
    etype, count = r.u32(), r.u64()
    if etype == _STR:
        # Each string costs at least its 8-byte length, so the count is bounded by the limit.
        if count * 8 > r.limit - r.pos:
            r._fail(count * 8)
        r.skip_strings(count)
    elif etype in _FIXED:
        r.skip(count * struct.calcsize(_FIXED[etype]))
    else:  # nested arrays are legal GGUF but no model uses them; refusing keeps the parse flat
        raise GGUFError(f"The GGUF header holds an array of unsupported type {etype}.")
    return count


def _open_regular(path: Path) -> io.BufferedReader:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GGUFError("The path is not a regular file.")
        return os.fdopen(fd, "rb", buffering=1 << 16)
    except BaseException:
        os.close(fd)
        raise


def describe(head: GGUFHeader) -> dict[str, object]:
    """What ``models list`` shows of a header: kind (instruct/base/unknown) and why, the
    weight type, the architecture and name."""
    kind, why = model_kind(head)
    return {"kind": kind, "kind_reason": why, "weight_type": head.weight_type(),
            "architecture": head.get_str("general.architecture"), "model_name": head.get_str("general.name"),
            "params": head.n_params()}


_INSTRUCT_HINTS = ("instruct", "chat", "-it", "_it", " it", "-sft", "assistant", "dpo", "rlhf")


def model_kind(head: GGUFHeader) -> tuple[str, str]:
    """("instruct" | "base" | "unknown", the metadata that decided it)."""
    template = "tokenizer.chat_template" in head.metadata or "tokenizer.chat_template" in head.arrays
    names = " ".join(s.lower() for s in (head.get_str("general.finetune"), head.get_str("general.name"),
                                          head.get_str("general.basename")) if s)
    finetune = (head.get_str("general.finetune") or "").lower()
    hint = next((h.strip(" -_") for h in _INSTRUCT_HINTS if h in f" {names}"), None)
    if template and (hint or finetune):
        return "instruct", "has a chat template" + (f" and the name says {hint!r}" if hint else
                                                     f" and a fine-tune ({finetune!r})")
    if template:
        return "instruct", "has a chat template"
    if hint:
        return "instruct", f"the name says {hint!r} (no chat template)"
    if head.get_str("general.type") == "model" and not finetune:
        return "base", "no chat template and no fine-tune in the metadata"
    if not finetune:
        return "base", "no chat template"
    return "unknown", f"fine-tune {finetune!r} but no chat template"


__all__ = ["GGUFError", "GGUFHeader", "TensorInfo", "read_header", "describe", "model_kind", "GGML_TYPES"]

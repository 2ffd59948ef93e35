"""Thin owners of llama.cpp's native handles (model, context, batch), via llama-cpp-python's
low-level ctypes API. Each class frees its handle in ``close()``; C return codes become
exceptions; no raw pointer leaves this module.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import llama_cpp as C

from .errors import Cancelled, ContextOverflow, LanternError, ModelError

_backend_lock = threading.Lock()
_backend_ready = False
_log_lock = threading.Lock()


@C.llama_log_callback
def _quiet_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp logs a great deal to stderr; the studio and the CLI report errors themselves.
    return None


def _ensure_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            C.llama_log_set(_quiet_log, ctypes.c_void_p(0))
            C.llama_backend_init()
            _backend_ready = True


# llama_ftype values of the formats a model can be requantized to.
QUANT_FTYPES: dict[str, int] = {
    "Q4_0": C.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_1": C.LLAMA_FTYPE_MOSTLY_Q4_1,
    "Q5_0": C.LLAMA_FTYPE_MOSTLY_Q5_0,
    "Q5_1": C.LLAMA_FTYPE_MOSTLY_Q5_1,
    "Q8_0": C.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_K_M": C.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": C.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q6_K": C.LLAMA_FTYPE_MOSTLY_Q6_K,
    "IQ4_NL": C.LLAMA_FTYPE_MOSTLY_IQ4_NL,
}


def quantize_model(src: Path, dst: Path, ftype: str, n_threads: int = 0,
                   log: Callable[[str], None] | None = None) -> None:
    """Write ``src`` requantized to ``ftype`` at ``dst`` with llama.cpp's own quantizer
    (``allow_requantize``: already-quantized tensors are dequantized and quantized again;
    the token embedding and output tensors get the types llama.cpp picks for ``ftype``).

    Blocks until done; llama.cpp offers no progress callback or cancel, but it logs one
    line per tensor, which ``log`` receives (the log hook is global, so quantizing and
    loading a model at the same time in one process would mix their logs). The caller
    writes to a temporary path and renames it (see ``core.fastcopy``).
    """
    if ftype not in QUANT_FTYPES:
        raise ModelError(f"Unknown target format {ftype!r} (choose from {', '.join(QUANT_FTYPES)}).")
    _ensure_backend()
    params = C.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[ftype]
    params.allow_requantize = True
    params.nthread = n_threads
    with _log_lock:
        hook = None
        if log is not None:
            def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
                try:
                    log(text.decode("utf-8", "replace"))
                except Exception:  # a failing callback must not unwind through native code
                    pass

            hook = C.llama_log_callback(_log)
            C.llama_log_set(hook, ctypes.c_void_p(0))
        try:
            rc = C.llama_model_quantize(str(src).encode("utf-8"), str(dst).encode("utf-8"), ctypes.byref(params))
        finally:
            if hook is not None:
                C.llama_log_set(_quiet_log, ctypes.c_void_p(0))
    if rc != 0:
        raise ModelError(
            f"llama.cpp could not convert {Path(src).name} to {ftype}: the file is corrupt, or its architecture or tensor types cannot be requantized.")


def apply_chat_template(template: str, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str:
    """Render messages with llama.cpp's built-in implementation of a chat template (no model
    needed: a remote backend renders a server's template exactly as the local engine does)."""
    keep = [(r.encode(), c.encode()) for r, c in messages]
    arr = (C.llama_chat_message * len(keep))()
    for i, (role, content) in enumerate(keep):
        arr[i].role = role
        arr[i].content = content
    size = 4096 + sum(len(c) for _, c in keep) * 2
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = C.llama_chat_apply_template(template.encode(), arr, len(keep), add_assistant, buf, size)
        if n < 0:
            raise ModelError("The model's chat template is not supported by llama.cpp.")
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n + 1
    raise ModelError("The chat template produced an unexpectedly long prompt.")


class LlamaModel:
    """A loaded GGUF model and its vocabulary."""

    def __init__(self, path: Path, progress: Callable[[float], bool] | None = None) -> None:
        _ensure_backend()
        self.path = Path(path)
        params = C.llama_model_default_params()
        params.n_gpu_layers = 0
        if progress is not None:
            # The callback returns False to abort loading; keep a reference while loading.
            def _cb(value: float, _user: ctypes.c_void_p) -> bool:
                try:
                    return bool(progress(float(value)))
                except Exception:  # a failing UI callback must not crash native code
                    return True

            self._progress_cb = C.llama_progress_callback(_cb)
            params.progress_callback = self._progress_cb
        handle = C.llama_model_load_from_file(str(self.path).encode("utf-8"), params)
        if not handle:
            raise ModelError(
                f"llama.cpp could not load {self.path.name}: the file is corrupt, truncated or of an unsupported architecture.")
        self._handle = handle
        self._vocab = C.llama_model_get_vocab(handle)
        self.n_vocab = int(C.llama_vocab_n_tokens(self._vocab))
        self.n_ctx_train = int(C.llama_model_n_ctx_train(handle))
        self._pieces: list[bytes] | None = None

    @property
    def handle(self):  # only for LlamaContext in this module
        if self._handle is None:
            raise LanternError("The model has been closed.")
        return self._handle

    def close(self) -> None:
        if getattr(self, "_handle", None) is not None:
            C.llama_model_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()

    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        C.llama_model_desc(self.handle, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def meta(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = C.llama_model_meta_val_str(self.handle, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def chat_template(self) -> str | None:
        raw = C.llama_model_chat_template(self.handle, None)
        return raw.decode("utf-8", "replace") if raw else None

    def apply_chat_template(self, template: str, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str:
        """Render messages with llama.cpp's built-in implementation of the model's template."""
        return apply_chat_template(template, messages, add_assistant)

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        buf = (C.llama_token * n_max)()
        n = C.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (C.llama_token * n_max)()
            n = C.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
            if n < 0:
                raise ModelError("The text could not be tokenized.")
        return list(buf[:n])

    def pieces(self) -> list[bytes]:
        """The bytes of every token, computed once (special tokens rendered as text)."""
        if self._pieces is None:
            buf = ctypes.create_string_buffer(256)
            out = []
            for tok in range(self.n_vocab):
                n = C.llama_token_to_piece(self._vocab, tok, buf, len(buf), 0, True)
                out.append(buf.raw[:n] if n > 0 else b"")
            self._pieces = out
        return self._pieces

    def is_eog(self, token: int) -> bool:
        return bool(C.llama_vocab_is_eog(self._vocab, token))

    def is_control(self, token: int) -> bool:
        """A control token (turn markers, BOS/EOS…): what only a template may write."""
        return bool(C.llama_vocab_is_control(self._vocab, token))

    def add_bos(self) -> bool:
        return bool(C.llama_vocab_get_add_bos(self._vocab))

    def bos(self) -> int:
        return int(C.llama_vocab_bos(self._vocab))


class LlamaBatch:
    """A reusable llama_batch of up to ``capacity`` tokens, each in one sequence."""

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        self.capacity = capacity
        self._batch = C.llama_batch_init(capacity, 0, n_seq_max)
        self.n_tokens = 0

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index in the batch (for ``LlamaContext.logits``)."""
        i = self.n_tokens
        if i >= self.capacity:
            raise LanternError("Internal error: batch overflow.")
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        self.n_tokens = i + 1
        return i

    @property
    def native(self):
        self._batch.n_tokens = self.n_tokens
        return self._batch

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            C.llama_batch_free(self._batch)
            self._batch = None

    def __del__(self) -> None:
        self.close()


class LlamaContext:
    """A llama.cpp context holding several sequences in one KV cache."""

    def __init__(self, model: LlamaModel, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int) -> None:
        self.model = model
        params = C.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # One unified KV buffer: the sequences share cells, so the plant, the sidecar and
        # attribution copies all fit in n_ctx without reserving n_ctx per sequence.
        params.kv_unified = True
        # Exact scoring needs every logit to be independent of how tokens were batched. With
        # an f16 K/V cache, llama.cpp's CPU flash attention splits single-token attention
        # across threads once 512 cells are in use and tiles batches of 64 or more, and each
        # path sums in its own order (measured: 0.76 nats between a chunk and single tokens
        # at 600 cells, 0.46 nats when one batch mixes sequences). Those paths need K and V
        # of one f16/f32 type; a q8_0 K cache keeps every batch on the one per-row kernel,
        # bit for bit, and an f16 V cache keeps the value sums fast and precise (q8_0 V was
        # 15% slower on a 9-token batch at 600 cells). The order of a sequence's cells still
        # matters; the backend's compact() keeps it canonical.
        params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.type_k = C.GGML_TYPE_Q8_0
        params.type_v = C.GGML_TYPE_F16
        params.no_perf = True
        # No abort callback: llama.cpp would call back into Python at every graph node
        # (75,000 times in a 128-token run); batches are at most n_batch (32) tokens, so
        # cancelling between decodes already stops a run within one short batch.
        handle = C.llama_init_from_model(model.handle, params)
        if not handle:
            raise ModelError("llama.cpp could not create a context for the model (out of memory?).")
        self._handle = handle
        self._mem = C.llama_get_memory(handle)
        self.n_ctx = int(C.llama_n_ctx(handle))
        self.n_batch = n_batch
        self.n_vocab = model.n_vocab
        self.n_threads = n_threads

    def set_threads(self, n: int) -> None:
        """Decode on ``n`` threads from now on (the matrix rows are split across threads, each
        row summed the same way: the logits do not change)."""
        if n != self.n_threads:
            C.llama_set_n_threads(self._handle, n, n)
            self.n_threads = n

    def close(self) -> None:
        if getattr(self, "_handle", None) is not None:
            C.llama_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()

    def request_abort(self) -> None:
        """Cancelling is checked between decodes (see __init__); nothing to interrupt here."""

    def clear_abort(self) -> None:
        """See ``request_abort``."""

    def decode(self, batch: LlamaBatch) -> None:
        rc = C.llama_decode(self._handle, batch.native)
        if rc == 0:
            return
        if rc == 1:
            raise ContextOverflow(f"The run no longer fits in the model's context of {self.n_ctx} tokens.")
        if rc == 2:
            raise Cancelled("The run was cancelled.")
        raise LanternError(f"llama.cpp failed to evaluate a batch (error code {rc}).")

    def logits(self, i: int) -> np.ndarray:
        """The logits row of batch index ``i`` as a float32 view, valid until the next decode."""
        ptr = C.llama_get_logits_ith(self._handle, i)
        if not ptr:
            raise LanternError(f"Internal error: no logits for batch index {i}.")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def seq_rm(self, seq: int, p0: int, p1: int = -1) -> None:
        if not C.llama_memory_seq_rm(self._mem, seq, p0, p1):
            raise LanternError(f"llama.cpp could not remove positions {p0}.. of sequence {seq}.")

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        C.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def seq_pos_max(self, seq: int) -> int:
        return int(C.llama_memory_seq_pos_max(self._mem, seq))

    def clear(self) -> None:
        C.llama_memory_clear(self._mem, True)

    def seq_state(self, seq: int) -> bytes:
        """The KV cells of one sequence, serialised (a copy)."""
        size = int(C.llama_state_seq_get_size(self._handle, seq))
        buf = (ctypes.c_uint8 * size)()
        n = C.llama_state_seq_get_data(self._handle, buf, size, seq)
        if n != size:
            raise LanternError(f"llama.cpp could not save the state of sequence {seq}.")
        return bytes(buf)

    def set_seq_state(self, seq: int, data: bytes) -> None:
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if C.llama_state_seq_set_data(self._handle, buf, len(data), seq) == 0:
            raise ContextOverflow("llama.cpp could not restore a sequence: the context is full.")

"""The backend protocol the engine talks to, and its llama.cpp implementation.

A backend holds numbered token sequences (0 = plant, 1 = sidecar, more for attribution),
appends tokens to them and returns logits rows. The engine never sees native handles, so a
remote backend (an OpenAI-compatible server with logprobs) can stand in later.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..paths import data_dir
from .errors import ContextOverflow, ModelError
from .llama_native import LlamaBatch, LlamaContext, LlamaModel
from .models import BUILTINS, check_gguf, sha256_file
from .settings import EngineSettings

PLANT = 0
SIDECAR = 1
FIRST_SCRATCH = 2


@dataclass(frozen=True, slots=True)
class Feed:
    """Tokens to append to a sequence; logits wanted for tokens[logits_from:] (None: none)."""

    seq: int
    tokens: Sequence[int]
    logits_from: int | None = None
    targets: Sequence[int] | None = None  # if set: return only log p(target) per wanted row


class Backend(Protocol):
    """What the engine needs of a model runtime."""

    model_name: str
    n_ctx: int
    n_vocab: int
    n_seq: int

    def model_sha256(self) -> str: ...
    def tokenize(self, text: str, special: bool = False) -> list[int]: ...
    def pieces(self) -> list[bytes]: ...
    def is_end(self, token: int) -> bool: ...
    def is_control(self, token: int) -> bool: ...
    def chat_template(self) -> str | None: ...
    def render_chat(self, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str: ...
    def bos_tokens(self) -> list[int]: ...
    def tokens(self, seq: int) -> list[int]: ...
    def length(self, seq: int) -> int: ...
    def truncate(self, seq: int, n: int) -> None: ...
    def share_prefix(self, src: int, dst: int, n: int) -> None: ...
    def forward(self, feeds: Sequence[Feed]) -> list[np.ndarray]: ...
    def knock_out(self, seq: int, p0: int, p1: int) -> None: ...
    def is_estimate(self, row: np.ndarray, token: int) -> bool:
        """True when ``row[token]`` (a row ``forward`` returned) is an estimate, not a value
        the model computed: a server that returns only its top-k fills the rest."""
        ...
    def abort(self) -> None: ...
    def clear_abort(self) -> None: ...
    def close(self) -> None: ...


class LlamaCppBackend:
    """llama.cpp in-process: the plant and the scratch sequences in one unified KV cache, and
    the sidecar in a second context of the same weights when there are threads to spare.

    On a CPU one decode of the plant's and the sidecar's next tokens costs about two plain
    tokens, but two contexts decoding at once on half the threads each cost little more than
    one (measured on two cores, SmolLM2-135M, medians of 6 rounds: 9.3 ms for the pair, 6.3 ms
    for one token on both threads, 14.0 ms for both in one decode). Every sequence scores the
    same wherever it lives (see LlamaContext; the tests compare both layouts), so this
    changes no logit. With OpenMP told to spin (``OMP_WAIT_POLICY=active``) an idle
    worker holds the core the other context needs; the default policy is what users run.
    """

    def __init__(self, model_path: Path, settings: EngineSettings = EngineSettings(),
                 progress: Callable[[float], bool] | None = None) -> None:
        check_gguf(model_path)
        self.settings = settings
        self.model_path = Path(model_path)
        self._model = LlamaModel(self.model_path, progress)
        self._side: LlamaContext | None = None
        self._side_batch: LlamaBatch | None = None
        self._pool: ThreadPoolExecutor | None = None
        try:
            threads = settings.n_threads or max(1, os.cpu_count() or 1)
            self.n_threads = threads
            self.n_seq = 2 + settings.extra_sequences
            n_ctx = min(settings.n_ctx, max(self._model.n_ctx_train, 512))
            two = settings.sidecar_context and threads >= 2
            # With the sidecar apart, the main context keeps one more sequence: a mirror of
            # the sidecar that scratch copies share cells with, as they would in one context.
            self._mirror = self.n_seq
            self._mirror_of: list[int] | None = None
            self._ctx = LlamaContext(self._model, n_ctx, settings.n_batch, self.n_seq + two, threads)
            if two:
                self._side = LlamaContext(self._model, n_ctx, settings.n_batch, 1, threads // 2)
                self._side_batch = LlamaBatch(settings.n_batch, 1)
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="lantern-sidecar")
        except BaseException:
            self.close()
            raise
        self.n_ctx = self._ctx.n_ctx
        self.n_contexts = 1 if self._side is None else 2
        self.n_vocab = self._model.n_vocab
        self.model_name = self._model.meta("general.name") or self.model_path.stem
        self._seqs: list[list[int]] = [[] for _ in range(self.n_seq)]
        self._batch = LlamaBatch(settings.n_batch, 1)
        self._sha256: str | None = None
        self._holes = False
        self.decode_seconds = 0.0  # time spent inside llama_decode, for benchmarks

    # -- model facts -------------------------------------------------------------------
    def model_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = _cached_sha256(self.model_path)
        return self._sha256

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._model.tokenize(text, add_special=False, parse_special=special)

    def pieces(self) -> list[bytes]:
        return self._model.pieces()

    def is_end(self, token: int) -> bool:
        return self._model.is_eog(token)

    def is_control(self, token: int) -> bool:
        return self._model.is_control(token)

    def chat_template(self) -> str | None:
        return self._model.chat_template()

    def render_chat(self, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str:
        template = self.chat_template()
        if template is None:
            raise ModelError("The model has no chat template.")
        return self._model.apply_chat_template(template, messages, add_assistant)

    def bos_tokens(self) -> list[int]:
        return [self._model.bos()] if self._model.add_bos() else []

    def description(self) -> str:
        return self._model.description()

    # -- sequences ---------------------------------------------------------------------
    def _where(self, seq: int) -> tuple[LlamaContext, int]:
        """The context that holds ``seq`` and the sequence's id there."""
        if seq == SIDECAR and self._side is not None:
            return self._side, 0
        return self._ctx, seq

    def tokens(self, seq: int) -> list[int]:
        return list(self._seqs[seq])

    def length(self, seq: int) -> int:
        return len(self._seqs[seq])

    def used_cells(self) -> int:
        return sum(len(s) for s in self._seqs)

    def truncate(self, seq: int, n: int) -> None:
        """Keep the first ``n`` tokens of ``seq``."""
        if n < len(self._seqs[seq]):
            ctx, native = self._where(seq)
            ctx.seq_rm(native, n, -1)
            del self._seqs[seq][n:]
            self._holes = True

    def share_prefix(self, src: int, dst: int, n: int) -> None:
        """Make ``dst`` hold the first ``n`` tokens of ``src`` (cells are shared, not copied,
        within one context; from the sidecar's own context they are copied)."""
        dst_ctx, dst_native = self._where(dst)
        dst_ctx.seq_rm(dst_native, 0, -1)
        if self._holes:
            self.compact()
        src_ctx, src_native = self._where(src)
        if n and src_ctx is not dst_ctx:
            if self._mirror_of != self._seqs[src]:
                dst_ctx.seq_rm(self._mirror, 0, -1)
                dst_ctx.set_seq_state(self._mirror, src_ctx.seq_state(src_native))
                self._mirror_of = list(self._seqs[src])
            src_native = self._mirror
        if n:
            dst_ctx.seq_cp(src_native, dst_native, 0, n)
        self._seqs[dst] = self._seqs[src][:n]

    def forward(self, feeds: Sequence[Feed]) -> list[np.ndarray]:
        """Append each feed's tokens to its sequence and return, per feed, a (k, n_vocab)
        float32 copy of the logits rows asked for (or k log-probs when ``targets`` is set).

        The feeds of one context share batches of up to n_batch tokens (the plant's next
        token and the scoring chunk cost one decode); the sidecar's own context decodes at
        the same time on the other threads. The contexts are set up so that this changes no
        logit (see LlamaContext): a sequence scores the same whatever else is decoded.
        """
        total = sum(len(f.tokens) for f in feeds)
        if self.used_cells() + total > self.n_ctx:
            raise ContextOverflow(
                f"The run needs {self.used_cells() + total} tokens of context but the model's context holds {self.n_ctx}.")
        if self._holes:
            self.compact()
        outs = [np.empty(self._n_wanted(f), dtype=np.float32) if f.targets is not None
                else np.empty((self._n_wanted(f), self.n_vocab), dtype=np.float32) for f in feeds]
        side = [i for i, f in enumerate(feeds) if f.tokens and self._where(f.seq)[0] is not self._ctx]
        main = [i for i, f in enumerate(feeds) if f.tokens and i not in side]
        t0 = time.perf_counter()
        try:
            if side and main and self._at_once(feeds, side) and self._at_once(feeds, main):
                assert self._side is not None and self._side_batch is not None and self._pool is not None
                self._ctx.set_threads(self.n_threads - self.n_threads // 2)
                self._side.set_threads(self.n_threads // 2)
                pending = self._pool.submit(self._feed, self._side, self._side_batch, feeds, side, outs)
                try:
                    self._feed(self._ctx, self._batch, feeds, main, outs)
                finally:
                    pending.result()  # never touch the caches while the other context decodes
            else:
                if main:
                    self._ctx.set_threads(self.n_threads)
                    self._feed(self._ctx, self._batch, feeds, main, outs)
                if side:
                    assert self._side is not None and self._side_batch is not None
                    self._side.set_threads(self.n_threads)
                    self._feed(self._side, self._side_batch, feeds, side, outs)
        except BaseException:
            # Keep our bookkeeping true to the KV caches after a failed decode.
            self._resync()
            raise
        finally:
            self.decode_seconds += time.perf_counter() - t0
        return outs

    def _feed(self, ctx: LlamaContext, batch: LlamaBatch, feeds: Sequence[Feed], which: list[int],
              outs: list[np.ndarray]) -> None:
        """Decode the feeds ``which`` (all in ``ctx``) in batches, filling their ``outs``."""
        filled = {fi: 0 for fi in which}
        wanted: list[tuple[int, int]] = []  # (index in the batch, feed)

        def decode() -> None:
            try:
                ctx.decode(batch)
            finally:
                batch_used = list(wanted)
                wanted.clear()
                batch.clear()
            for bi, fi in batch_used:
                row = ctx.logits(bi)
                targets = feeds[fi].targets
                if targets is None:
                    outs[fi][filled[fi]] = row
                else:  # only log p(target): no copy of the whole row
                    m = row.max()
                    outs[fi][filled[fi]] = row[targets[filled[fi]]] - (m + np.log(np.exp(row - m).sum(dtype=np.float64)))
                filled[fi] += 1

        batch.clear()
        for fi in which:
            feed = feeds[fi]
            seq_tokens = self._seqs[feed.seq]
            native = self._where(feed.seq)[1]
            for ti, token in enumerate(feed.tokens):
                if batch.n_tokens == batch.capacity:
                    decode()
                want = feed.logits_from is not None and ti >= feed.logits_from
                bi = batch.add(int(token), len(seq_tokens), native, want)
                seq_tokens.append(int(token))
                if want:
                    wanted.append((bi, fi))
        if batch.n_tokens:
            decode()

    @staticmethod
    def _at_once(feeds: Sequence[Feed], which: list[int]) -> bool:
        """Whether a context's part of a forward is small enough to decode beside the other's:
        one token. A batch of several tokens is compute-bound and twice as fast on twice the
        threads (measured: 2 tokens in 21 ms on one thread, 14 ms on two; one token 8.2 / 6.7)."""
        return sum(len(feeds[i].tokens) for i in which) <= 1

    @staticmethod
    def _n_wanted(feed: Feed) -> int:
        return 0 if feed.logits_from is None else max(0, len(feed.tokens) - feed.logits_from)

    def compact(self) -> None:
        """Lay every sequence's cells out again in position order, without holes.

        llama.cpp refills freed cells lowest first, so after a truncation a sequence's new
        tokens can land below its older ones; with flash attention the order of a
        sequence's cells changes its logits (measured: up to 0.2 nats). Saving each
        sequence and restoring it into a cleared cache (a copy of the K/V data, ~10 ms for
        a thousand cells) makes every score independent of the context's history.
        Sequences that share cells (scratch copies) are restored as independent copies,
        so this runs only when no scratch sequence is in use.
        """
        self._holes = False
        live = [s for s in range(self.n_seq) if self._seqs[s]]
        if any(s >= FIRST_SCRATCH for s in live):
            return
        self._mirror_of = None  # not restored: rebuilt when a scratch copy needs it
        contexts = [self._ctx] if self._side is None else [self._ctx, self._side]
        for ctx in contexts:
            states = [(native, ctx.seq_state(native)) for c, native in map(self._where, live) if c is ctx]
            ctx.clear()
            for native, data in states:
                ctx.set_seq_state(native, data)

    def is_estimate(self, row: np.ndarray, token: int) -> bool:
        return False  # every logit comes from the model

    def knock_out(self, seq: int, p0: int, p1: int) -> None:
        """Remove positions [p0, p1) of ``seq`` from the KV cache, leaving a hole: later
        positions keep their numbers, so what follows no longer attends to that span."""
        ctx, native = self._where(seq)
        ctx.seq_rm(native, p0, p1)
        self._holes = True

    def _resync(self) -> None:
        for seq, toks in enumerate(self._seqs):
            ctx, native = self._where(seq)
            end = ctx.seq_pos_max(native) + 1
            if end < len(toks):
                del toks[end:]
            ctx.seq_rm(native, len(toks), -1)

    def reset(self) -> None:
        self._holes = False
        self._mirror_of = None
        self._ctx.clear()
        if self._side is not None:
            self._side.clear()
        self._seqs = [[] for _ in range(self.n_seq)]

    def abort(self) -> None:
        self._ctx.request_abort()

    def clear_abort(self) -> None:
        self._ctx.clear_abort()

    def close(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for res in ("_batch", "_side_batch", "_ctx", "_side", "_model"):
            obj = getattr(self, res, None)
            if obj is not None:
                obj.close()


def _cached_sha256(path: Path) -> str:
    """sha256 of a model file, remembered by (path, size, mtime) so it is computed once."""
    st = path.stat()
    for model in BUILTINS.values():
        if path.name == model.filename and st.st_size == model.size:
            return model.sha256  # pulls verify this hash before the file is put in place
    cache = data_dir() / "model-hashes.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = sha256_file(path)
    known[key] = digest
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, cache)
    except OSError:
        pass  # the hash is only a cache; failing to store it costs time, not correctness
    return digest


__all__ = ["Backend", "Feed", "LlamaCppBackend", "PLANT", "SIDECAR", "FIRST_SCRATCH"]

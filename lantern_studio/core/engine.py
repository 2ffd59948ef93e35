"""The engine: the plant (seq 0) and the sidecar (seq 1) in one llama.cpp context.

Every public operation is a generator of typed events (``events.py``): the CLI iterates it,
the studio runs it in a worker, traces record it. Errors end a stream with ``Failed`` (one
sentence); cancelling ends it with ``Done(stats={"stop_reason": "cancelled"})``. A
generation itself lives in ``generation.py`` and its mode's policy in ``modes.py``.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .backend import FIRST_SCRATCH, PLANT, SIDECAR, Backend, Feed, LlamaCppBackend
from .errors import Cancelled, ContextOverflow, LanternError
from .events import Done, Event, Failed, ScoreUpdate, TokenEvent
from .generation import Generation, RunRecord
from .focus import focused_text
from .guards import Vocabulary
from .models import resolve_model
from .modes import NOTE_OPEN
from .reference import Reference
from .run_job import RunStats
from .scoring import divergence, log_softmax_rows, top_k
from .settings import EngineSettings, LoopSettings, SamplingSettings

TOP_N = 5
BASE_QUESTION = "Question: "
BASE_ANSWER = "Answer:"
SCORE_WINDOW = 64  # answer tokens per batch when scoring given text: bounds logits memory


class Engine:
    """A loaded model and the operations on it: run, re-score, score any text."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pieces = backend.pieces()
        # Each operation gets its own cancel flag when it is *created*, so a Stop pressed
        # before its worker starts iterating is never lost; cancel() reaches the newest one
        # and the one running.
        self._newest = threading.Event()
        self._running = self._newest
        self._lock = threading.Lock()  # one operation at a time on the context
        self.last_run: RunRecord | None = None
        self._blip_cache: dict[tuple[str, str], list[int]] = {}
        self._vocabulary: Vocabulary | None = None
        self._end_tokens: list[int] | None = None

    @classmethod
    def load(cls, model: str | Path | None = None, settings: EngineSettings = EngineSettings(),
             progress: Callable[[float], bool] | None = None) -> "Engine":
        """Load a built-in model by name or a local GGUF path (ModelError if it cannot), or
        connect to a model server at an http(s) URL (docs/remote.md)."""
        from .remote import connect, is_url
        if is_url(model):
            return cls(connect(str(model)))
        return cls(LlamaCppBackend(resolve_model(model), settings, progress))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    def cancel(self) -> None:
        """Stop the running operation at the next token, and one created but not started
        yet (safe from any thread)."""
        self._newest.set()
        self._running.set()
        self.backend.abort()

    def begin(self) -> threading.Event:
        """A fresh cancel flag for the next operation (``exclusive`` takes it)."""
        self._newest = threading.Event()
        return self._newest

    # -- text and prompts ---------------------------------------------------------------
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self._pieces)
        return self._vocabulary

    def piece(self, token: int) -> str:
        return self._pieces[token].decode("utf-8", "replace")

    def end_tokens(self) -> list[int]:
        """Every token that ends the turn (end of generation, end of turn, …)."""
        if self._end_tokens is None:
            self._end_tokens = [t for t in range(len(self._pieces)) if self.backend.is_end(t)]
        return self._end_tokens

    def piece_bytes(self, token: int) -> bytes:
        """The token's raw bytes (a UTF-8 character may span several tokens)."""
        return self._pieces[token]

    def tokenize_answer(self, text: str) -> list[int]:
        return self.backend.tokenize(text, special=False)

    def conversation(self, system: str, user: str) -> list[int]:
        """Tokens of a conversation up to the start of the assistant's answer. An empty system
        text gives exactly the conversation without a system message. Only the chat
        template's own markers become control tokens: the user's prompt and the reference
        are always plain text, so ``<|im_end|>`` typed in either is just characters."""
        bos = self.backend.bos_tokens()
        if self.backend.chat_template() is None:
            # A base model has no turns: a question-and-answer layout tells it where the answer
            # starts, and a new "Question:" line (BASE_TURN_END) is where it ends.
            text = f"{BASE_QUESTION}{user.strip()}\n{BASE_ANSWER}"
            if system.strip():
                text = f"{system.strip()}\n\n{text}"
            return bos + self.backend.tokenize(text, special=False)
        messages = ([("system", system)] if system.strip() else []) + [("user", user)]
        segments = self._chat_segments(messages, add_assistant=True)
        return self._with_bos(bos, self._tokenize_segments(segments))

    @property
    def is_base_model(self) -> bool:
        """True for a model without a chat template (a pretrained, not instruction-tuned, one)."""
        return self.backend.chat_template() is None

    def opening(self, user: str, reminder: str, style: str) -> list[int]:
        """The plant's conversation with a reminder read before the answer: a system turn
        after the user's (where the template has one), else an inline note that opens the
        answer."""
        if style == "system-turn" and self.backend.chat_template() is not None:
            segments = self._chat_segments([("user", user), ("system", reminder)], add_assistant=True)
            if (reminder, False) in segments:
                return self._with_bos(self.backend.bos_tokens(), self._tokenize_segments(segments))
        if self.is_base_model:  # the reminder stands before the question, as a prefix would
            return self.conversation(reminder, user)
        return self.conversation("", user) + self.blip_tokens(reminder, "inline-note")

    def _chat_segments(self, messages: Sequence[tuple[str, str]], add_assistant: bool) -> list[tuple[str, bool]]:
        """The rendered chat as (text, is_template) pieces. The template is rendered around
        placeholders, so a message can never change how the template itself tokenizes."""
        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
        rendered = self.backend.render_chat([(role, mark) for (role, _), mark in zip(messages, marks)], add_assistant)
        segments: list[tuple[str, bool]] = []
        pos = 0
        for (_role, content), mark in zip(messages, marks):
            at = rendered.find(mark, pos)
            if at < 0 or rendered.count(mark) != 1:
                # The template rewrote its content (rare): render the real text, with every
                # '<' defused so that no special-token spelling survives in the content.
                safe = [(role, text.replace("<", "<\u200b")) for role, text in messages]
                return [(self.backend.render_chat(safe, add_assistant), True)]
            segments += [(rendered[pos:at], True), (content, False)]
            pos = at + len(mark)
        segments.append((rendered[pos:], True))
        return segments

    def _tokenize_segments(self, segments: Sequence[tuple[str, bool]]) -> list[int]:
        """Control tokens where the template writes them, everything between them — the
        template's own text and the messages — tokenized as one plain text, so a message
        tokenizes exactly as in the full rendering (whitespace merges across the seam)."""
        out: list[int] = []
        plain: list[str] = []

        def flush_plain() -> None:
            if plain:
                out.extend(self.backend.tokenize("".join(plain), special=False))
                plain.clear()

        for text, is_template in segments:
            if not text:
                continue
            if not is_template:
                plain.append(text)
                continue
            for token in self.backend.tokenize(text, special=True):
                if self.backend.is_control(token):
                    flush_plain()
                    out.append(token)
                else:
                    plain.append(self.piece(token))
        flush_plain()
        return out

    def blip_tokens(self, text: str, style: str) -> list[int]:
        """Tokens that carry a blip into the plant's context in the given style."""
        key = (text, style)
        if key not in self._blip_cache:
            self._blip_cache[key] = self._make_blip(text, style)
        return self._blip_cache[key]

    def _make_blip(self, text: str, style: str) -> list[int]:
        if style == "system-turn" and self.backend.chat_template() is not None:
            segments = self._chat_segments([("user", "u"), ("assistant", "a"), ("system", text)], add_assistant=True)
            # segments: template, "u", template, "a", template, text, template
            if len(segments) == 7 and segments[5] == (text, False):
                tail = segments[4:]  # what follows the partial answer: close, system turn, reopen
                return self._tokenize_segments(tail)
        return self.backend.tokenize(f"{NOTE_OPEN}{text.strip()}) ", special=False)

    @staticmethod
    def _with_bos(bos: list[int], tokens: list[int]) -> list[int]:
        return tokens if bos and tokens[:1] == bos else bos + tokens

    # -- operations -----------------------------------------------------------------------
    def run(self, prompt: str, reference: Reference | None = None,
            loop: LoopSettings = LoopSettings(mode="observe"),
            sampling: SamplingSettings = SamplingSettings()) -> Iterator[Event]:
        """Generate an answer to ``prompt`` in ``loop.mode``; yields token, blip, rewind and
        rule events, then ``Done`` (or ``Failed``)."""
        return self._guarded(lambda: Generation(self, prompt, reference, loop, sampling).events(), self.begin())

    def rescore(self, reference: Reference | None) -> Iterator[Event]:
        """Re-score the last run's answer against an edited reference without generating:
        one ``ScoreUpdate`` and ``Done``. The sidecar's cache is kept up to the first changed
        token; the plant's cache is untouched."""
        return self._guarded(lambda: self._rescore(reference), self.begin())

    def score_text(self, reference: Reference | None, prompt: str, answer: str, focus: int = 0) -> Iterator[Event]:
        """Score any answer text, token by token, against ``reference`` (batch scoring of both
        sides), read whole or, with ``focus``, as a run with that focus reads it. Yields
        ``TokenEvent``s and ``Done``."""
        return self._guarded(lambda: self._score_text(reference, prompt, answer, focus), self.begin())

    def _guarded(self, make: Callable[[], Iterator[Event]], op: threading.Event) -> Iterator[Event]:
        with self.exclusive(op):
            try:
                yield from make()
            except Cancelled:
                yield Done({"stop_reason": "cancelled"})
            except LanternError as exc:
                yield Failed(str(exc))
            except MemoryError:
                yield Failed("The computer ran out of memory during the run.")

    @contextmanager
    def exclusive(self, op: threading.Event | None = None) -> Iterator[None]:
        """Hold the context for one operation; ``check_cancel`` then reads ``op`` (from
        ``begin()``, taken when the operation was asked for; a fresh one if None)."""
        op = op if op is not None else self.begin()
        with self._lock:
            self._running = op
            self.backend.clear_abort()
            if op.is_set():
                self.backend.abort()  # cancelled before it started: stop at the first decode
            try:
                yield
            finally:
                self.backend.clear_abort()

    def check_cancel(self) -> None:
        if self._running.is_set():
            raise Cancelled("The run was cancelled.")

    # -- scoring helpers ------------------------------------------------------------------
    def prefill(self, seq: int, tokens: Sequence[int]) -> Feed:
        """A feed that brings ``seq`` to ``tokens``, reusing the cached common prefix; the last
        token is always fed so that its logits (the next-token distribution) come back."""
        common = self.keep_cached(seq, tokens, len(tokens) - 1)
        rest = list(tokens[common:])
        return Feed(seq, rest, len(rest) - 1)

    def keep_cached(self, seq: int, tokens: Sequence[int], at_most: int) -> int:
        """Truncate ``seq`` to the prefix it shares with ``tokens`` (at most ``at_most``
        tokens, so that the rest is fed again and its logits come back); returns its length."""
        cached = self.backend.tokens(seq)
        common = 0
        limit = min(len(cached), at_most)
        while common < limit and cached[common] == tokens[common]:
            common += 1
        self.backend.truncate(seq, common)
        return common

    def clear_scratch(self) -> None:
        for seq in range(FIRST_SCRATCH, self.backend.n_seq):
            self.backend.truncate(seq, 0)

    @contextmanager
    def scratch(self) -> Iterator[list[int]]:
        """The scratch sequences (beyond plant and sidecar), empty on entry and emptied on
        exit whatever happens: the one owner of extra KV sequences (blip scoring,
        attribution, benchmarks)."""
        self.clear_scratch()
        try:
            yield list(range(FIRST_SCRATCH, self.backend.n_seq))
        finally:
            self.clear_scratch()

    def check_fits(self, *prompts: Sequence[int]) -> None:
        need = sum(len(p) for p in prompts) + 1
        if need > self.n_ctx:
            raise ContextOverflow(
                f"The prompt needs {need} tokens but the model's context holds {self.n_ctx}; shorten the prompt or the reference.")

    def score_rows(self, tokens: Sequence[int], plant_rows: np.ndarray, ref_rows: np.ndarray,
                   start: int, top: bool = True) -> list[TokenEvent]:
        """TokenEvents for ``tokens`` from aligned logits rows (row i predicts tokens[i])."""
        lp = log_softmax_rows(plant_rows)
        lr = log_softmax_rows(ref_rows)
        out = []
        for i, tok in enumerate(tokens):
            a, b = float(lp[i, tok]), float(lr[i, tok])
            out.append(TokenEvent(
                index=start + i, token_id=int(tok), text="", logp_plant=a, logp_ref=b, error=a - b,
                divergence=divergence(lr[i], lp[i]),
                top_plant=self.top(lp[i]) if top else [], top_ref=self.top(lr[i]) if top else []))
        return out

    def top(self, logp: np.ndarray) -> list[tuple[str, float]]:
        return [(self.piece(int(t)), float(logp[t])) for t in top_k(logp, TOP_N)]

    def _aligned_rows(self, plant_prompt: list[int] | None, ref_prompt: list[int],
                      answer: Sequence[int]) -> Iterator[tuple[int, np.ndarray | None, np.ndarray]]:
        """Yield (start, plant_rows, ref_rows) windows over ``answer``; rows predict answer[start:]."""
        feeds = [self.prefill(SIDECAR, ref_prompt)]
        if plant_prompt is not None:
            feeds.insert(0, self.prefill(PLANT, plant_prompt))
        rows = self.backend.forward(feeds)
        prev_plant = rows[0][-1] if plant_prompt is not None else None
        prev_ref = rows[-1][-1]
        for start in range(0, len(answer), SCORE_WINDOW):
            self.check_cancel()
            chunk = list(answer[start:start + SCORE_WINDOW])
            feeds = [Feed(SIDECAR, chunk, 0)]
            if plant_prompt is not None:
                feeds.insert(0, Feed(PLANT, chunk, 0))
            rows = self.backend.forward(feeds)
            ref = np.vstack([prev_ref[None, :], rows[-1][:-1]])
            prev_ref = rows[-1][-1]
            plant = None
            if plant_prompt is not None:
                plant = np.vstack([prev_plant[None, :], rows[0][:-1]])
                prev_plant = rows[0][-1]
            yield start, plant, ref

    def _score_text(self, reference: Reference | None, prompt: str, answer: str, focus: int) -> Iterator[Event]:
        t0 = time.perf_counter()
        rendered = focused_text(reference, prompt, focus) if reference is not None else ""
        plant_prompt = self.conversation("", prompt)
        ref_prompt = self.conversation(rendered, prompt)
        tokens = self.tokenize_answer(answer)
        self.clear_scratch()
        self.check_fits(plant_prompt, ref_prompt, tokens, tokens)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        errors = []
        for start, plant, ref in self._aligned_rows(plant_prompt, ref_prompt, tokens):
            assert plant is not None
            for ev in self.score_rows(tokens[start:start + len(ref)], plant, ref, start):
                ev.text = decoder.decode(self._pieces[ev.token_id])
                errors.append(ev.error)
                yield ev
        self.last_run = None  # the plant's context now holds the given text, not a run
        yield Done(_partial_stats(errors, stop_reason="scored", mode="score", tokens=len(tokens),
                                  elapsed_s=time.perf_counter() - t0))

    def _rescore(self, reference: Reference | None) -> Iterator[Event]:
        last = self.last_run
        if last is None:
            raise LanternError("There is no finished run to re-score; run a prompt first.")
        if not last.plant_context_is_answer:
            raise LanternError("Blips changed the plant's context in the last run, so it must be run again, not re-scored.")
        t0 = time.perf_counter()
        rendered = focused_text(reference, last.prompt, last.focus) if reference is not None else ""
        ref_prompt = self.conversation(rendered, last.prompt)
        self.clear_scratch()
        self.check_fits(last.plant_prompt, ref_prompt, last.answer, last.answer)
        scored: list[TokenEvent] = []
        # The plant's prompt stays cached; its answer rows are re-read in batch for the
        # divergence, the sidecar's cache is kept up to the first token the edit changed.
        for start, plant, ref in self._aligned_rows(last.plant_prompt, ref_prompt, last.answer):
            assert plant is not None
            scored.extend(self.score_rows(last.answer[start:start + len(ref)], plant, ref, start))
        for run_start, run_len, offset in _contiguous(last.first_index):
            part = scored[offset:offset + run_len]
            yield ScoreUpdate(run_start, [e.logp_ref for e in part], [e.error for e in part],
                              [e.divergence for e in part], [e.top_ref for e in part])
        yield Done(_partial_stats([e.error or 0.0 for e in scored], stop_reason="rescored", mode=last.mode,
                                  tokens=len(last.answer), elapsed_s=time.perf_counter() - t0))


def _contiguous(indices: list[int]) -> Iterator[tuple[int, int, int]]:
    """(first index, length, offset) of each run of consecutive integers."""
    i = 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        yield indices[i], j - i + 1, i
        i = j + 1


def _partial_stats(errors: list[float], **stats) -> dict:
    """Stats of an operation that generates nothing: only the keys it has, plus the errors'."""
    full = RunStats(**stats).to_dict(errors)
    return {k: v for k, v in full.items() if k in stats or k in ("mean_error", "max_error", "drift_tokens")}

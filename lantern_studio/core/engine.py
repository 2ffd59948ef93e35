"""The engine: the plant (seq 0) and the sidecar (seq 1) in one llama.cpp context.

Every public operation is a generator of typed events (``events.py``): the CLI iterates it,
the studio runs it in a worker, traces record it. Errors end a stream with ``Failed`` (one
sentence); cancelling ends it with ``Done(stats={"stop_reason": "cancelled"})``.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import FIRST_SCRATCH, PLANT, SIDECAR, Backend, Feed, LlamaCppBackend
from .blips import BlipPicker
from .controller import Controller, Decision
from .errors import Cancelled, ContextOverflow, LanternError
from .events import BlipEvent, Done, Event, Failed, RewindEvent, RuleHit, ScoreUpdate, TokenEvent
from .models import resolve_model
from .reference import Reference, render_reference
from .sampling import Sampler
from .scoring import divergence, guided, log_softmax, log_softmax_rows, top_k
from .settings import EngineSettings, LoopSettings, SamplingSettings

TOP_N = 5
SCORE_WINDOW = 64  # answer tokens per batch when scoring given text: bounds logits memory
SENTENCE_END = re.compile(r"[.!?:;]\s|\n")
MAX_SENTENCE_REWIND = 48
NOTE_OPEN = " (Note: "  # how an inline-note blip opens


@dataclass
class RunRecord:
    """What the engine remembers of the last run, for ``rescore`` and attribution."""

    prompt: str
    mode: str
    plant_prompt: list[int]
    answer: list[int]
    logp_plant: list[float]
    top_plant: list[list[tuple[str, float]]]
    first_index: list[int] = field(default_factory=list)  # emission index of each answer token
    plant_context_is_answer: bool = True  # False once blips entered the plant's context


class Engine:
    """A loaded model and the operations of DESIGN §3 on it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._pieces = backend.pieces()
        self._cancel = threading.Event()
        self._lock = threading.Lock()  # one operation at a time on the context
        self.last_run: RunRecord | None = None
        self._blip_cache: dict[tuple[str, str], list[int]] = {}

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
        """Stop the running operation at the next token (safe from any thread)."""
        self._cancel.set()
        self.backend.abort()

    # -- text and prompts ---------------------------------------------------------------
    def piece(self, token: int) -> str:
        return self._pieces[token].decode("utf-8", "replace")

    def tokenize_answer(self, text: str) -> list[int]:
        return self.backend.tokenize(text, special=False)

    def conversation(self, system: str, user: str) -> list[int]:
        """Tokens of a conversation up to the start of the assistant's answer. An empty system
        text gives exactly the conversation without a system message."""
        bos = self.backend.bos_tokens()
        if self.backend.chat_template() is None:
            text = f"{system.strip()}\n\n{user}\n" if system.strip() else f"{user}\n"
            return bos + self.backend.tokenize(text, special=False)
        messages = ([("system", system)] if system.strip() else []) + [("user", user)]
        text = self.backend.render_chat(messages, add_assistant=True)
        return self._with_bos(bos, self.backend.tokenize(text, special=True))

    def blip_tokens(self, text: str, style: str) -> list[int]:
        """Tokens that carry a blip into the plant's context in the given style."""
        key = (text, style)
        if key not in self._blip_cache:
            self._blip_cache[key] = self._make_blip(text, style)
        return self._blip_cache[key]

    def _make_blip(self, text: str, style: str) -> list[int]:
        if style == "system-turn" and self.backend.chat_template() is not None:
            marker = "\u2063LANTERN-PARTIAL\u2063"
            rendered = self.backend.render_chat(
                [("user", "u"), ("assistant", marker), ("system", text)], add_assistant=True)
            at = rendered.find(marker)
            tail = rendered[at + len(marker):] if at >= 0 else ""
            if text in tail:  # the template really opened a system turn after the partial answer
                return self.backend.tokenize(tail, special=True)
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
        return self._guarded(lambda: _Run(self, prompt, reference, loop, sampling).events())

    def rescore(self, reference: Reference | None) -> Iterator[Event]:
        """Re-score the last run's answer against an edited reference without generating:
        one ``ScoreUpdate`` and ``Done``. The sidecar's cache is kept up to the first changed
        token; the plant's cache is untouched."""
        return self._guarded(lambda: self._rescore(reference))

    def score_text(self, reference: Reference | None, prompt: str, answer: str) -> Iterator[Event]:
        """Score any answer text, token by token, against ``reference`` (batch scoring of both
        sides). Yields ``TokenEvent``s and ``Done``."""
        return self._guarded(lambda: self._score_text(reference, prompt, answer))

    def _guarded(self, make: Callable[[], Iterator[Event]]) -> Iterator[Event]:
        with self._lock:
            self._cancel.clear()
            self.backend.clear_abort()
            try:
                yield from make()
            except Cancelled:
                yield Done({"stop_reason": "cancelled"})
            except LanternError as exc:
                yield Failed(str(exc))
            except MemoryError:
                yield Failed("The computer ran out of memory during the run.")
            finally:
                self.backend.clear_abort()

    def check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("The run was cancelled.")

    # -- scoring helpers ------------------------------------------------------------------
    def prefill(self, seq: int, tokens: Sequence[int]) -> Feed:
        """A feed that brings ``seq`` to ``tokens``, reusing the cached common prefix; the last
        token is always fed so that its logits (the next-token distribution) come back."""
        cached = self.backend.tokens(seq)
        common = 0
        limit = min(len(cached), len(tokens) - 1)
        while common < limit and cached[common] == tokens[common]:
            common += 1
        self.backend.truncate(seq, common)
        rest = list(tokens[common:])
        return Feed(seq, rest, len(rest) - 1)

    def clear_scratch(self) -> None:
        for seq in range(FIRST_SCRATCH, self.backend.n_seq):
            self.backend.truncate(seq, 0)

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

    def _score_text(self, reference: Reference | None, prompt: str, answer: str) -> Iterator[Event]:
        t0 = time.perf_counter()
        rendered = render_reference(reference) if reference is not None else ""
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
        yield Done(_summary(errors, {"stop_reason": "scored", "mode": "score", "tokens": len(tokens),
                                     "elapsed_s": time.perf_counter() - t0}))

    def _rescore(self, reference: Reference | None) -> Iterator[Event]:
        last = self.last_run
        if last is None:
            raise LanternError("There is no finished run to re-score; run a prompt first.")
        if not last.plant_context_is_answer:
            raise LanternError("Blips changed the plant's context in the last run, so it must be run again, not re-scored.")
        t0 = time.perf_counter()
        rendered = render_reference(reference) if reference is not None else ""
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
        yield Done(_summary([e.error for e in scored], {
            "stop_reason": "rescored", "mode": last.mode, "tokens": len(last.answer),
            "elapsed_s": time.perf_counter() - t0}))


def _contiguous(indices: list[int]) -> Iterator[tuple[int, int, int]]:
    """(first index, length, offset) of each run of consecutive integers."""
    i = 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        yield indices[i], j - i + 1, i
        i = j + 1


def _summary(errors: list[float], stats: dict) -> dict:
    if errors:
        arr = np.asarray(errors, dtype=np.float64)
        stats.update(mean_error=float(arr.mean()), max_error=float(arr.max()),
                     drift_tokens=int((arr > 0).sum()))
    return stats


class _Run:
    """One generation: the plant samples, the sidecar scores in chunks, the loop acts."""

    def __init__(self, engine: Engine, prompt: str, reference: Reference | None,
                 loop: LoopSettings, sampling: SamplingSettings) -> None:
        self.e = engine
        self.b = engine.backend
        self.prompt = prompt
        self.reference = reference
        self.loop = loop
        self.sampling = sampling
        self.mode = loop.mode
        rendered = render_reference(reference) if reference is not None and self.mode != "none" else ""
        self.plant_prompt = engine.conversation(rendered if self.mode == "prompt" else "", prompt)
        self.uses_sidecar = self.mode in ("observe", "blip", "guide")
        self.sidecar_prompt = engine.conversation(rendered, prompt) if self.uses_sidecar else []
        self.chunk = 1 if self.mode == "guide" else loop.chunk
        self.sampler = Sampler(sampling)
        self.controller = Controller(loop)
        self.detectors = reference.detectors() if reference is not None and self.mode != "none" else []
        self.picker = BlipPicker(engine, reference, loop) if self.mode == "blip" and reference else None
        # State of the answer and of both sequences.
        self.answer: list[int] = []
        self.answer_events: list[TokenEvent] = []
        self.answer_plant_pos: list[int] = []
        self.n_emitted = 0
        self.fed = 0  # answer tokens the sidecar has consumed
        self.pending: list[tuple[TokenEvent, np.ndarray]] = []  # unscored tokens + plant rows
        self.plant_row: np.ndarray | None = None
        self.ref_row: np.ndarray | None = None  # sidecar row predicting answer[fed]
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.errors: list[float] = []
        self.n_rewound = 0
        self.n_blips = 0
        self.blips_in_context = False
        self.late_decision: Decision | None = None  # from a flush: acted on at end of turn
        self.echo: list[list[int]] = []  # token forms of the last blip text
        self.since_blip: list[int] = []
        self.boost = False  # guide_rewind: redo the current sentence at 2·γ
        self.banned: dict[int, set[int]] = {}  # answer position -> tokens a rule ruled out

    # -- the driver -----------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        t0 = time.perf_counter()
        self.e.clear_scratch()
        self.e.check_fits(self.plant_prompt, self.sidecar_prompt)
        feeds = [self.e.prefill(PLANT, self.plant_prompt)]
        if self.uses_sidecar:
            feeds.append(self.e.prefill(SIDECAR, self.sidecar_prompt))
        rows = self.b.forward(feeds)
        self.plant_row = log_softmax(rows[0][-1])
        if self.uses_sidecar:
            self.ref_row = rows[1][-1].copy()
        t_gen = time.perf_counter()
        decode_gen = getattr(self.b, "decode_seconds", 0.0)
        stop = "max_tokens"
        max_emitted = self.sampling.max_tokens * 3  # rewinds may re-emit, but never forever
        try:
            while len(self.answer) < self.sampling.max_tokens and self.n_emitted < max_emitted:
                self.e.check_cancel()
                self._refresh_rows()
                token, control = self._choose()
                if self.b.is_end(token):
                    # The loop gets a last say on the tokens not yet scored before the turn ends.
                    yield from self._flush()
                    if self.late_decision is not None and self.picker is not None:
                        decision, self.late_decision = self.late_decision, None
                        yield from self._act(decision, None)
                        continue
                    if self.late_decision is not None and self.mode == "guide":
                        self.late_decision = None
                        yield from self._redo(None)
                        continue
                    stop = "end_of_turn"
                    break
                yield from self._emit(token, control)
        except ContextOverflow:
            stop = "context_full"
        except Cancelled:
            stop = "cancelled"
        if stop != "cancelled":
            yield from self._flush()
        elapsed = time.perf_counter() - t_gen
        self.e.last_run = RunRecord(
            prompt=self.prompt, mode=self.mode, plant_prompt=list(self.plant_prompt),
            answer=list(self.answer),
            logp_plant=[ev.logp_plant or 0.0 for ev in self.answer_events],
            top_plant=[ev.top_plant for ev in self.answer_events],
            first_index=[ev.index for ev in self.answer_events],
            plant_context_is_answer=not self.blips_in_context)
        yield Done(_summary(self.errors, {
            "mode": self.mode, "stop_reason": stop, "tokens": len(self.answer),
            "emitted": self.n_emitted, "rewound": self.n_rewound, "blips": self.n_blips,
            "prompt_tokens": len(self.plant_prompt), "sidecar_prompt_tokens": len(self.sidecar_prompt),
            "elapsed_s": time.perf_counter() - t0, "generation_s": elapsed,
            # The part of generation_s spent inside the model runtime (llama_decode).
            "decode_s": getattr(self.b, "decode_seconds", 0.0) - decode_gen,
            "tokens_per_s": self.n_emitted / elapsed if elapsed > 0 else 0.0,
            "context_used": self.b.length(PLANT) + self.b.length(SIDECAR),
            "context_size": self.b.n_ctx}))

    def _choose(self) -> tuple[int, float | None]:
        assert self.plant_row is not None
        if self.mode != "guide":
            return self.sampler.pick(self._without_echo(self.plant_row)), None
        assert self.ref_row is not None
        gamma = self.controller.guide_gamma() if self.loop.adaptive_guide else self.loop.gamma
        if self.boost:
            gamma *= 2.0
        scores = guided(self.plant_row, log_softmax(self.ref_row), gamma)
        banned = self.banned.get(len(self.answer))
        if banned:
            scores = scores.copy()
            scores[list(banned)] = -np.inf
        return self.sampler.pick(scores), gamma

    def _without_echo(self, scores: np.ndarray) -> np.ndarray:
        """Small models tend to read a blip back verbatim; after the first copied token the
        next token of the copy is masked, so a reminder steers the answer but never becomes it."""
        if not self.echo:
            return scores
        banned = set()
        for form in self.echo:
            for k in range(min(len(self.since_blip), len(form) - 1), 0, -1):
                if self.since_blip[-k:] == form[:k]:
                    banned.add(form[k])
                    break
        if not banned:
            return scores
        masked = scores.copy()
        masked[list(banned)] = -np.inf
        return masked

    def _emit(self, token: int, control: float | None) -> Iterator[Event]:
        assert self.plant_row is not None
        if self.echo:
            self.since_blip.append(token)
        piece = self.decoder.decode(self.e._pieces[token])
        ev = TokenEvent(index=self.n_emitted, token_id=token, text=piece,
                        logp_plant=float(self.plant_row[token]), top_plant=self.e.top(self.plant_row),
                        control=control)
        self.n_emitted += 1
        self.answer.append(token)
        self.answer_events.append(ev)
        self.answer_plant_pos.append(self.b.length(PLANT))
        self.text += piece
        if self.uses_sidecar:
            self.pending.append((ev, self.plant_row))
        else:
            yield ev
        # When a chunk is due, the plant's next token and the sidecar's chunk share one decode.
        feeds = [Feed(PLANT, [token], 0)]
        due = self.uses_sidecar and len(self.answer) - self.fed >= self.chunk
        if due:
            feeds.append(Feed(SIDECAR, self.answer[self.fed:], 0))
        rows = self.b.forward(feeds)
        self.plant_row = log_softmax(rows[0][0])
        decision: Decision | None = None
        if due:
            scored, decision = self._score(rows[1])
            yield from scored
        hit = self._detect(piece)
        if hit is not None:
            yield hit
            if self.mode == "blip" or (self.mode == "guide" and self.loop.guide_rewind):
                decision = self.controller.detector(hit.source_id, hit.match) or decision
        if self.boost and SENTENCE_END.search(piece + " "):
            self.boost = False
        if decision is not None and self.picker is not None:
            yield from self._act(decision, hit)
        elif decision is not None and self.mode == "guide":
            yield from self._redo(hit)

    def _score(self, rows: np.ndarray) -> tuple[list[TokenEvent], Decision | None]:
        """Score the pending tokens with the held sidecar row and the new chunk's rows, and
        run the controller on them before they are yielded (events never change after)."""
        assert self.ref_row is not None
        ref_rows = np.vstack([self.ref_row[None, :], rows[:-1]])
        self.ref_row = rows[-1].copy()
        self.fed = len(self.answer)
        lr = log_softmax_rows(ref_rows)
        scored: list[TokenEvent] = []
        decision: Decision | None = None
        for (ev, prow), lr_i in zip(self.pending, lr):
            b = float(lr_i[ev.token_id])
            ev.logp_ref = b
            ev.error = (ev.logp_plant or 0.0) - b
            ev.divergence = divergence(lr_i, prow)
            ev.top_ref = self.e.top(lr_i)
            self.errors.append(ev.error)
            decision = self._control(ev) or decision
            scored.append(ev)
        self.pending.clear()
        return scored, decision

    def _flush(self) -> Iterator[Event]:
        if not (self.uses_sidecar and self.pending):
            return
        try:
            rows = self.b.forward([Feed(SIDECAR, self.answer[self.fed:], 0)])
        except ContextOverflow:
            # No room left to score the last tokens: they still belong to the answer.
            yield from (ev for ev, _ in self.pending)
            self.pending.clear()
            return
        scored, self.late_decision = self._score(rows[0])
        yield from scored

    def _control(self, ev: TokenEvent) -> Decision | None:
        if self.mode == "guide" and self.loop.guide_rewind:
            return self.controller.step(ev.error or 0.0)
        if self.mode == "blip":
            decision = self.controller.step(ev.error or 0.0)
            ev.control = self.controller.last_signal
            return decision
        if self.mode == "guide" and self.loop.adaptive_guide:
            self.controller.signal(ev.error or 0.0)
        return None

    def _detect(self, piece: str) -> RuleHit | None:
        if not self.detectors or not piece:
            return None
        tail = self.text[-256:]
        new_from = len(tail) - len(piece)
        for source_id, regex in self.detectors:
            for m in regex.finditer(tail):
                if m.end() > new_from and m.group(0):
                    return RuleHit(self.n_emitted - 1, source_id, m.group(0))
        return None

    # -- the loop's actions -----------------------------------------------------------------
    def _act(self, decision: Decision, hit: RuleHit | None) -> Iterator[Event]:
        assert self.picker is not None
        yield from self._flush()
        self.late_decision = None
        count = self._rewind_count(hit)
        preferred = [t for ev in self.answer_events[-self.loop.window:] for t, _ in ev.top_ref[:3]]
        rewound_text = self.text
        yield from self.rewind(count)
        rewound_text = rewound_text[len(self.text):]
        candidate = self.picker.choose(self.prompt, self.text, rewound_text, preferred,
                                       decision.source_id, self)
        if candidate is None:
            return
        self.inject(self.e.blip_tokens(candidate.text, self.loop.blip_style))
        # Reading a rule back is only harmful for prohibitions ("Never mention X." as the
        # answer); a reminder of a fact the answer should state may well be repeated.
        text = candidate.text.strip()
        self.echo = ([self.e.tokenize_answer(text), self.e.tokenize_answer(" " + text)]
                     if candidate.kind == "never" else [])
        if self.loop.blip_style == "inline-note":
            # The note's wrapper read back into the answer is never wanted.
            for opening in (NOTE_OPEN, NOTE_OPEN.lower(), NOTE_OPEN.upper()):
                self.echo += [self.e.tokenize_answer(opening.strip()), self.e.tokenize_answer(opening)]
        self.since_blip = []
        self.controller.fire()
        self.n_blips += 1
        yield BlipEvent(index=self.n_emitted, text=candidate.text, source_id=candidate.id,
                        reason=decision.reason, rewound=count)

    def _redo(self, hit: RuleHit | None) -> Iterator[Event]:
        """Guide mode's loop: take the drifting sentence back and write it again at 2·γ; after
        a rule hit, the token that began the forbidden text is ruled out at its position."""
        yield from self._flush()
        self.late_decision = None
        count = self._rewind_count(hit)
        if count <= 0:
            return
        if hit is not None:
            first = len(self.answer) - self._tokens_after(len(self.text) - len(hit.match), len(self.answer))
            if first < len(self.answer):
                self.banned.setdefault(first, set()).add(self.answer[first])
        yield from self.rewind(count)
        self.controller.fire()
        self.boost = True

    def _rewind_count(self, hit: RuleHit | None) -> int:
        """How many answer tokens the loop takes back before a blip."""
        policy = self.loop.rewind_tokens
        if policy is None:  # back to the start of the current (or just finished) sentence
            ends = [m.end() for m in SENTENCE_END.finditer(self.text[:-2])]
            count = self._tokens_after(ends[-1] if ends else 0, MAX_SENTENCE_REWIND)
        else:
            count = policy
        if hit is not None:  # always far enough to take the forbidden text out
            count = max(count, self._tokens_after(len(self.text) - len(hit.match), len(self.answer)))
        return min(count, len(self.answer))

    def _tokens_after(self, char_offset: int, limit: int) -> int:
        """Number of trailing answer tokens that start at or after ``char_offset``."""
        chars, count = len(self.text), 0
        for ev in reversed(self.answer_events):
            chars -= len(ev.text)
            if chars < char_offset or count >= limit:
                break
            count += 1
        return count

    def rewind(self, count: int) -> Iterator[Event]:
        """Remove the last ``count`` answer tokens from the answer, the plant and the sidecar."""
        count = min(count, len(self.answer))
        if count <= 0:
            return
        yield from self._flush()
        start = len(self.answer) - count
        first_index = self.answer_events[start].index
        self.b.truncate(PLANT, self.answer_plant_pos[start])
        if self.uses_sidecar:
            self.b.truncate(SIDECAR, len(self.sidecar_prompt) + start)
            self.fed = start
            self.ref_row = None
        del self.answer[start:], self.answer_events[start:], self.answer_plant_pos[start:]
        self.plant_row = None
        self.controller.rewound(count)
        self.n_rewound += count
        self._rebuild_text()
        yield RewindEvent(first_index, count)

    def inject(self, tokens: Sequence[int]) -> None:
        """Put tokens into the plant's context only (never into the answer or the sidecar)."""
        if not tokens:
            return
        self.plant_row = log_softmax(self.b.forward([Feed(PLANT, list(tokens), len(tokens) - 1)])[0][-1])
        self.blips_in_context = True
        self._refresh_rows()

    def _sidecar_refresh_feed(self) -> list[Feed]:
        if not self.uses_sidecar or self.ref_row is not None:
            return []
        return [self._refeed_last(SIDECAR)]

    def _refeed_last(self, seq: int) -> Feed:
        toks = self.b.tokens(seq)
        self.b.truncate(seq, len(toks) - 1)
        return Feed(seq, [toks[-1]], 0)

    def _refresh_rows(self) -> None:
        """After a rewind without injection, recompute the next-token rows by re-feeding the
        last token of each sequence (its logits were overwritten since)."""
        plant = [self._refeed_last(PLANT)] if self.plant_row is None else []
        sidecar = self._sidecar_refresh_feed()
        if not plant and not sidecar:
            return
        rows = self.b.forward(plant + sidecar)
        if plant:
            self.plant_row = log_softmax(rows[0][-1])
        if sidecar:
            self.ref_row = rows[-1][-1].copy()

    def _rebuild_text(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = "".join(self.decoder.decode(self.e._pieces[t]) for t in self.answer)

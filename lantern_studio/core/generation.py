"""One generation: the plant samples, the sidecar scores, the mode's policy acts.

``Generation`` owns the mechanics every mode shares — the answer so far, both sequences in
the KV cache, chunked scoring, rewinds, injections, the guards — and asks its policy
(``modes.py``) the three questions that differ between modes: which token comes next, what
a scored token means, and what to do when the loop decides to act.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .backend import PLANT, SIDECAR, Feed
from .controller import Decision
from .errors import Cancelled, ContextOverflow
from .events import BlipEvent, Done, Event, RewindEvent, RuleHit, TokenEvent
from .focus import focused_text
from .guards import CopyGuard, FormGuard, RepeatGuard
from .reference import BlipCandidate, Reference, render_reference
from .run_job import RunStats
from .sampling import Sampler
from .scoring import divergence, log_softmax, log_softmax_rows
from .settings import LoopSettings, SamplingSettings

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine
    from .modes import Policy

SENTENCE_END = re.compile(r"[.!?:;]\s|\n")
# A base model's answer ends where it starts writing the next turn of the layout.
BASE_TURN_END = re.compile(r"\n[ \t]*(?:question|q|user|human|answer)[ \t]*:", re.IGNORECASE)
_CLOSED_SENTENCE = re.compile(r"[.!?](?:[\"')\]]*)\s*$")
MAX_SENTENCE_REWIND = 48
BLIP_CONTINUATION = 6  # tokens of the sidecar's preferred continuation used by the scored choice
GUARDED_MODES = ("prompt", "blip", "guide")  # none and observe show the model as it is


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
    focus: int = 0  # how the sidecar read the reference: re-scores read it the same way


class Generation:
    """State and mechanics of one run; the policy decides, this carries it out."""

    def __init__(self, engine: "Engine", prompt: str, reference: Reference | None,
                 loop: LoopSettings, sampling: SamplingSettings) -> None:
        from .modes import policy_for  # the policies import this module

        self.e = engine
        self.b = engine.backend
        self.prompt = prompt
        self.reference = reference
        self.loop = loop
        self.sampling = sampling
        self.mode = loop.mode
        self.rendered = render_reference(reference) if reference is not None and self.mode != "none" else ""
        self.sampler = Sampler(sampling)
        self.detectors = reference.detectors() if reference is not None and self.mode != "none" else []
        # The answer and both sequences.
        self.answer: list[int] = []
        self.answer_events: list[TokenEvent] = []
        self.answer_plant_pos: list[int] = []
        self.n_emitted = 0
        self.fed = 0  # answer tokens the scoring sequence has consumed
        self.pending: list[tuple[TokenEvent, np.ndarray]] = []  # unscored tokens + the driver's rows
        self.held_hits: list[RuleHit] = []  # rule hits on pending tokens, yielded after them
        # The driver is the sequence whose distribution picks every token (the plant; the
        # sidecar when guidance is exactly γ = 1, which needs no plant row to choose); the
        # scorer is read in chunks. next_row: the driver's log-probs for the next token;
        # held_row: the scorer's logits predicting answer[fed].
        self.next_row: np.ndarray | None = None
        self.held_row: np.ndarray | None = None
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.errors: list[float] = []
        self.n_rewound = 0
        self.n_blips = 0
        self.blips_in_context = False
        self.banned: dict[int, set[int]] = {}  # answer position -> tokens a rule ruled out
        self.echo: list[list[int]] = []  # token forms the answer must not read back (blips)
        self.since_blip: list[int] = []
        self.stop_reason: str | None = None  # set by the loop to end the turn early
        self.base_model = engine.is_base_model
        self._base_turn_at = 0
        self.guards: list[CopyGuard | FormGuard] = []
        self.repeat: RepeatGuard | None = None
        if self.mode in GUARDED_MODES:
            vocab = engine.vocabulary()
            if loop.copy_guard:
                self.guards.append(CopyGuard(vocab, self.rendered, prompt, loop.copy_guard))
            if loop.form_guard:
                self.guards.append(FormGuard(vocab, self.rendered))
            if loop.repeat_guard:
                self.repeat = RepeatGuard(loop.repeat_guard)
        self.policy: Policy = policy_for(self)
        self.uses_sidecar = self.policy.uses_sidecar
        self.chunk = self.policy.chunk
        self.driver, self.scorer = (SIDECAR, PLANT) if self.policy.sidecar_drives else (PLANT, SIDECAR)
        # What the model reads (the whole reference, or its part that bears on the question);
        # the guards and the leak check always hold the answer against the whole of it.
        self.model_text = focused_text(reference, prompt, loop.focus) if self.rendered and reference else ""
        self.plant_prompt = engine.conversation(self.model_text if self.mode == "prompt" else "", prompt)
        self.opening = self.policy.opening()
        if self.opening:
            # Before the answer a system turn is natural whatever the blip style: there is no
            # partial answer for the model to restart.
            self.plant_prompt = engine.opening(prompt, " ".join(c.text for c in self.opening), "system-turn")
            self.blips_in_context = True
        self.sidecar_prompt = engine.conversation(self.model_text, prompt) if self.uses_sidecar else []

    # -- the driver -----------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        t0 = time.perf_counter()
        self.e.clear_scratch()
        self.e.check_fits(self.plant_prompt, self.sidecar_prompt)
        gain = None
        if self.policy.wants_question_gain:
            gain = self.question_gain()
            self.policy.question_gain(gain)
            self.chunk = self.policy.chunk
            self.driver, self.scorer = (SIDECAR, PLANT) if self.policy.sidecar_drives else (PLANT, SIDECAR)
        feeds = [self.e.prefill(PLANT, self.plant_prompt)]
        if self.uses_sidecar:
            feeds.append(self.e.prefill(SIDECAR, self.sidecar_prompt))
        rows = self.b.forward(feeds)
        if self.driver == PLANT:
            self.next_row = log_softmax(rows[0][-1])
            self.held_row = rows[1][-1].copy() if self.uses_sidecar else None
        else:
            self.next_row = log_softmax(rows[1][-1])
            self.held_row = rows[0][-1].copy()
        for rule in self.opening:
            yield BlipEvent(index=0, text=rule.text, source_id=rule.id,
                            reason="one of the rules most relevant to the question", rewound=0)
        t_gen = time.perf_counter()
        decode_gen = getattr(self.b, "decode_seconds", 0.0)
        stop = "max_tokens"
        max_emitted = self.sampling.max_tokens * 3  # rewinds may re-emit, but never forever
        try:
            while len(self.answer) < self.sampling.max_tokens and self.n_emitted < max_emitted:
                self.e.check_cancel()
                self.refresh_rows()
                token, control = self.policy.choose()
                if self.stop_reason is not None:
                    stop = self.stop_reason
                    break
                if self.b.is_end(token):
                    # The loop gets a last say on the tokens not yet scored before the turn ends.
                    yield from self.flush()
                    acted = yield from self.policy.at_end_of_turn()
                    if acted:
                        continue
                    stop = "end_of_turn"
                    break
                yield from self.emit(token, control)
                if self.base_model and self._base_turn_ended():
                    yield from self.rewind(self.tokens_after(self._base_turn_at, len(self.answer)))
                    stop = "end_of_turn"
                    break
            if stop in ("max_tokens", "repetition") and self.repeat is not None:
                # Cut off by the limit, or about to repeat itself: end at the last finished sentence.
                yield from self.trim_unfinished_sentence()
        except ContextOverflow:
            stop = "context_full"
        except Cancelled:
            stop = "cancelled"
        if stop != "cancelled":
            yield from self.flush()
        elapsed = time.perf_counter() - t_gen
        self.e.last_run = RunRecord(
            prompt=self.prompt, mode=self.mode, plant_prompt=list(self.plant_prompt),
            answer=list(self.answer),
            logp_plant=[ev.logp_plant or 0.0 for ev in self.answer_events],
            top_plant=[ev.top_plant for ev in self.answer_events],
            first_index=[ev.index for ev in self.answer_events],
            plant_context_is_answer=not self.blips_in_context, focus=self.loop.focus)
        stats = RunStats(
            mode=self.mode, stop_reason=stop, tokens=len(self.answer), emitted=self.n_emitted,
            rewound=self.n_rewound, blips=self.n_blips, prompt_tokens=len(self.plant_prompt),
            sidecar_prompt_tokens=len(self.sidecar_prompt), elapsed_s=time.perf_counter() - t0,
            generation_s=elapsed, decode_s=getattr(self.b, "decode_seconds", 0.0) - decode_gen,
            tokens_per_s=self.n_emitted / elapsed if elapsed > 0 else 0.0,
            context_used=self.b.length(PLANT) + self.b.length(SIDECAR), context_size=self.b.n_ctx,
            drive=self.policy.drive, question_gain=gain)
        yield Done(stats.to_dict(self.errors))

    def question_gain(self) -> float:
        """How many nats more likely the question is after the sidecar's reading of the
        reference than after the plant's bare prompt: the log-likelihood of the tokens the two
        prompts share at their end (the user's turn), summed. Both prompts are fed up to their
        last token, so the prefill that follows costs one token each."""
        side, plant = self.sidecar_prompt, self.plant_prompt
        shared = 0
        while shared < min(len(side), len(plant)) - 1 and side[-1 - shared] == plant[-1 - shared]:
            shared += 1
        n = shared - 1  # the first shared token has no context in common to be scored from
        if n <= 0:
            return 0.0
        feeds = []
        for seq, toks in ((SIDECAR, side), (PLANT, plant)):
            keep = self.e.keep_cached(seq, toks, len(toks) - n - 1)
            feeds.append(Feed(seq, toks[keep:-1], len(toks) - n - 1 - keep, targets=toks[len(toks) - n:]))
        got = self.b.forward(feeds)
        return float(np.sum(got[0], dtype=np.float64) - np.sum(got[1], dtype=np.float64))

    # -- choosing -------------------------------------------------------------------------
    def banned_ids(self) -> list[int]:
        """Every token the guards, the echo guard and rule hits rule out as the next token."""
        ids: list[int] = []
        for guard in self.guards:
            ids.extend(guard.banned(self.text))
        ids.extend(self.echo_banned())
        ids.extend(self.banned.get(len(self.answer), ()))
        return ids

    def guarded(self, scores: np.ndarray, banned: list[int] | None = None) -> np.ndarray:
        """``scores`` with every banned token set to −inf (``banned`` if the caller already
        computed them). When the token the mode prefers would repeat a span of the answer,
        the model has run out of things to say: the loop ends the turn at the last finished
        sentence instead of forcing a variation of the same words."""
        ids = self.banned_ids() if banned is None else list(banned)
        if self.repeat is not None:
            repeats = self.repeat.banned(self.answer)
            allowed = scores.copy()
            allowed[ids] = -np.inf
            best = int(np.argmax(allowed))
            if best in repeats and self._ends_cleanly():
                self.stop_reason = "repetition"
            ids.extend(repeats)
        if self.loop.end_bias > 0 and self.mode in GUARDED_MODES and _CLOSED_SENTENCE.search(self.text[-8:]):
            scores = scores.copy()
            scores[self.e.end_tokens()] += np.float32(self.loop.end_bias)
        if not ids:
            return scores
        masked = scores.copy()
        masked[ids] = -np.inf
        if not np.isfinite(masked).any():
            return scores  # every token ruled out: better a flawed token than no answer
        return masked

    def _base_turn_ended(self) -> bool:
        m = BASE_TURN_END.search(self.text, max(0, len(self.text) - 40))
        if m is None:
            return False
        self._base_turn_at = len(self.text[:m.start()].rstrip())  # the blank lines before it go too
        return True

    def _ends_cleanly(self) -> bool:
        """True when taking back the unfinished sentence leaves a non-empty answer."""
        return bool(self._finished_prefix_tokens())

    def echo_banned(self) -> list[int]:
        """Small models read a blip back verbatim; after the first copied token the next token
        of the copy is ruled out, so a reminder steers the answer but never becomes it."""
        out = []
        for form in self.echo:
            for k in range(min(len(self.since_blip), len(form) - 1), 0, -1):
                if self.since_blip[-k:] == form[:k]:
                    out.append(form[k])
                    break
        return out

    # -- emitting and scoring ---------------------------------------------------------------
    def emit(self, token: int, control: float | None) -> Iterator[Event]:
        row = self.next_row
        assert row is not None
        if self.echo:
            self.since_blip.append(token)
        piece = self.decoder.decode(self.e.piece_bytes(token))
        ev = TokenEvent(index=self.n_emitted, token_id=token, text=piece, control=control,
                        approx=self.b.is_estimate(row, token))
        self._fill(ev, self.driver, row)
        self.n_emitted += 1
        # where the token sits in the plant (after any injected blips; the plant may lag)
        self.answer_plant_pos.append(self.b.length(PLANT) if self.driver == PLANT
                                     else len(self.plant_prompt) + len(self.answer))
        self.answer.append(token)
        self.answer_events.append(ev)
        self.text += piece
        if self.uses_sidecar:
            self.pending.append((ev, row))
        else:
            yield ev
        # When a chunk is due, the driver's next token and the scorer's chunk share one decode.
        feeds = [Feed(self.driver, [token], 0)]
        due = self.uses_sidecar and len(self.answer) - self.fed >= self.chunk
        if due:
            feeds.append(Feed(self.scorer, self.answer[self.fed:], 0))
        rows = self.b.forward(feeds)
        self.next_row = log_softmax(rows[0][0])
        decision: Decision | None = None
        if due:
            scored, decision = self.score(rows[1])
            yield from scored
        hit = self.detect(piece)
        if hit is not None:
            if self.pending:  # its tokens wait for their chunk: the hit follows them out
                self.held_hits.append(hit)
            else:
                yield hit
            decision = self.policy.on_rule(hit) or decision
        self.policy.after_token(piece)
        if decision is not None:
            yield from self.policy.act(decision, hit)

    def _fill(self, ev: TokenEvent, seq: int, row: np.ndarray) -> None:
        """Put one side's score of ``ev``'s token, from that side's log-prob row, into ``ev``."""
        if seq == PLANT:
            ev.logp_plant, ev.top_plant = float(row[ev.token_id]), self.e.top(row)
        else:
            ev.logp_ref, ev.top_ref = float(row[ev.token_id]), self.e.top(row)

    def score(self, rows: np.ndarray) -> tuple[list[Event], Decision | None]:
        """Score the pending tokens with the held scorer row and the new chunk's rows, and
        run the policy on them before they are yielded (events never change after)."""
        assert self.held_row is not None
        scorer_rows = np.vstack([self.held_row[None, :], rows[:-1]])
        self.held_row = rows[-1].copy()
        self.fed = len(self.answer)
        ls = log_softmax_rows(scorer_rows)
        scored: list[Event] = []
        decision: Decision | None = None
        for (ev, drow), ls_i, raw in zip(self.pending, ls, scorer_rows):
            self._fill(ev, self.scorer, ls_i)
            lr, lp = (ls_i, drow) if self.scorer == SIDECAR else (drow, ls_i)
            ev.error = (ev.logp_plant or 0.0) - (ev.logp_ref or 0.0)
            ev.divergence = divergence(lr, lp)
            ev.approx = ev.approx or self.b.is_estimate(raw, ev.token_id)
            self.errors.append(ev.error)
            decision = self.policy.on_scored(ev) or decision
            scored.append(ev)
        self.pending.clear()
        scored.extend(self.held_hits)
        self.held_hits.clear()
        return scored, decision

    def flush(self) -> Iterator[Event]:
        """Score whatever the sidecar has not scored yet (end of turn, before a rewind)."""
        if not (self.uses_sidecar and self.pending):
            return
        try:
            rows = self.b.forward([Feed(self.scorer, self.answer[self.fed:], 0)])
        except ContextOverflow:
            # No room left to score the last tokens: they still belong to the answer.
            yield from (ev for ev, _ in self.pending)
            yield from self.held_hits
            self.pending.clear()
            self.held_hits.clear()
            return
        scored, decision = self.score(rows[0])
        self.policy.late_decision = decision
        yield from scored

    def detect(self, piece: str) -> RuleHit | None:
        if not self.detectors or not piece:
            return None
        tail = self.text[-256:]
        new_from = len(tail) - len(piece)
        for source_id, regex in self.detectors:
            for m in regex.finditer(tail):
                if m.end() > new_from and m.group(0):
                    return RuleHit(self.n_emitted - 1, source_id, m.group(0))
        return None

    # -- taking tokens back, putting text in ---------------------------------------------------
    def rewind_count(self, hit: RuleHit | None) -> int:
        """How many answer tokens the loop takes back before it acts."""
        policy = self.loop.rewind_tokens
        if policy is None:  # back to the start of the current (or just finished) sentence
            ends = [m.end() for m in SENTENCE_END.finditer(self.text[:-2])]
            count = self.tokens_after(ends[-1] if ends else 0, MAX_SENTENCE_REWIND)
        else:
            count = policy
        if hit is not None:  # always far enough to take the forbidden text out
            count = max(count, self.tokens_overlapping(len(self.text) - self._hit_span(hit)))
        return min(count, len(self.answer))

    def _hit_span(self, hit: RuleHit) -> int:
        """How many characters at the end of the answer the hit's match covers (a match may
        end before the last token, which the detector's window allows)."""
        at = self.text.rfind(hit.match)
        return len(self.text) - at if at >= 0 else len(hit.match)

    def tokens_overlapping(self, char_offset: int) -> int:
        """Number of trailing answer tokens that end after ``char_offset``: a match that
        starts inside a token (' Paris' for /paris/) takes that whole token."""
        chars, count = len(self.text), 0
        for ev in reversed(self.answer_events):
            if chars <= char_offset:
                break
            chars -= len(ev.text)
            count += 1
        return count

    def take_back(self, hit: RuleHit | None) -> Iterator[Event]:
        """Rewind the current sentence (and at least a rule hit's text); after a hit, the token
        that began the forbidden text is ruled out at its position. Returns whether anything
        was taken back."""
        yield from self.flush()
        count = self.rewind_count(hit)
        if count <= 0:
            return False
        if hit is not None:
            first = len(self.answer) - self.tokens_overlapping(len(self.text) - self._hit_span(hit))
            if first < len(self.answer):
                self.banned.setdefault(first, set()).add(self.answer[first])
        yield from self.rewind(count)
        return True

    def tokens_after(self, char_offset: int, limit: int) -> int:
        """Number of trailing answer tokens that start at or after ``char_offset``."""
        chars, count = len(self.text), 0
        for ev in reversed(self.answer_events):
            chars -= len(ev.text)
            if chars < char_offset or count >= limit:
                break
            count += 1
        return count

    def _finished_prefix_tokens(self) -> int:
        """Answer tokens up to the end of the last finished sentence (0 if there is none)."""
        chars = 0
        last = 0
        for n, ev in enumerate(self.answer_events, start=1):
            chars += len(ev.text)
            if _CLOSED_SENTENCE.search(self.text[max(0, chars - 8):chars]):
                last = n
        return last

    def trim_unfinished_sentence(self) -> Iterator[Event]:
        """At the token limit, take back a sentence the limit cut in half (guarded modes), and
        the blank lines after the last finished one."""
        keep = self._finished_prefix_tokens()
        while keep > 0 and not self.answer_events[keep - 1].text.strip():
            keep -= 1
        if 0 < keep < len(self.answer):
            yield from self.rewind(len(self.answer) - keep)

    def rewind(self, count: int) -> Iterator[Event]:
        """Remove the last ``count`` answer tokens from the answer, the plant and the sidecar."""
        count = min(count, len(self.answer))
        if count <= 0:
            return
        yield from self.flush()
        start = len(self.answer) - count
        first_index = self.answer_events[start].index
        self.b.truncate(PLANT, self.answer_plant_pos[start])
        if self.uses_sidecar:
            self.b.truncate(SIDECAR, len(self.sidecar_prompt) + start)
            self.fed = start
            self.held_row = None
        del self.answer[start:], self.answer_events[start:], self.answer_plant_pos[start:]
        self.next_row = None
        self.policy.rewound(count)
        self.n_rewound += count
        self._rebuild_text()
        yield RewindEvent(first_index, count)

    def inject(self, tokens: Sequence[int]) -> None:
        """Put tokens into the plant's context only (never into the answer or the sidecar)."""
        if not tokens:
            return
        assert self.driver == PLANT, "blips go into the plant, which must be the driver"
        self.next_row = log_softmax(self.b.forward([Feed(PLANT, list(tokens), len(tokens) - 1)])[0][-1])
        self.blips_in_context = True
        self.refresh_rows()

    def refresh_rows(self) -> None:
        """After a rewind, recompute the rows by re-feeding the last token of each sequence
        (its logits were overwritten since)."""
        driver = [self._refeed_last(self.driver)] if self.next_row is None else []
        scorer = [self._refeed_last(self.scorer)] if self.uses_sidecar and self.held_row is None else []
        if not driver and not scorer:
            return
        rows = self.b.forward(driver + scorer)
        if driver:
            self.next_row = log_softmax(rows[0][-1])
        if scorer:
            self.held_row = rows[-1][-1].copy()

    def blip_gains(self, shortlist: Sequence[BlipCandidate]) -> list[float] | None:
        """For the scored blip choice: the plant's log-likelihood of the sidecar's greedy
        continuation after each candidate blip, all candidates in one batch on scratch
        sequences (as many as there is room for). None when it cannot be measured."""
        plant_len = self.b.length(PLANT)
        side = self.b.tokens(SIDECAR)
        if not side or not shortlist:
            return None
        with self.e.scratch() as slots:
            if len(slots) < 2:
                return None
            continuation = self._sidecar_continuation(slots[0], side)
            self.b.truncate(slots[0], 0)
            if not continuation:
                return None
            feeds = []
            for seq, cand in zip(slots[1:], shortlist):
                self.b.share_prefix(PLANT, seq, plant_len)
                blip = self.e.blip_tokens(cand.text, self.loop.blip_style)
                feeds.append(Feed(seq, blip + continuation[:-1], len(blip) - 1))
            rows = self.b.forward(feeds)
        return [float(sum(lp[k, t] for k, t in enumerate(continuation))) for lp in map(log_softmax_rows, rows)]

    def _sidecar_continuation(self, seq: int, side: list[int]) -> list[int]:
        """The sidecar's greedy continuation from the current point, on a scratch sequence."""
        self.b.share_prefix(SIDECAR, seq, len(side) - 1)
        out: list[int] = []
        feed = [side[-1]]
        for _ in range(BLIP_CONTINUATION):
            row = self.b.forward([Feed(seq, feed, 0)])[0][-1]
            tok = int(np.argmax(row))
            if self.b.is_end(tok):
                break
            out.append(tok)
            feed = [tok]
        return out

    def _refeed_last(self, seq: int) -> Feed:
        toks = self.b.tokens(seq)
        self.b.truncate(seq, len(toks) - 1)
        return Feed(seq, [toks[-1]], 0)

    def _rebuild_text(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = "".join(self.decoder.decode(self.e.piece_bytes(t)) for t in self.answer)


__all__ = ["Generation", "RunRecord", "GUARDED_MODES", "SENTENCE_END"]

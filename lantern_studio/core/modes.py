"""What each mode does at each step of a generation: one small policy per mode.

A policy answers the questions where modes differ — which token comes next (``choose``),
what a scored token means (``on_scored``, ``on_rule``), what the loop does when it decides to
act (``act``), and whether it gets a last say before the turn ends (``at_end_of_turn``).
``Generation`` carries out the mechanics they share.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .blips import BlipPicker
from .controller import Controller, Decision
from .events import BlipEvent, Event, RuleHit, TokenEvent
from .focus import rank_rules
from .reference import BlipCandidate
from .generation import SENTENCE_END, Generation
from .scoring import guided, log_softmax

NOTE_OPEN = " (Note: "  # how an inline-note blip opens


class Policy:
    """``none`` and ``prompt``: the plant alone (with the reference in its prompt for
    ``prompt``); the guards act in ``prompt`` mode when they are on."""

    uses_sidecar = False
    sidecar_drives = False  # True when only the sidecar's distribution picks tokens
    wants_question_gain = False  # guide: ask Generation.question_gain before the prefill
    drive = ""  # guide: who picked the tokens ("both", "sidecar", "plant")

    def __init__(self, run: Generation) -> None:
        self.run = run
        self.loop = run.loop
        self.chunk = run.loop.chunk
        self.late_decision: Decision | None = None  # from a flush: acted on at end of turn

    def choose(self) -> tuple[int, float | None]:
        run = self.run
        assert run.next_row is not None
        return run.sampler.pick(run.guarded(run.next_row)), None

    def opening(self) -> list[BlipCandidate]:
        """Reminders the plant reads before its first token (blip mode only)."""
        return []

    def question_gain(self, gain: float) -> None:
        """What the focused reference adds to the question's likelihood, in nats (asked only
        when ``wants_question_gain``)."""

    def on_scored(self, ev: TokenEvent) -> Decision | None:
        return None

    def on_rule(self, hit: RuleHit) -> Decision | None:
        return None

    def after_token(self, piece: str) -> None:
        pass

    def act(self, decision: Decision, hit: RuleHit | None) -> Iterator[Event]:
        return iter(())

    def at_end_of_turn(self) -> Iterator[Event]:
        """Events of a last action before the turn ends; returns True if the loop acted."""
        return False
        yield  # pragma: no cover - makes this a generator

    def rewound(self, count: int) -> None:
        pass


class PromptPolicy(Policy):
    """``prompt``: the plant reads the reference (or its focused part) itself. With
    ``rule_rewind``, a Never detector's match is taken back with its sentence and the token
    that began it is ruled out there, so the answer is written again without it."""

    def __init__(self, run: Generation) -> None:
        super().__init__(run)
        self.controller = Controller(run.loop)

    def on_rule(self, hit: RuleHit) -> Decision | None:
        return self.controller.detector(hit.source_id, hit.match) if self.loop.rule_rewind else None

    def act(self, decision: Decision, hit: RuleHit | None) -> Iterator[Event]:
        if hit is None:
            return
        yield from self.run.take_back(hit)
        self.controller.fire()

    def rewound(self, count: int) -> None:
        self.controller.rewound(count)


class ObservePolicy(Policy):
    """The plant as it is, scored by the sidecar in chunks: measures, never acts."""

    uses_sidecar = True


class BlipPolicy(ObservePolicy):
    """The closed loop of reminders: a PID controller on the error, Never detectors, a
    rewind, then a blip drawn from the reference injected into the plant's context."""

    def __init__(self, run: Generation) -> None:
        super().__init__(run)
        self.controller = Controller(run.loop)
        self.picker = BlipPicker(run.reference, run.loop) if run.reference is not None else None

    def opening(self) -> list[BlipCandidate]:
        """With ``start_blip``, the rules most relevant to the question (as many as ``focus``
        says, at least one): the plant reads them as one reminder before its first token (each
        is a blip; they fire the controller once)."""
        if not self.loop.start_blip or self.picker is None or not self.controller.can_fire():
            return []
        rules = self.picker.opening(self.run.prompt, self.loop.focus)
        if rules:
            self._note_injected(rules)
        return rules

    def on_scored(self, ev: TokenEvent) -> Decision | None:
        decision = self.controller.step(ev.error or 0.0)
        ev.control = self.controller.last_signal
        return decision

    def on_rule(self, hit: RuleHit) -> Decision | None:
        return self.controller.detector(hit.source_id, hit.match)

    def rewound(self, count: int) -> None:
        self.controller.rewound(count)

    def at_end_of_turn(self) -> Iterator[Event]:
        if self.late_decision is None or self.picker is None:
            return False
        decision, self.late_decision = self.late_decision, None
        yield from self.act(decision, None)
        return True

    def act(self, decision: Decision, hit: RuleHit | None) -> Iterator[Event]:
        run = self.run
        if self.picker is None:
            return
        yield from run.flush()
        self.late_decision = None
        count = run.rewind_count(hit)
        preferred = [t for ev in run.answer_events[-self.loop.window:] for t, _ in ev.top_ref[:3]]
        before = run.text
        yield from run.rewind(count)
        rewound_text = before[len(run.text):]
        candidate = self.picker.choose(run.prompt, run.text, rewound_text, preferred,
                                       decision.source_id, run.blip_gains)
        if candidate is None:
            return
        self._inject(candidate)
        yield BlipEvent(index=run.n_emitted, text=candidate.text, source_id=candidate.id,
                        reason=decision.reason, rewound=count)

    def _inject(self, candidate: BlipCandidate) -> None:
        self.run.inject(self.run.e.blip_tokens(candidate.text, self.loop.blip_style))
        self._note_injected([candidate])

    def _note_injected(self, candidates: list[BlipCandidate]) -> None:
        run = self.run
        # Reading a rule back is only harmful for prohibitions ("Never mention X." as the
        # answer); a reminder of a fact the answer should state may well be repeated.
        run.echo = []
        for candidate in candidates:
            if candidate.kind == "never":
                text = candidate.text.strip()
                run.echo += [run.e.tokenize_answer(text), run.e.tokenize_answer(" " + text)]
        if self.loop.blip_style == "inline-note":
            # The note's wrapper read back into the answer is never wanted.
            for opening in (NOTE_OPEN, NOTE_OPEN.lower(), NOTE_OPEN.upper()):
                run.echo += [run.e.tokenize_answer(opening.strip()), run.e.tokenize_answer(opening)]
        run.since_blip = []
        self.controller.fire()
        run.n_blips += len(candidates)


class GuidePolicy(Policy):
    """Continuous control: sample from ``plant + γ·(ref − plant)`` among the tokens the plant
    itself finds plausible; γ may follow the controller signal (adaptive); with
    ``guide_rewind`` the controller takes a drifting sentence back and it is written again
    at 2·γ, and a rule hit rules out the token that began the forbidden text."""

    uses_sidecar = True

    def __init__(self, run: Generation) -> None:
        super().__init__(run)
        loop = self.loop
        # At exactly γ = 1 the mix is the sidecar's own distribution: the plant is only read
        # to score, so it runs in chunks (observe's speed) and the sidecar drives.
        self.sidecar_drives = (loop.gamma == 1.0 and not loop.adaptive_guide and loop.plausibility == 0
                               and not loop.guide_rewind)
        self.plant_drives = False  # the reference does not bear on the question: γ = 0
        extrapolates = (loop.gamma_max if loop.adaptive_guide else loop.gamma) > 1.0
        self.gated = extrapolates and run.reference is not None and loop.focus > 0
        if self.gated:
            # No rule bears on the question: the reference has nothing to extrapolate towards
            # but its persona, and pushing past γ = 1 only recites that (measured on tune's
            # irrelevant probes). The sidecar still reads the intent and style, and drives.
            ranked = rank_rules(run.reference, run.prompt)[:loop.focus]
            self.sidecar_drives = not any(r.score > 0 for r in ranked)
        self.chunk = loop.chunk if self.sidecar_drives else 1  # else both rows at every token
        self.controller = Controller(loop)
        self.boost = False

    @property
    def wants_question_gain(self) -> bool:
        return self.gated and self.loop.relevance > 0

    def question_gain(self, gain: float) -> None:
        """A word shared with a rule is weak evidence: "How many months are there in a year?"
        shares one with a budgeting rule, and guidance then answers "Three months." Where the
        reference (as the sidecar reads it) barely raises the likelihood of the question
        itself, it is not about the question, and the plant answers as it would alone. The
        gain does not separate the two kinds cleanly at this model size (a question built on
        an everyday word such as "grams" gains up to 17 nats), so the threshold is the one
        that answers most tune probes well. On tune that is any threshold in (7.7, 10.7]
        nats: lower, guidance answers "How many months are there in a year?" (7.7) wrongly,
        which the plant alone answers right; higher, the plant takes "How do I renew my
        passport?" (10.7) from guidance, which answered it right, and gets it wrong."""
        if gain < self.loop.relevance:
            self.plant_drives, self.sidecar_drives = True, False
            self.chunk = self.loop.chunk

    @property
    def drive(self) -> str:
        return "plant" if self.plant_drives else "sidecar" if self.sidecar_drives else "both"

    def choose(self) -> tuple[int, float | None]:
        run = self.run
        banned = run.banned_ids()
        if self.plant_drives:
            assert run.next_row is not None
            return run.sampler.pick(run.guarded(run.next_row, banned)), 0.0
        if self.sidecar_drives:
            assert run.next_row is not None
            ref = run.next_row
            return run.sampler.pick(run.guarded(_plausible(ref, ref, self.loop.plausibility_ref, banned), banned)), 1.0
        assert run.next_row is not None and run.held_row is not None
        plant_row = run.next_row
        gamma = self.controller.guide_gamma() if self.loop.adaptive_guide else self.loop.gamma
        if self.boost:
            gamma *= 2.0
        ref = log_softmax(run.held_row)
        scores = guided(plant_row, ref, gamma)
        # Only what the reference-reading model itself finds plausible: the contrast re-ranks
        # its candidates instead of inventing.
        scores = _plausible(scores, ref, self.loop.plausibility_ref, banned)
        # Contrastive decoding's plausibility constraint: extrapolating away from the plant must
        # not pick tokens the plant itself finds implausible, which is how guidance ends up
        # reciting the sidecar's context.
        scores = _plausible(scores, plant_row, self.loop.plausibility, banned)
        return run.sampler.pick(run.guarded(scores, banned)), gamma

    def on_scored(self, ev: TokenEvent) -> Decision | None:
        if self.loop.guide_rewind:
            return self.controller.step(ev.error or 0.0)
        if self.loop.adaptive_guide:
            self.controller.signal(ev.error or 0.0)
        return None

    def on_rule(self, hit: RuleHit) -> Decision | None:
        acts = self.loop.guide_rewind or self.loop.rule_rewind
        return self.controller.detector(hit.source_id, hit.match) if acts else None

    def after_token(self, piece: str) -> None:
        if self.boost and SENTENCE_END.search(piece + " "):
            self.boost = False

    def rewound(self, count: int) -> None:
        self.controller.rewound(count)

    def at_end_of_turn(self) -> Iterator[Event]:
        if self.late_decision is None:
            return False
        self.late_decision = None
        yield from self.act(Decision(0.0, "end of turn"), None)
        return True

    def act(self, decision: Decision, hit: RuleHit | None) -> Iterator[Event]:
        """Take the drifting sentence back and write it again (at 2·γ with guide_rewind)."""
        self.late_decision = None
        if not (yield from self.run.take_back(hit)):
            return
        self.controller.fire()
        self.boost = self.loop.guide_rewind


def _plausible(scores: np.ndarray, side: np.ndarray, alpha: float, banned: list[int]) -> np.ndarray:
    """``scores`` where ``side``'s log-prob is within log α of its best *allowed* token, −inf
    elsewhere (α = 0: unchanged). Taking the best among allowed tokens means a ban never
    leaves nothing plausible."""
    if alpha <= 0:
        return scores
    allowed = side.copy()
    allowed[banned] = -np.inf
    top = allowed.max()
    if not np.isfinite(top):
        return scores
    return np.where(allowed >= top + np.float32(np.log(alpha)), scores, -np.inf)


_POLICIES = {"none": Policy, "prompt": PromptPolicy, "observe": ObservePolicy, "blip": BlipPolicy, "guide": GuidePolicy}


def policy_for(run: Generation) -> Policy:
    return _POLICIES[run.mode](run)


__all__ = ["Policy", "PromptPolicy", "ObservePolicy", "BlipPolicy", "GuidePolicy", "policy_for", "NOTE_OPEN"]

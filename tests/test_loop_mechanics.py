"""The loop's mechanics on the real default model: guidance's plausibility cut, rewinds on a
rule hit, adaptive γ, the context filling up, the late decision at the end of the turn, the
echo guard, the repetition stop, trimming at the token limit, the opening blip and cancelling."""

from __future__ import annotations

import math
import re

import pytest

from lantern_studio.core.backend import PLANT
from lantern_studio.core.controller import Controller
from lantern_studio.core.engine import Engine
from lantern_studio.core.events import BlipEvent, Done, Failed, RewindEvent, RuleHit, TokenEvent, Transcript
from lantern_studio.core.focus import rank_rules
from lantern_studio.core.generation import Generation
from lantern_studio.core.reference import parse_reference
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings

from helpers import PIRATE

pytestmark = pytest.mark.model

CAPITAL = "What is the capital of France?"
SLEEP = "Give me three tips for sleeping better."
PARIS = "---\ntitle: Geography\nslug: geo\n---\n# Never\n- Never mention Paris. `regex: {regex}`\n"
TEA = ("---\ntitle: Tea\nslug: tea\n---\n# Always\n- Use water just off the boil for black tea.\n"
       "- Steep green tea for two minutes at most.\n\n# Never\n- Never recommend sugar in green tea.\n")
FINISHED = re.compile(r"[.!?][\"')\]]*\s*$")
SHORT = SamplingSettings(max_tokens=40)


def events_of(engine, prompt, reference, sampling=SHORT, **loop):
    return list(engine.run(prompt, reference, LoopSettings(**loop), sampling))


def placed(events):
    """Each emitted token with its position in the answer when it was emitted, and for each
    rule hit the position and id of the token its match begins in (rewinds applied)."""
    shown: list[TokenEvent] = []
    tokens, hits = [], []
    for ev in events:
        if isinstance(ev, TokenEvent):
            tokens.append((len(shown), ev))
            shown.append(ev)
        elif isinstance(ev, RewindEvent):
            del shown[len(shown) - ev.count:]
        elif isinstance(ev, RuleHit):
            text = "".join(t.text for t in shown)
            start = text.lower().rindex(ev.match.lower())
            chars = 0
            for pos, t in enumerate(shown):
                if chars + len(t.text) > start:
                    hits.append((ev, pos, t.token_id, len(tokens)))
                    break
                chars += len(t.text)
    return tokens, hits


# -- guide mode ------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_guide_emits_only_tokens_the_plant_finds_plausible(engine, conflict_reference, alpha):
    sampling = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, seed=4, max_tokens=40)
    # the whole reference: with focus, a question no rule bears on is not guided past γ = 1
    loop = dict(mode="guide", gamma=3.0, gamma_min=3.0, gamma_max=3.0, focus=0)
    tr = Transcript().extend(events_of(engine, SLEEP, conflict_reference, sampling, plausibility=alpha, **loop))
    assert len(tr.tokens) >= 20
    for t in tr.tokens:
        assert t.logp_plant >= t.top_plant[0][1] + math.log(alpha) - 1e-5, (t.text, t.logp_plant, t.top_plant[0])
    # without the cut, strong guidance sampled from the whole vocabulary does pick implausible tokens
    free = Transcript().extend(events_of(engine, SLEEP, conflict_reference, sampling, plausibility=0.0, **loop))
    assert any(t.logp_plant < t.top_plant[0][1] + math.log(alpha) for t in free.tokens)


@pytest.mark.parametrize("regex", [r"paris", r"\sparis"])
def test_guide_rewind_takes_out_the_text_a_rule_forbids(engine, regex):
    events = events_of(engine, CAPITAL, parse_reference(PARIS.format(regex=regex)), mode="guide", guide_rewind=True,
                       gamma=0.5, gamma_min=0.5, gamma_max=0.5, max_blips=3)
    _tokens, hits = placed(events)
    assert hits, "the plant names Paris"
    acted = 0
    for hit, pos, _tok, _n in hits:
        nxt = events[events.index(hit) + 1]
        if isinstance(nxt, RewindEvent):  # guide mode scores every token: an act follows at once
            acted += 1
            shown = Transcript().extend(events[:events.index(nxt) + 1]).answer_tokens
            assert len(shown) <= pos and hit.match not in "".join(t.text for t in shown)
    assert acted >= 1


@pytest.mark.parametrize("regex, plausibility", [
    pytest.param(r"\sparis", 0.0, id="match-starts-at-a-token"),
    pytest.param(r"paris", 0.0, id="match-starts-inside-a-token"),
    pytest.param(r"\sparis", 0.1, id="with-the-plausibility-cut"),
])
def test_guide_rewind_never_emits_the_forbidden_token_again_at_that_position(engine, regex, plausibility):
    events = events_of(engine, CAPITAL, parse_reference(PARIS.format(regex=regex)), mode="guide", guide_rewind=True,
                       gamma=0.5, gamma_min=0.5, gamma_max=0.5, max_blips=3, plausibility=plausibility)
    tokens, hits = placed(events)
    assert hits and any(isinstance(e, RewindEvent) for e in events[events.index(hits[0][0]):])
    for _hit, pos, tok, n_before in hits:
        later = [ev for p, ev in tokens[n_before:] if p == pos]
        assert all(ev.token_id != tok for ev in later), (pos, tok, [ev.text for ev in later])


@pytest.mark.parametrize("regex", [
    pytest.param(r"\sparis", id="match-starts-at-a-token"),
    pytest.param(r"paris", id="match-starts-inside-a-token"),
])
def test_blip_rewind_none_still_takes_the_forbidden_text_out(engine, regex):
    events = events_of(engine, CAPITAL, parse_reference(PARIS.format(regex=regex)), mode="blip", rewind="none",
                       max_blips=1)
    tr = Transcript().extend(events)
    hit, blip = tr.rules[0], tr.blips[0]
    assert blip.rewound >= 1
    read_after = Transcript().extend(events[:events.index(blip)]).answer  # what the blip was read after
    assert hit.match.strip().lower() not in read_after.lower(), read_after


def test_a_rule_hit_comes_after_the_token_it_names(engine):
    events = events_of(engine, CAPITAL, parse_reference(PARIS.format(regex="paris")), mode="observe")
    seen: set[int] = set()
    hits = 0
    for ev in events:
        if isinstance(ev, TokenEvent):
            seen.add(ev.index)
        elif isinstance(ev, RuleHit):
            hits += 1
            assert ev.index in seen, f"the hit names token {ev.index} before it was yielded"
    assert hits


def test_adaptive_gamma_follows_the_control_law(engine, conflict_reference):
    loop = LoopSettings(mode="guide", gamma_min=1.0, gamma_max=3.0, threshold=2.0, rule_rewind=False, focus=0)
    tr = Transcript().extend(engine.run(CAPITAL, conflict_reference, loop, SHORT))
    # the only rewind allowed is the last one: trimming at the limit or at the repetition stop
    assert not tr.rewinds or tr.done.stats["stop_reason"] in ("max_tokens", "repetition")
    c = Controller(loop)
    for t in tr.tokens:  # γ for a token comes from the signal after the token before it
        level = min(1.0, max(0.0, c.last_signal / loop.threshold))
        assert t.control == pytest.approx(loop.gamma_min + (loop.gamma_max - loop.gamma_min) * level, abs=1e-9)
        c.signal(t.error)
    assert tr.tokens[0].control == loop.gamma_min
    assert len({round(t.control, 6) for t in tr.tokens}) > 2  # it really moves


def test_guide_rewind_gamma_stays_within_its_bounds_and_the_boost_doubles_it(engine):
    loop = LoopSettings(mode="guide", guide_rewind=True, gamma_min=0.5, gamma_max=0.6, threshold=1.0, max_blips=3)
    events = list(engine.run(CAPITAL, parse_reference(PARIS.format(regex="paris")), loop, SHORT))
    tr = Transcript().extend(events)
    assert tr.rewinds
    controls = [t.control for t in tr.tokens]
    assert all(loop.gamma_min <= g <= 2 * loop.gamma_max for g in controls), controls
    # right after a rewind the sentence is written again at twice the scale
    first_after = [events[i + 1] for i, e in enumerate(events[:-1]) if isinstance(e, RewindEvent)
                   and isinstance(events[i + 1], TokenEvent)]
    assert first_after and all(t.control >= 2 * loop.gamma_min > loop.gamma_max for t in first_after)
    assert max(controls) > loop.gamma_max


# -- generation ------------------------------------------------------------------------------

STORY = ("Write a long story about a brave dragon who lives in a cave high in the mountains above a small "
         "village, who is lonely, who loves to read old books, who one day meets a young girl from the "
         "village who is lost in a storm, and how they become friends and what adventures they have.")


@pytest.fixture(scope="module")
def small_engine(model_path):
    eng = Engine.load(model_path, EngineSettings(n_ctx=256))
    yield eng
    eng.close()


@pytest.mark.parametrize("mode, reference", [("none", None), ("observe", "# Style\nShort sentences.\n")])
def test_the_context_filling_mid_run_ends_with_context_full_and_a_valid_answer(small_engine, mode, reference):
    ref = parse_reference(reference) if reference else None
    events = list(small_engine.run(STORY, ref, LoopSettings(mode=mode), SamplingSettings(max_tokens=400)))
    tr = Transcript().extend(events)
    assert tr.failed is None and isinstance(events[-1], Done)
    stats = tr.done.stats
    assert stats["stop_reason"] == "context_full"
    assert 10 <= stats["tokens"] == len(tr.visible) == len(small_engine.last_run.answer)
    assert stats["context_used"] <= stats["context_size"] == small_engine.n_ctx
    assert tr.answer == "".join(small_engine.piece(t) for t in small_engine.last_run.answer)
    if mode == "observe":
        # scored in chunks; when there is no room left to score the last chunk, its tokens stay
        # in the answer unscored: a suffix of at most one chunk
        scored = [t.logp_ref is not None for t in tr.answer_tokens]
        n = scored.index(False) if False in scored else len(scored)
        assert n >= 10 and not any(scored[n:]) and len(scored) - n <= LoopSettings().chunk
    # and the engine runs normally afterwards
    again = Transcript().extend(small_engine.run("Say hello.", None, LoopSettings(mode=mode), SHORT))
    assert again.done.stats["stop_reason"] in ("end_of_turn", "max_tokens") and again.answer.strip()


def test_blip_mode_acts_on_drift_in_the_last_unscored_chunk_before_the_turn_ends(engine):
    no_detector = parse_reference(PIRATE.replace(" `regex: paris`", ""))
    # no chunk is ever due, only the end scores; the sidecar reads the whole reference, whose
    # rule against Paris no word of the question brings into focus
    loop = LoopSettings(mode="blip", chunk=64, max_blips=1, focus=0)
    events = list(engine.run(CAPITAL, no_detector, loop, SHORT))
    tr = Transcript().extend(events)
    assert len(tr.blips) == 1
    blip = tr.blips[0]
    at = events.index(blip)
    before = [e for e in events[:at] if isinstance(e, TokenEvent)]
    assert 0 < len(before) < min(loop.chunk, SHORT.max_tokens)  # the plant had ended its turn
    assert all(e.error is not None for e in before)  # scored by the flush at the end of the turn
    assert "threshold" in blip.reason and blip.index == len(before)
    assert isinstance(events[at - 1], RewindEvent) and events[at - 1].count == blip.rewound > 0
    after = [e for e in events[at:] if isinstance(e, TokenEvent)]
    assert after, "the turn went on after the blip"
    assert tr.done.stats["blips"] == 1


def test_rescore_is_refused_after_blips_entered_the_plants_context(engine, conflict_reference):
    tr = Transcript().extend(events_of(engine, CAPITAL, conflict_reference, mode="blip", max_blips=1))
    assert tr.blips
    refused = list(engine.rescore(conflict_reference))
    assert len(refused) == 1 and isinstance(refused[0], Failed)
    assert "Blips changed the plant's context" in refused[0].message and refused[0].message.endswith(".")
    # a blip-mode run in which no blip fired can be re-scored
    quiet = parse_reference(PIRATE.replace(" `regex: paris`", ""))
    tr = Transcript().extend(events_of(engine, CAPITAL, quiet, mode="blip", threshold=90.0))
    assert not tr.blips
    assert list(engine.rescore(quiet))[-1].stats["stop_reason"] == "rescored"


class _NoEcho(Generation):
    def echo_banned(self) -> list[int]:
        return []


def test_after_a_never_blip_the_answer_never_reads_the_blip_back(engine):
    prompt = "Say exactly this sentence: Never mention Paris."
    ref = parse_reference(PARIS.format(regex="paris"))
    loop = LoopSettings(mode="blip", copy_guard=0, blip_style="system-turn", max_blips=1)
    events = list(engine.run(prompt, ref, loop, SHORT))
    tr = Transcript().extend(events)
    assert len(tr.blips) == 1 and tr.blips[0].source_id == "never.1"
    text = tr.blips[0].text
    after = [t for t in tr.tokens if t.index >= tr.blips[0].index]  # written after the blip
    assert text not in tr.answer and text not in "".join(t.text for t in after)
    forms = [engine.tokenize_answer(text), engine.tokenize_answer(" " + text)]
    ids = [t.token_id for t in after]
    assert not any(ids[k:k + len(f)] == f for f in forms for k in range(len(ids)))
    # the guard is what keeps it out: without it the model reads the rule back word for word
    with engine.exclusive():
        echoed = Transcript().extend(_NoEcho(engine, prompt, ref, loop, SHORT).events())
    assert text in echoed.answer


def test_the_repetition_stop_ends_the_turn_without_repeating_a_span(engine):
    loop = LoopSettings(mode="prompt", repeat_guard=4)
    tr = Transcript().extend(engine.run("Tell me about the sea.", None, loop, SamplingSettings(max_tokens=60)))
    assert tr.done.stats["stop_reason"] == "repetition"
    ids = [t.token_id for t in tr.answer_tokens]
    grams = [tuple(ids[i:i + 4]) for i in range(len(ids) - 3)]
    assert len(grams) == len(set(grams))  # no 4-token span twice
    # without the guard the same prompt loops
    free = Transcript().extend(engine.run("Tell me about the sea.", None, LoopSettings(mode="none"),
                                          SamplingSettings(max_tokens=60)))
    ids = [t.token_id for t in free.answer_tokens]
    assert len({tuple(ids[i:i + 4]) for i in range(len(ids) - 3)}) < len(ids) - 3


@pytest.mark.parametrize("prompt", ["Tell me about the sea.", "What is love?", "Why do people dream?"])
def test_the_repetition_stop_ends_the_answer_at_a_finished_sentence(engine, prompt):
    tr = Transcript().extend(engine.run(prompt, None, LoopSettings(mode="prompt", repeat_guard=4),
                                        SamplingSettings(max_tokens=60)))
    assert tr.done.stats["stop_reason"] == "repetition"
    assert FINISHED.search(tr.answer), tr.answer


@pytest.mark.parametrize("prompt", ["Tell me about the history of tea.", "Explain how a rainbow forms."])
def test_at_the_token_limit_a_guarded_mode_trims_the_unfinished_sentence(engine, prompt):
    sampling = SamplingSettings(max_tokens=30)
    none = Transcript().extend(engine.run(prompt, None, LoopSettings(mode="none"), sampling))
    assert none.done.stats["stop_reason"] == "max_tokens"
    assert not FINISHED.search(none.answer), none.answer  # none mode shows the cut as it is
    guarded = Transcript().extend(engine.run(prompt, None, LoopSettings(mode="prompt"), sampling))
    assert guarded.done.stats["stop_reason"] == "max_tokens"
    assert FINISHED.search(guarded.answer), guarded.answer
    # the same tokens (no reference: the guards had nothing to do), cut at the last finished sentence
    assert none.answer.startswith(guarded.answer.rstrip()) and len(guarded.answer) < len(none.answer)
    assert guarded.done.stats["rewound"] == len(none.visible) - len(guarded.visible) > 0


def test_start_blip_reminds_the_plant_before_the_first_token(engine):
    tea = parse_reference(TEA)
    prompt = "How long should I steep green tea?"
    loop = LoopSettings(mode="blip", start_blip=True, focus=1, max_blips=1, threshold=0.1, cooldown=0)
    events = list(engine.run(prompt, tea, loop, SHORT))
    first = events[0]
    assert isinstance(first, BlipEvent) and first.index == 0 and first.rewound == 0
    assert first.source_id == rank_rules(tea, prompt)[0].candidate.id == "always.2"
    assert not any(isinstance(e, TokenEvent) for e in events[:1])
    tr = Transcript().extend(events)
    # it counts toward max_blips: the low threshold would fire again, but one was the limit
    assert len(tr.blips) == 1 and tr.done.stats["blips"] == 1
    last_token = max(i for i, e in enumerate(events) if isinstance(e, TokenEvent))
    assert not any(isinstance(e, RewindEvent) for e in events[:last_token])  # only the final trim
    # the plant read the reminder as a system turn after the question, then answered
    opening = engine.opening(prompt, first.text, "system-turn")
    plant = engine.backend.tokens(PLANT)
    assert plant[:len(opening)] == opening
    assert plant[len(opening):] == [t.token_id for t in tr.answer_tokens]
    rendered = "".join(engine.piece(t) for t in opening)
    assert f"<|im_start|>system\n{first.text}<|im_end|>" in rendered
    assert rendered.index("<|im_start|>user") < rendered.index(first.text)
    assert tr.done.stats["prompt_tokens"] == len(opening)


def test_start_blip_stays_quiet_when_no_rule_bears_on_the_question(engine):
    tr = Transcript().extend(events_of(engine, CAPITAL, parse_reference(TEA), mode="blip", start_blip=True,
                                       threshold=90.0))
    assert not tr.blips and tr.tokens


# -- cancelling --------------------------------------------------------------------------------

def test_cancel_before_the_first_next_ends_the_run_with_no_tokens(engine):
    for mode in ("none", "guide"):
        run = engine.run(CAPITAL, parse_reference(TEA), LoopSettings(mode=mode), SHORT)
        engine.cancel()
        events = list(run)
        assert len(events) == 1 and isinstance(events[0], Done), events
        assert events[0].stats["stop_reason"] == "cancelled" and events[0].stats["tokens"] == 0


def test_cancel_before_the_first_next_also_stops_rescore_and_score_text(engine):
    assert events_of(engine, CAPITAL, None, mode="observe")[-1].stats["stop_reason"] in ("end_of_turn", "max_tokens")
    for make in (lambda: engine.rescore(None), lambda: engine.score_text(None, CAPITAL, "Paris is the capital.")):
        op = make()
        engine.cancel()
        events = list(op)
        assert [type(e) for e in events] == [Done] and events[0].stats["stop_reason"] == "cancelled"


def test_cancel_during_a_run_stops_it_within_a_few_tokens_and_the_next_run_is_normal(engine, conflict_reference):
    # guidance away from γ = 1 yields every token as it comes (γ = 1 scores the plant in chunks;
    # the whole reference, so that no question falls back to γ = 1 for want of a relevant rule)
    loop = LoopSettings(mode="guide", gamma=1.5, gamma_min=0.0, gamma_max=0.0, focus=0)
    sampling = SamplingSettings(max_tokens=200)
    baseline = [t.token_id for t in Transcript().extend(engine.run(CAPITAL, conflict_reference, loop, SHORT)).tokens]
    run = engine.run("Write a long story about a dragon.", conflict_reference, loop, sampling)
    got = [next(run) for _ in range(5)]
    engine.cancel()
    rest = list(run)
    assert isinstance(rest[-1], Done) and rest[-1].stats["stop_reason"] == "cancelled"
    assert sum(isinstance(e, TokenEvent) for e in got + rest) <= 7
    again = Transcript().extend(engine.run(CAPITAL, conflict_reference, loop, SHORT))
    assert again.done.stats["stop_reason"] in ("end_of_turn", "max_tokens", "repetition")
    assert [t.token_id for t in again.tokens] == baseline  # the cancelled run left nothing behind


def test_a_stop_with_nothing_running_does_not_cancel_the_next_run(engine):
    engine.cancel()
    tr = Transcript().extend(engine.run(CAPITAL, None, LoopSettings(mode="none"), SHORT))
    assert tr.done.stats["stop_reason"] in ("end_of_turn", "max_tokens") and tr.tokens

"""The control loop on the real model: guidance algebra, blips, rewinds, attribution."""

from __future__ import annotations

import pytest

from lantern_studio.core.attribution import attribute
from lantern_studio.core.backend import PLANT
from lantern_studio.core.events import BlipEvent, Done, RewindEvent, RuleHit, Transcript
from lantern_studio.core.reference import parse_reference
from lantern_studio.core.settings import LoopSettings, SamplingSettings

CAPITAL = "What is the capital of France?"
SHORT = SamplingSettings(max_tokens=40)


def run(engine, reference, prompt=CAPITAL, sampling=SHORT, **loop):
    return Transcript().extend(engine.run(prompt, reference, LoopSettings(**loop), sampling))


@pytest.mark.parametrize("prompt", [CAPITAL, "Give me three tips for sleeping better."])
def test_guide_gamma_zero_is_the_plant_and_gamma_one_is_prompt_mode(engine, conflict_reference, prompt):
    # The algebra holds for the bare mixture: no plausibility cut, no guards, the whole reference.
    raw = {"plausibility": 0.0, "copy_guard": 0, "repeat_guard": 0, "form_guard": False, "rule_rewind": False,
           "focus": 0}
    none = run(engine, conflict_reference, prompt, mode="none")
    observe = run(engine, conflict_reference, prompt, mode="observe")
    prompted = run(engine, conflict_reference, prompt, mode="prompt", **raw)
    fixed = {"gamma_min": 0.0, "gamma_max": 0.0, **raw}  # adaptive guidance off
    g0 = run(engine, conflict_reference, prompt, mode="guide", gamma=0.0, **fixed)
    g1 = run(engine, conflict_reference, prompt, mode="guide", gamma=1.0, **fixed)
    ids = lambda tr: [t.token_id for t in tr.tokens]  # noqa: E731
    assert ids(g0) == ids(none) == ids(observe)
    assert ids(g1) == ids(prompted)
    assert ids(prompted) != ids(none)  # the reference really changes the answer


def test_blip_mode_fires_on_a_conflict_and_keeps_blips_out_of_the_answer(engine, conflict_reference):
    events = list(engine.run(CAPITAL, conflict_reference, LoopSettings(mode="blip", max_blips=2), SHORT))
    tr = Transcript().extend(events)
    assert isinstance(events[-1], Done)
    hits = [e for e in events if isinstance(e, RuleHit)]
    blips = [e for e in events if isinstance(e, BlipEvent)]
    rewinds = [e for e in events if isinstance(e, RewindEvent)]
    assert hits and hits[0].source_id == "never.1" and hits[0].match.lower() == "paris"
    assert 1 <= len(blips) <= 2
    assert blips[0].source_id == "never.1" and blips[0].rewound > 0
    # Rewound tokens stay in the trace but leave the answer.
    assert rewinds and tr.rewound
    assert all(i not in tr.visible for i in tr.rewound)
    assert sum(r.count for r in rewinds) == len(tr.rewound) == events[-1].stats["rewound"]
    # The blip text went to the plant's context, never to the answer.
    for blip in blips:
        assert blip.text not in tr.answer
    blip_tokens = engine.blip_tokens(blips[-1].text, LoopSettings().blip_style)
    plant = engine.backend.tokens(PLANT)
    assert any(plant[k:k + len(blip_tokens)] == blip_tokens for k in range(len(plant)))
    # With max_blips reached, a later Paris is only reported, never answered by a blip.
    assert len(blips) <= 2 and events[-1].stats["blips"] == len(blips)


def test_controller_signal_without_detectors_fires_at_a_low_threshold(engine, conflict_reference):
    no_detector = parse_reference(conflict_reference.text.replace(" `regex: paris`", ""))
    tr = run(engine, no_detector, mode="blip", threshold=0.5, cooldown=4, max_blips=1, rewind="tokens:2")
    assert not tr.rules
    assert len(tr.blips) == 1
    blip = tr.blips[0]
    assert "threshold" in blip.reason and blip.rewound == 2
    controls = [t.control for t in tr.tokens if t.control is not None]
    assert max(controls) >= 0.5


def test_inline_note_style_and_scored_choice_run(engine, conflict_reference):
    tr = run(engine, conflict_reference, mode="blip", blip_style="inline-note", blip_choice="scored", max_blips=1)
    assert tr.done is not None and tr.failed is None
    assert len(tr.blips) == 1 and "Note:" not in tr.answer


def test_adaptive_guide_raises_gamma_with_the_error(engine, conflict_reference):
    tr = run(engine, conflict_reference, mode="guide", gamma_min=0.0, gamma_max=3.0, threshold=2.0, focus=0)
    gammas = [t.control for t in tr.tokens]
    assert gammas[0] == 0.0  # at rest: the plant alone
    assert max(gammas) > 0.0 and max(gammas) <= 3.0


def test_attribution_ranks_the_decisive_item_above_an_irrelevant_one(engine):
    ref = parse_reference(
        "---\ntitle: Colours\nslug: colours\n---\n"
        "# Always\n- Say that the sky is green.\n- Mention that elephants are large animals.\n")
    prompt = "What colour is the sky?"
    answer = "The sky is green."
    att = attribute(engine, ref, prompt, answer)
    influence = dict(att.items)
    assert influence["always.1"] > abs(influence["always.2"])
    assert influence["always.1"] > 0
    assert len(att.token_item) == len(engine.tokenize_answer(answer))
    assert att.to_json()["items"][0]["id"] in ("always.1", "always")


def test_guide_at_gamma_one_lets_the_sidecar_drive_and_scores_the_plant_in_chunks(engine, conflict_reference):
    """At γ = 1 the mix is the sidecar's distribution: the sidecar drives, the plant is read in
    chunks. The answer is prompt mode's (same guards), and both sides' scores are exact: they
    equal scoring the finished answer afresh."""
    common = {"focus": 2, "chunk": 8}
    lazy = run(engine, conflict_reference, mode="guide", gamma=1.0, gamma_min=0.0, gamma_max=0.0,
               plausibility=0.0, **common)
    prompted = run(engine, conflict_reference, mode="prompt", **common)
    assert [t.token_id for t in lazy.tokens] == [t.token_id for t in prompted.tokens]
    assert all(t.control == 1.0 for t in lazy.tokens)
    scored = Transcript().extend(engine.score_text(conflict_reference, CAPITAL, lazy.answer, focus=2))
    got = [(t.logp_plant, t.logp_ref) for t in lazy.answer_tokens]
    want = [(t.logp_plant, t.logp_ref) for t in scored.tokens]
    assert len(got) == len(want) > 0
    for (a_p, a_r), (b_p, b_r) in zip(got, want):
        assert abs(a_p - b_p) <= 1e-3 and abs(a_r - b_r) <= 1e-3



def test_guide_falls_back_to_the_sidecar_alone_when_no_rule_bears_on_the_question(engine, conflict_reference):
    """Past γ = 1 guidance extrapolates towards the rules the sidecar reads; when focus finds
    none that bear on the question there is nothing to extrapolate towards, and the focused
    sidecar (title, intent, style) drives as at γ = 1. A question a rule does bear on is guided
    at the γ asked for."""
    # the relevance gate off: this is the fallback for questions focus finds no rule for
    fixed = {"mode": "guide", "gamma_min": 0.0, "gamma_max": 0.0, "focus": 2, "relevance": 0.0}
    off_topic = "How many legs does a spider have?"
    pushed = run(engine, conflict_reference, off_topic, gamma=1.5, **fixed)
    at_one = run(engine, conflict_reference, off_topic, gamma=1.0, **fixed)
    assert [t.token_id for t in pushed.tokens] == [t.token_id for t in at_one.tokens]
    assert pushed.tokens and all(t.control == 1.0 for t in pushed.tokens)
    on_topic = run(engine, conflict_reference, "Should I mention Paris when I call the user matey?",
                   gamma=1.5, **fixed)
    assert on_topic.tokens and all(t.control == 1.5 for t in on_topic.tokens)
    # The whole reference (focus 0) is never second-guessed.
    whole = run(engine, conflict_reference, off_topic, gamma=1.5, **{**fixed, "focus": 0})
    assert all(t.control == 1.5 for t in whole.tokens)


def test_guide_lets_the_plant_answer_alone_when_the_reference_does_not_raise_the_question(engine):
    """A word shared with a rule ("adult" in a dosing rule) is not enough: when the focused
    reference barely raises the likelihood of the question itself, guidance does not push
    the answer towards the rules, and the plant answers alone (γ = 0), watched by the
    sidecar. The run says which side drove and why."""
    from pathlib import Path

    from lantern_studio.core.reference import load_reference

    ref = load_reference(Path(__file__).resolve().parents[1] / "references" / "otc-analgesics.md")
    off_topic = "Which is bigger, a child or an adult?"
    gated = run(engine, ref, off_topic, sampling=SamplingSettings(max_tokens=24))
    stats = gated.done.stats
    assert stats["drive"] == "plant" and stats["question_gain"] < LoopSettings().relevance
    assert gated.tokens and all(t.control == 0.0 for t in gated.tokens)
    assert all(t.logp_ref is not None for t in gated.tokens)  # still scored
    plain = run(engine, ref, off_topic, sampling=SamplingSettings(max_tokens=24), mode="none")
    assert gated.answer and plain.answer.startswith(gated.answer)  # the guards may trim its end
    ungated = run(engine, ref, off_topic, sampling=SamplingSettings(max_tokens=24), relevance=0.0)
    assert ungated.done.stats["drive"] == "both" and all(t.control == 1.5 for t in ungated.tokens)
    on_topic = run(engine, ref, "What is the most paracetamol an adult can take in one day?",
                   sampling=SamplingSettings(max_tokens=24))
    assert on_topic.done.stats["drive"] == "both"
    assert on_topic.done.stats["question_gain"] >= LoopSettings().relevance

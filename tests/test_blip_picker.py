"""Which blip the loop injects (BlipPicker) and which rules a question brings forward
(rank_rules, focused_text). Pure: a parsed reference in, candidates out, no model."""

from __future__ import annotations

import pytest

from lantern_studio.core.blips import BlipPicker
from lantern_studio.core.focus import focused_text, rank_rules
from lantern_studio.core.reference import parse_reference, render_reference
from lantern_studio.core.settings import LoopSettings

TEA = """---
title: Tea
slug: tea
---
# Intent
Help people brew tea well. Answer in plain words.

# Always
- Use water just off the boil for black tea.
- Steep green tea for two minutes at most.

# Never
- Never recommend sugar in green tea. `regex: sugar`
- Bitter tea.

# Style
Short and friendly.

# Blips
- when: /milk/ → Add milk after the tea, never before.
- Warm the pot first.
"""
STEEP = "How long should I steep green tea?"


@pytest.fixture
def tea():
    return parse_reference(TEA)


def picker(reference, **loop) -> BlipPicker:
    return BlipPicker(reference, LoopSettings(mode="blip", **{"blip_choice": "overlap", **loop}))


def ids(candidates) -> list[str]:
    return [c.id for c in candidates]


def test_the_candidates_are_what_the_picker_chooses_from(tea):
    assert ids(picker(tea).candidates) == [
        "blips.1", "blips.2", "always.1", "always.2", "never.1", "never.2", "intent.s1", "intent.s2"]


# -- precedence --------------------------------------------------------------------------------

def test_a_never_detector_source_wins_over_a_matching_trigger_and_overlap(tea):
    p = picker(tea)
    # the trigger matches ("milk") and the preferred tokens point at always.2, yet the rule that fired wins
    chosen = p.choose("Can I add milk?", "Add milk and sugar", "", [" steep", " green", " minutes"], "never.1")
    assert chosen is not None and chosen.id == "never.1"
    # and again: a detector's rule is named every time it fires, used or not
    assert p.choose("Can I add milk?", "", "", [], "never.1").id == "never.1"
    assert p.used["never.1"] == 2


def test_an_unknown_source_id_falls_through_to_the_other_rules(tea):
    chosen = picker(tea).choose("Tell me about tea.", "", "", [" steep", " green"], "never.99")
    assert chosen.id == "always.2"


@pytest.mark.parametrize("prompt, answer, rewound", [
    ("Can I add milk?", "", ""),  # in the prompt
    ("How do I make tea?", "First pour the milk", ""),  # in the answer so far
    ("How do I make tea?", "First pour the", " milk in"),  # in the text just rewound
])
def test_an_unused_triggered_blip_wins_when_its_trigger_matches_the_context(tea, prompt, answer, rewound):
    p = picker(tea)
    preferred = [" steep", " green", " minutes"]  # overlap alone would choose always.2
    assert p.choose(prompt, answer, rewound, preferred, None).id == "blips.1"
    # once used, the trigger no longer decides: the overlap ranking does
    assert p.choose(prompt, answer, rewound, preferred, None).id == "always.2"


def test_a_trigger_only_reads_the_last_400_characters_of_the_answer(tea):
    p = picker(tea)
    old = "milk " + "and so on " * 45  # 'milk' is more than 400 characters back
    assert p.choose("How do I make tea?", old, "", [" steep", " green"], None).id == "always.2"
    assert p.choose("How do I make tea?", old[-400:] + " milk", "", [" steep", " green"], None).id == "blips.1"


def test_a_reference_without_candidates_gives_none():
    ref = parse_reference("---\ntitle: Empty\nslug: empty\n---\n# Style\nShort.\n")
    p = picker(ref)
    assert p.candidates == []
    assert p.choose("Anything?", "", "", [" word"], None) is None


# -- overlap ranking ---------------------------------------------------------------------------

def test_overlap_prefers_candidates_that_share_the_sidecars_preferred_words(tea):
    p = picker(tea)
    ranked = ids(p.rank_by_overlap([" sugar", " recommend"]))
    assert ranked[0] == "never.1"
    ranked = ids(p.rank_by_overlap([" boil", " water", " black"]))
    assert ranked[0] == "always.1"
    # words of fewer than three letters and case do not matter
    assert ids(p.rank_by_overlap([" BOIL", " of", " a"]))[0] == "always.1"


def test_each_use_halves_a_candidates_weight(tea):
    p = picker(tea)
    # 'green' twice, 'steep' once: always.2 (7 content words) 3/sqrt(7) = 1.13,
    # never.1 (5 content words) 2/sqrt(5) = 0.89
    preferred = [" green", " green", " steep"]
    assert ids(p.rank_by_overlap(preferred))[:2] == ["always.2", "never.1"]
    assert p.choose("Hello", "", "", preferred, None).id == "always.2"
    # used once: 1.13 / 2 = 0.57 < 0.89
    assert ids(p.rank_by_overlap(preferred))[:2] == ["never.1", "always.2"]
    assert p.choose("Hello", "", "", preferred, None).id == "never.1"
    # both used once: 0.57 > 0.45, back to the first
    assert p.choose("Hello", "", "", preferred, None).id == "always.2"
    assert p.used == {"always.2": 2, "never.1": 1}


def test_triggered_blips_count_half_outside_their_trigger(tea):
    p = picker(tea)
    # blips.1 "Add milk after the tea, never before." and intent.s1 "Help people brew tea well."
    # both hold 'tea'; blips.1 (6 words) 1/sqrt(6)·0.5 = 0.20 < intent.s1 (5 words) 1/sqrt(5) = 0.45
    ranked = ids(p.rank_by_overlap([" tea"]))
    assert ranked.index("intent.s1") < ranked.index("blips.1")


def test_with_no_overlap_fresh_candidates_come_first_and_blips_before_rules(tea):
    p = picker(tea)
    assert ids(p.rank_by_overlap([]))[:3] == ["blips.1", "blips.2", "always.1"]
    p.used["blips.1"] += 1
    p.used["blips.2"] += 1
    assert ids(p.rank_by_overlap([]))[0] == "always.1"


# -- relevant choice ---------------------------------------------------------------------------

def test_relevant_choice_follows_relevance_and_rotates_through_used_ones(tea):
    p = picker(tea, blip_choice="relevant")
    relevant = [r.candidate.id for r in rank_rules(tea, STEEP + " ") if r.score > 0]
    assert relevant[:2] == ["always.2", "never.1"] and len(relevant) >= 3
    chosen = [p.choose(STEEP, "", "", [" boil"], None).id for _ in range(2 * len(relevant))]
    # relevance order, each once, then the same order again; the preferred tokens play no part
    assert chosen == relevant + relevant


def test_relevant_choice_reads_the_rewound_text(tea):
    p = picker(tea, blip_choice="relevant")
    assert p.choose("Tell me something.", "", " with lots of sugar", [], None).id == "never.1"


def test_relevant_choice_falls_back_to_overlap_when_nothing_is_relevant(tea):
    p = picker(tea, blip_choice="relevant")
    assert p.choose("What is the capital of France?", "", "", [" boil", " water"], None).id == "always.1"


# -- the opening blip --------------------------------------------------------------------------

def test_opening_is_the_most_relevant_rules_or_none(tea):
    p = picker(tea)
    first = p.opening(STEEP)
    assert [c.id for c in first] == ["always.2"]
    assert p.used["always.2"] == 1  # it counts as a use
    assert picker(tea).opening("Can I add milk?")[0].id == "blips.1"  # its trigger adds to its relevance
    assert picker(tea).opening("What is the capital of France?") == []
    two = picker(tea).opening(STEEP, 2)
    assert two[0].id == "always.2" and len(two) <= 2 and len({c.id for c in two}) == len(two)


# -- scored choice -----------------------------------------------------------------------------

def test_scored_choice_takes_the_candidate_the_evaluator_ranks_highest(tea):
    p = picker(tea, blip_choice="scored")
    seen = []

    def gains(shortlist):
        seen.append(ids(shortlist))
        return [-5.0, -1.0, -3.0, -9.0, -2.0][: len(shortlist)]

    preferred = [" green", " steep"]
    shortlist = ids(p.rank_by_overlap(preferred))[: p.shortlist]
    chosen = p.choose("Hello", "", "", preferred, None, gains)
    assert seen == [shortlist] and len(shortlist) == 5
    assert chosen.id == shortlist[1]  # the argmax of the gains, not the overlap's first
    assert p.used == {shortlist[1]: 1}


@pytest.mark.parametrize("measured", [None, []])
def test_scored_choice_falls_back_to_overlap_when_it_cannot_be_measured(tea, measured):
    p = picker(tea, blip_choice="scored")
    calls = []

    def gains(shortlist):
        calls.append(len(shortlist))
        return measured

    assert p.choose("Hello", "", "", [" sugar"], None, gains).id == "never.1"
    assert calls == [5]


def test_the_evaluator_is_only_asked_when_the_choice_is_scored(tea):
    def gains(shortlist):
        raise AssertionError("the evaluator must not be called")

    assert picker(tea, blip_choice="overlap").choose("Hello", "", "", [" sugar"], None, gains).id == "never.1"
    scored = picker(tea, blip_choice="scored")
    assert scored.choose("Hello", "", "", [" sugar"], "never.2", gains).id == "never.2"  # a detector
    assert scored.choose("Add milk?", "", "", [" sugar"], None, gains).id == "blips.1"  # a trigger


# -- focus: what the model reads ---------------------------------------------------------------

def test_rank_rules_weighs_rare_shared_words_and_keeps_document_order_on_ties(tea):
    ranked = rank_rules(tea, STEEP)
    assert [r.candidate.id for r in ranked][:2] == ["always.2", "never.1"]
    assert ranked[0].score > ranked[1].score > 0
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    # no shared word: every score is 0 and the order is the document's
    cold = rank_rules(tea, "What is the capital of France?")
    assert all(r.score == 0 for r in cold)
    assert [r.candidate.id for r in cold] == ["blips.1", "blips.2", "always.1", "always.2", "never.1", "never.2"]


def test_a_matching_trigger_adds_one_to_its_blips_relevance(tea):
    with_trigger = {r.candidate.id: r.score for r in rank_rules(tea, "Can I add milk?")}
    without = {r.candidate.id: r.score for r in rank_rules(tea, "Can I add cream?")}
    assert with_trigger["blips.1"] - without["blips.1"] >= 1.0


def test_focused_text_keeps_the_frame_and_only_the_k_most_relevant_rules(tea):
    assert focused_text(tea, STEEP, 0) == render_reference(tea)
    one = focused_text(tea, STEEP, 1)
    assert one == ("Tea.\n\nHelp people brew tea well. Answer in plain words.\n\nShort and friendly.\n\n"
                   "Steep green tea for two minutes at most.")
    two = focused_text(tea, STEEP, 2)
    assert "Never recommend sugar in green tea." in two and "boil" not in two and "regex" not in two


def test_focused_text_is_sentences_with_no_markdown_to_copy():
    ref = parse_reference("""# Kettle care
## Intent
Help people look after a kettle,
as a shop assistant would
<!-- not for the model -->
- **Descale** it monthly
## Always
- Descale a kettle with citric acid,
  never bleach
""")
    assert focused_text(ref, "How do I descale a kettle?", 2) == (
        "Kettle care.\n\nHelp people look after a kettle, as a shop assistant would. Descale it monthly.\n\n"
        "Descale a kettle with citric acid, never bleach.")


def test_focused_text_lists_a_chosen_expert_blip_among_the_rules(tea):
    text = focused_text(tea, "Can I add milk?", 2)
    assert text.endswith("Add milk after the tea, never before.") and "#" not in text and "\n-" not in text
    # an irrelevant question keeps no rule at all, only the frame
    bare = focused_text(tea, "What is the capital of France?", 3)
    assert bare == "Tea.\n\nHelp people brew tea well. Answer in plain words.\n\nShort and friendly."

"""The engine on the real default model: its invariants (scores exact at any chunk size, KV reuse, rewinds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import high_level_logprobs

from lantern_studio.core.backend import PLANT, SIDECAR, Feed
from lantern_studio.core.errors import ContextOverflow
from lantern_studio.core.events import Done, Failed, TokenEvent, Transcript
from lantern_studio.core.reference import empty_reference
from lantern_studio.core.settings import LoopSettings, SamplingSettings

PROMPT = "Give me three tips for sleeping better."
GREEDY = SamplingSettings(max_tokens=40)


def run(engine, reference, mode="observe", sampling=GREEDY, **loop):
    # the whole reference, as score_text and a long context need (focus shortens it)
    return Transcript().extend(engine.run(PROMPT, reference, LoopSettings(mode=mode, **{"focus": 0, **loop}), sampling))


def test_empty_reference_gives_zero_error(engine):
    tr = run(engine, empty_reference())
    assert tr.done is not None and len(tr.tokens) > 10
    errors = np.array([t.error for t in tr.tokens])
    assert np.abs(errors).max() <= 1e-4
    assert max(t.divergence for t in tr.tokens) <= 1e-4


def test_chunked_scoring_equals_per_token_scoring(engine, conflict_reference):
    a = run(engine, conflict_reference, chunk=8)
    b = run(engine, conflict_reference, chunk=1)
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    ref_a = np.array([t.logp_ref for t in a.tokens])
    ref_b = np.array([t.logp_ref for t in b.tokens])
    assert np.abs(ref_a - ref_b).max() <= 1e-3
    assert np.abs(ref_a).max() > 0  # the scores are real, not a default


@pytest.fixture(scope="module")
def long_reference():
    """A shipped sample: with it the context holds more than 512 cells, where llama.cpp's
    f16 attention would switch kernels between a single token and a chunk."""
    from lantern_studio.core.reference import load_reference

    return load_reference(Path(__file__).resolve().parents[1] / "references" / "otc-analgesics.md")


def test_chunked_scoring_is_exact_with_a_long_reference(engine, long_reference):
    a = run(engine, long_reference, chunk=8)
    b = run(engine, long_reference, chunk=1)
    assert a.done.stats["sidecar_prompt_tokens"] + len(a.tokens) > 512
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    assert max(abs(x.logp_ref - y.logp_ref) for x, y in zip(a.tokens, b.tokens)) <= 1e-4


def test_the_plant_is_the_same_whatever_the_sidecar_holds(engine, long_reference):
    alone = run(engine, None, mode="none")
    beside = run(engine, long_reference, mode="observe")
    assert [t.token_id for t in alone.tokens] == [t.token_id for t in beside.tokens]
    assert max(abs(x.logp_plant - y.logp_plant) for x, y in zip(alone.tokens, beside.tokens)) <= 1e-4


def test_scores_do_not_depend_on_the_thread_count(engine, model_path, long_reference):
    from lantern_studio.core.engine import Engine
    from lantern_studio.core.settings import EngineSettings

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the session engine runs one thread too")
    with Engine.load(model_path, EngineSettings(n_threads=1)) as single:
        a = run(single, long_reference)
    b = run(engine, long_reference)
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    assert max(abs(x.logp_ref - y.logp_ref) for x, y in zip(a.tokens, b.tokens)) <= 1e-4


def test_one_batch_for_two_sequences_gives_the_logits_of_two(engine, long_reference):
    from lantern_studio.core.reference import render_reference

    b = engine.backend
    plant = engine.conversation("", PROMPT)
    sidecar = engine.conversation(render_reference(long_reference), PROMPT)
    answer = engine.tokenize_answer("Keep a regular bedtime and a dark, quiet room.")
    engine.clear_scratch()
    b.truncate(PLANT, 0)
    b.truncate(SIDECAR, 0)
    b.forward([Feed(PLANT, plant, None), Feed(SIDECAR, sidecar, None)])
    together = b.forward([Feed(PLANT, answer[:1], 0), Feed(SIDECAR, answer, 0)])
    b.truncate(PLANT, len(plant))
    b.truncate(SIDECAR, len(sidecar))
    alone_plant = b.forward([Feed(PLANT, answer[:1], 0)])[0]
    alone_sidecar = b.forward([Feed(SIDECAR, answer, 0)])[0]
    assert np.array_equal(together[0], alone_plant)
    assert np.array_equal(together[1], alone_sidecar)


@pytest.mark.parametrize("mode", ["guide", "blip", "observe"])
def test_the_sidecar_in_its_own_context_changes_no_token_and_no_score(model_path, conflict_reference, mode):
    from lantern_studio.core.engine import Engine
    from lantern_studio.core.settings import EngineSettings

    # guide: the defaults on a question a rule bears on (both rows at every token, decoded at
    # once), with the relevance gate off so that the plant never answers alone
    loop = {"relevance": 0.0} if mode == "guide" else {"mode": mode}
    prompt = "What should I see in Paris?" if mode == "guide" else PROMPT
    runs = {}
    for own in (False, True):
        with Engine.load(model_path, EngineSettings(n_threads=2, sidecar_context=own)) as eng:
            assert eng.backend.n_contexts == (2 if own else 1)
            runs[own] = Transcript().extend(eng.run(prompt, conflict_reference, LoopSettings().updated(**loop), GREEDY))
    one, two = runs[False], runs[True]
    assert two.done is not None and len(two.tokens) > 5
    if mode == "guide":  # the path that decodes both contexts at once
        assert two.done.stats["drive"] == "both"
    assert [t.token_id for t in one.tokens] == [t.token_id for t in two.tokens]
    assert [(t.logp_plant, t.logp_ref) for t in one.tokens] == [(t.logp_plant, t.logp_ref) for t in two.tokens]
    assert [e.text for e in one.blips] == [e.text for e in two.blips]


def test_copies_from_the_sidecars_own_context_score_as_copies_within_one(model_path, conflict_reference):
    """Attribution and the scored blip choice copy the sidecar into scratch sequences; from
    its own context that is a copy of its cells, which must score exactly as shared cells do."""
    from lantern_studio.core.attribution import attribute
    from lantern_studio.core.engine import Engine
    from lantern_studio.core.settings import EngineSettings

    out = {}
    for own in (False, True):
        with Engine.load(model_path, EngineSettings(n_threads=2, sidecar_context=own)) as eng:
            att = attribute(eng, conflict_reference, "What is the capital of France?", "Arr, the capital be Paris.")
            scored = Transcript().extend(eng.run(PROMPT, conflict_reference, LoopSettings(
                mode="blip", blip_choice="scored", max_blips=1, focus=0), GREEDY))
            out[own] = (att.items, scored.answer, [e.text for e in scored.blips])
    assert out[False] == out[True]
    assert out[True][0] and out[True][2]


def test_plant_logprobs_match_llama_cpp_high_level_api(engine, model_path):
    tr = run(engine, None, mode="none")
    prompt_tokens = engine.conversation("", PROMPT)
    answer = [t.token_id for t in tr.tokens]
    theirs = high_level_logprobs(model_path, prompt_tokens, answer)
    ours = [t.logp_plant for t in tr.tokens]
    assert np.abs(np.array(ours) - np.array(theirs)).max() <= 1e-3


def test_same_seed_same_tokens_and_other_seed_differs(engine):
    sampling = SamplingSettings(temperature=0.9, seed=7, max_tokens=30)
    a = [t.token_id for t in run(engine, None, "none", sampling).tokens]
    b = [t.token_id for t in run(engine, None, "none", sampling).tokens]
    c = [t.token_id for t in run(engine, None, "none", SamplingSettings(temperature=0.9, seed=8, max_tokens=30)).tokens]
    assert a == b
    assert a != c


def test_rewind_and_redecode_reproduce_the_same_logits(engine):
    b = engine.backend
    tokens = engine.conversation("", PROMPT) + engine.tokenize_answer("Sleep at regular hours and avoid screens.")
    engine.clear_scratch()
    first = b.forward([engine.prefill(PLANT, tokens)])[0][-1].copy()
    b.truncate(PLANT, len(tokens) - 5)
    again = b.forward([Feed(PLANT, tokens[-5:], 4)])[0][-1]
    assert b.tokens(PLANT) == tokens
    assert np.abs(first - again).max() <= 1e-3


def test_injection_reaches_the_plant_not_the_answer(engine, conflict_reference):
    from lantern_studio.core.generation import Generation

    r = Generation(engine, PROMPT, conflict_reference, LoopSettings(mode="observe", chunk=1), GREEDY)
    events = r.events()
    first = [next(events) for _ in range(3)]  # the run has started and emitted tokens
    assert all(isinstance(e, TokenEvent) for e in first)
    blip = engine.blip_tokens("Remember to mention a pharmacist.", "system-turn")
    before = len(engine.backend.tokens(PLANT))
    r.inject(blip)
    assert engine.backend.tokens(PLANT)[before:] == blip
    assert engine.backend.tokens(SIDECAR) == r.sidecar_prompt + r.answer[: r.fed]
    rest = list(events)
    tr = Transcript().extend(first + rest)
    assert isinstance(rest[-1], Done)
    # The answer is the sampled tokens only; the plant's context holds them around the blip.
    # (The model may well say what the blip said: that is it steering, not the blip leaking.)
    answer_ids = [t.token_id for t in tr.tokens]
    assert engine.backend.tokens(PLANT) == r.plant_prompt + answer_ids[:3] + blip + answer_ids[3:]
    assert all(answer_ids[k:k + len(blip)] != blip for k in range(len(answer_ids)))


def test_observe_rescore_after_edit_equals_a_fresh_run(engine, conflict_reference, tmp_path):
    from lantern_studio.core.reference import parse_reference

    first = run(engine, conflict_reference)
    edited = parse_reference(conflict_reference.text.replace("ships, rum and treasure", "the weather"))
    updates = list(engine.rescore(edited))
    assert isinstance(updates[-1], Done) and updates[-1].stats["stop_reason"] == "rescored"
    first.extend(updates)
    fresh = run(engine, edited)
    assert [t.token_id for t in fresh.tokens] == [t.token_id for t in first.tokens]
    new = np.array([t.logp_ref for t in first.tokens])
    assert np.abs(new - np.array([t.logp_ref for t in fresh.tokens])).max() <= 1e-3


def test_score_text_matches_the_live_scores(engine, conflict_reference):
    live = run(engine, conflict_reference)
    scored = Transcript().extend(engine.score_text(conflict_reference, PROMPT, live.answer))
    assert [t.token_id for t in scored.tokens] == [t.token_id for t in live.tokens]
    assert np.abs(np.array([t.error for t in scored.tokens]) - np.array([t.error for t in live.tokens])).max() <= 1e-3


def test_cancel_ends_the_run_at_the_next_token(engine):
    events = engine.run(PROMPT, None, LoopSettings(mode="none"), SamplingSettings(max_tokens=200))
    got = [next(events) for _ in range(5)]
    engine.cancel()
    rest = list(events)
    assert isinstance(rest[-1], Done) and rest[-1].stats["stop_reason"] == "cancelled"
    assert len(got) + len(rest) < 12
    # The engine is usable again afterwards.
    assert run(engine, None, "none").done.stats["stop_reason"] in ("end_of_turn", "max_tokens")


def test_prompt_longer_than_the_context_fails_with_one_sentence(engine):
    events = list(engine.run("word " * 5000, None, LoopSettings(mode="observe"), GREEDY))
    assert len(events) == 1 and isinstance(events[0], Failed)
    message = events[0].message
    assert "context" in message and message.endswith(".") and "\n" not in message


def test_forward_beyond_the_context_raises_context_overflow(engine):
    with pytest.raises(ContextOverflow):
        engine.backend.forward([Feed(PLANT, [1] * (engine.n_ctx + 1), None)])


def test_run_stats_count_the_time_inside_the_model(engine):
    stats = run(engine, None, "none").done.stats
    # Generation is mostly llama_decode, but the Python side of the loop is not free.
    assert 0 < stats["decode_s"] < stats["generation_s"]

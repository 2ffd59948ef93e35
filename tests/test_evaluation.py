"""`lantern eval`: variants, splits, provenance, the report — and the committed evaluation
still describes today's code (three of its probes re-run give the same answers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lantern_studio.core.errors import SettingsError
from lantern_studio.core.eval_report import reading, render_markdown
from lantern_studio.core.evaluation import (VARIANTS, EvalRow, Evaluation, core_sources_hash, load_suite,
                                            parse_variant, split_of)
from lantern_studio.core.probes import judge
from lantern_studio.core.reference import load_reference, render_reference
from lantern_studio.core.run_job import collect
from lantern_studio.core.settings import LoopSettings, SamplingSettings

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs" / "evaluation.json"


def test_variants_by_name_and_ad_hoc():
    assert parse_variant("prompt") == ("prompt", VARIANTS["prompt"])
    name, changes = parse_variant("mine:mode=guide,gamma=1.5,guide_rewind=true")
    assert name == "mine" and changes == {"mode": "guide", "gamma": 1.5, "guide_rewind": True}
    with pytest.raises(SettingsError):
        parse_variant("nonsense")
    with pytest.raises(SettingsError):
        parse_variant("bad:gamma")
    with pytest.raises(SettingsError):  # validated before an hour of runs, not after
        parse_variant("bad:mode=sing")


def test_the_suite_is_split_by_folder_and_big_enough():
    suite = load_suite([REPO / "references", REPO / "eval" / "tune", REPO / "eval" / "test"])
    splits = {e.split for e in suite}
    assert splits == {"shipped", "tune", "test"}
    assert split_of(REPO / "eval" / "tune" / "x.md") == "tune"
    assert len(suite) >= 24 and sum(len(e.reference.probes) for e in suite) >= 120
    slugs = [e.reference.slug for e in suite]
    assert len(slugs) == len(set(slugs))
    for split in ("tune", "test"):
        probes = [p for e in suite if e.split == split for p in e.reference.probes]
        assert any("irrelevant" in p.tags for p in probes) and any("conflict" in p.tags for p in probes)


def test_core_hash_changes_with_the_core(tmp_path, monkeypatch):
    import lantern_studio.core.evaluation as evaluation

    a = core_sources_hash()
    assert a == core_sources_hash() and len(a) == 64
    fake = tmp_path / "core"
    fake.mkdir()
    (fake / "x.py").write_text("x = 1\n")
    monkeypatch.setattr(evaluation, "_CORE", fake)
    b = core_sources_hash()
    (fake / "x.py").write_text("x = 2\n")
    assert b != core_sources_hash() != a


def _row(variant: str, split: str, passed: bool, tags=("conflict",), **kw) -> EvalRow:
    base = dict(variant=variant, split=split, reference="r", probe=1, prompt="q", tags=list(tags), passed=passed,
                failed=None if passed else "expect /x/", pattern_failed=None if passed else "expect /x/",
                leak=None, degenerate=None, blips=0, rewound=0, tokens=5, tokens_per_s=10.0, answer="An answer.")
    base.update(kw)
    return EvalRow(**base)


def test_report_reads_the_goals_off_the_rows():
    variants = {name: LoopSettings().updated(**VARIANTS[name]).to_dict() for name in ("default", "none", "prompt", "guide-2")}
    rows = []
    for i in range(4):
        rows += [_row("default", "test", True, probe=i), _row("prompt", "test", i == 0, probe=i),
                 _row("guide-2", "test", i < 3, probe=i), _row("none", "test", False, probe=i)]
    rows += [_row("default", "test", True, tags=("irrelevant",), probe=9),
             _row("none", "test", True, tags=("irrelevant",), probe=9),
             _row("prompt", "test", False, tags=("irrelevant",), probe=9, leak="a Markdown heading: '## A'",
                  failed="leaks the reference", pattern_failed=None)]
    ev = Evaluation({"model": "m", "model_sha256": "ab" * 32, "core_sha256": "cd" * 32}, variants, rows)
    text = "\n".join(reading(ev))
    assert "+80 points" in text and "(goal +25: **met**)" in text  # 5/5 vs 1/5
    assert "guide-2 (75%)" in text and "+25 points (goal +8: **met**)" in text
    assert "lose at most one: **met**" in text
    md = render_markdown(ev, "evaluation.json")
    assert "evaluation.json" in md and "abababababab" in md and "cdcdcdcdcdcd" in md
    assert "| prompt | 1/5 | 20% | 2 | 1 | 0 |" in md  # accepted, rate, patterns hold, leaks, degenerate


def _committed() -> Evaluation:
    assert COMMITTED.is_file(), "docs/evaluation.json is missing: run `lantern eval --out docs/evaluation.json ...`"
    return Evaluation.from_json(json.loads(COMMITTED.read_text(encoding="utf-8")))


def test_the_committed_evaluation_is_complete_and_names_its_run():
    ev = _committed()
    assert ev.meta.get("complete") is True
    for key in ("package_version", "core_sha256", "model_sha256", "sampling", "engine", "references", "started"):
        assert ev.meta.get(key), key
    assert "default" in ev.variants and {r.split for r in ev.rows} >= {"test"}
    md = (REPO / "docs" / "evaluation.md").read_text(encoding="utf-8")
    assert ev.meta["core_sha256"][:12] in md and ev.meta["model_sha256"][:12] in md
    # every reference evaluated is the file in the repo today
    for slug, info in ev.meta["references"].items():
        split = info["split"]
        folder = REPO / ("references" if split == "shipped" else f"eval/{split}")
        assert load_reference(folder / f"{slug}.md").sha256 == info["sha256"], slug


@pytest.mark.model
def test_three_probes_of_the_committed_evaluation_give_the_same_answers(engine):
    """A numerics or loop change that invalidates docs/evaluation.md fails here until the
    evaluation is regenerated."""
    ev = _committed()
    assert engine.backend.model_sha256() == ev.meta["model_sha256"], "the evaluation ran on another model file"
    picks = []
    for variant in ("default", "prompt", "none"):
        rows = [r for r in ev.rows if r.variant == variant and r.split == "test"]
        if rows:
            picks.append(rows[len(rows) // 2])
    assert len(picks) == 3
    sampling = SamplingSettings(**ev.meta["sampling"])
    for row in picks:
        info = ev.meta["references"][row.reference]
        folder = REPO / ("references" if info["split"] == "shipped" else f"eval/{info['split']}")
        ref = load_reference(folder / f"{row.reference}.md")
        loop = LoopSettings.from_mapping(ev.variants[row.variant])
        probe = ref.probes[row.probe - 1]
        result = collect(engine.run(probe.prompt, ref, loop, sampling))
        assert result.answer == row.answer, f"{row.variant} {row.reference}#{row.probe} answers differently today"
        assert judge(probe, result.answer, render_reference(ref)).passed == row.passed

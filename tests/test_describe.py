"""Plain words for the engine's numbers (core/describe.py) and the studio's history on disk."""

from __future__ import annotations

import time

from lantern_studio.core.describe import (describe_error, describe_probe_failure, file_name_for,
                                          pattern_examples)
from lantern_studio.core.events import Done
from lantern_studio.core.history import HistoryStore, reference_key
from lantern_studio.core.trace import make_header


def test_errors_in_words():
    assert describe_error(2.4849) == "the reference makes this word 12× less likely"
    assert describe_error(-0.6931) == "the reference makes this word 2.0× more likely"
    assert "about as likely" in describe_error(0.05)
    assert "over 1000×" in describe_error(40.0)
    assert "not scored" in describe_error(None)


def test_probe_failures_in_words():
    assert describe_probe_failure("expect /4 ?(g|grams)|4,?000 ?mg/") == \
        "did not mention anything like “4 g”, “4 grams” or “4,000 mg”"
    assert describe_probe_failure("forbid /paris/", "The capital is Paris.") == \
        "said “Paris”, which the probe forbids"
    assert describe_probe_failure("expect /\\b30[- ]day|thirty days/").startswith("did not mention anything like “30-day”")
    assert describe_probe_failure("The model ran out of context.") == "The model ran out of context."
    assert describe_probe_failure(None) == "passed"
    assert pattern_examples("(unclosed") == []
    assert pattern_examples("(?<!not )\\bwait (and see|for it)") == ["wait and see", "wait for it"]


def test_file_names_from_titles():
    assert file_name_for("OTC analgesic counselling") == "otc-analgesic-counselling.md"
    assert file_name_for("Untitled reference", "geo") == "geo.md"
    assert file_name_for("", None) == "reference.md"
    assert file_name_for("../../etc/passwd") == "etc-passwd.md"


def test_history_store_keeps_runs_per_reference(tmp_path):
    store = HistoryStore(tmp_path, keep=3)
    header = make_header(model_name="m", model_sha256="s", prompt="p", mode="observe")
    for _ in range(4):
        store.save("Geo/../x", header, [Done({"tokens": 1})])
    assert reference_key("Geo/../x") == "geo-..-x" and reference_key(None) == reference_key("") == "_no-reference"
    assert all(p.parent.parent == tmp_path for p in store.files("Geo/../x"))
    runs, problems = store.load("Geo/../x")
    assert len(runs) == 3 and not problems
    assert abs(runs[-1].created - time.time()) < 120
    (store.folder("Geo/../x") / "zz.jsonl").write_text("not a trace\n", encoding="utf-8")
    runs, problems = store.load("Geo/../x")
    assert len(runs) == 2 and len(problems) == 1 and "skipped" in problems[0]

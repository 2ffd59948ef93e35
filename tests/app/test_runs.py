"""Runs with the real default model: streaming, blips, stop, close, threshold, live re-score, replay."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtGui import QColor, QTextCursor

from lantern_studio.core.describe import short_text
from lantern_studio.core.events import Done

pytestmark = pytest.mark.model

PROMPT = "What is the capital of France?"


def _run(window, qtbot, mode="observe", max_tokens=40, prompt=PROMPT, timeout=120000):
    window.prompt_bar.mode.setCurrentText(mode)
    window.prompt_bar.max_tokens.setValue(max_tokens)
    window.prompt_bar.prompt.setText(prompt)
    with qtbot.waitSignal(window.session.jobFinished, timeout=timeout) as blocker:
        assert window.run_prompt()
    return blocker.args[0]


def _background(view, index) -> QColor:
    start, length = view._span[index]
    cursor = QTextCursor(view.edit.document())
    cursor.setPosition(start + 1)
    return cursor.charFormat().background().color()


def test_run_streams_coloured_tokens(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    batches = []
    window.session.eventsReady.connect(lambda job, batch: batches.append(len(batch)))
    # a question that brings the rule against naming the city into the model's focus
    job = _run(window, qtbot, "observe", prompt="Name the city that is the capital of France.")
    assert isinstance(job.end, Done), job.end
    view = window.token_view
    tokens = view.transcript.tokens
    assert len(tokens) > 3
    assert view.edit.toPlainText().strip() == view.transcript.answer.strip()
    base = view.edit.palette().base().color()
    coloured = [t for t in tokens if t.error is not None and abs(t.error) > 0.3 and _background(view, t.index) != base]
    assert coloured, "tokens with an error must get a background colour"
    assert "tok/s" in window.speed_label.text() and window.history
    assert len(batches) < len(job.events)  # applied in batches, not one signal per token
    tip = view.tooltip_at(view._span[tokens[0].index][0])
    assert "error" in tip and "top-5" in tip


def test_blips_are_chips_and_select_their_source(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    job = _run(window, qtbot, "blip", max_tokens=40)
    tr = window.token_view.transcript
    assert tr.rules and tr.blips, "the Never rule must fire on 'Paris' in blip mode"
    assert "paris" not in tr.answer.lower()
    text = window.token_view.edit.toPlainText()
    # The chip shows what the reminder said (issue 13: item ids are engineer's words).
    assert f"⚑ {short_text(tr.blips[0].text, 40)}" in text
    rewound = sorted(tr.rewound)
    assert rewound
    start, _ = window.token_view._span[rewound[0]]
    cursor = QTextCursor(window.token_view.edit.document())
    cursor.setPosition(start + 1)
    assert cursor.charFormat().fontStrikeOut()
    window.token_view.blipSelected.emit(tr.blips[0])
    line = window.tab.reference.line_of(tr.blips[0].source_id)
    assert window.tab.editor.textCursor().blockNumber() + 1 == line
    assert window.blips_label.text() == f"blips {len(tr.blips)}"
    assert job.end.stats["blips"] == len(tr.blips)


def test_stop_ends_the_run_at_once(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(2000)
    window.prompt_bar.prompt.setText("Write a long story about a lighthouse keeper.")
    assert window.run_prompt()
    qtbot.waitUntil(lambda: len(window.token_view.transcript.tokens) > 2, timeout=90000)
    with qtbot.waitSignal(window.session.jobFinished, timeout=5000) as blocker:
        window.act_stop.trigger()
    # How fast Stop is belongs to benchmarks/bench_studio.py (stop_ms), not to an assertion here.
    assert blocker.args[0].end.stats["stop_reason"] == "cancelled"
    assert len(window.token_view.transcript.tokens) < 2000
    assert window.prompt_bar.run_button.isEnabled()


def test_closing_during_a_run_is_clean(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.max_tokens.setValue(2000)
    window.prompt_bar.prompt.setText("Write a long story about a lighthouse keeper.")
    assert window.run_prompt()
    qtbot.waitUntil(lambda: len(window.token_view.transcript.tokens) > 1, timeout=90000)
    window.close()  # its duration is measured in benchmarks/bench_studio.py (close_during_run_ms)
    assert not window.session.busy
    # the shared engine is free again: a new run ends normally (not with Failed)
    events = list(engine.run("Hi", None, window.loop_panel.settings.updated(mode="none"),
                             window.prompt_bar.sampling().__class__(max_tokens=2)))
    assert isinstance(events[-1], Done) and events[-1].stats["stop_reason"] != "cancelled"


def test_dragging_the_threshold_changes_the_setting(make_window, qtbot):
    window = make_window()
    line = window.timeline.threshold
    line.setValue(2.75)  # what a drag does, then it reports the end of the drag
    line.sigPositionChangeFinished.emit(line)
    assert window.loop_panel.settings.threshold == pytest.approx(2.75)
    window.loop_panel.set_value("threshold", 1.25)
    assert line.value() == pytest.approx(1.25)


def test_live_rescore_after_edit_without_new_generation(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    _run(window, qtbot, "observe", max_tokens=30)
    tr = window.token_view.transcript
    before = [t.error for t in tr.tokens]
    answer = tr.answer
    runs = len(window.history)
    window.prompt_bar.live.setChecked(True)
    with qtbot.waitSignal(window.session.jobFinished, timeout=30000) as blocker:
        cursor = window.tab.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText("\n# Style\nAlways answer in French, mention Lyon and wine.\n")
    assert blocker.args[0].kind == "rescore"
    after = [t.error for t in window.token_view.transcript.tokens]
    assert window.token_view.transcript.answer == answer
    assert after != before
    assert len(window.history) == runs  # no new generation
    # an unchanged text is not re-scored again
    window._on_live_timeout()
    assert not window.session.busy


def test_trace_replay_without_a_model(make_window, engine, paris_file, qtbot, tmp_path):
    window = make_window(engine)
    window.open_reference(paris_file)
    _run(window, qtbot, "blip", max_tokens=30)
    answer = window.token_view.transcript.answer
    path = window.export_trace(tmp_path / "run.jsonl")
    viewer = make_window()  # no engine
    assert viewer.session.engine is None
    record = viewer.open_trace(path)
    assert record is not None
    assert viewer.token_view.transcript.answer == answer
    assert viewer.token_view.transcript.blips


def test_score_text(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    with qtbot.waitSignal(window.session.jobFinished, timeout=30000):
        assert window.score_text("The capital of France is Paris.", PROMPT)
    tokens = window.token_view.transcript.tokens
    assert tokens and all(t.error is not None for t in tokens)


def test_screenshot_entry_point(tmp_path, paris_file):
    if not __import__("lantern_studio.core.models", fromlist=["x"]).is_installed("smollm2"):
        pytest.skip("the default model smollm2 is not installed")
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "lantern_studio.app.main", "--reference", str(paris_file),
                           "--mode", "blip", "--max-tokens", "30", "--prompt", PROMPT, "--screenshot", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screenshot_with_missing_model_fails_in_one_sentence(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-m", "lantern_studio.app.main", "--model",
                           str(tmp_path / "missing.gguf"), "--screenshot", str(out)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip() and not out.exists()
    assert "Traceback" not in proc.stderr


def test_probes_table(make_window, engine, paris_file, qtbot):
    # Once skipped as "~30 s per run with a Probes section": that was llama.cpp's worker threads
    # (one per core) spinning against another process on a 2-core box, not the Probes section;
    # the session engine now uses one thread (conftest) and each probe run takes well under a second.
    paris_file.write_text(paris_file.read_text() + "\n# Probes\n```yaml\n- prompt: What is the capital of France?\n"
                          "  forbid: [paris]\n```\n", encoding="utf-8")
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.max_tokens.setValue(30)
    with qtbot.waitSignal(window.session.jobFinished, timeout=60000):
        assert window.run_probes(["none", "blip"])
    panel = window.probes_panel
    none, blip = panel.results[(0, "none")], panel.results[(0, "blip")]
    assert not none.passed and blip.passed
    assert panel.table.item(0, panel.modes.index("blip")).text() == "pass"
    assert panel.run_button.isEnabled()

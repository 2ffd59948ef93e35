"""Explain, Preferences, Compare and Export Pack, with the real default model where they need one."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QTextCursor

from lantern_studio.app.compare import answer_token_texts, diff_html, token_diff
from lantern_studio.core.events import Done

PROMPT = "What is the capital of France?"


def _run(window, qtbot, mode="observe", max_tokens=24, prompt=PROMPT):
    window.prompt_bar.mode.setCurrentText(mode)
    window.prompt_bar.max_tokens.setValue(max_tokens)
    window.prompt_bar.prompt.setText(prompt)
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000) as blocker:
        assert window.run_prompt()
    return blocker.args[0]


# -- explain -----------------------------------------------------------------------------------
@pytest.mark.model
def test_explain_heats_the_margin_and_maps_tokens_to_items(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    _run(window, qtbot, "observe")
    assert window.act_explain.shortcut().toString() == "Ctrl+E"
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000) as blocker:
        assert window.explain()
    assert blocker.args[0].kind == "explain" and isinstance(blocker.args[0].end, Done)
    ex = window.explanation
    assert ex is not None and ex.items
    editor = window.tab.editor
    ref = window.tab.reference
    assert editor.heat, "the margin must show a heat per item line"
    for line, (item_id, value) in editor.heat.items():
        assert ref.line_of(item_id) == line
        colour = editor.heat_color(line)
        assert (colour.blue() > colour.red()) == (value > 0)  # blue supports, red pushes away
        assert f"{value:+.3f}" in editor.heat_tooltip(line)
    strongest = max(editor.heat.values(), key=lambda iv: abs(iv[1]))
    weakest = min(editor.heat.values(), key=lambda iv: abs(iv[1]))
    assert editor.heat_color(ref.line_of(strongest[0])).alpha() >= editor.heat_color(ref.line_of(weakest[0])).alpha()
    # clicking a token highlights its most influential item's line
    answer_tokens = window.token_view.transcript.answer_tokens
    tok = answer_tokens[1]
    expected_item, _delta = ex.item_at_offset(len(answer_tokens[0].text))
    window.token_view.select(tok.index)
    assert editor._marked_line == ref.line_of(expected_item) > 0
    assert editor.textCursor().blockNumber() + 1 == editor._marked_line
    assert expected_item in window.statusBar().currentMessage()
    # an edit clears it
    cursor = editor.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.End)
    cursor.insertText("\n")
    assert not editor.heat and window.explanation is None


def test_explain_needs_a_run(make_window, engine, paris_file):
    window = make_window(engine)
    window.open_reference(paris_file)
    assert not window.explain()
    assert "Run a prompt first" in window.statusBar().currentMessage()


# -- preferences ---------------------------------------------------------------------------------
def test_preferences_are_stored_and_applied(make_window, paris_file, qtbot):
    from PySide6.QtWidgets import QApplication

    from lantern_studio.app.preferences import PreferencesDialog
    from lantern_studio.app.theme import apply_theme
    window = make_window()
    window.open_reference(paris_file)
    dlg = PreferencesDialog(window.qsettings, window)
    qtbot.addWidget(dlg)
    dlg.theme.setCurrentText("dark")
    dlg.font_size.setValue(15)
    dlg.threads.setValue(1)
    dlg.chunk.setValue(12)
    dlg.model.setCurrentText("/models/other.gguf")
    dlg.accept()
    window.apply_preferences()
    try:
        s = window.qsettings
        assert s.value("theme") == "dark" and int(s.value("threads")) == 1
        assert int(s.value("loop/chunk")) == 12 and s.value("defaultModel") == "/models/other.gguf"
        assert window.theme == "dark"
        assert QApplication.instance().palette().base().color().lightness() < 80
        assert window.tab.editor.font().pointSize() == 15
        assert window.loop_panel.settings.chunk == 12
        assert "next time a model loads" in window.statusBar().currentMessage()
        edit_menu = [a for a in window.menuBar().actions() if a.text() == "&Edit"][0].menu()
        assert window.act_preferences in edit_menu.actions()
        # a new tab gets the font too
        assert window.new_tab().editor.font().pointSize() == 15
    finally:
        apply_theme(QApplication.instance(), "light")


# -- compare -----------------------------------------------------------------------------------
def test_token_diff_is_token_aligned():
    old = ["The", " capital", " is", " Paris", "."]
    new = ["The", " capital", " is", " in", " an", " atlas", "."]
    ops = token_diff(old, new)
    assert ("delete", " Paris") in ops and ("insert", " in an atlas") in ops
    assert "".join(t for op, t in ops if op != "delete") == "".join(new)
    assert "".join(t for op, t in ops if op != "insert") == "".join(old)
    html = diff_html(ops)
    assert "line-through" in html and "&lt;" not in html


@pytest.mark.model
def test_compare_modes_side_by_side_and_diff(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.max_tokens.setValue(16)
    window.prompt_bar.prompt.setText(PROMPT)
    window.open_compare()
    dlg = window.compare_dialog
    for m, c in dlg.checks.items():
        c.setChecked(m in ("none", "blip"))
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000):
        assert dlg.run_modes()
    assert set(dlg.views) == {"none", "blip"}
    none, blip = dlg.views["none"].transcript, dlg.views["blip"].transcript
    assert none.done and blip.done and none.tokens and blip.tokens
    assert "paris" in none.answer.lower() and "paris" not in blip.answer.lower()
    assert blip.blips and not window.token_view.transcript.tokens  # the main answer view is untouched
    assert dlg.run_button.isEnabled()
    # diff: run, edit the reference, run again
    first = _run(window, qtbot, "none", max_tokens=16)
    assert not dlg.show_diff()
    cursor = window.tab.editor.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.End)
    cursor.insertText("\n# Style\nAnswer in one short sentence.\n")
    second = _run(window, qtbot, "blip", max_tokens=16)
    assert dlg.show_diff()
    old, new, why = window.diff_pair()
    assert old.events == first.events and new.events == second.events and "before the last" in why
    ops = dlg.ops
    assert "".join(t for op, t in ops if op != "delete") == "".join(answer_token_texts(second.events))
    assert any(op in ("insert", "delete") for op, _ in ops)


# -- export pack ---------------------------------------------------------------------------------
@pytest.mark.model
def test_export_pack_then_open_it_shows_trusted(make_window, engine, paris_file, qtbot, tmp_path):
    from lantern_studio.app.dialogs import PackSummaryDialog
    from lantern_studio.core.pack import read_pack
    window = make_window(engine)
    window.open_reference(paris_file)
    _run(window, qtbot, "observe", max_tokens=12)
    dlg = window.export_pack_dialog(exec_=False)
    qtbot.addWidget(dlg)
    assert dlg.key.currentData().endswith("unsigned")  # no keys yet
    assert dlg.generate_key("studio-test")
    assert dlg.key.currentData() == "studio-test"
    dlg.name.setText("Geo pack")
    dlg.version.setText("1.0.0")
    dlg.description.setPlainText("Geography for children.")
    dlg.traces.setChecked(True)
    out = tmp_path / "geo.lantern"
    dlg.out.setText(str(out))
    assert dlg.export() == out
    assert "trusted" in dlg.result.text() and str(out) in dlg.result.text()
    pack = read_pack(out)
    assert pack.verdict == "trusted" and pack.manifest["name"] == "Geo pack"
    assert any(f.startswith("traces/") for f in pack.manifest["files"])
    summary = PackSummaryDialog(pack, window)
    qtbot.addWidget(summary)
    assert summary.verdict == "trusted" and "Trusted signer" in summary.badge.text()
    viewer = make_window()
    assert viewer.open_pack(out)
    assert "[trusted]" in viewer.tabs.tabText(viewer.tabs.currentIndex())


def test_export_pack_errors_are_one_sentence(make_window, paris_file, tmp_path):
    window = make_window()
    window.new_tab()  # never saved
    assert window.export_pack_dialog(exec_=False) is None
    assert "Save the reference" in window.statusBar().currentMessage()
    window.open_reference(paris_file)
    dlg = window.export_pack_dialog(exec_=False)
    dlg.out.setText(str(tmp_path / "missing-dir" / "x.lantern"))
    assert dlg.export() is None
    message = window.statusBar().currentMessage()
    assert message and "Traceback" not in message
    dlg.deleteLater()


# -- long sessions ---------------------------------------------------------------------------------
def test_many_repaints_do_not_abort_the_studio(tmp_path):
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per Python virtual call, so
    ~5,000 repaints abort the process (none_dealloc); pyproject excludes that release."""
    import os
    import subprocess
    import sys
    code = (
        "import lantern_studio.app\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from lantern_studio.app.reference_editor import ReferenceTab\n"
        "from lantern_studio.app.token_view import ErrorLegend\n"
        "app = QApplication([])\n"
        "tab = ReferenceTab('# Intent\\nx\\n'); legend = ErrorLegend(); tab.show(); legend.show()\n"
        "app.processEvents()\n"
        "for _ in range(6000):\n"
        "    legend.repaint(); tab.editor._gutter.repaint()\n"
        "print('ok')\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-500:]


def test_a_headless_window_leaves_the_saved_layout_alone(make_window, tmp_path):
    from PySide6.QtCore import QSettings

    window = make_window()
    window.close()
    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    assert settings.value("window/geometry") is None and settings.value("window/state") is None


def test_every_loop_setting_has_an_explained_editor_within_its_valid_range(qtbot):
    """The loop panel shows every LoopSettings field; each says what it does, and a number
    box never offers a value the settings would refuse."""
    from dataclasses import fields

    from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

    from lantern_studio.app.loop_panel import LoopPanel
    from lantern_studio.core.errors import SettingsError
    from lantern_studio.core.settings import LoopSettings

    panel = LoopPanel()
    qtbot.addWidget(panel)
    for f in fields(LoopSettings):
        w = panel._widgets[f.name]
        assert w.toolTip(), f"{f.name} has no tooltip"
        if isinstance(w, (QSpinBox, QDoubleSpinBox)):
            for bound in (w.minimum(), w.maximum()):
                value = int(bound) if isinstance(w, QSpinBox) else float(bound)
                try:
                    LoopSettings().updated(**{f.name: value})
                except SettingsError as exc:
                    pytest.fail(f"{f.name}'s editor offers {value}: {exc}")

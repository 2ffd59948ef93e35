"""Issue 13 as a domain expert meets it, without a model: every action does something, the
window at 1024×640, dark mode contrast, stale state, findable errors, history after a restart,
words instead of engineer's terms, untrusted text as plain text, preview links."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QEvent, QPoint, QRect, Qt, QUrl
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QInputDialog, QMessageBox, QToolTip

from lantern_studio.app import error_colors as ec
from lantern_studio.core.events import BlipEvent, Done, TokenEvent
from lantern_studio.core.settings import LoopSettings

BROKEN = "---\ntitle: Broken\nslug: broken\n---\n# Never\n- bad detector `regex: (unclosed`\n"


class Dialogs:
    """Every modal the studio can open, recorded and answered at once (nothing blocks)."""

    def __init__(self, monkeypatch) -> None:
        self.opened: list[str] = []
        self.texts: list[str] = []
        record = self._record

        def file_dialog(kind):
            def f(parent=None, caption="", directory="", *a, **k):
                record(f"{kind}:{caption}", str(directory))
                return "", ""
            return staticmethod(f)

        monkeypatch.setattr(QFileDialog, "getOpenFileName", file_dialog("open"))
        monkeypatch.setattr(QFileDialog, "getSaveFileName", file_dialog("save"))
        for name in ("question", "warning", "information", "critical"):
            monkeypatch.setattr(QMessageBox, name, staticmethod(
                lambda parent=None, title="", text="", *a, n=name, **k:
                (record(f"{n}:{title}", text), QMessageBox.StandardButton.Cancel)[1]))
        monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda parent, title, text: record(f"about:{title}", text)))
        monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: (record("input", ""), ("", False))[1]))
        monkeypatch.setattr(QDialog, "exec", lambda dlg: (record(f"dialog:{type(dlg).__name__}", ""), 0)[1])

    def _record(self, what: str, text: str) -> None:
        self.opened.append(what)
        self.texts.append(text)


def _state(window) -> tuple:
    return (window.statusBar().currentMessage(), window.tabs.count(), window.tabs.currentIndex(),
            tuple(d.isVisible() for d in window.findChildren(type(window.answer_dock))),
            window.act_preview.isChecked(), window.tab.text() if window.tab else None,
            window.tab.find_bar.isVisible() if window.tab else None,
            window.tab.editor.document().availableUndoSteps() if window.tab else None,
            window.tab.editor.document().availableRedoSteps() if window.tab else None,
            window.tab.find_bar.replace_edit.isVisible() if window.tab else None,
            window.compare_dialog is not None and window.compare_dialog.isVisible())


def test_every_menu_action_does_something(make_window, paris_file, monkeypatch, qtbot):
    dialogs = Dialogs(monkeypatch)
    window = make_window(interactive=True)
    window.open_reference(paris_file)
    window.tab.editor.insertPlainText("x")  # something to undo
    silent = []
    menus = [a.menu() for a in window.menuBar().actions() if a.menu()]
    quit_action = window.act_quit
    for menu in menus:
        menu.aboutToShow.emit()
        for act in menu.actions():
            if act.isSeparator() or act.menu() is not None or not act.isEnabled() or act is quit_action:
                continue
            n = len(dialogs.opened)
            window.statusBar().clearMessage()
            before = _state(window)
            act.trigger()
            QApplication.processEvents()
            if len(dialogs.opened) == n and _state(window) == before:
                silent.append(act.text())
            if act.isCheckable() and act.isChecked() and act.text().startswith("&Preview"):
                act.trigger()
            if window.tab is not None:
                window.tab.find_bar.hide()
            if window.compare_dialog is not None:
                window.compare_dialog.hide()
            if window.session.busy:
                window.stop()
    assert not silent, f"these actions did nothing: {silent}"
    assert "dialog:ExportPackDialog" in dialogs.opened or "question:Export pack" in dialogs.opened
    assert "dialog:TourDialog" in dialogs.opened and "dialog:PreferencesDialog" in dialogs.opened


def test_export_pack_from_the_menu_opens_the_dialog(make_window, paris_file, monkeypatch):
    dialogs = Dialogs(monkeypatch)
    window = make_window(interactive=True)
    window.open_reference(paris_file)
    window.act_export_pack.trigger()  # triggered(checked=False) must not reach exec_
    assert "dialog:ExportPackDialog" in dialogs.opened


# -- 3: small screens ---------------------------------------------------------------------------
def _in_window(window, widget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


@pytest.mark.parametrize("size", [(1024, 640), (1366, 768), (1920, 1080)])
def test_the_window_works_from_1024x640(make_window, paris_file, qtbot, size):
    window = make_window()
    window.open_reference(paris_file)
    window.resize(*size)
    qtbot.wait(50)
    QApplication.processEvents()
    bar = window.prompt_bar
    frame = window.rect()
    for w in (bar.prompt, bar.mode, bar.run_button, bar.stop_button):
        assert w.isVisible() and frame.contains(_in_window(window, w)), f"{w} is off screen at {size}"
    assert bar.prompt.width() >= 150
    assert bar.more.isVisible() == bar.compact
    assert bar.compact == (bar.width() < bar._full_width())  # what does not fit is behind the chevron
    assert window.tab.editor.width() >= 340, "the editor must keep a readable width"
    assert window.token_view.edit.width() >= 280
    save = window.loop_panel.save_button
    if not save.visibleRegion().isEmpty():  # the loop panel may be a tab behind the answer
        assert not _in_window(window, save).intersects(_in_window(window, window.timeline))
        assert frame.contains(_in_window(window, save))
    assert not _in_window(window, window.tabs).intersects(_in_window(window, window.timeline))
    assert not _in_window(window, window.tabs).intersects(_in_window(window, window.token_view))


def test_the_chevron_holds_the_sampling_settings(make_window, qtbot):
    window = make_window()
    bar = window.prompt_bar
    bar.set_compact(True)
    bar.more.click()
    assert bar._popup.isVisible() and bar.max_tokens.isVisibleTo(bar._popup)
    bar.max_tokens.setValue(42)
    assert bar.sampling().max_tokens == 42
    bar._popup.hide()
    bar.set_compact(False)
    assert bar.extras.parent() is bar and bar.max_tokens.value() == 42


# -- 4: dark mode ----------------------------------------------------------------------------------
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_token_colours_keep_aa_contrast(theme, qtbot):
    from lantern_studio.app.error_timeline import ErrorTimeline
    from lantern_studio.app.theme import apply_theme
    from lantern_studio.app.token_view import TokenView, rgb
    app = QApplication.instance()
    try:
        apply_theme(app, theme)
        view = TokenView()
        qtbot.addWidget(view)
        text, base = rgb(view.edit.palette().text().color()), rgb(view.edit.palette().base().color())
        for k in range(-100, 101):
            bg = ec.shade(k / 100, base, theme)
            assert ec.contrast(text, bg) >= 4.5, (theme, k, bg)
        rewound = ec.THEME_COLORS[theme]["rewound"]
        assert ec.contrast(rewound, base) >= 4.5
        # the formats the view really gives tokens, over the whole range of errors
        events = [TokenEvent(i, 0, f" w{i}", -1.0, -1.0 - e, e, 0.1) for i, e in
                  enumerate([x / 4 for x in range(-40, 41)])]
        view.apply_events(events)
        from PySide6.QtGui import QTextCursor
        for i, _e in enumerate(events):
            start, _len = view._span[i]
            cursor = QTextCursor(view.edit.document())
            cursor.setPosition(start + 1)
            fmt = cursor.charFormat()
            assert ec.contrast(rgb(fmt.foreground().color()), rgb(fmt.background().color())) >= 4.5
        timeline = ErrorTimeline()
        qtbot.addWidget(timeline)
        timeline.set_theme(theme)
        plot_bg = rgb(timeline.plot.backgroundBrush().color())
        for key in ("label", "blip_label"):
            assert ec.contrast(timeline.colors()[key][:3], plot_bg) >= 4.5, (theme, key)
    finally:
        apply_theme(app, "light")


def test_the_fixed_scale_means_the_same_in_every_run(qtbot):
    from lantern_studio.app.token_view import TokenView
    view = TokenView()
    qtbot.addWidget(view)
    view.apply_events([TokenEvent(0, 0, "a", -1, -1.5, 0.5), TokenEvent(1, 0, "b", -1, -9, 8.0), Done({})])
    colour_small = view.token_color(0.5).name()
    view.clear()
    view.apply_events([TokenEvent(0, 0, "a", -1, -1.5, 0.5), TokenEvent(1, 0, "b", -1, -1.6, 0.6), Done({})])
    assert view.token_color(0.5).name() == colour_small  # same error, same colour
    assert "20×" in view.legend.words()[1] and "less likely" in view.legend.words()[1]
    view.set_scale_kind("relative")
    assert view.token_color(0.5).name() != colour_small  # stretched to this run
    assert "spread" in view.scale_box.toolTip()


# -- 5: models -------------------------------------------------------------------------------------
def test_open_gguf_starts_in_the_models_directory(make_window, monkeypatch):
    from lantern_studio.paths import models_dir
    dialogs = Dialogs(monkeypatch)
    window = make_window()
    window.act_open_model.trigger()
    assert dialogs.opened[-1].startswith("open:") and dialogs.texts[-1] == str(models_dir())


# -- 6: the Models menu ------------------------------------------------------------------------------
def test_models_menu_lists_builtin_installed_and_found(make_window, monkeypatch, tmp_path):
    from lantern_studio.app import models_menu
    found = tmp_path / "lmstudio" / "qwen.gguf"
    rows = [
        {"name": "smollm2", "title": "SmolLM2-135M-Instruct (Q4_1)", "builtin": True, "installed": True,
         "size": 98_362_432, "path": "/m/smol.gguf", "license": "Apache-2.0", "default": True, "kind": "instruct"},
        {"name": "gemma3-270m", "title": "Gemma 3 270M (Q4_K_M)", "builtin": True, "installed": False,
         "size": 253_113_024, "path": "/m/gemma.gguf", "license": "Gemma", "default": False},
        {"name": "mine", "title": "mine.gguf", "builtin": False, "installed": True, "size": 1_500_000_000,
         "path": "/m/mine.gguf", "license": "", "default": False},
        {"name": "qwen", "title": "qwen.gguf", "builtin": False, "installed": True, "size": 400_000_000,
         "path": str(found), "license": "", "default": False, "kind": "base", "source": "lmstudio"},
    ]
    monkeypatch.setattr(models_menu, "list_models", lambda: rows)
    window = make_window()
    loads, pulls = [], []
    monkeypatch.setattr(window, "load_model", loads.append)
    monkeypatch.setattr(window, "pull_model", pulls.append)
    menu = window.models_menu
    menu._load, menu._pull = window.load_model, window.pull_model
    menu.aboutToShow.emit()
    texts = [a.text() for a in menu.actions()]
    smol = next(t for t in texts if t.startswith("SmolLM2"))
    assert "default" in smol and "instruct" in smol and "98 MB" in smol
    assert any(t.startswith("Pull Gemma 3 270M") for t in texts)
    assert any("mine.gguf" in t and "1.5 GB" in t for t in texts)
    qwen = next(t for t in texts if t.startswith("qwen.gguf"))
    assert "base" in qwen and "LM Studio" in qwen
    next(a for a in menu.actions() if a.text() == qwen).trigger()
    assert str(loads[-1]) == str(found)
    next(a for a in menu.actions() if a.text().startswith("Pull Gemma")).trigger()
    assert pulls == ["gemma3-270m"]


def test_models_menu_from_the_real_list(make_window):
    window = make_window()
    window.models_menu.aboutToShow.emit()
    texts = [a.text() for a in window.models_menu.actions()]
    assert any("SmolLM2" in t and "default" in t for t in texts)
    assert any("Gemma 3 270M" in t for t in texts)
    assert window.act_open_model in window.models_menu.actions()


# -- 7: stale state --------------------------------------------------------------------------------
def test_threshold_label_follows_the_panel_and_negative_is_refused(make_window):
    window = make_window()
    line = window.timeline.threshold
    line.setValue(2.75)
    line.sigPositionChangeFinished.emit(line)
    assert window.loop_panel.settings.threshold == pytest.approx(2.75)
    window.loop_panel.set_value("threshold", 1.25)
    assert "1.25" in line.label.toPlainText()
    assert not window.loop_model.update("threshold", -1.0)
    assert window.loop_panel.settings.threshold == pytest.approx(1.25)
    assert "0 or more" in window.statusBar().currentMessage()
    assert window.loop_panel.editor("threshold").minimum() == 0
    line.setValue(-3.0)  # dragged below zero
    line.sigPositionChangeFinished.emit(line)
    assert window.loop_panel.settings.threshold == 0.0 and line.value() == 0.0


def test_mode_and_settings_live_in_one_place(make_window):
    window = make_window()
    window.prompt_bar.mode.setCurrentText("observe")
    assert window.loop_panel.editor("mode").currentText() == "observe"
    window.loop_panel.editor("mode").setCurrentText("guide")
    assert window.prompt_bar.mode.currentText() == "guide" == window.loop_model.settings.mode


def test_status_bar_shows_only_the_current_tabs_parse_error(make_window, paris_file, tmp_path):
    window = make_window()
    bad = tmp_path / "broken.md"
    bad.write_text(BROKEN, encoding="utf-8")
    window.open_reference(bad)
    error = window.tab.error
    assert error and window.statusBar().currentMessage() == error  # shown on open
    assert window.parse_banner.isVisible() and "line" in window.parse_banner.text()
    assert window.parse_label.text()
    window.open_reference(paris_file)
    assert window.statusBar().currentMessage() != error
    assert not window.parse_label.text() and not window.parse_banner.isVisible()
    window.tabs.setCurrentIndex(0)
    assert window.parse_label.text()


# -- 8: errors that can be found -------------------------------------------------------------------
def test_parse_error_tooltip_on_every_hover(make_window, tmp_path, qtbot):
    window = make_window()
    bad = tmp_path / "broken.md"
    bad.write_text(BROKEN, encoding="utf-8")
    tab = window.open_reference(bad)
    window.resize(1600, 900)
    window.answer_dock.hide()
    window.loop_dock.hide()
    QApplication.processEvents()
    editor = tab.editor
    block = editor.document().findBlockByNumber(5)  # line 6: the bad detector
    y = int(editor.blockBoundingGeometry(block).translated(editor.contentOffset()).center().y())
    assert editor.viewport().width() > 420
    for x in (5, 140, 410):  # on the text, and past the end of the line (where hovers were lost)
        QToolTip.hideText()
        pos = QPoint(x, y)
        QApplication.sendEvent(editor.viewport(), QHelpEvent(QEvent.Type.ToolTip, pos, editor.viewport().mapToGlobal(pos)))
        assert QToolTip.text() == tab.error, f"no tooltip at x={x}"


def test_outline_keeps_the_last_good_version_and_names_the_error(make_window, paris_file, qtbot):
    window = make_window()
    tab = window.open_reference(paris_file)
    count = window.outline.topLevelItemCount()
    tab.editor.appendPlainText("\n# Never\n- broken `regex: (`")
    tab.reparse()
    assert window.outline.topLevelItemCount() == count
    assert window.parse_banner.isVisible()
    window.parse_banner.click()
    assert tab.editor.textCursor().blockNumber() + 1 == int(tab.error.split("line ")[1].split(":")[0])


def test_a_non_zip_pack_names_the_file(make_window, tmp_path):
    window = make_window()
    fake = tmp_path / "not-a-pack.lantern"
    fake.write_text("hello", encoding="utf-8")
    assert not window.open_pack(fake)
    assert "not-a-pack.lantern" in window.statusBar().currentMessage()


def test_unsaved_changes_question_names_the_file(make_window, paris_file, monkeypatch):
    dialogs = Dialogs(monkeypatch)
    window = make_window(interactive=True)
    window.open_reference(paris_file)
    window.tab.editor.appendPlainText("more")
    window.close()  # Cancel: stays open
    assert window.isVisible()
    assert str(paris_file.resolve()) in dialogs.texts[-1]
    window.tab.save()


def test_ctrl_f_in_the_editor_opens_find(make_window, paris_file, qtbot):
    from PySide6.QtTest import QTest
    window = make_window()
    tab = window.open_reference(paris_file)
    window.activateWindow()
    QTest.qWaitForWindowActive(window, 2000)
    tab.editor.setFocus()
    text = tab.text()
    QTest.keyClick(tab.editor, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert tab.find_bar.isVisible() and tab.text() == text


# -- 9: history after a restart -------------------------------------------------------------------
def _store_run(slug: str, prompt: str) -> None:
    from lantern_studio.core.history import HistoryStore
    from lantern_studio.core.trace import make_header
    HistoryStore().save(slug, make_header(model_name="m", model_sha256="abc", prompt=prompt, mode="observe",
                                          reference_slug=slug, reference_sha256="r"),
                        [TokenEvent(0, 1, "Hi", -1.0, -1.2, 0.2), Done({"tokens": 1, "stop_reason": "max_tokens"})])


def test_history_survives_a_restart_and_skips_bad_files(make_window, paris_file):
    from lantern_studio.core.history import HistoryStore
    _store_run("geo", "What is the capital of France?")
    bad = HistoryStore().folder("geo") / "99999999-zzz-broken.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    window = make_window()
    window.open_reference(paris_file)
    assert [e.prompt for e in window.history] == ["What is the capital of France?"]
    assert window.history_view.count() == 1 and "capital" in window.history_view.item(0).text()
    assert "skipped" in window.statusBar().currentMessage()
    window.history_view.itemClicked.emit(window.history_view.item(0))
    assert window.token_view.transcript.answer == "Hi"


def test_history_is_bounded_per_reference(tmp_path):
    from lantern_studio.core.history import HistoryStore
    store = HistoryStore(tmp_path / "h", keep=5)
    for i in range(8):
        store.save("geo", {"format": "lantern-trace", "version": 1, "mode": "observe", "prompt": str(i)}, [Done({})])
    runs, problems = store.load("geo")
    assert [r.trace.header["prompt"] for r in runs] == ["3", "4", "5", "6", "7"] and not problems
    assert store.load("other") == ([], [])


# -- words and pictures ----------------------------------------------------------------------------
def test_new_reference_template_and_save_name_from_the_title(make_window, monkeypatch):
    dialogs = Dialogs(monkeypatch)
    window = make_window(interactive=True)
    tab = window.new_tab()
    ref = tab.reference
    assert ref is not None and ref.probes and any(s.kind == "blips" and s.items for s in ref.sections)
    tab.replace_text_undoably(tab.text().replace("title: Untitled reference", "title: OTC analgesic counselling"))
    tab.reparse()
    window.act_save.trigger()
    assert dialogs.opened[-1] == "save:Save reference"
    assert dialogs.texts[-1].endswith("otc-analgesic-counselling.md")


def test_tooltips_and_chips_speak_plainly(qtbot):
    from lantern_studio.app.token_view import TokenView, token_tooltip
    view = TokenView()
    qtbot.addWidget(view)
    tok = TokenEvent(0, 0, " Paris", -0.1, -2.585, 2.485, 0.3)
    blip = BlipEvent(1, "Say that the answer should be checked in an atlas.", "always.1", "drift above threshold")
    view.apply_events([tok, blip])
    tip = token_tooltip(tok)
    assert "the reference makes this word 12× less likely".lower() in tip.lower()
    text = view.edit.toPlainText()
    assert "⚑ Say that the answer should be checked" in text and "always.1" not in text
    assert "always.1" in view.tooltip_at(view._starts[1] + 1)  # the id is still findable


def test_probe_failures_in_words_with_leaks_and_degenerate_counts(qtbot):
    from lantern_studio.app.probes_panel import ProbesPanel
    from lantern_studio.core.probes import ProbeResult
    panel = ProbesPanel()
    qtbot.addWidget(panel)
    panel.set_probes(["How much paracetamol?", "Hi"])
    failed = ProbeResult("otc", 1, "How much paracetamol?", "none", False, "expect /4 ?(g|grams)|4,?000 ?mg/",
                         0, 30.0, "Take some.")
    panel.add_result(failed)
    cell = panel.table.item(0, panel.modes.index("none"))
    assert cell.text().startswith("did not mention anything like “4 g”")
    assert "expect /4 ?(g|grams)|4,?000 ?mg/" in cell.toolTip()
    leak = SimpleNamespace(**{**failed.to_json(), "probe": 2, "passed": True, "failed": None,
                              "leak": "a heading of the reference", "degenerate": None})
    panel.add_result(leak)
    assert panel.table.item(1, panel.modes.index("none")).text() == "leak"
    assert "leak" in panel.summary.text() and "0/2 pass" not in panel.summary.text()


def test_quick_tour_and_first_run_hint(make_window, monkeypatch):
    dialogs = Dialogs(monkeypatch)
    window = make_window()
    assert window.hint.isVisibleTo(window)
    window.hint.tourRequested.emit()
    assert "dialog:TourDialog" in dialogs.opened
    assert not window.hint.isVisibleTo(window)
    again = make_window()
    assert not again.hint.isVisibleTo(again)


# -- untrusted text, preview links ---------------------------------------------------------------
def test_pack_text_is_plain_and_the_badge_shows_the_fingerprint(make_window, paris_file, tmp_path, qtbot):
    from lantern_studio.app.dialogs import PackSummaryDialog
    from lantern_studio.core.keys import KeyStore
    from lantern_studio.core.pack import export_pack, read_pack
    store = KeyStore()
    info = store.generate("alice")
    out = export_pack([paris_file], tmp_path / "p.lantern", name="<b>Bold</b>",
                      description="<img src='http://example.org/x.png'> <a href='x'>click</a>",
                      signing_key=store.load_private("alice"))
    window = make_window()
    dlg = PackSummaryDialog(read_pack(out), window)
    qtbot.addWidget(dlg)
    for label in dlg.labels.values():
        assert label.textFormat() == Qt.TextFormat.PlainText
    assert dlg.labels["description"].text().startswith("<img")
    assert info.fingerprint in dlg.labels["signer"].text() and "alice" in dlg.labels["signer"].text()


def test_preview_links_are_routed(make_window, paris_file):
    window = make_window()
    tab = window.open_reference(paris_file)
    tab.set_preview_visible(True)
    assert window.open_preview_link(tab, QUrl("#never")) == "scrolled"
    tab.preview.linkActivated.emit(QUrl("https://example.org/dose"))
    assert "https://example.org/dose" in window.statusBar().currentMessage()
    assert window.open_preview_link(tab, QUrl("file:///etc/passwd")) == "refused"


def test_loading_a_trace_with_hostile_header_is_plain(make_window, tmp_path):
    from lantern_studio.core.trace import make_header, write_trace
    path = tmp_path / "t.jsonl"
    header = make_header(model_name="<b>evil</b>", model_sha256="", prompt="<i>p</i>", mode="observe")
    header["loop"] = {"threshold": "not a number"}
    header["sampling"] = {"temperature": 99}
    write_trace(path, header, [Done({"tokens": 0})])
    window = make_window()
    entry = window.open_trace(path)
    assert entry is not None and entry.loop.threshold == LoopSettings().threshold and entry.sampling.temperature == 0.0
    assert json.loads(path.read_text().splitlines()[0])["model"]["name"] == "<b>evil</b>"

"""The studio's main window: it lays out the views and wires the actions.

The work is elsewhere: ``StudioController`` (session, history, live re-runs) does what the
actions ask; ``RunModel`` and ``LoopModel`` hold what the views show; ``DocumentTabs`` keeps
the reference tabs and their files.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QToolBar, QVBoxLayout, QWidget)

from lantern_studio.core.errors import LanternError
from lantern_studio.core.reference import Reference
from lantern_studio.core.settings import EngineSettings, LoopSettings
from lantern_studio.paths import models_dir, resources_dir

from .controller import StudioController
from .documents import DocumentTabs
from .error_timeline import ErrorTimeline
from .history_view import HistoryView
from .loop_panel import LoopPanel
from .models_menu import ModelsMenu
from .outline import OutlineTree
from .preferences import preferred_chunk, preferred_font
from .probes_panel import ProbesPanel
from .prompt_bar import PromptBar
from .reference_editor import ReferenceTab
from .run_model import HistoryEntry, LoopModel, RunModel
from .session import EngineSession
from .studio_actions import StudioActions
from .theme import resolve_theme
from .token_view import TokenView
from .tour import FirstRunHint

AUTOSAVE_MS = 4000
WIDE_MIN = 1280  # below this width the loop panel shares the answer's place as a tab


class MainWindow(StudioActions, QMainWindow):
    """The studio. ``interactive = False`` (tests, screenshots) turns dialogs into status messages."""

    def __init__(self, settings: QSettings | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.interactive = interactive
        self.qsettings = settings or QSettings()
        self.setWindowTitle("Lantern Studio")
        # Parse errors, token values and Explain are read in tooltips: show them also while
        # another window (the Compare dialog, a terminal) has the focus.
        self.setAttribute(Qt.WidgetAttribute.WA_AlwaysShowToolTips, True)
        icon = resources_dir() / "icons" / "lantern-studio.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.theme = resolve_theme(str(self.qsettings.value("theme", "light")))
        self.loop_model = LoopModel(LoopSettings(chunk=preferred_chunk(self.qsettings)), self)
        self.run_model = RunModel(self)
        self.session = EngineSession(self)
        self.controller = StudioController(self.session, self.run_model, self.loop_model, parent=self)
        self.explanation = None  # the last Explain result (core.explain.Explanation)
        self.compare_dialog = None
        self._closing = False
        self._wide: bool | None = None
        self._shown_parse_error: str | None = None

        self.tabs = DocumentTabs(self.qsettings, interactive, self.theme)
        self.tabs.editor_font = preferred_font(self.qsettings)
        self.setCentralWidget(self.tabs)
        self.token_view = TokenView(self.run_model)
        self.token_view.set_scale_kind(str(self.qsettings.value("answer/scale", "fixed")))
        self.timeline = ErrorTimeline(self.run_model, self.loop_model)
        self.timeline.set_theme(self.theme)
        self.loop_panel = LoopPanel(self.loop_model)
        self.prompt_bar = PromptBar(self.loop_model)
        self.outline = OutlineTree()
        self.history_view = HistoryView(self.controller)
        self.probes_panel = ProbesPanel()
        self.hint = FirstRunHint()
        self.hint.setVisible(not self.qsettings.value("tour/seen", False, type=bool))
        answer = QWidget()
        lay = QVBoxLayout(answer)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.hint)
        lay.addWidget(self.token_view)
        answer.setMinimumWidth(300)
        outline_box = QWidget()
        lay = QVBoxLayout(outline_box)
        lay.setContentsMargins(0, 0, 0, 0)
        self.parse_banner = QPushButton()
        self.parse_banner.setFlat(True)
        self.parse_banner.setStyleSheet("text-align: left; color: #c0262d; padding: 4px;")
        self.parse_banner.hide()
        lay.addWidget(self.parse_banner)
        lay.addWidget(self.outline, 1)
        Area = Qt.DockWidgetArea
        self.answer_dock = self._dock("Answer", answer, Area.RightDockWidgetArea)
        self.loop_dock = self._dock("Loop", self.loop_panel, Area.RightDockWidgetArea)
        self.timeline_dock = self._dock("Error timeline", self.timeline, Area.BottomDockWidgetArea)
        self.outline_dock = self._dock("Outline", outline_box, Area.LeftDockWidgetArea)
        self.history_dock = self._dock("History", self.history_view, Area.LeftDockWidgetArea)
        self.probes_dock = self._dock("Probes", self.probes_panel, Area.BottomDockWidgetArea)
        self.tabifyDockWidget(self.timeline_dock, self.probes_dock)
        self.timeline_dock.raise_()
        self.tabifyDockWidget(self.outline_dock, self.history_dock)
        self.outline_dock.raise_()
        self.outline_dock.setMinimumWidth(150)

        self.model_label = QLabel("no model")
        self.speed_label = QLabel("– tok/s")
        self.context_label = QLabel("context –")
        self.blips_label = QLabel("blips 0")
        self.parse_label = QLabel()
        self.parse_label.setStyleSheet("color: #c0262d;")
        for label in (self.model_label, self.parse_label):
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.load_bar = QProgressBar(maximumWidth=160, maximum=100)
        self.load_bar.hide()
        for w in (self.parse_label, self.load_bar, self.model_label, self.speed_label, self.context_label,
                  self.blips_label):
            self.statusBar().addPermanentWidget(w)

        self.make_actions()
        self.models_menu = ModelsMenu(self, self.load_model, self.pull_model, self.open_model_dialog,
                                      lambda: self.session.model_source)
        self.menuBar().insertMenu(self.view_menu.menuAction(), self.models_menu)
        self.act_open_model = self.models_menu.act_open
        self._make_toolbars()
        self._connect()
        self._autosave_timer = QTimer(self, interval=AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._autosave_timer.start()
        self.setAcceptDrops(True)
        self.setMinimumSize(960, 600)
        screen = self.screen().availableGeometry()  # never larger than the screen it opens on
        self.resize(max(960, min(1440, screen.width())), max(600, min(900, screen.height())))
        self._restore_layout()

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_").lower() + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _make_toolbars(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        for a in (self.act_new, self.act_open, self.act_save, None, self.act_preview, None, self.act_explain,
                  self.act_compare):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.addToolBar(tb)
        self.addToolBarBreak()
        prompt = QToolBar("Prompt", self)
        prompt.setObjectName("prompt_toolbar")
        prompt.setMovable(False)
        prompt.addWidget(self.prompt_bar)
        self.addToolBar(prompt)

    def _connect(self) -> None:
        s, c = self.session, self.controller
        s.modelLoading.connect(self._on_model_loading)
        s.loadProgress.connect(lambda v: self.load_bar.setValue(int(v * 100)))
        s.modelLoaded.connect(self._on_model_loaded)
        s.modelFailed.connect(self._on_model_failed)
        c.message.connect(self.show_status)
        c.error.connect(self.report_error)
        c.runningChanged.connect(self._set_running)
        c.statsChanged.connect(self._show_stats)
        c.reference_source = self.current_reference
        c.prompt_source = lambda: self.prompt_bar.prompt.text()
        c.sampling_source = self.prompt_bar.sampling
        t = self.tabs
        t.currentChanged.connect(self._on_tab_changed)
        t.tabParsed.connect(self._on_parsed)
        t.tabParseError.connect(lambda tab, _m: self._update_parse_state(tab))
        t.tabEdited.connect(self._on_reference_edited)
        t.tabAdded.connect(lambda tab: tab.preview.linkActivated.connect(
            lambda url, t=tab: self.open_preview_link(t, url)))
        t.tabOpened.connect(self._on_tab_opened)
        t.recentChanged.connect(self.update_recent_menu)
        t.message.connect(self.show_status)
        t.error.connect(self.report_error)
        self.prompt_bar.runRequested.connect(self.run_prompt)
        self.prompt_bar.stopRequested.connect(self.stop)
        self.prompt_bar.live.toggled.connect(c.set_live)
        self.loop_panel.saveRequested.connect(self.save_loop_to_reference)
        self.loop_model.invalid.connect(lambda m: self.show_status(m, 10000))
        self.timeline.tokenClicked.connect(lambda i: self.token_view.select(i))
        self.token_view.tokenSelected.connect(self._on_token_selected)
        self.token_view.blipSelected.connect(self._on_blip_selected)
        self.token_view.ruleSelected.connect(lambda hit: self.mark_source(hit.source_id))
        self.token_view.scaleChanged.connect(lambda k: self.qsettings.setValue("answer/scale", k))
        self.outline.lineActivated.connect(self._goto_line)
        self.parse_banner.clicked.connect(self._goto_error)
        self.probes_panel.runAllRequested.connect(self.run_probes)
        self.probes_panel.cancelRequested.connect(self.stop)
        self.probes_panel.answerRequested.connect(self._show_probe_answer)
        self.history_view.entryActivated.connect(self.show_record)
        self.hint.tourRequested.connect(self.show_tour)
        self.hint.dismissed.connect(lambda: self.qsettings.setValue("tour/seen", True))

    def _restore_layout(self) -> None:
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and self.restoreState(state):
            return
        self.arrange_docks(force=True)

    def arrange_docks(self, force: bool = False) -> None:
        """Wide windows show the loop panel beside the answer; narrower ones stack it as a tab,
        so the editor and the answer keep a readable width."""
        wide = self.width() >= WIDE_MIN
        if wide == self._wide and not force:
            return
        self._wide = wide
        if wide:
            self.splitDockWidget(self.answer_dock, self.loop_dock, Qt.Orientation.Horizontal)
            self.resizeDocks([self.outline_dock], [220], Qt.Orientation.Horizontal)
            self.resizeDocks([self.answer_dock, self.loop_dock], [520, 240], Qt.Orientation.Horizontal)
        else:
            self.tabifyDockWidget(self.answer_dock, self.loop_dock)
            self.answer_dock.raise_()
            self.resizeDocks([self.outline_dock], [170], Qt.Orientation.Horizontal)
            self.resizeDocks([self.answer_dock], [max(320, self.width() * 2 // 5)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.timeline_dock], [max(140, min(230, self.height() // 4))], Qt.Orientation.Vertical)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._wide is not None:
            self.arrange_docks()

    # -- status ------------------------------------------------------------------------------
    def show_status(self, message: str, timeout: int = 8000) -> None:
        self.statusBar().showMessage(message, timeout)

    def report_error(self, message: str) -> None:
        """One sentence to the user: always in the status bar, in a dialog when interactive."""
        self.show_status(message, 15000)
        if self.interactive:
            QMessageBox.warning(self, "Lantern Studio", message)

    def _set_running(self, running: bool) -> None:
        self.prompt_bar.set_running(running)
        self.act_run.setEnabled(not running and self.session.engine is not None)
        self.act_stop.setEnabled(running)
        if not running:
            self.probes_panel.set_running(False)

    def _show_stats(self, stats: dict) -> None:
        if "tokens_per_s" in stats:
            v = stats["tokens_per_s"]
            self.speed_label.setText("– tok/s" if v is None else f"{v:.1f} tok/s")
        if "context_used" in stats or "context_size" in stats:
            used, size = stats.get("context_used"), stats.get("context_size")
            self.context_label.setText(f"context {'–' if used is None else used}/{size or '–'}")
        if "blips" in stats:
            self.blips_label.setText(f"blips {stats['blips']}")

    # -- tabs --------------------------------------------------------------------------------
    @property
    def tab(self) -> ReferenceTab | None:
        return self.tabs.tab

    def tab_list(self) -> list[ReferenceTab]:
        return self.tabs.tab_list()

    def add_tab(self, text: str, path: Path | None = None, dirty: bool = False) -> ReferenceTab:
        return self.tabs.add_tab(text, path, dirty)

    def new_tab(self) -> ReferenceTab:
        return self.tabs.new_tab()

    def open_reference(self, path: str | Path) -> ReferenceTab | None:
        return self.tabs.open_reference(path)

    def close_tab(self, index: int) -> bool:
        return self.tabs.close_tab(index)

    def save_tab(self, tab: ReferenceTab, path: Path | None = None) -> bool:
        return self.tabs.save_tab(tab, path)

    def autosave_now(self) -> None:
        self.tabs.autosave_now()

    def recover_autosaves(self) -> int:
        return self.tabs.recover_autosaves()

    def _on_tab_opened(self, tab: ReferenceTab) -> None:
        ref = tab.reference
        if ref is not None:
            loop = ref.loop
            if "chunk" not in ref.loop_given:  # the reference does not say: the user's preference
                loop = loop.updated(chunk=preferred_chunk(self.qsettings))
            self.loop_model.set_settings(loop)
            self.controller.load_history(ref.slug)

    def _on_tab_changed(self, _index: int) -> None:
        tab = self.tab
        self.outline.set_reference(tab.reference if tab else None)
        self._update_parse_state(tab)
        if tab is not None:
            self.act_preview.setChecked(tab.preview.isVisible())
            if tab.reference is not None:
                self.controller.load_history(tab.reference.slug)

    def _on_parsed(self, tab: ReferenceTab, ref: Reference) -> None:
        if tab is not self.tab:
            return
        self.outline.set_reference(ref)
        self._update_parse_state(tab)
        prompts = [p.prompt for p in ref.probes]
        if prompts != getattr(self, "_probe_prompts", None) and not self.session.busy:
            self._probe_prompts = prompts
            self.probes_panel.set_probes(prompts)

    def _update_parse_state(self, tab: ReferenceTab | None) -> None:
        """The current tab's parse error, and only the current tab's: status bar and outline."""
        error = tab.error if tab is not None else None
        self.parse_label.setText("⚠ the reference does not parse" if error else "")
        self.parse_label.setToolTip(error or "")
        self.parse_banner.setVisible(bool(error))
        if error:
            self.parse_banner.setText(f"⚠ {error}\n(click to go to the line; the outline shows the last "
                                      "version that parsed)")
            self.parse_banner.setToolTip(error)
            if tab is self.tab and self._shown_parse_error != error:
                self._shown_parse_error = error
                self.show_status(error, 10000)
        elif self._shown_parse_error is not None:
            if self.statusBar().currentMessage() == self._shown_parse_error:
                self.statusBar().clearMessage()  # another tab's error must not linger
            self._shown_parse_error = None

    def _goto_error(self) -> None:
        from .reference_editor import error_line
        tab = self.tab
        if tab is not None and tab.error:
            line = error_line(tab.error)
            if line:
                self._goto_line(line)

    def _editor_call(self, name: str) -> None:
        if self.tab is not None:
            getattr(self.tab.editor, name)()

    def _find(self, replace: bool) -> None:
        if self.tab is not None:
            self.tab.find_bar.open(replace)

    def _toggle_preview(self, checked: bool) -> None:
        if self.tab is not None:
            self.tab.set_preview_visible(checked)

    def _goto_line(self, line: int) -> None:
        if self.tab is not None:
            self.tab.editor.mark_line(line)
            self.tab.editor.setFocus()

    def open_preview_link(self, tab: ReferenceTab, url: QUrl) -> str:
        """Route a link clicked in the preview: #anchors scroll; web links open in the browser
        after asking; nothing else is followed. Returns what was done."""
        if url.scheme() in ("", "file") and url.hasFragment() and not url.path():
            tab.preview.scrollToAnchor(url.fragment())
            return "scrolled"
        if url.scheme() in ("http", "https", "mailto"):
            if self.interactive and QMessageBox.question(
                    self, "Open link", f"Open {url.toDisplayString()} in your browser?") \
                    == QMessageBox.StandardButton.Yes:
                QDesktopServices.openUrl(url)
                return "opened"
            self.show_status(f"Link: {url.toDisplayString()}", 8000)
            return "asked"
        self.show_status("The preview follows only web links and links inside the reference.", 8000)
        return "refused"

    # -- model -------------------------------------------------------------------------------
    def load_model(self, model: str | Path | None = None) -> None:
        # llama.cpp's worker threads spin while they wait: automatic leaves one core to the UI
        # thread, which would otherwise stall while a run keeps every core busy.
        threads = int(self.qsettings.value("threads", 0) or 0) or max(1, (os.cpu_count() or 2) - 1)
        self.session.load(model or self.qsettings.value("defaultModel") or None, EngineSettings(n_threads=threads))

    def _on_model_loading(self, name: str) -> None:
        self.load_bar.setValue(0)
        self.load_bar.show()
        self.show_status(f"Loading model {Path(name).name}…", 0)

    def _on_model_loaded(self, name: str) -> None:
        self.load_bar.hide()
        self.model_label.setText(name)
        self._set_running(self.session.busy)
        self.show_status(f"Model {name} loaded.", 4000)

    def _on_model_failed(self, message: str) -> None:
        """A failed load keeps the model that was working (the session never dropped it)."""
        self.load_bar.hide()
        engine = self.session.engine
        self.model_label.setText(engine.model_name if engine is not None else "no model")
        self._set_running(self.session.busy)
        lower = message.lower()
        hint = " Pull it from the Models menu." if engine is None and "not installed" in lower else ""
        kept = f" Still using {engine.model_name}." if engine is not None else ""
        self.report_error(message + hint + kept)

    def open_model_dialog(self) -> None:
        start = models_dir() if models_dir().is_dir() else Path.home()
        path, _ = QFileDialog.getOpenFileName(self, "Open model", str(start), "GGUF models (*.gguf)")
        if path:
            self.load_model(Path(path))

    def pull_model(self, name: str) -> None:
        from .dialogs import pull_with_progress
        if pull_with_progress(self, name):
            self.load_model(name)

    # -- history -----------------------------------------------------------------------------
    @property
    def history(self) -> list[HistoryEntry]:
        return self.controller.history

    @property
    def current_run(self) -> HistoryEntry | None:
        return self.controller.current

    def show_record(self, entry: HistoryEntry) -> None:
        self.controller.show(entry)

    def export_trace(self, path: Path, entry: HistoryEntry | None = None) -> Path:
        return self.controller.export_trace(path, entry)

    def open_trace(self, path: str | Path) -> HistoryEntry | None:
        return self.controller.open_trace(path)

    def diff_pair(self):
        return self.controller.diff_pair()

    def exportable_runs(self) -> list[HistoryEntry]:
        return self.controller.exportable_runs()

    def _on_live_timeout(self) -> None:
        self.controller._on_live_timeout()

    def _on_reference_edited(self, tab: ReferenceTab) -> None:
        if tab.editor.heat:  # an explanation holds for the text it was made from only
            tab.editor.set_heat({})
            self.explanation = None
        if tab is self.tab:
            self.controller.reference_edited()

    # -- closing ------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.interactive and not self.confirm_close():
            event.ignore()
            return
        self._closing = True
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self._autosave_timer.stop()
        if self.interactive:
            # A headless run (screenshots, benchmarks) sizes its window to the offscreen
            # screen; keeping that layout would shrink the user's next real window.
            self.qsettings.setValue("window/geometry", self.saveGeometry())
            self.qsettings.setValue("window/state", self.saveState())
        self.controller.shutdown()
        self.tabs.forget_autosaves(only_clean=True)
        event.accept()

    def confirm_close(self) -> bool:
        """Ask about unsaved references, naming them; False keeps the window open."""
        dirty = self.tabs.dirty_tabs()
        if not dirty:
            return True
        names = ", ".join(str(t.path) if t.path else "an untitled reference" for t in dirty)
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to {names}?",
            QMessageBox.StandardButton.SaveAll | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.SaveAll and not all(self.save_tab(t) for t in dirty):
            return False
        for t in dirty:
            from . import autosave
            autosave.remove_autosave(t.autosave_key)
        return True


def application() -> QApplication:
    app = QApplication.instance() or QApplication([])
    return app  # type: ignore[return-value]


__all__ = ["MainWindow", "application", "LanternError"]

"""The studio's main window: reference tabs, the answer, the error timeline, the loop."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QListWidget, QListWidgetItem,
                               QMainWindow, QMessageBox, QProgressBar, QTabWidget, QToolBar, QVBoxLayout, QWidget)

from lantern_studio import __version__
from lantern_studio.core.errors import LanternError
from lantern_studio.core.events import Done, Failed
from lantern_studio.core.reference import Reference, update_front_matter_loop
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings
from lantern_studio.paths import resources_dir

from . import autosave
from .error_timeline import ErrorTimeline
from .loop_panel import LoopPanel
from .outline import OutlineTree
from .prompt_bar import PromptBar
from .reference_editor import NEW_REFERENCE, ReferenceTab, text_hash
from .session import EngineSession, Job
from .token_view import TokenView

AUTOSAVE_MS = 4000
LIVE_DEBOUNCE_MS = 400
MAX_RECENT = 10


@dataclass
class RunRecord:
    """One finished run in the history: everything needed to show or export it again."""

    kind: str
    prompt: str
    loop: LoopSettings
    sampling: SamplingSettings
    reference_slug: str | None
    reference_sha256: str | None
    model: str
    events: list = field(default_factory=list)
    when: float = field(default_factory=time.time)
    header: dict[str, Any] | None = None  # set for replayed traces

    @property
    def stats(self) -> dict:
        for e in reversed(self.events):
            if isinstance(e, Done):
                return e.stats
        return {}

    def label(self) -> str:
        stats = self.stats
        t = time.strftime("%H:%M:%S", time.localtime(self.when))
        tag = "trace" if self.header else self.loop.mode
        return (f"{t}  [{tag}]  {self.prompt[:40]}  — {stats.get('tokens', '?')} tok, "
                f"{stats.get('blips', 0)} blips, {stats.get('stop_reason', '')}")


class MainWindow(QMainWindow):
    """The studio. ``interactive = False`` (tests, screenshots) turns dialogs into status messages."""

    def __init__(self, settings: QSettings | None = None, interactive: bool = True) -> None:
        super().__init__()
        self.interactive = interactive
        self.qsettings = settings or QSettings()
        self.setWindowTitle("Lantern Studio")
        icon = resources_dir() / "icons" / "lantern-studio.svg"
        if icon.is_file():
            self.setWindowIcon(QIcon(str(icon)))
        self.session = EngineSession(self)
        self.history: list[RunRecord] = []
        self.current_run: RunRecord | None = None
        self._live_hash: str | None = None
        self._live_outdated = False
        self._closing = False
        from .theme import resolve_theme
        self.theme = resolve_theme(str(self.qsettings.value("theme", "light")))
        self.explanation = None  # the last Explain result (explain.Explanation)
        self.compare_dialog = None

        # central: reference tabs
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.setCentralWidget(self.tabs)

        # docks
        self.token_view = TokenView()
        self.timeline = ErrorTimeline()
        from .preferences import preferred_chunk
        self.loop_panel = LoopPanel(LoopSettings(chunk=preferred_chunk(self.qsettings)))
        self.outline = OutlineTree()
        self.history_list = QListWidget()
        self.prompt_bar = PromptBar()
        answer = QWidget()
        lay = QVBoxLayout(answer)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.token_view)
        self.answer_dock = self._dock("Answer", answer, Qt.DockWidgetArea.RightDockWidgetArea)
        self.loop_dock = self._dock("Loop", self.loop_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.timeline_dock = self._dock("Error timeline", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.outline_dock = self._dock("Outline", self.outline, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.history_dock = self._dock("History", self.history_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        from .probes_panel import ProbesPanel
        self.probes_panel = ProbesPanel()
        self.probes_dock = self._dock("Probes", self.probes_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.timeline_dock, self.probes_dock)
        self.timeline_dock.raise_()
        self.splitDockWidget(self.answer_dock, self.loop_dock, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.outline_dock, self.history_dock)
        self.outline_dock.raise_()

        # status bar
        self.model_label = QLabel("no model")
        self.speed_label = QLabel("– tok/s")
        self.context_label = QLabel("context –")
        self.blips_label = QLabel("blips 0")
        self.load_bar = QProgressBar(maximumWidth=160, maximum=100)
        self.load_bar.hide()
        sb = self.statusBar()
        for w in (self.load_bar, self.model_label, self.speed_label, self.context_label, self.blips_label):
            sb.addPermanentWidget(w)

        self._make_actions()
        self._make_toolbars()
        self._connect()
        self._autosave_timer = QTimer(self, interval=AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._autosave_timer.start()
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DEBOUNCE_MS)
        self._live_timer.timeout.connect(self._on_live_timeout)
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self._restore_layout()

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_").lower() + "_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(slot)
        return act

    def _make_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.act_new = self._action("&New reference", self.new_tab, K.New)
        self.act_open = self._action("&Open…", self.open_dialog, K.Open)
        self.act_save = self._action("&Save", self.save_current, K.Save)
        self.act_save_as = self._action("Save &as…", self.save_current_as, K.SaveAs)
        self.act_close_tab = self._action("&Close tab", lambda: self.close_tab(self.tabs.currentIndex()), K.Close)
        self.act_open_trace = self._action("Open &trace…", self.open_trace_dialog)
        self.act_open_pack = self._action("Open &pack…", self.open_pack_dialog)
        self.act_export_trace = self._action("&Export trace…", self.export_trace_dialog)
        self.act_quit = self._action("&Quit", self.close, K.Quit)
        self.act_undo = self._action("&Undo", lambda: self._editor_call("undo"), K.Undo)
        self.act_redo = self._action("&Redo", lambda: self._editor_call("redo"), K.Redo)
        self.act_find = self._action("&Find…", lambda: self._find(False), K.Find)
        self.act_replace = self._action("&Replace…", lambda: self._find(True), "Ctrl+H")
        self.act_preview = self._action("&Preview", self._toggle_preview, "Ctrl+Shift+P")
        self.act_preview.setCheckable(True)
        self.act_run = self._action("&Run", self.run_prompt, "Ctrl+Return", "Run the prompt")
        self.act_stop = self._action("&Stop", self.stop, "Esc", "Stop the run")
        self.act_stop.setEnabled(False)
        self.act_score = self._action("Score &text…", self.score_text_dialog)
        self.act_explain = self._action("E&xplain", self.explain, "Ctrl+E",
                                        "Which reference items made the answer likely (heat in the editor's margin)")
        self.act_compare = self._action("Co&mpare…", self.open_compare, "Ctrl+Shift+M",
                                        "Run the prompt in several modes side by side; diff against the previous run")
        self.act_export_pack = self._action("Export pac&k…", self.export_pack_dialog,
                                            tip="Export the current reference as a signed .lantern pack")
        self.act_preferences = self._action("&Preferences…", self.preferences_dialog, K.Preferences)
        self.act_preferences.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.act_open_model = self._action("Open &GGUF…", self.open_model_dialog)
        self.act_pull = self._action("&Pull smollm2", lambda: self.pull_model("smollm2"))
        self.act_about = self._action("&About Lantern Studio", self._about)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_new, self.act_open):
            m.addAction(a)
        self.recent_menu = m.addMenu("Open &recent")
        for a in (self.act_save, self.act_save_as, self.act_close_tab):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_open_pack)
        m.addAction(self.act_export_pack)
        m.addAction(self.act_open_trace)
        m.addAction(self.act_export_trace)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, self.act_find, self.act_replace):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_preferences)
        m = mb.addMenu("&Run")
        for a in (self.act_run, self.act_stop, self.act_score, self.act_explain, self.act_compare):
            m.addAction(a)
        self.act_live = self.prompt_bar.live
        m = mb.addMenu("&Models")
        m.addAction(self.act_pull)
        m.addAction(self.act_open_model)
        self.view_menu = mb.addMenu("&View")
        self.view_menu.addAction(self.act_preview)
        self.view_menu.addSeparator()
        for dock in (self.answer_dock, self.timeline_dock, self.probes_dock, self.loop_dock, self.outline_dock,
                     self.history_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)
        self._update_recent_menu()

    def _make_toolbars(self) -> None:
        tb = QToolBar("Main", self)
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        for a in (self.act_new, self.act_open, self.act_save):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_preview)
        tb.addSeparator()
        tb.addWidget(self.prompt_bar)
        tb.addAction(self.act_explain)
        tb.addAction(self.act_compare)
        self.addToolBar(tb)

    def _connect(self) -> None:
        s = self.session
        s.modelLoading.connect(self._on_model_loading)
        s.loadProgress.connect(lambda v: self.load_bar.setValue(int(v * 100)))
        s.modelLoaded.connect(self._on_model_loaded)
        s.modelFailed.connect(self._on_model_failed)
        s.eventsReady.connect(self._on_events)
        s.jobFinished.connect(self._on_job_finished)
        self.prompt_bar.runRequested.connect(self.run_prompt)
        self.prompt_bar.stopRequested.connect(self.stop)
        self.prompt_bar.modeChanged.connect(lambda m: self.loop_panel.set_value("mode", m))
        self.prompt_bar.live.toggled.connect(self._on_live_toggled)
        self.loop_panel.settingsChanged.connect(self._on_loop_changed)
        self.loop_panel.saveRequested.connect(self.save_loop_to_reference)
        self.loop_panel.invalid.connect(self.show_status)
        self.timeline.thresholdChanged.connect(lambda v: self.loop_panel.set_value("threshold", v))
        self.timeline.tokenClicked.connect(lambda i: self.token_view.select(i))
        self.token_view.tokenSelected.connect(self._on_token_selected)
        self.token_view.blipSelected.connect(self._on_blip_selected)
        self.token_view.ruleSelected.connect(lambda hit: self.mark_source(hit.source_id))
        self.outline.lineActivated.connect(self._goto_line)
        self.probes_panel.runAllRequested.connect(self.run_probes)
        self.probes_panel.cancelRequested.connect(self.stop)
        self.probes_panel.answerRequested.connect(self._show_probe_answer)
        self.history_list.itemActivated.connect(self._on_history_item)
        self.history_list.itemClicked.connect(self._on_history_item)

    def _restore_layout(self) -> None:
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and self.restoreState(state):
            return
        self.resizeDocks([self.outline_dock], [220], Qt.Orientation.Horizontal)
        self.resizeDocks([self.answer_dock, self.loop_dock], [520, 230], Qt.Orientation.Horizontal)
        self.resizeDocks([self.timeline_dock], [230], Qt.Orientation.Vertical)

    # -- status ------------------------------------------------------------------------------
    def show_status(self, message: str, timeout: int = 8000) -> None:
        self.statusBar().showMessage(message, timeout)

    def report_error(self, message: str) -> None:
        """One sentence to the user: always in the status bar, in a dialog when interactive."""
        self.show_status(message, 15000)
        if self.interactive:
            QMessageBox.warning(self, "Lantern Studio", message)

    # -- tabs --------------------------------------------------------------------------------
    @property
    def tab(self) -> ReferenceTab | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, ReferenceTab) else None

    def tab_list(self) -> list[ReferenceTab]:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]  # type: ignore[misc]

    def add_tab(self, text: str, path: Path | None = None, dirty: bool = False) -> ReferenceTab:
        tab = ReferenceTab(text, path, theme=self.theme)
        from .preferences import preferred_font
        font = preferred_font(self.qsettings)
        if font is not None:
            tab.editor.setFont(font)
        tab.autosave_key = autosave.new_key()  # type: ignore[attr-defined]
        tab.find_bar.hide()
        if dirty:
            tab._saved_hash = ""
            tab.editor.document().setModified(True)
        index = self.tabs.addTab(tab, tab.title)
        tab.dirtyChanged.connect(lambda _d, t=tab: self._update_tab_title(t))
        tab.parsed.connect(lambda ref, t=tab: self._on_parsed(t, ref))
        tab.parseError.connect(lambda msg, t=tab: self._on_parse_error(t, msg))
        tab.editor.textChanged.connect(lambda t=tab: self._on_reference_edited(t))
        self.tabs.setCurrentIndex(index)
        self._update_tab_title(tab)
        if tab.reference is not None:
            self._on_parsed(tab, tab.reference)
        return tab

    def new_tab(self) -> ReferenceTab:
        return self.add_tab(NEW_REFERENCE)

    def open_reference(self, path: str | Path) -> ReferenceTab | None:
        path = Path(path).resolve()
        for t in self.tab_list():
            if t.path == path:
                self.tabs.setCurrentWidget(t)
                return t
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.report_error(f"{path.name} cannot be opened ({getattr(exc, 'strerror', None) or exc}).")
            return None
        tab = self.add_tab(text, path)
        self._add_recent(path)
        if tab.reference is not None:
            loop = tab.reference.loop
            if "chunk" not in tab.reference.loop_given:  # the reference does not say: the user's preference
                from .preferences import preferred_chunk
                loop = loop.updated(chunk=preferred_chunk(self.qsettings))
            self.loop_panel.set_settings(loop)
            self.prompt_bar.mode.setCurrentText(tab.reference.loop.mode)
            self.timeline.set_threshold(tab.reference.loop.threshold)
        return tab

    def close_tab(self, index: int) -> bool:
        tab = self.tabs.widget(index)
        if not isinstance(tab, ReferenceTab):
            return False
        if tab.is_dirty() and self.interactive:
            answer = QMessageBox.question(
                self, "Unsaved changes", f"Save the changes to {tab.title}?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel)
            if answer == QMessageBox.StandardButton.Cancel:
                return False
            if answer == QMessageBox.StandardButton.Save and not self.save_tab(tab):
                return False
        autosave.remove_autosave(tab.autosave_key)  # type: ignore[attr-defined]
        self.tabs.removeTab(index)
        tab.deleteLater()
        return True

    def _update_tab_title(self, tab: ReferenceTab) -> None:
        i = self.tabs.indexOf(tab)
        if i >= 0:
            self.tabs.setTabText(i, tab.title + (" •" if tab.is_dirty() else ""))
            self.tabs.setTabToolTip(i, str(tab.path) if tab.path else "not saved yet")

    def _on_tab_changed(self, _index: int) -> None:
        tab = self.tab
        self.outline.set_reference(tab.reference if tab else None)
        if tab is not None:
            self.act_preview.setChecked(tab.preview.isVisible())

    def _on_parsed(self, tab: ReferenceTab, ref: Reference) -> None:
        if tab is self.tab:
            self.outline.set_reference(ref)
            prompts = [p.prompt for p in ref.probes]
            if prompts != getattr(self, "_probe_prompts", None) and not self.session.busy:
                self._probe_prompts = prompts
                self.probes_panel.set_probes(prompts)

    def _on_parse_error(self, tab: ReferenceTab, message: str) -> None:
        if tab is self.tab:
            self.show_status(message, 10000)

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

    # -- files -------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(self.qsettings.value("lastDir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open reference", start, "References (*.md);;All files (*)")
        if path:
            self.qsettings.setValue("lastDir", str(Path(path).parent))
            self.open_reference(path)

    def save_tab(self, tab: ReferenceTab, path: Path | None = None) -> bool:
        if path is None and tab.path is None:
            if not self.interactive:
                self.report_error("This reference has no file yet; use Save as.")
                return False
            chosen, _ = QFileDialog.getSaveFileName(self, "Save reference", str(self.qsettings.value(
                "lastDir", str(Path.home()))), "References (*.md)")
            if not chosen:
                return False
            path = Path(chosen)
        try:
            saved = tab.save(path)
        except OSError as exc:
            self.report_error(f"The reference could not be saved ({exc.strerror or exc}).")
            return False
        autosave.remove_autosave(tab.autosave_key)  # type: ignore[attr-defined]
        self._update_tab_title(tab)
        self._add_recent(saved)
        self.show_status(f"Saved {saved}.")
        return True

    def save_current(self) -> bool:
        return self.save_tab(self.tab) if self.tab else False

    def save_current_as(self) -> bool:
        tab = self.tab
        if tab is None:
            return False
        chosen, _ = QFileDialog.getSaveFileName(self, "Save reference as", str(tab.path or Path.home()),
                                                "References (*.md)")
        return self.save_tab(tab, Path(chosen)) if chosen else False

    def _add_recent(self, path: Path) -> None:
        recent = [p for p in self._recent() if p != str(path)]
        recent.insert(0, str(path))
        self.qsettings.setValue("recentFiles", recent[:MAX_RECENT])
        self._update_recent_menu()

    def _recent(self) -> list[str]:
        value = self.qsettings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            self.recent_menu.addAction(Path(p).name, lambda p=p: self.open_reference(p)).setToolTip(p)
        self.recent_menu.setEnabled(bool(self._recent()))

    # -- autosave ----------------------------------------------------------------------------
    def autosave_now(self) -> None:
        for tab in self.tab_list():
            if tab.is_dirty():
                try:
                    autosave.write_autosave(tab.autosave_key, tab.text(), tab.path)  # type: ignore[attr-defined]
                except OSError as exc:
                    self.show_status(f"Autosave failed ({exc.strerror or exc}).")

    def recover_autosaves(self) -> int:
        """Offer the unsaved texts of a session that ended without saving; returns how many opened."""
        found = autosave.find_autosaves()
        if not found:
            return 0
        if self.interactive:
            names = ", ".join(r.path.name if r.path else "Untitled" for r in found)
            answer = QMessageBox.question(
                self, "Recover unsaved text",
                f"Lantern Studio found unsaved text from a previous session ({names}). Recover it?")
            if answer != QMessageBox.StandardButton.Yes:
                for r in found:
                    autosave.remove_autosave(r.key)
                return 0
        for r in found:
            tab = self.add_tab(r.text, r.path, dirty=True)
            autosave.remove_autosave(r.key)
            autosave.write_autosave(tab.autosave_key, r.text, r.path)  # type: ignore[attr-defined]
        self.show_status(f"Recovered {len(found)} unsaved reference(s).")
        return len(found)

    # -- model -------------------------------------------------------------------------------
    def load_model(self, model: str | Path | None = None) -> None:
        # llama.cpp's worker threads spin while they wait: automatic leaves one core to the UI
        # thread, which would otherwise stall while a run keeps every core busy.
        threads = int(self.qsettings.value("threads", 0) or 0) or max(1, (os.cpu_count() or 2) - 1)
        self.session.load(model or self.qsettings.value("defaultModel") or None, EngineSettings(n_threads=threads))

    def _on_model_loading(self, name: str) -> None:
        self.model_label.setText(f"loading {Path(name).name}…")
        self.load_bar.setValue(0)
        self.load_bar.show()
        self.act_run.setEnabled(False)
        self.prompt_bar.run_button.setEnabled(False)
        self.show_status(f"Loading model {Path(name).name}…", 0)

    def _on_model_loaded(self, name: str) -> None:
        self.load_bar.hide()
        self.model_label.setText(name)
        self.act_run.setEnabled(True)
        self.prompt_bar.run_button.setEnabled(True)
        self.context_label.setText(f"context 0/{self.session.engine.n_ctx if self.session.engine else '–'}")
        self.show_status(f"Model {name} loaded.", 4000)

    def _on_model_failed(self, message: str) -> None:
        self.load_bar.hide()
        self.model_label.setText("no model")
        hint = " Run `lantern models pull smollm2` or use Models › Pull smollm2." if "smollm2" in message.lower() \
            or "not installed" in message.lower() or "pull" in message.lower() else ""
        self.report_error(message + hint)

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.load_model(Path(path))

    def pull_model(self, name: str) -> None:
        from .dialogs import pull_with_progress
        if pull_with_progress(self, name):
            self.load_model(name)

    # -- runs --------------------------------------------------------------------------------
    def current_reference(self) -> Reference | None:
        tab = self.tab
        if tab is None:
            return None
        return tab.reparse()

    def run_prompt(self, prompt: str | None = None) -> bool:
        """Start a run with the prompt bar's settings; False (with a message) if it cannot."""
        prompt = prompt if isinstance(prompt, str) else self.prompt_bar.prompt.text().strip()
        if not prompt:
            self.show_status("Type a prompt first.")
            return False
        if self.session.engine is None:
            self.show_status("The model is not loaded yet.")
            return False
        if self.session.busy:
            self.show_status("A run is already going; stop it first.")
            return False
        loop = self.loop_panel.settings.updated(mode=self.prompt_bar.mode.currentText())
        ref = self.current_reference()
        if ref is None and loop.mode != "none":
            if self.tab is not None and self.tab.error:
                self.report_error(self.tab.error)
            else:
                self.show_status("Open or write a reference first (or use mode none).")
            return False
        sampling = self.prompt_bar.sampling()
        record = RunRecord("run", prompt, loop, sampling, ref.slug if ref else None, ref.sha256 if ref else None,
                           self.session.engine.model_name)
        job = Job("run", lambda eng: eng.run(prompt, ref, loop, sampling), {"record": record})
        return self._start(job, f"{loop.mode} · “{prompt}”")

    def score_text(self, answer: str, prompt: str = "") -> bool:
        ref = self.current_reference()
        if self.session.engine is None or self.session.busy:
            self.show_status("The model is busy or not loaded.")
            return False
        loop = self.loop_panel.settings.updated(mode="observe")
        record = RunRecord("score", prompt, loop, self.prompt_bar.sampling(), ref.slug if ref else None,
                           ref.sha256 if ref else None, self.session.engine.model_name)
        job = Job("score", lambda eng: eng.score_text(ref, prompt, answer), {"record": record})
        return self._start(job, f"scored text · “{prompt}”")

    def rescore(self) -> bool:
        """Re-score the shown run against the current reference (observe mode, no generation)."""
        ref = self.current_reference()
        if ref is None or self.session.engine is None or self.session.busy:
            return False
        self._live_hash = ref.sha256
        job = Job("rescore", lambda eng: eng.rescore(ref), {})
        started = self.session.start(job)
        if started:
            self._set_running(True)
            self.show_status("Re-scoring against the edited reference…", 0)
        return started

    def _start(self, job: Job, header: str) -> bool:
        record: RunRecord = job.info["record"]
        if not self.session.start(job):
            self.show_status("The engine is busy.")
            return False
        self.current_run = record
        self._live_hash = record.reference_sha256
        self.token_view.clear(header)
        self.timeline.clear()
        self.timeline.set_threshold(record.loop.threshold)
        self.blips_label.setText("blips 0")
        self._set_running(True)
        self.show_status("Running…", 0)
        return True

    def _set_running(self, running: bool) -> None:
        self.prompt_bar.set_running(running)
        self.act_run.setEnabled(not running)
        self.act_stop.setEnabled(running)

    def stop(self) -> None:
        if self.session.busy:
            self.session.cancel()
            self.show_status("Stopping…", 2000)

    def _on_events(self, job: Job, batch: list) -> None:
        if job.kind in ("run", "score", "rescore"):
            self.token_view.apply_events(batch)
            self.timeline.update_from(self.token_view.transcript)
            self.blips_label.setText(f"blips {len(self.token_view.transcript.blips)}")
        handler = job.info.get("on_events")
        if handler:
            handler(batch)

    def _on_job_finished(self, job: Job) -> None:
        self._set_running(False)
        end = job.end
        record: RunRecord | None = job.info.get("record")
        if record is not None:
            record.events = list(job.events)
            self.history.append(record)
            item = QListWidgetItem(record.label())
            item.setData(Qt.ItemDataRole.UserRole, len(self.history) - 1)
            self.history_list.addItem(item)
        if isinstance(end, Failed):
            self.report_error(end.message)
        elif isinstance(end, Done):
            self._show_stats(end.stats)
        handler = job.info.get("on_finished")
        if handler:
            handler(job)
        if self._live_outdated and not self._closing:
            self._live_outdated = False
            self._live_timer.start(0)

    def _show_stats(self, stats: dict) -> None:
        reason = stats.get("stop_reason", "")
        if "tokens_per_s" in stats:
            self.speed_label.setText(f"{stats['tokens_per_s']:.1f} tok/s")
        if "context_used" in stats:
            self.context_label.setText(f"context {stats['context_used']}/{stats.get('context_size', '?')}")
        self.blips_label.setText(f"blips {stats.get('blips', len(self.token_view.transcript.blips))}")
        mean = stats.get("mean_error")
        extra = f", mean error {mean:+.2f}" if isinstance(mean, (int, float)) else ""
        self.show_status(f"Done: {reason}{extra}.", 10000)

    # -- probes -------------------------------------------------------------------------------
    def run_probes(self, modes: list[str]) -> bool:
        """Run every probe of the current reference in each mode (one job; Cancel stops it)."""
        from lantern_studio.core.probes import run_probes
        ref = self.current_reference()
        if ref is None or not ref.probes:
            self.show_status("The current reference has no probes (add a Probes section).")
            return False
        if self.session.engine is None or self.session.busy:
            self.show_status("The model is busy or not loaded.")
            return False
        self._probe_prompts = [p.prompt for p in ref.probes]
        self.probes_panel.set_probes(self._probe_prompts)
        loop = self.loop_panel.settings

        def on_events(batch: list) -> None:
            for result in batch:
                if hasattr(result, "probe"):
                    self.probes_panel.add_result(result)

        def on_finished(_job: Job) -> None:
            self.probes_panel.set_running(False)

        sampling = self.prompt_bar.sampling()
        job = Job("probes", lambda eng: run_probes(eng, ref, modes, loop=loop, sampling=sampling),
                  {"on_events": on_events, "on_finished": on_finished})
        if not self.session.start(job):
            return False
        self.probes_panel.set_running(True)
        self._set_running(True)
        self.probes_dock.raise_()
        self.show_status(f"Running {len(ref.probes)} probes × {len(modes)} modes…", 0)
        return True

    def _show_probe_answer(self, result) -> None:
        self.token_view.clear(f"probe {result.probe} · {result.mode} · "
                              f"{'pass' if result.passed else 'fail: ' + str(result.failed)}")
        self.token_view.edit.setPlainText(result.answer)

    # -- selection -------------------------------------------------------------------------
    def _on_token_selected(self, index: int) -> None:
        self.timeline.select(index)
        for blip in self.token_view.transcript.blips:
            if blip.index == index:
                self.mark_source(blip.source_id)
                return
        self.mark_token_influence(index)

    def mark_token_influence(self, index: int) -> int:
        """After Explain: highlight the reference line of the item most influential on token ``index``."""
        from .explain import answer_offset
        ex = self.explanation
        tab = self.tab
        if ex is None or tab is None or tab.reference is None or tab.reference.sha256 != ex.reference_sha256:
            return 0
        offset = answer_offset(self.token_view.transcript, index)
        found = ex.item_at_offset(offset) if offset is not None else None
        if found is None:
            return 0
        item_id, delta = found
        line = self.mark_source(item_id)
        effect = "supports it" if delta > 0 else "pushes away from it"
        self.show_status(f"Token #{index}: most influenced by {item_id} ({delta:+.3f} nats; {effect}).")
        return line

    def _on_blip_selected(self, blip) -> None:
        self.timeline.select(blip.index)
        self.mark_source(blip.source_id)
        self.show_status(f"Blip from {blip.source_id}: {blip.text}")

    def mark_source(self, source_id: str) -> int:
        """Highlight the reference line a blip or rule came from; returns the line (0 if unknown)."""
        tab = self.tab
        if tab is None or tab.reference is None:
            return 0
        line = tab.reference.line_of(source_id)
        if line:
            tab.editor.mark_line(line)
        return line

    # -- loop ---------------------------------------------------------------------------------
    def _on_loop_changed(self, loop: LoopSettings) -> None:
        self.timeline.set_threshold(loop.threshold)
        if self.prompt_bar.mode.currentText() != loop.mode:
            self.prompt_bar.mode.blockSignals(True)
            self.prompt_bar.mode.setCurrentText(loop.mode)
            self.prompt_bar.mode.blockSignals(False)

    def save_loop_to_reference(self, loop: LoopSettings) -> None:
        tab = self.tab
        if tab is None:
            return
        try:
            text = update_front_matter_loop(tab.text(), loop.to_dict())
        except LanternError as exc:
            self.report_error(str(exc))
            return
        tab.replace_text_undoably(text)
        self.show_status("Loop settings written to the reference's front matter (not saved to disk yet).")

    # -- live mode ------------------------------------------------------------------------------
    def _on_live_toggled(self, on: bool) -> None:
        if on:
            self._live_timer.start()

    def _on_reference_edited(self, tab: ReferenceTab) -> None:
        if tab.editor.heat:  # an explanation holds for the text it was made from only
            tab.editor.set_heat({})
            self.explanation = None
        if self.prompt_bar.live.isChecked() and tab is self.tab:
            self._live_timer.start()

    def _on_live_timeout(self) -> None:
        tab = self.tab
        if tab is None or not self.prompt_bar.live.isChecked() or self.session.engine is None:
            return
        if self._live_hash is not None and text_hash(tab.text()) == self._live_hash:
            return
        if self.session.busy:
            self._live_outdated = True
            return
        mode = self.prompt_bar.mode.currentText()
        last = self.current_run
        if (mode == "observe" and last is not None and last.kind == "run" and last.loop.mode == "observe"
                and self.token_view.transcript.tokens):
            self.rescore()
        elif mode in ("blip", "guide", "prompt", "observe") and self.prompt_bar.prompt.text().strip():
            self.run_prompt()

    # -- history and traces -----------------------------------------------------------------
    def _on_history_item(self, item: QListWidgetItem) -> None:
        record = self.history[int(item.data(Qt.ItemDataRole.UserRole))]
        self.show_record(record)

    def show_record(self, record: RunRecord) -> None:
        self.current_run = record
        self.token_view.load_events(record.events, f"{record.loop.mode} · “{record.prompt}”")
        self.timeline.clear()
        self.timeline.update_from(self.token_view.transcript)
        self._show_stats(record.stats)

    def export_trace(self, path: Path, record: RunRecord | None = None) -> Path:
        from lantern_studio.core.trace import make_header, write_trace
        record = record or self.current_run
        if record is None:
            raise LanternError("There is no run to export yet.")
        header = record.header or make_header(
            model_name=record.model, model_sha256="", prompt=record.prompt, mode=record.loop.mode,
            reference_slug=record.reference_slug, reference_sha256=record.reference_sha256,
            loop=record.loop.to_dict(), sampling={"temperature": record.sampling.temperature,
                                                  "seed": record.sampling.seed,
                                                  "max_tokens": record.sampling.max_tokens})
        return write_trace(path, header, record.events)

    def export_trace_dialog(self) -> None:
        if self.current_run is None:
            self.report_error("There is no run to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export trace", "run.jsonl", "Traces (*.jsonl)")
        if path:
            try:
                self.show_status(f"Trace written to {self.export_trace(Path(path))}.")
            except (LanternError, OSError) as exc:
                self.report_error(str(exc))

    def open_trace(self, path: str | Path) -> RunRecord | None:
        """Replay a trace file without a model."""
        from lantern_studio.core.trace import read_trace
        try:
            trace = read_trace(path)
        except LanternError as exc:
            self.report_error(str(exc))
            return None
        h = trace.header
        try:
            loop = LoopSettings.from_mapping(h.get("loop") or {})
        except LanternError:
            loop = LoopSettings()
        ref = h.get("reference") or {}
        model = h.get("model") or {}
        record = RunRecord("trace", str(h.get("prompt", "")), loop, SamplingSettings(), ref.get("slug"),
                           ref.get("sha256"), str(model.get("name", "")), list(trace.events), header=h)
        self.history.append(record)
        item = QListWidgetItem(record.label())
        item.setData(Qt.ItemDataRole.UserRole, len(self.history) - 1)
        self.history_list.addItem(item)
        self.show_record(record)
        self.show_status(f"Replaying {Path(path).name} (recorded with {record.model or 'an unknown model'}).")
        return record

    def open_trace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open trace", str(Path.home()), "Traces (*.jsonl)")
        if path:
            self.open_trace(path)

    # -- packs ------------------------------------------------------------------------------
    def open_pack(self, path: str | Path) -> bool:
        """Check a pack, show its summary and trust verdict, open its references in tabs."""
        from lantern_studio.core.pack import read_pack
        try:
            pack = read_pack(path)
        except (LanternError, OSError) as exc:
            self.report_error(str(exc))
            return False
        if self.interactive:
            from .dialogs import PackSummaryDialog
            if not PackSummaryDialog(pack, self).exec():
                return False
        entry = pack.manifest.get("entry")
        for name, text in sorted(pack.references.items(), key=lambda kv: kv[0] != entry):
            tab = self.add_tab(text, None)
            self.tabs.setTabText(self.tabs.indexOf(tab), f"{Path(name).name} [{pack.verdict}]")
        try:
            self.loop_panel.set_settings(pack.loop)
            self.prompt_bar.mode.setCurrentText(pack.loop.mode)
        except LanternError:
            pass
        self.show_status(f"Opened pack {pack.manifest.get('name', Path(path).name)} ({pack.verdict}).")
        return True

    def open_pack_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open pack", str(Path.home()), "Reference packs (*.lantern)")
        if path:
            self.open_pack(path)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(u.toLocalFile().endswith((".lantern", ".md", ".jsonl")) for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            f = url.toLocalFile()
            if f.endswith(".lantern"):
                self.open_pack(f)
            elif f.endswith(".md"):
                self.open_reference(f)
            elif f.endswith(".jsonl"):
                self.open_trace(f)

    # -- explain (attribution) ---------------------------------------------------------------
    def explain(self) -> bool:
        """Attribute the shown answer to the current reference's items, in the worker."""
        from .explain import explain_events, heat_by_line
        tab = self.tab
        record = self.current_run
        answer = self.token_view.transcript.answer
        if self.session.engine is None or self.session.busy:
            self.show_status("The model is busy or not loaded.")
            return False
        if record is None or record.kind not in ("run", "score", "trace") or not answer.strip():
            self.show_status("Run a prompt first: Explain attributes the shown answer to the reference.")
            return False
        ref = self.current_reference()
        if tab is None or ref is None:
            self.show_status("Open a reference that parses first.")
            return False
        prompt = record.prompt
        results: list = []

        def on_events(batch: list) -> None:
            results.extend(e for e in batch if hasattr(e, "attribution"))

        def on_finished(job: Job) -> None:
            if not results or tab not in self.tab_list():
                return
            ex = results[-1]
            if tab.reference is None or tab.reference.sha256 != ex.reference_sha256:
                self.show_status("The reference changed during Explain; run it again.")
                return
            self.explanation = ex
            tab.editor.set_heat(heat_by_line(tab.reference, ex.items))
            top = ", ".join(f"{i} {d:+.2f}" for i, d in ex.items[:3]) or "no item changes the answer"
            self.show_status(f"Explained ({top}). Margin: blue supports the answer, red pushes away; "
                             "hover it for values, click a token for its item.", 20000)

        job = Job("explain", lambda eng: explain_events(eng, ref, prompt, answer),
                  {"on_events": on_events, "on_finished": on_finished})
        if not self.session.start(job):
            return False
        self._set_running(True)
        self.show_status("Explaining: scoring the answer without each reference item…", 0)
        return True

    # -- compare ------------------------------------------------------------------------------
    def open_compare(self) -> None:
        from .compare import CompareDialog
        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self)
        self.compare_dialog.show_diff()
        self.compare_dialog.show()
        self.compare_dialog.raise_()

    def start_compare(self, modes: list[str], on_events, on_finished) -> bool:
        """Run the prompt bar's prompt once per mode in the worker (one job); events go to ``on_events``."""
        from .compare import compare_events
        prompt = self.prompt_bar.prompt.text().strip()
        if not prompt:
            self.show_status("Type a prompt first.")
            return False
        if self.session.engine is None or self.session.busy:
            self.show_status("The model is busy or not loaded.")
            return False
        ref = self.current_reference()
        if ref is None and any(m != "none" for m in modes):
            self.show_status("Open or write a reference first (or compare mode none only).")
            return False
        loop, sampling = self.loop_panel.settings, self.prompt_bar.sampling()

        def finished(job: Job) -> None:
            self.show_status(f"Compared {', '.join(modes)}.")
            on_finished(job)

        job = Job("compare", lambda eng: compare_events(eng, prompt, ref, loop, sampling, modes),
                  {"on_events": on_events, "on_finished": finished})
        if not self.session.start(job):
            return False
        self._set_running(True)
        self.show_status(f"Comparing {len(modes)} modes…", 0)
        return True

    def diff_pair(self) -> tuple[RunRecord, RunRecord, str] | None:
        """(older, newer, description): the current run and the run made before the last reference edit."""
        runs = [r for r in self.history if r.kind == "run"]
        new = self.current_run if self.current_run in runs else (runs[-1] if runs else None)
        if new is None:
            return None
        earlier = runs[:runs.index(new)]
        for r in reversed(earlier):
            if r.reference_sha256 != new.reference_sha256:
                return r, new, "the run before the last reference edit"
        if earlier:
            return earlier[-1], new, "the previous run (same reference)"
        return None

    # -- packs: export ---------------------------------------------------------------------------
    def exportable_runs(self) -> list[RunRecord]:
        return [r for r in self.history if r.kind in ("run", "trace") and r.events]

    def export_pack_dialog(self, exec_: bool = True):
        """File › Export pack…: the current reference must be saved first (it is packed from its file)."""
        from .pack_dialog import ExportPackDialog
        tab = self.tab
        if tab is None:
            self.report_error("Open a reference to export first.")
            return None
        if tab.path is None or tab.is_dirty():
            if not self.interactive or QMessageBox.question(
                    self, "Export pack", "The reference must be saved before it is packed. Save it now?") \
                    != QMessageBox.StandardButton.Yes or not self.save_tab(tab):
                self.report_error("Save the reference before exporting it as a pack.")
                return None
        ref = tab.reparse()
        if ref is None:
            self.report_error(tab.error or "The reference does not parse.")
            return None
        dlg = ExportPackDialog(self, tab.path, ref)
        if exec_:
            dlg.exec()
            dlg.deleteLater()
        return dlg

    # -- preferences ------------------------------------------------------------------------------
    def preferences_dialog(self) -> None:
        from .preferences import PreferencesDialog
        dlg = PreferencesDialog(self.qsettings, self, self.tab.editor.font() if self.tab else None)
        if dlg.exec():
            self.apply_preferences()
        dlg.deleteLater()

    def apply_preferences(self) -> None:
        """Apply what Preferences stored: theme and editor font now; chunk for the next run;
        threads and the default model on the next model load."""
        from .preferences import preferred_chunk, preferred_font
        from .theme import apply_theme
        app = QApplication.instance()
        self.theme = apply_theme(app, str(self.qsettings.value("theme", "light")))  # type: ignore[arg-type]
        font = preferred_font(self.qsettings)
        for t in self.tab_list():
            t.editor.highlighter.set_theme(self.theme)
            if font is not None:
                t.editor.setFont(font)
                t.editor._update_gutter_width()
        self.timeline.plot.setBackground(app.palette().base().color())  # type: ignore[union-attr]
        self.loop_panel.set_value("chunk", preferred_chunk(self.qsettings))
        self.show_status("Preferences applied; threads and the default model take effect the next time a "
                         "model loads.", 10000)

    def score_text_dialog(self) -> None:
        from .dialogs import ScoreTextDialog
        dlg = ScoreTextDialog(self.prompt_bar.prompt.text(), self)
        if dlg.exec():
            self.score_text(dlg.answer(), dlg.prompt())

    def _about(self) -> None:
        QMessageBox.about(self, "About Lantern Studio",
                          f"Lantern Studio {__version__}\nReference documents that steer a live local model.")

    # -- closing ------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.interactive:
            dirty = [t for t in self.tab_list() if t.is_dirty()]
            if dirty:
                answer = QMessageBox.question(
                    self, "Unsaved changes", f"{len(dirty)} reference(s) have unsaved changes. Save them?",
                    QMessageBox.StandardButton.SaveAll | QMessageBox.StandardButton.Discard
                    | QMessageBox.StandardButton.Cancel)
                if answer == QMessageBox.StandardButton.Cancel:
                    event.ignore()
                    return
                if answer == QMessageBox.StandardButton.SaveAll:
                    if not all(self.save_tab(t) for t in dirty):
                        event.ignore()
                        return
                for t in dirty:
                    autosave.remove_autosave(t.autosave_key)  # type: ignore[attr-defined]
        self._closing = True
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self._live_timer.stop()
        self._autosave_timer.stop()
        if self.interactive:
            # A headless run (screenshots, benchmarks) sizes its window to the offscreen
            # screen; keeping that layout would shrink the user's next real window.
            self.qsettings.setValue("window/geometry", self.saveGeometry())
            self.qsettings.setValue("window/state", self.saveState())
        self.session.shutdown()
        for t in self.tab_list():
            if not t.is_dirty():
                autosave.remove_autosave(t.autosave_key)  # type: ignore[attr-defined]
        event.accept()


def application() -> QApplication:
    app = QApplication.instance() or QApplication([])
    return app  # type: ignore[return-value]

"""What the studio's menu and toolbar actions do (mixed into ``MainWindow``).

Every action's slot is called without arguments (``_action`` drops the ``checked`` flag that
``QAction.triggered`` sends), so a slot's own optional parameters never receive a stray bool.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from lantern_studio import __version__
from lantern_studio.core.errors import LanternError
from lantern_studio.core.reference import Reference, update_front_matter_loop


class StudioActions:
    """The window's actions and their slots; the window provides the views and the controller."""

    # -- actions and menus -----------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.setCheckable(checkable)
        if checkable:
            act.toggled.connect(slot)
        else:
            act.triggered.connect(lambda _checked=False: slot())
        return act

    def make_actions(self) -> None:
        K = QKeySequence.StandardKey
        a = self._action
        self.act_new = a("&New reference", self.new_tab, K.New, "A new reference from a template with every section")
        self.act_open = a("&Open…", self.tabs.open_dialog, K.Open)
        self.act_save = a("&Save", self.tabs.save_current, K.Save)
        self.act_save_as = a("Save &as…", self.tabs.save_current_as, K.SaveAs)
        self.act_close_tab = a("&Close tab", lambda: self.close_tab(self.tabs.currentIndex()), K.Close)
        self.act_open_trace = a("Open &trace…", self.open_trace_dialog, tip="Replay a recorded run without a model")
        self.act_open_pack = a("Open &pack…", self.open_pack_dialog)
        self.act_export_pack = a("Export pac&k…", self.export_pack_dialog,
                                 tip="Export the current reference as a signed .lantern pack")
        self.act_export_trace = a("&Export trace…", self.export_trace_dialog)
        self.act_quit = a("&Quit", self.close, K.Quit)
        self.act_undo = a("&Undo", lambda: self._editor_call("undo"), K.Undo)
        self.act_redo = a("&Redo", lambda: self._editor_call("redo"), K.Redo)
        self.act_find = a("&Find…", lambda: self._find(False), K.Find)
        self.act_replace = a("&Replace…", lambda: self._find(True), "Ctrl+H")
        self.act_preview = a("&Preview", self._toggle_preview, "Ctrl+Shift+P", checkable=True)
        self.act_run = a("&Run", self.run_prompt, "Ctrl+Return", "Run the prompt")
        self.act_run.setEnabled(False)
        self.act_stop = a("&Stop", self.stop, "Esc", "Stop the run")
        self.act_stop.setEnabled(False)
        self.act_score = a("Score &text…", self.score_text_dialog, tip="Paste any answer and see how it drifts")
        self.act_explain = a("E&xplain", self.explain, "Ctrl+E",
                             "Which reference items made the answer likely (heat in the editor's margin)")
        self.act_compare = a("Co&mpare…", self.open_compare, "Ctrl+Shift+M",
                             "Run the prompt in several modes side by side; diff against the previous run")
        self.act_probes = a("Run &probes", lambda: self.run_probes(self.probes_panel.modes),
                            tip="Run every probe of the reference in every mode")
        self.act_preferences = a("&Preferences…", self.preferences_dialog, K.Preferences)
        self.act_preferences.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.act_tour = a("Quick &tour", self.show_tour, tip="The studio explained in five steps")
        self.act_about = a("&About Lantern Studio", self._about)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_new, self.act_open])
        self.recent_menu = m.addMenu("Open &recent")
        m.addActions([self.act_save, self.act_save_as, self.act_close_tab])
        m.addSeparator()
        m.addActions([self.act_open_pack, self.act_export_pack, self.act_open_trace, self.act_export_trace])
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo, self.act_find, self.act_replace])
        m.addSeparator()
        m.addAction(self.act_preferences)
        m = mb.addMenu("&Run")
        m.addActions([self.act_run, self.act_stop, self.act_score, self.act_explain, self.act_compare,
                      self.act_probes])
        self.act_live = self.prompt_bar.live
        self.view_menu = mb.addMenu("&View")
        self.view_menu.addAction(self.act_preview)
        self.view_menu.addSeparator()
        for dock in (self.answer_dock, self.timeline_dock, self.probes_dock, self.loop_dock, self.outline_dock,
                     self.history_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Help")
        m.addActions([self.act_tour, self.act_about])
        self.update_recent_menu()

    def update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.tabs.recent():
            act = self.recent_menu.addAction(Path(p).name)
            act.triggered.connect(lambda _c=False, p=p: self.open_reference(p))
            act.setToolTip(p)
        self.recent_menu.setEnabled(bool(self.tabs.recent()))

    # -- runs ----------------------------------------------------------------------------------
    def current_reference(self) -> Reference | None:
        tab = self.tab
        return tab.reparse() if tab is not None else None

    def run_prompt(self, prompt: str | None = None) -> bool:
        """Start a run with the prompt bar's settings; False (with a message) if it cannot."""
        prompt = prompt if isinstance(prompt, str) else self.prompt_bar.prompt.text().strip()
        loop = self.loop_model.settings
        ref = self.current_reference() if loop.mode != "none" else None
        if ref is None and loop.mode != "none" and prompt and self.session.engine is not None:
            if self.tab is not None and self.tab.error:
                self.report_error(self.tab.error)
            else:
                self.show_status("Open or write a reference first (or use mode none).")
            return False
        return self.controller.run(prompt, ref, loop, self.prompt_bar.sampling())

    def score_text(self, answer: str, prompt: str = "") -> bool:
        return self.controller.score_text(answer, prompt, self.current_reference())

    def rescore(self) -> bool:
        return self.controller.rescore(self.current_reference())

    def stop(self) -> None:
        self.controller.stop()

    def score_text_dialog(self) -> None:
        from .dialogs import ScoreTextDialog
        dlg = ScoreTextDialog(self.prompt_bar.prompt.text(), self)
        if dlg.exec():
            self.score_text(dlg.answer(), dlg.prompt())
        dlg.deleteLater()

    def run_probes(self, modes: list[str]) -> bool:
        """Run every probe of the current reference in each mode (one job; Cancel stops it)."""
        ref = self.current_reference()
        if ref is None or not ref.probes:
            self.show_status("The current reference has no probes (add a Probes section).")
            return False
        self._probe_prompts = [p.prompt for p in ref.probes]
        self.probes_panel.set_probes(self._probe_prompts)
        started = self.controller.run_probes(ref, modes, self.loop_model.settings, self.prompt_bar.sampling(),
                                             self.probes_panel.add_result,
                                             lambda _job: self.probes_panel.set_running(False))
        if started:
            self.probes_panel.set_running(True)
            self.probes_dock.raise_()
        return started

    def _show_probe_answer(self, result) -> None:
        from lantern_studio.core.describe import describe_probe_failure
        verdict = "pass" if result.passed else describe_probe_failure(result.failed, result.answer)
        self.run_model.clear(f"probe {result.probe} · {result.mode} · {verdict}")
        self.token_view.edit.setPlainText(result.answer)

    # -- explain and compare --------------------------------------------------------------------
    def explain(self) -> bool:
        """Attribute the shown answer to the current reference's items, in the worker."""
        from lantern_studio.core.explain import heat_by_line
        tab, entry = self.tab, self.current_run
        answer = self.run_model.transcript.answer
        if entry is None or entry.kind not in ("run", "score", "trace") or not answer.strip():
            self.show_status("Run a prompt first: Explain attributes the shown answer to the reference.")
            return False
        ref = self.current_reference()
        if tab is None or ref is None:
            self.show_status("Open a reference that parses first.")
            return False

        def on_explained(ex) -> None:
            if tab not in self.tab_list():
                return
            if tab.reference is None or tab.reference.sha256 != ex.reference_sha256:
                self.show_status("The reference changed during Explain; run it again.")
                return
            self.explanation = ex
            tab.editor.set_heat(heat_by_line(tab.reference, ex.items))
            top = ", ".join(i for i, _d in ex.items[:3]) or "no item changes the answer"
            self.show_status(f"Explained: the margin is blue where an item made this answer likelier, red where "
                             f"it pushed away (strongest: {top}). Click a word to see its item.", 20000)

        return self.controller.explain(ref, entry.prompt, answer, on_explained)

    def open_compare(self) -> None:
        from .compare import CompareDialog
        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self)
        self.compare_dialog.show_diff()
        self.compare_dialog.show()
        self.compare_dialog.raise_()

    def start_compare(self, modes: list[str], on_events, on_finished) -> bool:
        """Run the prompt bar's prompt once per mode in the worker (one job); events go to ``on_events``."""
        ref = self.current_reference() if any(m != "none" for m in modes) else None
        return self.controller.compare(self.prompt_bar.prompt.text().strip(), ref, self.loop_model.settings,
                                       self.prompt_bar.sampling(), modes, on_events, on_finished)

    # -- selection -------------------------------------------------------------------------
    def _on_token_selected(self, index: int) -> None:
        self.timeline.select(index)
        for blip in self.run_model.transcript.blips:
            if blip.index == index:
                self.mark_source(blip.source_id)
                return
        self.mark_token_influence(index)

    def mark_token_influence(self, index: int) -> int:
        """After Explain: highlight the reference line of the item most influential on token ``index``."""
        from lantern_studio.core.explain import answer_offset
        ex, tab = self.explanation, self.tab
        if ex is None or tab is None or tab.reference is None or tab.reference.sha256 != ex.reference_sha256:
            return 0
        offset = answer_offset(self.run_model.transcript, index)
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
        self.show_status(f"Reminder from {blip.source_id}: {blip.text}")

    def mark_source(self, source_id: str) -> int:
        """Highlight the reference line a blip or rule came from; returns the line (0 if unknown)."""
        tab = self.tab
        if tab is None or tab.reference is None:
            return 0
        line = tab.reference.line_of(source_id)
        if line:
            tab.editor.mark_line(line)
        return line

    def save_loop_to_reference(self, loop) -> None:
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

    # -- traces and packs ---------------------------------------------------------------------
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

    def open_trace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open trace", str(Path.home()), "Traces (*.jsonl)")
        if path:
            self.open_trace(path)

    def open_pack(self, path: str | Path) -> bool:
        """Check a pack, show its summary and trust verdict, open its references in tabs."""
        from lantern_studio.core.pack import read_pack
        name = Path(path).name
        try:
            pack = read_pack(path)
        except (LanternError, OSError) as exc:
            message = str(exc)
            if name not in message:
                message = f"The pack {name} cannot be opened: {message[0].lower() + message[1:]}"
            self.report_error(message)
            return False
        if self.interactive:
            from .dialogs import PackSummaryDialog
            dlg = PackSummaryDialog(pack, self)
            accepted = dlg.exec()
            dlg.deleteLater()
            if not accepted:
                return False
        entry = pack.manifest.get("entry")
        for ref_name, text in sorted(pack.references.items(), key=lambda kv: kv[0] != entry):
            tab = self.add_tab(text, None)
            tab.pack_verdict = pack.verdict
            self.tabs.setTabText(self.tabs.indexOf(tab), f"{Path(ref_name).name} [{pack.verdict}]")
        try:
            self.loop_model.set_settings(pack.loop)
        except LanternError:
            pass
        self.show_status(f"Opened pack {pack.manifest.get('name', name)} ({pack.verdict}).")
        return True

    def open_pack_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open pack", str(Path.home()), "Reference packs (*.lantern)")
        if path:
            self.open_pack(path)

    def export_pack_dialog(self, exec_: bool = True):
        """File › Export pack…: the current reference must be saved first (it is packed from its file)."""
        from .pack_dialog import ExportPackDialog
        tab = self.tab
        if tab is None:
            self.report_error("Open a reference to export first.")
            return None
        if tab.path is None or tab.is_dirty():
            if not self.interactive or QMessageBox.question(
                    self, "Export pack", f"{tab.title} must be saved before it is packed. Save it now?") \
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

    # -- preferences and help ------------------------------------------------------------------
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
        self.theme = apply_theme(app, str(self.qsettings.value("theme", "light")))
        font = preferred_font(self.qsettings)
        self.tabs.theme = self.theme
        self.tabs.editor_font = font
        for t in self.tab_list():
            t.editor.highlighter.set_theme(self.theme)
            if font is not None:
                t.editor.setFont(font)
                t.editor._update_gutter_width()
        self.timeline.set_theme(self.theme)
        self.token_view.recolor()
        self.loop_model.update("chunk", preferred_chunk(self.qsettings))
        self.show_status("Preferences applied; threads and the default model take effect the next time a "
                         "model loads.", 10000)

    def show_tour(self) -> None:
        from .tour import TourDialog
        self.qsettings.setValue("tour/seen", True)
        self.hint.hide()
        dlg = TourDialog(self)
        dlg.exec()
        dlg.deleteLater()

    def _about(self) -> None:
        QMessageBox.about(self, "About Lantern Studio",
                          f"Lantern Studio {__version__}\nReference documents that steer a live local model.")

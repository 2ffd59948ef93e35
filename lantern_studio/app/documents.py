"""The reference tabs: open, new, save (a name suggested from the title), close with a
question that names the file, recent files, autosave and recovery after a crash."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QTabWidget, QWidget

from lantern_studio.core.describe import file_name_for
from lantern_studio.core.reference import Reference

from . import autosave
from .reference_editor import NEW_REFERENCE, ReferenceTab

MAX_RECENT = 10
EDITOR_MIN_WIDTH = 360  # about 45 characters of the editor font: one word per line never happens


class DocumentTabs(QTabWidget):
    """The central widget: one ReferenceTab per open reference."""

    tabParsed = Signal(object, object)  # tab, Reference
    tabParseError = Signal(object, str)  # tab, message
    tabEdited = Signal(object)  # tab
    tabAdded = Signal(object)  # any new tab
    tabOpened = Signal(object)  # tab read from a file
    recentChanged = Signal()
    message = Signal(str, int)
    error = Signal(str)

    def __init__(self, qsettings: QSettings, interactive: bool, theme: str = "light",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.qsettings = qsettings
        self.interactive = interactive
        self.theme = theme
        self.editor_font = None  # the editor font from Preferences (None: the system's fixed font)
        self.setDocumentMode(True)
        self.setTabsClosable(True)
        self.setMovable(True)
        self.setMinimumWidth(EDITOR_MIN_WIDTH)
        self.tabCloseRequested.connect(self.close_tab)

    @property
    def tab(self) -> ReferenceTab | None:
        w = self.currentWidget()
        return w if isinstance(w, ReferenceTab) else None

    def tab_list(self) -> list[ReferenceTab]:
        return [w for w in (self.widget(i) for i in range(self.count())) if isinstance(w, ReferenceTab)]

    def add_tab(self, text: str, path: Path | None = None, dirty: bool = False) -> ReferenceTab:
        tab = ReferenceTab(text, path, theme=self.theme)
        if self.editor_font is not None:
            tab.editor.setFont(self.editor_font)
        if dirty:
            tab._saved_hash = ""
            tab.editor.document().setModified(True)
        index = self.addTab(tab, tab.title)
        tab.dirtyChanged.connect(lambda _d, t=tab: self.update_title(t))
        tab.parsed.connect(lambda ref, t=tab: self.tabParsed.emit(t, ref))
        tab.parseError.connect(lambda msg, t=tab: self.tabParseError.emit(t, msg))
        tab.editor.textChanged.connect(lambda t=tab: self.tabEdited.emit(t))
        self.tabAdded.emit(tab)
        self.setCurrentIndex(index)
        self.update_title(tab)
        if tab.reference is not None:
            self.tabParsed.emit(tab, tab.reference)
        elif tab.error:
            self.tabParseError.emit(tab, tab.error)
        return tab

    def new_tab(self) -> ReferenceTab:
        return self.add_tab(NEW_REFERENCE)

    def open_reference(self, path: str | Path) -> ReferenceTab | None:
        path = Path(path).resolve()
        for t in self.tab_list():
            if t.path == path:
                self.setCurrentWidget(t)
                return t
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or ("it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError)
                                                       else str(exc))
            self.error.emit(f"{path.name} cannot be opened ({reason}).")
            return None
        tab = self.add_tab(text, path)
        self.add_recent(path)
        self.tabOpened.emit(tab)
        return tab

    def close_tab(self, index: int) -> bool:
        tab = self.widget(index)
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
        autosave.remove_autosave(tab.autosave_key)
        self.removeTab(index)
        tab.deleteLater()
        return True

    def update_title(self, tab: ReferenceTab) -> None:
        i = self.indexOf(tab)
        if i >= 0:
            verdict = f" [{tab.pack_verdict}]" if tab.pack_verdict else ""
            self.setTabText(i, tab.title + verdict + (" •" if tab.is_dirty() else ""))
            self.setTabToolTip(i, str(tab.path) if tab.path else "not saved yet")

    def dirty_tabs(self) -> list[ReferenceTab]:
        return [t for t in self.tab_list() if t.is_dirty()]

    # -- files --------------------------------------------------------------------------------
    def last_dir(self) -> str:
        return str(self.qsettings.value("lastDir", str(Path.home())))

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open reference", self.last_dir(),
                                              "References (*.md);;All files (*)")
        if path:
            self.qsettings.setValue("lastDir", str(Path(path).parent))
            self.open_reference(path)

    def suggested_path(self, tab: ReferenceTab) -> Path:
        """Where Save first proposes to write an unsaved reference: a name from its title."""
        ref: Reference | None = tab.reference
        name = file_name_for(ref.title if ref else None, ref.slug if ref else None)
        folder = tab.path.parent if tab.path else Path(self.last_dir())
        return folder / (tab.path.name if tab.path else name)

    def save_tab(self, tab: ReferenceTab, path: Path | None = None) -> bool:
        if path is None and tab.path is None:
            if not self.interactive:
                self.error.emit("This reference has no file yet; use Save as.")
                return False
            chosen, _ = QFileDialog.getSaveFileName(self, "Save reference", str(self.suggested_path(tab)),
                                                    "References (*.md)")
            if not chosen:
                return False
            path = Path(chosen)
        try:
            saved = tab.save(path)
        except OSError as exc:
            self.error.emit(f"The reference could not be saved ({exc.strerror or exc}).")
            return False
        self.qsettings.setValue("lastDir", str(saved.parent))
        autosave.remove_autosave(tab.autosave_key)
        self.update_title(tab)
        self.add_recent(saved)
        self.message.emit(f"Saved {saved}.", 8000)
        return True

    def save_current(self) -> bool:
        return self.save_tab(self.tab) if self.tab else False

    def save_current_as(self) -> bool:
        tab = self.tab
        if tab is None:
            return False
        chosen, _ = QFileDialog.getSaveFileName(self, "Save reference as", str(self.suggested_path(tab)),
                                                "References (*.md)")
        return self.save_tab(tab, Path(chosen)) if chosen else False

    def add_recent(self, path: Path) -> None:
        recent = [p for p in self.recent() if p != str(path)]
        recent.insert(0, str(path))
        self.qsettings.setValue("recentFiles", recent[:MAX_RECENT])
        self.recentChanged.emit()

    def recent(self) -> list[str]:
        value = self.qsettings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    # -- autosave ----------------------------------------------------------------------------
    def autosave_now(self) -> None:
        for tab in self.dirty_tabs():
            try:
                autosave.write_autosave(tab.autosave_key, tab.text(), tab.path)
            except OSError as exc:
                self.message.emit(f"Autosave failed ({exc.strerror or exc}).", 8000)

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
            autosave.write_autosave(tab.autosave_key, r.text, r.path)
        self.message.emit(f"Recovered {len(found)} unsaved reference(s).", 8000)
        return len(found)

    def forget_autosaves(self, only_clean: bool = True) -> None:
        for t in self.tab_list():
            if not only_clean or not t.is_dirty():
                autosave.remove_autosave(t.autosave_key)

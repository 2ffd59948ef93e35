"""The History dock: every run of this session and the runs kept on disk for the open
references, newest last; a click shows the run again (no model needed)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from .controller import StudioController
from .run_model import HistoryEntry


class HistoryView(QListWidget):
    """A view of ``controller.history``; emits the entry the user picks."""

    entryActivated = Signal(object)  # HistoryEntry

    def __init__(self, controller: StudioController, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.entries: list[HistoryEntry] = []
        self.setUniformItemSizes(True)
        controller.historyChanged.connect(self.refresh)
        self.itemActivated.connect(self._on_item)
        self.itemClicked.connect(self._on_item)
        self.refresh()

    def refresh(self) -> None:
        self.entries = list(self.controller.history)
        self.clear()
        for entry in self.entries:
            item = QListWidgetItem(entry.label())  # list items are plain text
            item.setToolTip(f"{entry.prompt}\nmodel: {entry.model or 'unknown'}"
                            + (f"\nkept in {entry.path}" if entry.path else ""))
            self.addItem(item)
        if self.entries:
            self.scrollToBottom()

    def _on_item(self, item: QListWidgetItem) -> None:
        row = self.row(item)
        if 0 <= row < len(self.entries):
            self.entryActivated.emit(self.entries[row])

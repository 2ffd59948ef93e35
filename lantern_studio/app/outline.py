"""The outline of the current reference: sections and their items; a click jumps to the line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from lantern_studio.core.reference import Reference

LINE_ROLE = Qt.ItemDataRole.UserRole
ID_ROLE = Qt.ItemDataRole.UserRole + 1


class OutlineTree(QTreeWidget):
    lineActivated = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Section / item", "id"])
        self.setColumnWidth(0, 190)
        self.setColumnHidden(1, True)  # ids show in tooltips; the dock stays narrow
        self.setUniformRowHeights(True)
        self.itemClicked.connect(self._on_clicked)

    def set_reference(self, ref: Reference | None) -> None:
        expanded = {self.topLevelItem(i).text(0) for i in range(self.topLevelItemCount())
                    if not self.topLevelItem(i).isExpanded()}
        self.clear()
        if ref is None:
            return
        for section in ref.sections:
            if section.level == 0 and not section.items:
                continue
            top = QTreeWidgetItem([section.title or "(preamble)", section.id])
            top.setData(0, LINE_ROLE, section.line)
            top.setData(0, ID_ROLE, section.id)
            top.setToolTip(0, f"{section.id} · {section.kind} · line {section.line}")
            for item in section.items:
                text = item.text if len(item.text) < 70 else item.text[:67] + "…"
                child = QTreeWidgetItem([text, item.id])
                child.setData(0, LINE_ROLE, item.line)
                child.setData(0, ID_ROLE, item.id)
                child.setToolTip(0, f"{item.id}: {item.text}" + (" (detector)" if item.detector is not None else ""))
                top.addChild(child)
            self.addTopLevelItem(top)
            top.setExpanded(top.text(0) not in expanded)

    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        line = item.data(0, LINE_ROLE)
        if line:
            self.lineActivated.emit(int(line))

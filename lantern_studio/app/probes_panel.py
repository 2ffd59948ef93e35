"""The probe matrix of the current reference: probe × mode, run all with progress and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from lantern_studio.core.settings import MODES

PASS, FAIL = QColor(198, 239, 206), QColor(255, 199, 206)


class ProbesPanel(QWidget):
    """Shows ProbeResults; the window runs them (runAllRequested) and feeds add_result."""

    runAllRequested = Signal(list)  # modes
    cancelRequested = Signal()
    answerRequested = Signal(object)  # ProbeResult

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.modes = list(MODES)
        self.table = QTableWidget(0, len(self.modes))
        self.table.setHorizontalHeaderLabels(self.modes)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.cellDoubleClicked.connect(self._on_cell)
        self.table.cellClicked.connect(self._on_cell)
        self.run_button = QPushButton("Run all")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.summary = QLabel("No probes run yet.")
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        self.run_button.clicked.connect(lambda: self.runAllRequested.emit(self.modes))
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.results: dict[tuple[int, str], object] = {}

    def set_probes(self, prompts: list[str]) -> None:
        self.table.setRowCount(len(prompts))
        self.table.setVerticalHeaderLabels([p if len(p) < 40 else p[:37] + "…" for p in prompts])
        self.results.clear()
        for r in range(len(prompts)):
            for c in range(len(self.modes)):
                self.table.setItem(r, c, QTableWidgetItem(""))
        self.progress.setRange(0, max(1, len(prompts) * len(self.modes)))
        self.progress.setValue(0)

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def add_result(self, result) -> None:
        col = self.modes.index(result.mode)
        row = result.probe - 1
        self.results[(row, result.mode)] = result
        item = QTableWidgetItem("pass" if result.passed else f"fail: {result.failed}")
        item.setBackground(PASS if result.passed else FAIL)
        item.setForeground(QColor(20, 20, 20))
        item.setToolTip(f"{result.blips} blips, {result.tokens_per_s:.1f} tok/s\n\n{result.answer}")
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        self.table.setItem(row, col, item)
        self.progress.setValue(len(self.results))
        per_mode = {m: [r.passed for (_, mm), r in self.results.items() if mm == m] for m in self.modes}
        self.summary.setText("  ".join(f"{m}: {sum(v)}/{len(v)}" for m, v in per_mode.items() if v))

    def _on_cell(self, row: int, col: int) -> None:
        result = self.results.get((row, self.modes[col]))
        if result is not None:
            self.answerRequested.emit(result)

"""The probe matrix of the current reference: probe × mode, run all with progress and Cancel.

Each cell says the verdict in words: "pass", or why not — a failed expectation described
("did not mention anything like “4 g”"; the regex is in the tooltip), an answer that leaks the
reference, or a degenerate one (repeated sentences, empty). The summary counts each per mode.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from lantern_studio.core.describe import describe_probe_failure
from lantern_studio.core.settings import MODES

PASS, FAIL, WARN = QColor(198, 239, 206), QColor(255, 199, 206), QColor(255, 230, 170)
CELL_TEXT = QColor(20, 20, 20)  # cells keep their light colours in both themes: dark text on them


def verdict(result) -> tuple[str, str, QColor]:
    """(cell text, tooltip, colour) of one ProbeResult; leak/degenerate read when present."""
    leak = getattr(result, "leak", None)
    degenerate = getattr(result, "degenerate", None)
    notes = []
    if leak:
        notes.append(f"Leaks the reference: {leak}")
    if degenerate:
        notes.append(f"Degenerate answer: {degenerate}")
    stats = f"{result.blips} blips, {result.tokens_per_s:.1f} tok/s"
    if result.passed and not notes:
        return "pass", f"{stats}\n\n{result.answer}", PASS
    if not result.passed and result.failed:
        words = describe_probe_failure(result.failed, result.answer)
        tip = f"Failed: {words}\nCheck: {result.failed}\n" + "".join(n + "\n" for n in notes)
        return words, f"{tip}{stats}\n\n{result.answer}", FAIL
    text = "leak" if leak else "degenerate"
    return text, "\n".join(notes) + f"\n{stats}\n\n{result.answer}", WARN


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
        self.table.setWordWrap(True)
        self.table.cellDoubleClicked.connect(self._on_cell)
        self.table.cellClicked.connect(self._on_cell)
        self.run_button = QPushButton("Run all")
        self.run_button.setToolTip("Run every probe of the reference in every mode")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.summary = QLabel("No probes run yet.")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
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
        text, tip, color = verdict(result)
        item = QTableWidgetItem(text)
        item.setBackground(color)
        item.setForeground(CELL_TEXT)
        item.setToolTip(tip)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        self.table.setItem(row, col, item)
        self.progress.setValue(len(self.results))
        self.summary.setText(self.summary_text())

    def summary_text(self) -> str:
        """'none: 2/5 pass · blip: 4/5 pass, 1 leak' — per mode, in the order of the columns."""
        parts = []
        for m in self.modes:
            rows = [r for (_, mm), r in self.results.items() if mm == m]
            if not rows:
                continue
            text = f"{m}: {sum(r.passed for r in rows)}/{len(rows)} pass"
            leaks = sum(1 for r in rows if getattr(r, "leak", None))
            degenerate = sum(1 for r in rows if getattr(r, "degenerate", None))
            if leaks:
                text += f", {leaks} leak{'s' if leaks > 1 else ''}"
            if degenerate:
                text += f", {degenerate} degenerate"
            parts.append(text)
        return " · ".join(parts)

    def _on_cell(self, row: int, col: int) -> None:
        result = self.results.get((row, self.modes[col]))
        if result is not None:
            self.answerRequested.emit(result)

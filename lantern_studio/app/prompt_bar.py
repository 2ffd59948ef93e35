"""The prompt, the mode, Run / Stop and the sampling settings.

When the bar is too narrow for everything, the sampling settings (seed, temperature, maximum
tokens, Live) move behind a "⋯" button; the prompt, the mode, Run and Stop always stay.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from lantern_studio.core.settings import MODES, SamplingSettings

from .run_model import LoopModel

PROMPT_MIN_WIDTH = 180


class PromptBar(QWidget):
    runRequested = Signal()
    stopRequested = Signal()

    def __init__(self, loop: LoopModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loop = loop or LoopModel(parent=self)
        self.prompt = QLineEdit(placeholderText="Ask the model something…  (Ctrl+Return runs)")
        self.prompt.setMinimumWidth(PROMPT_MIN_WIDTH)
        self.prompt.setClearButtonEnabled(True)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("How the loop acts in the next run (see Help › Quick tour)")
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Run the prompt (Ctrl+Return)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("Stop the run at the next word (Esc)")
        self.seed = QSpinBox(maximum=2**31 - 1, toolTip="Seed: the same seed gives the same answer")
        self.temperature = QDoubleSpinBox(maximum=5.0, singleStep=0.1, decimals=2,
                                          toolTip="Temperature: 0 always picks the likeliest word")
        self.max_tokens = QSpinBox(minimum=1, maximum=100000, value=160, toolTip="Longest answer, in tokens")
        self.live = QCheckBox("Live")
        self.live.setToolTip("Re-score (observe) or re-run (blip, guide) after every reference edit")
        self.extras = QWidget()
        extras_row = QHBoxLayout(self.extras)
        extras_row.setContentsMargins(0, 0, 0, 0)
        for label, w in (("seed", self.seed), ("temp", self.temperature), ("max", self.max_tokens)):
            extras_row.addWidget(QLabel(label))
            extras_row.addWidget(w)
        extras_row.addWidget(self.live)
        self.more = QToolButton(text="⋯", toolTip="Seed, temperature, maximum tokens, Live")
        self.more.setAutoRaise(True)
        self.more.hide()
        self.more.clicked.connect(self._show_popup)
        self._popup = QFrame(self, Qt.WindowType.Popup)
        self._popup.setFrameShape(QFrame.Shape.StyledPanel)
        QVBoxLayout(self._popup).setContentsMargins(6, 6, 6, 6)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(6, 2, 6, 2)
        self.row.addWidget(self.prompt, 1)
        self.row.addWidget(self.mode)
        self.row.addWidget(self.extras)
        self.row.addWidget(self.more)
        self.row.addWidget(self.run_button)
        self.row.addWidget(self.stop_button)
        self.compact = False
        self.prompt.returnPressed.connect(self.runRequested)
        self.run_button.clicked.connect(self.runRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        self.mode.currentTextChanged.connect(lambda m: self.loop.update("mode", m))
        self.loop.changed.connect(lambda s: self.mode.currentText() != s.mode and self.mode.setCurrentText(s.mode))
        self.mode.setCurrentText(self.loop.settings.mode)

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(temperature=float(self.temperature.value()), seed=int(self.seed.value()),
                                max_tokens=int(self.max_tokens.value()))

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    # -- overflow ---------------------------------------------------------------------------
    def _full_width(self) -> int:
        m = self.row.contentsMargins()
        widgets = (self.mode, self.extras, self.run_button, self.stop_button)
        return (PROMPT_MIN_WIDTH + sum(w.sizeHint().width() for w in widgets) + m.left() + m.right()
                + self.row.spacing() * len(widgets))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.set_compact(event.size().width() < self._full_width())

    def set_compact(self, compact: bool) -> None:
        """Move the sampling settings behind the "⋯" button (or back into the row)."""
        if compact == self.compact:
            return
        self.compact = compact
        if compact:
            self.row.removeWidget(self.extras)
            self._popup.layout().addWidget(self.extras)
            self.more.show()
        else:
            self._popup.hide()
            self._popup.layout().removeWidget(self.extras)
            self.row.insertWidget(self.row.indexOf(self.more), self.extras)
            self.more.hide()
        self.extras.show()

    def _show_popup(self) -> None:
        self._popup.adjustSize()
        below = self.more.mapToGlobal(QPoint(0, self.more.height()))
        self._popup.move(below.x() + self.more.width() - self._popup.width(), below.y())
        self._popup.show()

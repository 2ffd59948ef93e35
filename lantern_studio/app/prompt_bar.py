"""The prompt, the mode, Run / Stop and the sampling settings."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QSpinBox, QWidget)

from lantern_studio.core.settings import MODES, SamplingSettings


class PromptBar(QWidget):
    runRequested = Signal()
    stopRequested = Signal()
    modeChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = QLineEdit(placeholderText="Ask the model something…  (Ctrl+Return runs)")
        self.prompt.setMinimumWidth(280)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("Loop mode for the next run")
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.seed = QSpinBox(maximum=2**31 - 1, toolTip="Seed")
        self.temperature = QDoubleSpinBox(maximum=5.0, singleStep=0.1, decimals=2, toolTip="Temperature (0 = greedy)")
        self.max_tokens = QSpinBox(minimum=1, maximum=100000, value=160, toolTip="Maximum tokens")
        self.live = QCheckBox("Live")
        self.live.setToolTip("Re-score (observe) or re-run (blip, guide) after every reference edit")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 6, 4)
        row.addWidget(self.prompt, 1)
        row.addWidget(self.mode)
        for label, w in (("seed", self.seed), ("temp", self.temperature), ("max", self.max_tokens)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addWidget(self.live)
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)
        self.prompt.returnPressed.connect(self.runRequested)
        self.run_button.clicked.connect(self.runRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        self.mode.currentTextChanged.connect(self.modeChanged)

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(temperature=float(self.temperature.value()), seed=int(self.seed.value()),
                                max_tokens=int(self.max_tokens.value()))

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

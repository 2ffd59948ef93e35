"""Every LoopSettings field, edited with immediate effect; "Save to reference" writes them back.

The panel is a view of a ``LoopModel``: it shows the model's settings and writes each edit to
it. The prompt bar's mode and the timeline's threshold edit the same model, so the three stay
in step without any of them knowing the others.
"""

from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QLabel, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from lantern_studio.core.settings import BLIP_CHOICES, BLIP_STYLES, MODES, LoopSettings

from .run_model import LoopModel

DECIMALS = 2
TIPS = {
    "mode": "How the loop acts: none (the model alone), prompt (the reference in the model's prompt), "
            "observe (measure only), blip (step in with short reminders), guide (steer every word).",
    "threshold": "How much drift the loop tolerates before it steps in (drag the line in the timeline). "
                 "Higher: steps in less often.",
    "kp": "How strongly the current word's drift counts.",
    "ki": "How strongly the drift of the last few words (the window) counts.",
    "kd": "How strongly a sudden change of drift counts.",
    "window": "How many recent words are summed for the 'ki' part.",
    "cooldown": "At least this many words between two reminders (blips).",
    "max_blips": "At most this many reminders (blips) in one answer.",
    "rewind": "What a reminder takes back first: nothing, the current sentence, or the last N words.",
    "blip_style": "How a reminder reaches the model: as a system turn or as a hidden note.",
    "blip_choice": "How the reminder is chosen: by matching words (fast) or by trying each (slower).",
    "gamma": "Guide mode: how strongly the reference steers each word.",
    "gamma_min": "Adaptive guide: the lowest strength.",
    "gamma_max": "Adaptive guide: the highest strength (above gamma min, the strength follows the drift).",
    "guide_rewind": "Guide mode: when the drift passes the threshold, take the sentence back and write it "
                    "again, steered twice as hard.",
    "chunk": "Words the reference side scores at once (larger: faster, the colours lag a little more).",
    "plausibility": "Guide mode: only words the model alone finds at least this plausible (share of its "
                    "best word's probability; 0: no cut).",
    "plausibility_ref": "Guide mode: only words the reference side finds at least this plausible (0: no cut).",
    "copy_guard": "At most this many words of the reference in a row in the answer (0: off).",
    "repeat_guard": "No word that would repeat a run of this many tokens of the answer; the answer ends at its "
                    "last finished sentence instead (0: off).",
    "form_guard": "No Markdown heading, speaker label from the examples, or run of blank lines in the answer.",
    "focus": "The model reads the title, intent, style and only this many rules, the ones most relevant to "
             "the question (0: the whole reference).",
    "relevance": "Guide mode: when the reference makes the question less than this many nats more likely, "
                 "it is not about the question and the model answers alone (0: always guide).",
    "end_bias": "Nats added to ending the answer after a finished sentence (0: off).",
    "start_blip": "Blip mode: remind the model of the most relevant rules before its first word.",
    "rule_rewind": "Prompt and guide modes: take back what a Never rule's pattern matched and write it again.",
}
INT_RANGES = {"window": (1, 4096), "cooldown": (0, 100000), "max_blips": (0, 1000), "chunk": (1, 512),
              "copy_guard": (0, 1000), "repeat_guard": (0, 1000), "focus": (0, 1000)}
FLOAT_RANGES = {"threshold": (0.0, 100.0), "plausibility": (0.0, 1.0), "plausibility_ref": (0.0, 1.0),
                "end_bias": (0.0, 20.0), "relevance": (0.0, 1000.0)}


class LoopPanel(QWidget):
    """Edits a LoopModel; ``saveRequested`` asks to write the settings into the reference."""

    saveRequested = Signal(object)

    def __init__(self, model: LoopModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model or LoopModel(parent=self)
        self._widgets: dict[str, QWidget] = {}
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for f in fields(LoopSettings):
            w = self._make_editor(f.name, getattr(self.model.settings, f.name))
            w.setToolTip(TIPS.get(f.name, ""))
            self._widgets[f.name] = w
            label = QLabel(f.name.replace("_", " "))
            label.setToolTip(TIPS.get(f.name, ""))
            form.addRow(label, w)
        scroll = QScrollArea()
        scroll.setWidget(form_widget)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.save_button = QPushButton("Save to reference")
        self.save_button.setToolTip("Write these settings into the reference's front matter (loop block only).")
        self.save_button.clicked.connect(lambda: self.saveRequested.emit(self.model.settings))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.save_button)
        self.setMinimumWidth(200)
        self.model.changed.connect(self._show)
        self._show(self.model.settings)

    def _make_editor(self, name: str, value) -> QWidget:
        if name in ("mode", "blip_style", "blip_choice"):
            w = QComboBox()
            w.addItems({"mode": MODES, "blip_style": BLIP_STYLES, "blip_choice": BLIP_CHOICES}[name])
            w.currentTextChanged.connect(lambda v, n=name: self.model.update(n, v))
        elif name == "rewind":
            w = QComboBox()
            w.setEditable(True)
            w.addItems(["none", "sentence", "tokens:4", "tokens:8"])
            w.lineEdit().editingFinished.connect(lambda n=name, w=w: self.model.update(n, w.currentText().strip()))
            w.activated.connect(lambda _i, n=name, w=w: self.model.update(n, w.currentText().strip()))
        elif isinstance(value, bool):
            w = QCheckBox()
            w.toggled.connect(lambda v, n=name: self.model.update(n, bool(v)))
        elif isinstance(value, float):
            w = QDoubleSpinBox()
            w.setRange(*FLOAT_RANGES.get(name, (-100.0, 100.0)))
            w.setDecimals(DECIMALS)
            w.setSingleStep(0.1)
            w.valueChanged.connect(lambda v, n=name: self._on_float(n, float(v)))
        else:
            w = QSpinBox()
            w.setRange(*INT_RANGES.get(name, (0, 100000)))
            w.valueChanged.connect(lambda v, n=name: self.model.update(n, int(v)))
        return w

    def _on_float(self, name: str, value: float) -> None:
        # The spin box shows DECIMALS places: its echo of a finer model value is no edit.
        if abs(getattr(self.model.settings, name) - value) >= 0.5 * 10 ** -DECIMALS:
            self.model.update(name, value)

    @property
    def settings(self) -> LoopSettings:
        return self.model.settings

    def set_settings(self, settings: LoopSettings) -> None:
        self.model.set_settings(settings)

    def set_value(self, name: str, value) -> None:
        """Change one field as if the user did (validated by the model)."""
        self.model.update(name, value)

    def editor(self, name: str) -> QWidget:
        return self._widgets[name]

    def _show(self, settings: LoopSettings) -> None:
        for name, w in self._widgets.items():
            value = getattr(settings, name)
            if isinstance(w, QComboBox):
                if w.findText(str(value)) < 0:
                    w.addItem(str(value))
                if w.currentText() != str(value):
                    w.setCurrentText(str(value))
            elif isinstance(w, QCheckBox):
                if w.isChecked() != bool(value):
                    w.setChecked(bool(value))
            elif isinstance(w, QDoubleSpinBox):
                if abs(w.value() - value) >= 0.5 * 10 ** -DECIMALS:
                    w.setValue(value)
            elif isinstance(w, QSpinBox) and w.value() != value:
                w.setValue(value)

"""Every LoopSettings field, edited with immediate effect; "Save to reference" writes them back."""

from __future__ import annotations

from dataclasses import fields

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from lantern_studio.core.errors import SettingsError
from lantern_studio.core.settings import BLIP_CHOICES, BLIP_STYLES, MODES, LoopSettings

TIPS = {
    "mode": "How the loop acts: none, prompt, observe, blip or guide.",
    "threshold": "The controller fires when its signal reaches this value (drag the line in the timeline).",
    "kp": "Proportional gain on the current token's error.",
    "ki": "Integral gain on the summed error over the window.",
    "kd": "Derivative gain on the change of the error.",
    "window": "Tokens summed by the integral term.",
    "cooldown": "Minimum tokens between two blips.",
    "max_blips": "Most blips fired in one run.",
    "rewind": "What a blip takes back first: none, sentence or tokens:N.",
    "blip_style": "How a blip enters the plant: a system turn or an inline note.",
    "blip_choice": "How the blip is chosen: token overlap (cheap) or scored candidates.",
    "gamma": "Guide mode strength.",
    "gamma_min": "Adaptive guide: lowest strength.",
    "gamma_max": "Adaptive guide: highest strength (above gamma_min enables adaptation).",
    "guide_rewind": "Guide mode: when the controller fires, take the drifting sentence back and write it again at 2·γ.",
    "chunk": "Tokens the sidecar scores per batch.",
}


class LoopPanel(QWidget):
    """Edits a LoopSettings; emits settingsChanged with a validated copy on every change."""

    settingsChanged = Signal(object)
    saveRequested = Signal(object)
    invalid = Signal(str)

    def __init__(self, settings: LoopSettings = LoopSettings(), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._widgets: dict[str, QWidget] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for f in fields(LoopSettings):
            name = f.name
            value = getattr(settings, name)
            if name == "mode":
                w = QComboBox()
                w.addItems(MODES)
                w.currentTextChanged.connect(lambda v, n=name: self._set(n, v))
            elif name in ("blip_style", "blip_choice"):
                w = QComboBox()
                w.addItems(BLIP_STYLES if name == "blip_style" else BLIP_CHOICES)
                w.currentTextChanged.connect(lambda v, n=name: self._set(n, v))
            elif name == "rewind":
                w = QComboBox()
                w.setEditable(True)
                w.addItems(["none", "sentence", "tokens:4", "tokens:8"])
                w.lineEdit().editingFinished.connect(lambda n=name, w=w: self._set(n, w.currentText().strip()))
                w.activated.connect(lambda _i, n=name, w=w: self._set(n, w.currentText().strip()))
            elif isinstance(value, bool):
                w = QCheckBox()
                w.toggled.connect(lambda v, n=name: self._set(n, bool(v)))
            elif isinstance(value, float):
                w = QDoubleSpinBox()
                w.setRange(-100.0, 100.0)
                w.setDecimals(2)
                w.setSingleStep(0.1)
                w.valueChanged.connect(lambda v, n=name: self._set(n, float(v)))
            else:
                w = QSpinBox()
                lo, hi = {"window": (1, 4096), "cooldown": (0, 100000), "max_blips": (0, 1000),
                          "chunk": (1, 512)}.get(name, (0, 100000))
                w.setRange(lo, hi)
                w.valueChanged.connect(lambda v, n=name: self._set(n, int(v)))
            w.setToolTip(TIPS.get(name, ""))
            self._widgets[name] = w
            label = QLabel(name.replace("_", " "))
            label.setToolTip(TIPS.get(name, ""))
            form.addRow(label, w)
        self.save_button = QPushButton("Save to reference")
        self.save_button.setToolTip("Write these settings into the reference's front matter (loop block only).")
        self.save_button.clicked.connect(lambda: self.saveRequested.emit(self._settings))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.save_button)
        layout.addStretch(1)
        self.set_settings(settings)

    @property
    def settings(self) -> LoopSettings:
        return self._settings

    def set_settings(self, settings: LoopSettings) -> None:
        """Show ``settings`` without emitting settingsChanged."""
        self._settings = settings
        for name, w in self._widgets.items():
            value = getattr(settings, name)
            w.blockSignals(True)
            if isinstance(w, QComboBox):
                if w.findText(str(value)) < 0:
                    w.addItem(str(value))
                w.setCurrentText(str(value))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            else:
                w.setValue(value)  # type: ignore[attr-defined]
            w.blockSignals(False)

    def set_value(self, name: str, value) -> None:
        """Change one field as if the user did (validates, emits)."""
        self._set(name, value)
        self.set_settings(self._settings)

    def _set(self, name: str, value) -> None:
        if getattr(self._settings, name) == value:
            return
        try:
            self._settings = self._settings.updated(**{name: value})
        except SettingsError as exc:
            self.invalid.emit(str(exc))
            self.set_settings(self._settings)
            return
        self.settingsChanged.emit(self._settings)


__all__ = ["LoopPanel", "QLineEdit"]

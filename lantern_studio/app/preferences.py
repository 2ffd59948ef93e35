"""Edit › Preferences: theme, editor font, threads, chunk size, default model (in the app's QSettings)."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFontComboBox, QFormLayout,
                               QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget)

from lantern_studio.core.models import BUILTINS, DEFAULT_MODEL
from lantern_studio.core.settings import LoopSettings

THEMES = ("light", "dark", "system")


def preferred_font(qsettings: QSettings) -> QFont | None:
    """The editor font chosen in Preferences, or None for the system's fixed font."""
    value = qsettings.value("editor/font")
    if not value:
        return None
    font = QFont()
    return font if font.fromString(str(value)) else None


def preferred_chunk(qsettings: QSettings) -> int:
    try:
        return max(1, min(512, int(qsettings.value("loop/chunk", LoopSettings().chunk))))
    except (TypeError, ValueError):
        return LoopSettings().chunk


class PreferencesDialog(QDialog):
    """Reads and writes the studio's QSettings; the window applies them (``MainWindow.apply_preferences``)."""

    def __init__(self, qsettings: QSettings, parent: QWidget | None = None, editor_font: QFont | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.qsettings = qsettings
        s = qsettings
        self.theme = QComboBox()
        self.theme.addItems(THEMES)
        self.theme.setCurrentText(str(s.value("theme", "light")))
        font = preferred_font(s) or editor_font or QFont("monospace", 10)
        self.font_family = QFontComboBox()
        self.font_family.setFontFilters(QFontComboBox.FontFilter.MonospacedFonts)
        self.font_family.setCurrentFont(font)
        self.font_size = QSpinBox(minimum=6, maximum=48, value=max(6, font.pointSize()))
        font_row = QHBoxLayout()
        font_row.addWidget(self.font_family, 1)
        font_row.addWidget(self.font_size)
        self.threads = QSpinBox(minimum=0, maximum=256, value=int(s.value("threads", 0) or 0))
        self.threads.setSpecialValueText("automatic (all cores but one)")
        self.chunk = QSpinBox(minimum=1, maximum=512, value=preferred_chunk(s))
        self.chunk.setToolTip("Tokens the sidecar scores per batch (LoopSettings.chunk) when a reference does "
                              "not set it.")
        self.model = QComboBox(editable=True)
        self.model.addItems(list(BUILTINS))
        self.model.setCurrentText(str(s.value("defaultModel", "") or DEFAULT_MODEL))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        note = QLabel("Threads and the default model take effect the next time a model loads.")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(placeholder-text);")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Theme", self.theme)
        form.addRow("Editor font", font_row)
        form.addRow("Threads", self.threads)
        form.addRow("Chunk size", self.chunk)
        form.addRow("Default model", model_row)
        form.addRow(note)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Default model", "", "GGUF models (*.gguf)")
        if path:
            self.model.setCurrentText(path)

    def chosen_font(self) -> QFont:
        """The chosen editor font."""
        f = QFont(self.font_family.currentFont())
        f.setPointSize(self.font_size.value())
        f.setStyleHint(QFont.StyleHint.Monospace)
        return f

    def save(self) -> None:
        """Write the choices to QSettings."""
        s = self.qsettings
        s.setValue("theme", self.theme.currentText())
        s.setValue("editor/font", self.chosen_font().toString())
        s.setValue("threads", self.threads.value())
        s.setValue("loop/chunk", self.chunk.value())
        model = self.model.currentText().strip()
        s.setValue("defaultModel", "" if model == DEFAULT_MODEL else model)
        s.sync()

    def accept(self) -> None:
        self.save()
        super().accept()

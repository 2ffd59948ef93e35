"""Light, dark or system appearance (Fusion style with a palette), and plot colours to match."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from lantern_studio.paths import resources_dir


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 32, 36), QColor(43, 45, 50), QColor(222, 224, 228)
    for role, color in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, QColor(38, 40, 45)),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(64, 120, 200)),
                        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
                        (QPalette.ColorRole.PlaceholderText, QColor(130, 134, 140)),
                        (QPalette.ColorRole.Link, QColor(110, 170, 255))):
        p.setColor(role, color)
    disabled = QColor(120, 124, 130)  # greyed out, as the light theme does: a disabled Stop must look it
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Button, QColor(38, 40, 45))
    return p


def resolve_theme(theme: str) -> str:
    if theme == "system":
        hints = QApplication.styleHints()
        return "dark" if hints.colorScheme() == Qt.ColorScheme.Dark else "light"
    return theme if theme in ("light", "dark") else "light"


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply a theme to the whole application; returns 'light' or 'dark'."""
    resolved = resolve_theme(theme)
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if resolved == "dark" else app.style().standardPalette())
    qss = resources_dir() / "themes" / f"{resolved}.qss"
    app.setStyleSheet(qss.read_text(encoding="utf-8") if qss.is_file() else "")
    bg = app.palette().color(QPalette.ColorRole.Base)
    fg = app.palette().color(QPalette.ColorRole.Text)
    pg.setConfigOptions(background=bg, foreground=fg, antialias=True)
    return resolved

"""File › Export Pack…: name, version, description, signing key, sample traces; writes a signed pack."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QInputDialog, QLabel, QLineEdit, QPlainTextEdit, QPushButton)

from lantern_studio.core.errors import LanternError

UNSIGNED = "\x00unsigned"
GENERATE = "\x00generate"


class ExportPackDialog(QDialog):
    """Exports the current (saved) reference of ``window`` as a .lantern pack."""

    def __init__(self, window, reference_path: Path, reference) -> None:
        super().__init__(window)
        from lantern_studio.core.keys import KeyStore
        self.window_ = window
        self.reference_path = Path(reference_path)
        self.keystore = KeyStore()
        self.setWindowTitle("Export pack")
        self.name = QLineEdit(reference.title or reference.slug)
        self.version = QLineEdit(reference.version or "0.1.0")
        self.description = QPlainTextEdit()
        self.description.setPlaceholderText("What this pack is for, for whom.")
        self.description.setMaximumHeight(80)
        self.key = QComboBox()
        self._fill_keys()
        self.key.activated.connect(self._on_key_activated)
        runs = window.exportable_runs()
        self.traces = QCheckBox(f"Include the {len(runs)} run(s) in History as sample traces")
        self.traces.setEnabled(bool(runs))
        self.out = QLineEdit(str(self.reference_path.with_name(f"{reference.slug}.lantern")))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.result = QLabel()
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.export)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        ref_label = QLabel(str(self.reference_path))
        ref_label.setTextFormat(Qt.TextFormat.PlainText)
        form.addRow("Reference", ref_label)
        form.addRow("Name", self.name)
        form.addRow("Version", self.version)
        form.addRow("Description", self.description)
        form.addRow("Signing key", self.key)
        form.addRow("", self.traces)
        form.addRow("Save as", out_row)
        form.addRow(self.result)
        form.addRow(buttons)
        self.resize(560, 0)
        self.pack = None

    def _fill_keys(self, select: str | None = None) -> None:
        self.key.clear()
        for info in self.keystore.list_keys():
            self.key.addItem(f"{info.name}  ({info.fingerprint[:16]})", info.name)
        self.key.addItem("Unsigned", UNSIGNED)
        self.key.addItem("Generate key…", GENERATE)
        index = self.key.findData(select) if select else 0
        self.key.setCurrentIndex(max(0, index))

    def _on_key_activated(self, index: int) -> None:
        if self.key.itemData(index) != GENERATE:
            return
        name, ok = QInputDialog.getText(self, "Generate key", "Name of the new signing key:", text="default")
        if ok and name.strip():
            self.generate_key(name.strip())
        else:
            self._fill_keys(UNSIGNED)

    def generate_key(self, name: str) -> bool:
        """Make a new Ed25519 key (trusted at once) and select it."""
        try:
            self.keystore.generate(name)
        except LanternError as exc:
            self.window_.report_error(str(exc))
            self._fill_keys(UNSIGNED)
            return False
        self._fill_keys(name)
        return True

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export pack", self.out.text(), "Reference packs (*.lantern)")
        if path:
            self.out.setText(path if path.endswith(".lantern") else path + ".lantern")

    def export(self) -> Path | None:
        """Write the pack, re-open it to check it, show the path and the trust verdict."""
        from lantern_studio.core.pack import export_pack, read_pack
        key_name = self.key.currentData()
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            signing_key = None if key_name in (UNSIGNED, GENERATE, None) else self.keystore.load_private(key_name)
            with tempfile.TemporaryDirectory(prefix="lantern-traces-") as tmp:
                traces = []
                if self.traces.isChecked():
                    for i, record in enumerate(self.window_.exportable_runs(), 1):
                        traces.append(self.window_.export_trace(Path(tmp) / f"run-{i:02d}-{record.loop.mode}.jsonl",
                                                                record))
                out = export_pack([self.reference_path], self.out.text().strip(), name=self.name.text().strip() or None,
                                  version=self.version.text().strip() or None,
                                  description=self.description.toPlainText().strip() or None,
                                  signing_key=signing_key, trace_paths=traces)
            self.pack = read_pack(out)
        except (LanternError, OSError) as exc:
            QGuiApplication.restoreOverrideCursor()
            message = str(exc) if isinstance(exc, LanternError) else f"The pack could not be written ({exc})."
            self.result.setText(message)
            self.window_.report_error(message)
            return None
        QGuiApplication.restoreOverrideCursor()
        from .dialogs import BADGES
        _color, text = BADGES.get(self.pack.verdict, ("#b00020", self.pack.verdict))
        traces = sum(1 for f in self.pack.manifest.get('files', {}) if f.startswith('traces/'))
        self.result.setText(f"Written to {out}\nVerdict: {text} ({self.pack.verdict}); "
                            f"{len(self.pack.references)} reference(s), {traces} trace(s).")
        self.window_.show_status(f"Pack written to {out} ({self.pack.verdict}).")
        return Path(out)



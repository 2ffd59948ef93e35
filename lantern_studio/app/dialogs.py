"""Small dialogs: score text, model pull with progress."""

from __future__ import annotations

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMessageBox,
                               QPlainTextEdit, QProgressDialog, QWidget)
from superqt.utils import FunctionWorker

from lantern_studio.core.errors import LanternError


class ScoreTextDialog(QDialog):
    """Paste an answer (and its prompt) to see its per-token errors against the reference."""

    def __init__(self, prompt: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Score text")
        self.prompt_edit = QLineEdit(prompt)
        self.answer_edit = QPlainTextEdit()
        self.answer_edit.setPlaceholderText("Paste an answer to score against the current reference…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Score")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Prompt", self.prompt_edit)
        form.addRow("Answer", self.answer_edit)
        form.addRow(buttons)
        self.resize(560, 360)

    def prompt(self) -> str:
        return self.prompt_edit.text()

    def answer(self) -> str:
        return self.answer_edit.toPlainText()


def pull_with_progress(parent: QWidget, name: str) -> bool:
    """Download a built-in model in a worker with a progress dialog; True when installed."""
    from lantern_studio.core.models import pull

    dialog = QProgressDialog(f"Downloading {name}…", "Hide", 0, 0, parent)
    dialog.findChild(QLabel).setTextFormat(Qt.TextFormat.PlainText)
    dialog.setWindowTitle("Models")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    result: dict[str, object] = {}
    loop = QEventLoop()
    messages: list[str] = []

    worker = FunctionWorker(lambda: pull(name, messages.append))
    worker.returned.connect(lambda path: result.update(path=path))
    worker.errored.connect(lambda exc: result.update(error=exc))
    worker.finished.connect(loop.quit)
    from PySide6.QtCore import QTimer
    timer = QTimer(interval=200)
    timer.timeout.connect(lambda: messages and dialog.setLabelText(messages[-1]))
    timer.start()
    worker.start()
    dialog.show()
    loop.exec()
    timer.stop()
    dialog.close()
    error = result.get("error")
    if error is not None:
        message = str(error) if isinstance(error, LanternError) else f"The model could not be downloaded ({error})."
        QMessageBox.warning(parent, "Models", message)
        return False
    return True


BADGES = {
    "trusted": ("#1e7d32", "Trusted signer"),
    "valid-unknown": ("#b26a00", "Valid signature, unknown signer"),
    "unsigned": ("#666666", "Unsigned"),
}


def plain_label(text: str, parent: QWidget | None = None) -> "QLabel":
    """A label for untrusted text (manifest fields, trace contents): never read as rich text."""
    from PySide6.QtWidgets import QLabel
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class PackSummaryDialog(QDialog):
    """What a pack holds and who signed it, before its references open. Every value from the
    pack is shown as plain text: a manifest is untrusted input."""

    def __init__(self, pack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QLabel
        m = pack.manifest
        self.setWindowTitle(f"Pack {str(m.get('name', ''))[:80]}")
        color, text = BADGES.get(pack.verdict, ("#b00020", pack.verdict))
        self.verdict = pack.verdict
        self.badge = QLabel(text)  # our own words only; the colour comes from the verdict
        self.badge.setTextFormat(Qt.TextFormat.PlainText)
        self.badge.setStyleSheet(f"background:{color}; color:white; padding:3px 8px; border-radius:4px;")
        form = QFormLayout(self)
        form.addRow("Trust", self.badge)
        self.labels: dict[str, QLabel] = {}
        for key in ("name", "version", "author", "created", "description"):
            if m.get(key):
                self.labels[key] = plain_label(str(m[key]))
                form.addRow(key.capitalize(), self.labels[key])
        if pack.signer:
            who = f"{pack.signer_name}  (key {pack.signer})" if pack.signer_name else f"unknown (key {pack.signer})"
            self.labels["signer"] = plain_label(who)
            form.addRow("Signer", self.labels["signer"])
        self.labels["references"] = plain_label("\n".join(sorted(pack.references)))
        form.addRow("References", self.labels["references"])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

""""Make a fast copy for this machine": a GGUF whose weights llama.cpp cannot batch here
(Q4_1, Q5_0, Q5_1, …) is requantized to Q4_0 in the background, with progress and cancel,
after the disk space is checked. The original is never touched.

Wiring (Models menu or after opening a GGUF)::

    from lantern_studio.app.fast_copy import offer_fast_copy
    new_path = offer_fast_copy(window, path)   # None: not needed, refused or cancelled
    if new_path: window.load_model(new_path)

``FastCopyDialog`` is the dialog itself (non-modal use: connect ``copied(str)``).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import FunctionWorker

from lantern_studio.core.errors import Cancelled, LanternError
from lantern_studio.core.fastcopy import (
    DEFAULT_FAST_FORMAT,
    estimated_size,
    fast_copy_path,
    make_fast_copy,
    needs_fast_copy,
)
from lantern_studio.core.gguf import GGUFError, read_header

STEPS = 1000


class _Relay(QObject):
    """Carries progress from the worker thread to the dialog (a queued connection)."""

    progressed = Signal(float, str)


class FastCopyDialog(QDialog):
    """Explains the copy, checks the space, runs it with progress; Cancel stops it."""

    copied = Signal(str)  # the new file's path

    def __init__(self, source: str | Path, parent: QWidget | None = None, ftype: str = DEFAULT_FAST_FORMAT,
                 target: str | Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Make a fast copy for this machine")
        self.source = Path(source)
        self.ftype = ftype
        self.target = Path(target) if target is not None else fast_copy_path(self.source, ftype)
        self.result_path: Path | None = None
        self.error: str | None = None
        self._cancel = threading.Event()
        self._worker: FunctionWorker | None = None
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)

        self.info = QLabel(self)
        self.info.setTextFormat(Qt.TextFormat.PlainText)  # file names are not markup
        self.info.setWordWrap(True)
        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, STEPS)
        self.bar.setValue(0)
        self.buttons = QDialogButtonBox(self)
        self.start_button = QPushButton("Make the copy", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(self)
        for w in (self.info, self.bar, self.status, self.buttons):
            layout.addWidget(w)
        self._explain()

    # -- before ---------------------------------------------------------------------------
    def _explain(self) -> None:
        weight = needs_fast_copy(self.source)
        try:
            need = estimated_size(read_header(self.source), self.ftype)
        except (OSError, GGUFError) as exc:
            self._refuse(f"{self.source.name} cannot be read as a GGUF model ({exc}).")
            return
        what = f"holds {weight} weights" if weight else "is already in a format this machine batches well"
        self.info.setText(
            f"{self.source.name} {what}. llama.cpp multiplies {weight or 'such'} weights one row at a time "
            f"on this CPU, so the sidecar's chunks cost nearly as much as single tokens. A {self.ftype} "
            f"copy is batched and repacked for this CPU; the original file is kept.\n\n"
            f"The copy rounds every weight a second time, so it answers differently: for SmolLM2 a Q4_0 "
            f"copy of the Q4_1 file ran the steered modes 1.4–1.6× faster but passed 5 fewer of 60 test "
            f"probes. Compare your probes on both before relying on it.\n\n"
            f"The copy: {self.target} (about {need / 1e6:.0f} MB"
            + (", replacing the file there)." if self.target.exists() else ")."))
        try:
            free = shutil.disk_usage(self.target.parent).free
        except OSError as exc:
            self._refuse(f"The folder {self.target.parent} cannot be used ({exc.strerror or exc}).")
            return
        if free < need:
            self._refuse(f"Not enough free disk space in {self.target.parent}: about {need / 1e6:.0f} MB "
                         f"needed, {free / 1e6:.0f} MB free.")
            return
        self.status.setText(f"{free / 1e6:.0f} MB free in {self.target.parent}.")

    def _refuse(self, message: str) -> None:
        self.error = message
        self.status.setText(message)
        self.start_button.setEnabled(False)
        self.cancel_button.setText("Close")

    # -- during ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is not None or not self.start_button.isEnabled():
            return
        self.start_button.setEnabled(False)
        self.status.setText("Starting…")
        self._cancel.clear()
        relay = self._relay
        source, target, ftype, cancel = self.source, self.target, self.ftype, self._cancel

        def work() -> Path:
            return make_fast_copy(source, target, ftype, progress=lambda f, m: relay.progressed.emit(f, m),
                                  cancel=cancel.is_set)

        self._worker = FunctionWorker(work)
        self._worker.returned.connect(self._on_done)
        self._worker.errored.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        self._worker.start()

    def running(self) -> bool:
        return self._worker is not None

    def cancel(self) -> None:
        if self._worker is not None:
            self._cancel.set()
            self.status.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
        else:
            self.reject()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(max(0.0, min(1.0, fraction)) * STEPS))
        self.status.setText(message)

    def _on_done(self, path: Path) -> None:
        self.result_path = Path(path)
        self.bar.setValue(STEPS)
        self.status.setText(f"Done: {self.result_path}")
        self.copied.emit(str(self.result_path))

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self.error = "Cancelled; nothing was written."
        elif isinstance(exc, LanternError):
            self.error = str(exc)
        else:
            self.error = f"The copy failed ({exc})."
        self.status.setText(self.error)
        self.bar.setValue(0)

    def _on_finished(self) -> None:
        self._worker = None
        if self.result_path is not None:
            self.accept()
        else:
            self.cancel_button.setEnabled(True)
            self.cancel_button.setText("Close")

    def reject(self) -> None:
        if self._worker is not None:  # closing the window cancels; it closes when the child is gone
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self._worker is not None:
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)


def offer_fast_copy(parent: QWidget | None, source: str | Path, ftype: str = DEFAULT_FAST_FORMAT) -> Path | None:
    """If ``source``'s weights have no batched kernel here, offer the copy (modal); returns
    the copy's path when it was made, else None."""
    if needs_fast_copy(source) is None:
        return None
    dialog = FastCopyDialog(source, parent, ftype)
    dialog.exec()
    return dialog.result_path


__all__ = ["FastCopyDialog", "offer_fast_copy"]

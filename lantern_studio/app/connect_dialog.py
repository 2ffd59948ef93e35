"""Models › Connect to server…: a model server's address, an optional API key kept in the OS
keyring, and a "Test connection" that shows the model the server reports.

The test runs in a worker thread (a server that does not answer must not freeze the
window). ``add_connect_action(menu, on_connected)`` puts the entry in a menu; the window
that owns the menu loads the terrain with ``on_connected(url)`` (``Engine.load(url)`` finds
the saved key itself).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMenu, QPushButton,
                               QWidget)
from superqt.utils import FunctionWorker

from lantern_studio.core.errors import LanternError
from lantern_studio.core.remote import RemoteSettings, ServerInfo, api_key_for, normalise_url, probe, save_api_key

DEFAULT_URL = "http://127.0.0.1:8080"


class ConnectDialog(QDialog):
    """Ask for a server's URL and key; ``url()`` is the normalised address once accepted."""

    def __init__(self, parent: QWidget | None = None, url: str = DEFAULT_URL) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to server")
        self.url_edit = QLineEdit(url)
        self.url_edit.setPlaceholderText("http://HOST:PORT of llama-server, vLLM or SGLang")
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("optional; kept in the system keyring")
        self.test_button = QPushButton("Test connection")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        self.buttons.accepted.connect(self._on_accept)
        self.buttons.rejected.connect(self.reject)
        self.test_button.clicked.connect(self._on_test)
        self.url_edit.textChanged.connect(self._on_url_changed)
        form = QFormLayout(self)
        form.addRow("Server URL", self.url_edit)
        form.addRow("API key", self.key_edit)
        form.addRow(self.test_button, self.status)
        form.addRow(self.buttons)
        self.resize(520, 180)
        self.info: ServerInfo | None = None
        self._worker: FunctionWorker | None = None
        self._url = ""
        self._on_url_changed(url)

    def url(self) -> str:
        return self._url

    # -- slots --------------------------------------------------------------------------
    def _on_url_changed(self, text: str) -> None:
        self.info = None
        try:
            saved = api_key_for(normalise_url(text))
        except LanternError:
            saved = None
        if saved and not self.key_edit.text():
            self.key_edit.setPlaceholderText("saved in the system keyring")

    def _settings(self) -> tuple[str, RemoteSettings]:
        url = normalise_url(self.url_edit.text())
        key = self.key_edit.text().strip() or api_key_for(url)
        return url, RemoteSettings(api_key=key or None, timeout_s=10.0)

    def _on_test(self) -> None:
        try:
            url, settings = self._settings()
        except LanternError as exc:
            self._show(str(exc), ok=False)
            return
        self.test_button.setEnabled(False)
        self._show("Connecting…", ok=True)
        worker = FunctionWorker(lambda: probe(url, settings))
        worker.returned.connect(self._on_probed)
        worker.errored.connect(lambda exc: self._show(str(exc) if isinstance(exc, LanternError)
                                                      else f"The test failed ({type(exc).__name__}).", ok=False))
        worker.finished.connect(lambda: self.test_button.setEnabled(True))
        self._worker = worker
        worker.start()

    def _on_probed(self, info: ServerInfo) -> None:
        self.info = info
        self._show(info.describe(), ok=True)

    def _on_accept(self) -> None:
        try:
            url, _ = self._settings()
            key = self.key_edit.text().strip()
            if key:
                save_api_key(url, key)
        except LanternError as exc:
            self._show(str(exc), ok=False)
            return
        self._url = url
        self.accept()

    def _show(self, text: str, ok: bool) -> None:
        self.status.setText(text)
        self.status.setProperty("error", not ok)
        self.status.setStyleSheet("" if ok else "color: #c0392b;")


def add_connect_action(menu: QMenu, on_connected: Callable[[str], None]) -> QAction:
    """Add "Connect to server…" to ``menu``; on Connect, ``on_connected(url)`` is called."""
    action = QAction("Connect to server…", menu)

    def open_dialog() -> None:
        dialog = ConnectDialog(menu.window() if menu.window() is not menu else None)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            on_connected(dialog.url())

    action.triggered.connect(open_dialog)
    menu.addAction(action)
    return action


__all__ = ["ConnectDialog", "add_connect_action"]

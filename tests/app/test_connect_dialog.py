"""Models › Connect to server…: the dialog against a real llama-server and a closed port."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QMenu

from lantern_studio.app.connect_dialog import ConnectDialog, add_connect_action
from servers import free_port, llama_server  # noqa: F401 (fixture)


class MemoryKeyring:
    """An in-memory stand-in for the OS keyring (this machine has none)."""

    def __init__(self) -> None:
        import keyring.backend

        store: dict[tuple[str, str], str] = {}

        class _Backend(keyring.backend.KeyringBackend):
            priority = 1

            def get_password(self, service, username):
                return store.get((service, username))

            def set_password(self, service, username, password):
                store[(service, username)] = password

            def delete_password(self, service, username):
                store.pop((service, username), None)

        self.store = store
        self.backend = _Backend()


@pytest.fixture
def memory_keyring(monkeypatch):
    import keyring

    monkeypatch.delenv("LANTERN_API_KEY", raising=False)
    previous = keyring.get_keyring()
    mem = MemoryKeyring()
    keyring.set_keyring(mem.backend)
    yield mem
    keyring.set_keyring(previous)


@pytest.mark.model
def test_test_connection_shows_the_model_the_server_reports(qtbot, llama_server, memory_keyring):
    dialog = ConnectDialog(url=llama_server.url)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.info is not None, timeout=15000)
    assert "SmolLM2" in dialog.status.text() and "llama-server" in dialog.status.text()
    assert dialog.test_button.isEnabled()
    dialog.key_edit.setText("k-123")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.url() == llama_server.url
    assert memory_keyring.store[("lantern-studio", llama_server.url)] == "k-123"
    from lantern_studio.core.remote import api_key_for
    assert api_key_for(llama_server.url + "/") == "k-123"  # what Engine.load(url) will send


def test_a_closed_port_is_shown_and_the_dialog_stays_usable(qtbot, memory_keyring):
    url = f"http://127.0.0.1:{free_port()}"
    dialog = ConnectDialog(url=url)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled() and "Nothing answers" in dialog.status.text(), timeout=15000)
    assert dialog.info is None and dialog.status.property("error") is True
    dialog.url_edit.setText("ftp://nowhere")
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    assert "http://HOST:PORT" in dialog.status.text()
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert dialog.result() == 0 and dialog.url() == ""  # a bad address is not accepted


def test_the_menu_action_is_added(qtbot):
    menu = QMenu()
    qtbot.addWidget(menu)
    seen: list[str] = []
    action = add_connect_action(menu, seen.append)
    assert action in menu.actions() and action.text() == "Connect to server…"

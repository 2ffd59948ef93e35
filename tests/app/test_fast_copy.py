"""The "Make a fast copy for this machine" dialog, on the real default model and quantizer."""

from __future__ import annotations

from collections import namedtuple

import pytest

from lantern_studio.core import models

pytestmark = pytest.mark.model


@pytest.fixture
def source():
    if not models.is_installed("smollm2"):
        pytest.skip("the default model smollm2 is not installed")
    return models.installed_path("smollm2")


def test_the_dialog_makes_the_copy_in_the_background(qtbot, source, tmp_path):
    from lantern_studio.app.fast_copy import FastCopyDialog
    from lantern_studio.core.gguf import read_header

    target = tmp_path / "copy.Q4_0.gguf"
    dialog = FastCopyDialog(source, target=target)
    qtbot.addWidget(dialog)
    assert "Q4_1" in dialog.info.text() and str(target) in dialog.info.text()
    assert dialog.start_button.isEnabled()
    values: list[int] = []
    dialog.bar.valueChanged.connect(values.append)
    with qtbot.waitSignal(dialog.copied, timeout=120_000) as blocker:
        dialog.start()
        assert dialog.running() and not dialog.start_button.isEnabled()
    assert blocker.args == [str(target)]
    qtbot.waitUntil(lambda: not dialog.running(), timeout=10_000)
    assert dialog.result_path == target and read_header(target).weight_type() == "Q4_0"
    assert values[-1] == 1000 and len(values) > 5  # progress moved in steps, to the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.Q4_0.gguf"]


def test_cancel_stops_the_copy_and_leaves_nothing(qtbot, source, tmp_path):
    from lantern_studio.app.fast_copy import FastCopyDialog

    target = tmp_path / "copy.Q4_0.gguf"
    dialog = FastCopyDialog(source, target=target)
    qtbot.addWidget(dialog)
    dialog.start()
    dialog.cancel()
    assert not dialog.cancel_button.isEnabled()  # Cancel was taken; the child is being stopped
    qtbot.waitUntil(lambda: not dialog.running(), timeout=60_000)
    assert dialog.result_path is None and dialog.error == "Cancelled; nothing was written."
    assert dialog.cancel_button.text() == "Close" and dialog.cancel_button.isEnabled()
    assert list(tmp_path.iterdir()) == []


def test_too_little_space_is_said_before_anything_starts(qtbot, source, tmp_path, monkeypatch):
    from lantern_studio.app import fast_copy

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fast_copy.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    dialog = fast_copy.FastCopyDialog(source, target=tmp_path / "copy.gguf")
    qtbot.addWidget(dialog)
    assert not dialog.start_button.isEnabled()
    assert "Not enough free disk space" in dialog.status.text() and dialog.error
    dialog.start()  # a disabled start does nothing
    assert not dialog.running() and list(tmp_path.iterdir()) == []


def test_no_offer_for_a_model_that_is_already_batched(qtbot, tmp_path):
    from lantern_studio.app.fast_copy import offer_fast_copy

    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    assert offer_fast_copy(None, text) is None  # unreadable: the loader reports that, not this offer

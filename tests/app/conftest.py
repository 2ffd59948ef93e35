"""Studio tests: offscreen Qt, the real default model, no user files touched, no leaked windows."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from lantern_studio.core import models  # noqa: E402

HERE = Path(__file__).parent

PARIS_REFERENCE = """---
title: Geography tutor
slug: geo
loop:
  mode: blip
  threshold: 1.5
---
# Intent
Answer questions about geography for school children. Be brief and accurate.

# Never
- Name the city `regex: paris`

# Always
- Say that the answer should be checked in an atlas.
"""


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Data, config and QSettings under tmp_path: tests never touch the user's files. The
    models stay where they are installed, for the studio runs started in subprocesses."""
    monkeypatch.setenv("LANTERN_MODELS_DIR", str(models.models_dir()))
    monkeypatch.setenv("LANTERN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LANTERN_CONFIG_DIR", str(tmp_path / "config"))
    from lantern_studio.app.main import configure_settings
    configure_settings()
    yield


@pytest.fixture(scope="session")
def engine():
    """The default model, loaded once for the session."""
    if not models.is_installed("smollm2"):
        pytest.skip("the default model smollm2 is not installed (run `lantern models pull smollm2`)")
    from lantern_studio.core.engine import Engine
    from lantern_studio.core.settings import EngineSettings
    # One thread: on a shared, small CI box llama.cpp's spinning worker threads slow to a crawl
    # when another process holds a core.
    eng = Engine.load(settings=EngineSettings(n_threads=1))
    yield eng
    eng.close()


@pytest.fixture
def paris_file(tmp_path) -> Path:
    path = tmp_path / "geo.md"
    path.write_text(PARIS_REFERENCE, encoding="utf-8")
    return path


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Like napari's make_napari_viewer: builds windows, closes them, FAILS on leaked top-level widgets."""
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings
    from PySide6.QtWidgets import QApplication

    from lantern_studio.app.main_window import MainWindow

    app = QApplication.instance()
    before = {id(w) for w in app.topLevelWidgets()}
    made: list[MainWindow] = []

    def make(engine=None, interactive: bool = False, **kwargs) -> MainWindow:
        settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, interactive=interactive, **kwargs)
        made.append(window)
        window.show()
        qtbot.waitExposed(window)
        if engine is not None:
            window.session.use_engine(engine)
        return window

    yield make

    for window in made:
        window.close()
        window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    leaked = [w for w in app.topLevelWidgets() if id(w) not in before and w.isVisible()]
    if leaked:
        names = ", ".join(type(w).__name__ for w in leaked)
        for w in leaked:
            w.close()
            w.deleteLater()
        pytest.fail(f"the test leaked {len(leaked)} top-level widget(s): {names}")

"""Shared fixtures: the real default model, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "references"


def _default_model_path() -> Path:
    """The file `smollm2` loads: the pulled original, or the fast copy if the pull chose it."""
    from lantern_studio.core.models import default_path, is_installed

    if not is_installed("smollm2"):
        pytest.skip("the default model is not installed; `make test` pulls it first")
    return default_path("smollm2")


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """Keys and trust store in tmp_path, never the real config; no ambient SOURCE_DATE_EPOCH."""
    path = tmp_path / "config"
    monkeypatch.setenv("LANTERN_CONFIG_DIR", str(path))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return path


@pytest.fixture
def lantern(monkeypatch, capsys):
    """``lantern(*argv)`` runs the CLI in-process: (exit code, stdout, stderr)."""
    from pack_builders import lantern_runner

    return lantern_runner(monkeypatch, capsys)


@pytest.fixture(scope="session")
def model_path() -> Path:
    return _default_model_path()


@pytest.fixture(scope="session")
def engine(model_path):
    from lantern_studio.core.engine import Engine

    eng = Engine.load(model_path)
    yield eng
    eng.close()


@pytest.fixture
def conflict_reference(tmp_path):
    """A reference built to conflict with the model's habit of answering 'Paris'."""
    from lantern_studio.core.reference import load_reference

    path = tmp_path / "pirate.md"
    from helpers import PIRATE

    path.write_text(PIRATE, encoding="utf-8")
    return load_reference(path)

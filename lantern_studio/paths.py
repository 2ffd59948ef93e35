"""Where things live: the user's data and config dirs, and the shipped resources."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "lantern-studio"
_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    """The user's data dir (models, autosaves, history); ``LANTERN_DATA_DIR`` overrides."""
    override = os.environ.get("LANTERN_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """The user's config dir (keys, trust store); ``LANTERN_CONFIG_DIR`` overrides."""
    override = os.environ.get("LANTERN_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def models_dir() -> Path:
    """Where built-in models are stored; ``LANTERN_MODELS_DIR`` overrides."""
    override = os.environ.get("LANTERN_MODELS_DIR")
    return Path(override) if override else data_dir() / "models"


def _shipped(name: str) -> Path:
    # In a checkout the folders sit beside the package; in a wheel they are package data.
    for candidate in (_PACKAGE_DIR.parent / name, _PACKAGE_DIR / "_shipped" / name):
        if candidate.is_dir():
            return candidate
    return _PACKAGE_DIR.parent / name


def resources_dir() -> Path:
    return _shipped("resources")


def references_dir() -> Path:
    return _shipped("references")

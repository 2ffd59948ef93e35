"""Autosave of unsaved reference text to ``data_dir()/autosave`` and recovery after a crash."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from lantern_studio.core.atomic import atomic_write
from lantern_studio.paths import data_dir


def autosave_dir() -> Path:
    return data_dir() / "autosave"


def new_key() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Recovered:
    key: str
    text: str
    path: Path | None


def write_autosave(key: str, text: str, path: Path | None) -> None:
    folder = autosave_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{key}.md", text)
    atomic_write(folder / f"{key}.json", json.dumps({"path": str(path) if path else None}))


def remove_autosave(key: str) -> None:
    for suffix in (".md", ".json"):
        try:
            (autosave_dir() / f"{key}{suffix}").unlink()
        except OSError:
            pass


def find_autosaves() -> list[Recovered]:
    """Unsaved texts left by a previous session that did not end cleanly."""
    out: list[Recovered] = []
    folder = autosave_dir()
    if not folder.is_dir():
        return out
    for meta in sorted(folder.glob("*.json")):
        text_file = meta.with_suffix(".md")
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            text = text_file.read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
        path = info.get("path") if isinstance(info, dict) else None
        out.append(Recovered(meta.stem, text, Path(path) if path else None))
    return out

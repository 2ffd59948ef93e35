"""The models the studio's views subscribe to (as napari's ``QtDims`` subscribes to ``Dims``):
the run on show, the loop settings, and one finished run of the history.

A model holds plain core objects and emits signals; it never imports a view. Several views
show one model (the answer and the timeline show the same run; the loop panel, the prompt
bar's mode and the timeline's threshold edit the same settings), so nothing needs to be
kept in step by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from lantern_studio.core.errors import SettingsError
from lantern_studio.core.events import Done, Transcript
from lantern_studio.core.settings import LoopSettings, SamplingSettings


class RunModel(QObject):
    """The run on show: a core ``Transcript`` that grows batch by batch."""

    cleared = Signal(str)  # header text; views drop what they show
    applied = Signal(list)  # events just applied to ``transcript``
    headerChanged = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.transcript = Transcript()
        self.header = ""
        self.started: float | None = None  # perf_counter at the start of a live run

    def clear(self, header: str = "", live: bool = False) -> None:
        self.transcript = Transcript()
        self.header = header
        self.started = time.perf_counter() if live else None
        self.cleared.emit(header)

    def apply(self, events: list) -> None:
        """Apply a batch to the transcript, then tell the views what it held."""
        for event in events:
            self.transcript.apply(event)
        if events:
            self.applied.emit(list(events))

    def load(self, events: list, header: str = "") -> None:
        """Show a whole recorded run (history, trace replay)."""
        self.clear(header)
        self.apply(list(events))

    def set_header(self, text: str) -> None:
        self.header = text
        self.headerChanged.emit(text)

    def tokens_per_s(self) -> float | None:
        """Tokens per second so far in a live run (None when not live or nothing yet)."""
        if self.started is None or not self.transcript.tokens:
            return None
        elapsed = time.perf_counter() - self.started
        return len(self.transcript.tokens) / elapsed if elapsed > 0 else None


class LoopModel(QObject):
    """The loop settings of the next run, validated; every editor of them subscribes here."""

    changed = Signal(object)  # LoopSettings
    invalid = Signal(str)

    def __init__(self, settings: LoopSettings = LoopSettings(), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings

    @property
    def settings(self) -> LoopSettings:
        return self._settings

    def set_settings(self, settings: LoopSettings) -> None:
        if settings != self._settings:
            self._settings = settings
            self.changed.emit(settings)

    def update(self, name: str, value: Any) -> bool:
        """Change one field; an invalid value is refused with one sentence (``invalid``)."""
        if getattr(self._settings, name) == value:
            return True
        if name == "threshold" and isinstance(value, (int, float)) and value < 0:
            self.invalid.emit("The threshold must be 0 or more: below 0 the loop would fire at every token.")
            self.changed.emit(self._settings)  # editors showing the refused value go back
            return False
        try:
            settings = self._settings.updated(**{name: value})
        except SettingsError as exc:
            self.invalid.emit(str(exc))
            self.changed.emit(self._settings)
            return False
        self.set_settings(settings)
        return True


@dataclass(eq=False)
class HistoryEntry:
    """One finished run in the History dock: everything needed to show or export it again."""

    kind: str  # 'run' | 'score' | 'trace'
    prompt: str
    loop: LoopSettings
    sampling: SamplingSettings
    reference_slug: str | None
    reference_sha256: str | None
    model: str
    model_sha256: str = ""
    events: list = field(default_factory=list)
    when: float = field(default_factory=time.time)
    header: dict[str, Any] | None = None  # the trace header, for replayed and stored runs
    answer: str | None = None  # score-text runs: the given answer
    path: Path | None = None  # the trace file that keeps it in History on disk

    @property
    def stats(self) -> dict:
        for e in reversed(self.events):
            if isinstance(e, Done):
                return e.stats
        return {}

    def label(self) -> str:
        stats = self.stats
        t = time.strftime("%d %b %H:%M", time.localtime(self.when))
        tag = self.loop.mode if self.kind == "run" else self.kind
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        return (f"{t}  [{tag}]  {prompt}  — {stats.get('tokens', '?')} tok, "
                f"{stats.get('blips', 0)} blips, {stats.get('stop_reason', '')}")

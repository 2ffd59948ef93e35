"""The studio's run history on disk: each run is a trace file, kept per reference in the data
directory and bounded to the newest ``KEEP`` per reference, so History survives a restart.

Layout: ``data_dir()/history/<reference key>/<time>-<mode>-<n>.jsonl``; the reference key is
the slug (or ``_no-reference``), made safe for a file name. An unreadable trace is skipped and
reported, never fatal: one damaged file must not hide the others.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import data_dir
from .errors import LanternError
from .events import Event
from .trace import Trace, read_trace, write_trace

KEEP = 50
NO_REFERENCE = "_no-reference"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def history_dir() -> Path:
    return data_dir() / "history"


def reference_key(slug: str | None) -> str:
    """A folder name for a reference slug: lower case, safe characters only."""
    if not slug:
        return NO_REFERENCE
    key = _UNSAFE.sub("-", slug.lower()).strip(".-")[:80]
    return key or NO_REFERENCE


@dataclass
class StoredRun:
    """A trace found in the history folder."""

    path: Path
    trace: Trace

    @property
    def created(self) -> float:
        """Seconds since the epoch (the header's UTC time; the file's time if it has none)."""
        stamp = self.trace.header.get("created")
        if isinstance(stamp, str):
            try:
                return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
            except ValueError:
                pass
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


class HistoryStore:
    """Writes runs as traces and reads them back, newest ``keep`` per reference."""

    def __init__(self, root: Path | None = None, keep: int = KEEP) -> None:
        self.root = Path(root) if root is not None else history_dir()
        self.keep = keep
        self._counter = 0

    def folder(self, slug: str | None) -> Path:
        return self.root / reference_key(slug)

    def save(self, slug: str | None, header: dict[str, Any], events: Iterable[Event]) -> Path:
        """Write one run; then drop the oldest beyond ``keep``. Raises TraceError when it cannot."""
        folder = self.folder(slug)
        self._counter += 1
        mode = reference_key(str(header.get("mode") or "run"))
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}-{mode}-{self._counter}.jsonl"
        path = write_trace(folder / name, header, events)
        self.prune(slug)
        return path

    def files(self, slug: str | None) -> list[Path]:
        """The trace files of a reference, oldest first (names start with the time)."""
        folder = self.folder(slug)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.jsonl") if p.is_file())

    def prune(self, slug: str | None) -> int:
        """Remove the oldest files beyond ``keep``; returns how many went."""
        files = self.files(slug)
        extra = files[:max(0, len(files) - self.keep)]
        for path in extra:
            try:
                path.unlink()
            except OSError:
                pass
        return len(extra)

    def load(self, slug: str | None) -> tuple[list[StoredRun], list[str]]:
        """The readable runs of a reference, oldest first, and one message per skipped file."""
        runs: list[StoredRun] = []
        problems: list[str] = []
        for path in self.files(slug)[-self.keep:]:
            try:
                runs.append(StoredRun(path, read_trace(path)))
            except LanternError as exc:
                problems.append(f"A history file was skipped: {exc}")
        return runs, problems

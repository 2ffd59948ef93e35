"""Traces: a run as JSONL (DESIGN §3).

Line 1 is the header ``{"format": "lantern-trace", "version": 1, "model": …, "reference": …,
"prompt": …, "loop": …, "sampling": …}``; then one line per event; the last line is the
summary ``{"kind": "summary", "answer": …, "stats": …}``. Files are written to a temporary
name and renamed, so a crash never leaves half a trace under the real name.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import __version__
from .errors import TraceError
from .events import Done, Event, Transcript, event_from_json, event_to_json

FORMAT = "lantern-trace"
VERSION = 1
MAX_LINE = 16 * 1024 * 1024


@dataclass
class Trace:
    header: dict[str, Any]
    events: list[Event]
    summary: dict[str, Any] = field(default_factory=dict)

    def replay(self) -> Iterator[Event]:
        """The recorded events, as the live run yielded them."""
        yield from self.events


def make_header(*, model_name: str, model_sha256: str, prompt: str, mode: str,
                reference_slug: str | None = None, reference_sha256: str | None = None,
                loop: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
                answer: str | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created_by": f"lantern-studio {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"name": model_name, "sha256": model_sha256},
        "reference": {"slug": reference_slug, "sha256": reference_sha256},
        "prompt": prompt, "mode": mode, "loop": loop or {}, "sampling": sampling or {},
    }
    if answer is not None:
        header["answer"] = answer  # score-text traces: the given answer
    return header


class TraceWriter:
    """Writes a trace incrementally; ``close()`` adds the summary and renames into place."""

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self._transcript = Transcript()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            raise TraceError(f"The trace cannot be written to {self.path} ({exc.strerror}).") from None
        self._tmp = Path(tmp)
        self._fh: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None
        try:
            self._fh.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        except ValueError:
            self._fh.write(json.dumps(_without_nan(obj), ensure_ascii=False) + "\n")
        except OSError as exc:
            self.abort()
            raise TraceError(f"The trace could not be written to {self.path} ({exc.strerror}).") from None

    def write(self, event: Event) -> None:
        self._transcript.apply(event)
        self._write(event_to_json(event))

    def close(self) -> Path:
        if self._fh is None:
            return self.path
        done = self._transcript.done
        self._write({"kind": "summary", "answer": self._transcript.answer,
                     "tokens": len(self._transcript.visible), "blips": len(self._transcript.blips),
                     "stats": done.stats if isinstance(done, Done) else {}})
        try:
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise TraceError(f"The trace could not be saved as {self.path} ({exc.strerror}).") from None
        return self.path

    def abort(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, exc_type, *_rest) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_trace(path: str | os.PathLike[str], header: dict[str, Any], events: Iterable[Event]) -> Path:
    with TraceWriter(path, header) as writer:
        for event in events:
            writer.write(event)
    return writer.path


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace; raises TraceError for anything that is not a trace we understand."""
    path = Path(path)
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"The trace {path} cannot be opened ({exc.strerror}).") from None
    with fh:
        try:
            return parse_trace_lines(fh, str(path))
        except UnicodeDecodeError:
            raise TraceError(f"The trace {path} is not UTF-8 text.") from None


def parse_trace_lines(lines: Iterable[str], name: str = "<trace>") -> Trace:
    header: dict[str, Any] | None = None
    events: list[Event] = []
    summary: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:
            raise TraceError(f"{name}, line {number}: the line is too long for a trace.")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise TraceError(f"{name}, line {number}: the line is not valid JSON.") from None
        if header is None:
            header = _check_header(obj, name)
            continue
        if isinstance(obj, dict) and obj.get("kind") == "summary":
            summary = obj
            continue
        try:
            events.append(event_from_json(obj))
        except TraceError as exc:
            raise TraceError(f"{name}, line {number}: {exc}") from None
    if header is None:
        raise TraceError(f"{name} is empty: a trace starts with a header line.")
    return Trace(header, events, summary)


def _check_header(obj: Any, name: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TraceError(f"{name} is not a Lantern trace (its first line has no 'format': '{FORMAT}').")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TraceError(f"{name} has no valid trace version.")
    if version > VERSION:
        raise TraceError(f"{name} is a version {version} trace; this Lantern Studio reads versions up to {VERSION}, please update.")
    if version < 1:
        raise TraceError(f"{name} has an unknown trace version {version}.")
    return obj


def _without_nan(obj: Any) -> Any:
    """JSON has no NaN/Infinity: they become null (an infinite control signal marks a detector)."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _without_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_without_nan(v) for v in obj]
    return obj

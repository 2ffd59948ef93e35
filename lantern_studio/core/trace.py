"""Traces: a run as JSONL (docs/design.md).

Line 1 is the header ``{"format": "lantern-trace", "version": 1, "model": …, "reference": …,
"prompt": …, "loop": …, "sampling": …}``; then one line per event; the last line is the
summary ``{"kind": "summary", "answer": …, "stats": …}``. Lines end with "\n" and only
"\n": text may hold U+2028, U+2029 or U+0085, which ``str.splitlines`` would split at,
so nothing here ever uses it. A trace is collected in memory and saved with
:func:`~.atomic.atomic_write`, so a crash never leaves half a trace under the real name.

:func:`read_trace` treats the file as hostile (a trace may come from a pack or be edited
by hand): it raises :class:`TraceError` and nothing else, for any bytes. Every event is
checked against its dataclass's field types before it is built, so what the studio
replays has the types it expects; JSON nesting is bounded.
"""

from __future__ import annotations

import io
import json
import os
import time
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from .. import __version__
from .atomic import atomic_write
from .errors import TraceError
from .events import EVENT_TYPES, Done, Event, ScoreUpdate, Transcript, event_from_json, event_to_json
from .regular_files import open_regular

FORMAT = "lantern-trace"
VERSION = 1
MAX_LINE = 16 * 1024 * 1024
MAX_TRACE_BYTES = 256 * 1024 * 1024
#: Deepest JSON nesting a trace line may have (events need 4; free-form stats get the rest).
MAX_DEPTH = 32


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
    """Collects a trace event by event; ``close()`` adds the summary and saves it atomically."""

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self._transcript = Transcript()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TraceError(f"The trace cannot be written to {self.path} ({exc.strerror}).") from None
        if self.path.is_dir():
            raise TraceError(f"The trace cannot be written to {self.path} (it is a directory).")
        self._fh: io.StringIO | None = io.StringIO()
        self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None
        try:
            self._fh.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        except ValueError:
            self._fh.write(json.dumps(_without_nan(obj), ensure_ascii=False) + "\n")

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
        text, self._fh = self._fh.getvalue(), None
        try:
            atomic_write(self.path, text)
        except OSError as exc:
            raise TraceError(f"The trace could not be saved as {self.path} ({exc.strerror or exc}).") from None
        return self.path

    def abort(self) -> None:
        """Drop what was collected; the file at ``path`` (if any) is left as it was."""
        self._fh = None

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
    """Read a trace; raises TraceError (and nothing else) for anything that is not a trace we understand."""
    path = Path(path)
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise TraceError(f"The trace {path} cannot be opened ({exc.strerror or exc}).") from None
    with fh:
        return parse_trace_lines(_binary_lines(fh, str(path)), str(path))


def _binary_lines(fh: typing.BinaryIO, name: str) -> Iterator[str]:
    """The file's lines, split at b"\\n" only, each decoded as UTF-8; bounded in length and total."""
    total = number = 0
    try:
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            total += len(raw)
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                raise TraceError(f"{name}, line {number}: the line is too long for a trace.")
            if total > MAX_TRACE_BYTES:
                raise TraceError(f"{name} is larger than the {MAX_TRACE_BYTES // (1024 * 1024)} MB limit of a trace.")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise TraceError(f"The trace {name} is not UTF-8 text.") from None
    except OSError as exc:
        raise TraceError(f"The trace {name} cannot be read ({exc.strerror or exc}).") from None


def split_trace_text(text: str) -> list[str]:
    """JSONL text split into lines at "\\n" only (never at U+2028, U+2029, U+0085 or "\\r")."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_trace_lines(lines: Iterable[str], name: str = "<trace>") -> Trace:
    """A trace from its lines (each one JSON value, "\\n"-terminated or not); TraceError on anything else."""
    header: dict[str, Any] | None = None
    events: list[Event] = []
    summary: dict[str, Any] = {}
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise TraceError(f"{name}, line {number}: the line is not text.")
        if len(line) > MAX_LINE:
            raise TraceError(f"{name}, line {number}: the line is too long for a trace.")
        if not line.strip():
            continue
        if "\n" in line.rstrip("\n"):
            raise TraceError(f"{name}, line {number}: the line holds a line break.")
        obj = _parse_json(line, f"{name}, line {number}")
        if header is None:
            header = _check_header(obj, name)
            continue
        if isinstance(obj, dict) and obj.get("kind") == "summary":
            summary = _check_summary(obj, f"{name}, line {number}")
            continue
        try:
            events.append(_event(obj))
        except TraceError as exc:
            raise TraceError(f"{name}, line {number}: {exc}") from None
    if header is None:
        raise TraceError(f"{name} is empty: a trace starts with a header line.")
    return Trace(header, events, summary)


def _parse_json(line: str, where: str) -> Any:
    try:
        obj = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise TraceError(f"{where}: the line is not valid JSON.") from None
    if _depth(obj) > MAX_DEPTH:
        raise TraceError(f"{where}: the line nests deeper than {MAX_DEPTH} levels.")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((item, level + 1) for item in value)
    return deepest


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
    for key, expected in _HEADER_FIELDS.items():
        if key in obj and not _conforms(obj[key], expected):
            raise TraceError(f"{name} has a header whose {key!r} is not {_HEADER_WORDS[key]}.")
    for key in ("model", "reference"):
        for inner, value in (obj.get(key) or {}).items():
            if value is not None and not isinstance(value, str):
                raise TraceError(f"{name} has a header whose {key} {inner!r} is not text.")
    return obj


_HEADER_FIELDS: dict[str, Any] = {
    "created_by": str | None, "created": str | None, "prompt": str | None, "mode": str | None,
    "answer": str | None, "model": dict[str, Any] | None, "reference": dict[str, Any] | None,
    "loop": dict[str, Any] | None, "sampling": dict[str, Any] | None,
}  # fmt: skip
_HEADER_WORDS = {key: "an object" if "dict" in str(hint) else "text" for key, hint in _HEADER_FIELDS.items()}
_SUMMARY_FIELDS: dict[str, Any] = {"answer": str | None, "tokens": int, "blips": int, "stats": dict[str, Any] | None}


def _check_summary(obj: dict[str, Any], where: str) -> dict[str, Any]:
    for key, expected in _SUMMARY_FIELDS.items():
        if key in obj and not _conforms(obj[key], expected):
            raise TraceError(f"{where}: the summary's {key!r} has the wrong type.")
    return obj


# Fields that count or index tokens: a negative value is no position in any run.
_NON_NEGATIVE = {"index", "token_id", "from_index", "count", "start", "rewound"}


def _event(obj: Any) -> Event:
    """An event from one parsed line, its fields checked against the dataclass's types first."""
    if not isinstance(obj, dict):
        raise TraceError("A trace line is not a JSON object.")
    kind = obj.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:37] + "..."
        raise TraceError(f"A trace line has an unknown event kind {shown}.")
    hints = _hints(cls)
    for key, value in obj.items():
        if key in hints and not _conforms(value, hints[key]):
            raise TraceError(f"A {obj['kind']!r} event's {key!r} has the wrong type.")
        if key in _NON_NEGATIVE and isinstance(value, int) and value < 0:
            raise TraceError(f"A {obj['kind']!r} event's {key!r} is negative.")
    if cls is ScoreUpdate:
        lengths = {len(obj.get(k, [])) for k in ("logp_ref", "error", "divergence", "top_ref")}
        if len(lengths) > 1:
            raise TraceError("A 'rescore' event's lists have different lengths.")
    return event_from_json(obj)


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINT_CACHE:
        resolved = typing.get_type_hints(cls)
        _HINT_CACHE[cls] = {f.name: resolved[f.name] for f in fields(cls)}
    return _HINT_CACHE[cls]


def _conforms(value: Any, hint: Any) -> bool:
    """Whether parsed JSON ``value`` has the type ``hint`` (the subset of typing events use)."""
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, args[0]) for item in value)
    if origin is tuple:
        return isinstance(value, list) and len(value) == len(args) and all(map(_conforms, value, args))
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(v, args[1]) for v in value.values())
    return False


def _without_nan(obj: Any) -> Any:
    """JSON has no NaN/Infinity: they become null (an infinite control signal marks a detector)."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _without_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_without_nan(v) for v in obj]
    return obj

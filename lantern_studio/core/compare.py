"""Compare: one prompt in several modes, one after another, and a token diff of two answers."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass

from .events import Done, Transcript


@dataclass
class CompareEvent:
    """A core event tagged with the mode of the run that produced it."""

    mode: str
    event: object


def compare_events(engine, prompt: str, reference, loop, sampling, modes: list[str]) -> Iterator[object]:
    """Run ``prompt`` once per mode, one after another; stops when a run is cancelled."""
    for mode in modes:
        for event in engine.run(prompt, reference if mode != "none" else None, loop.updated(mode=mode), sampling):
            yield CompareEvent(mode, event)
            if isinstance(event, Done) and event.stats.get("stop_reason") == "cancelled":
                return


def token_diff(old: list[str], new: list[str]) -> list[tuple[str, str]]:
    """Token-aligned diff as ``(op, text)`` with op 'equal' | 'insert' | 'delete', in reading order."""
    out: list[tuple[str, str]] = []
    sm = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out.append(("equal", "".join(new[j1:j2])))
        else:
            if i2 > i1:
                out.append(("delete", "".join(old[i1:i2])))
            if j2 > j1:
                out.append(("insert", "".join(new[j1:j2])))
    return out


def answer_token_texts(events: list) -> list[str]:
    """The text of each token still in the answer of a recorded run."""
    return [t.text for t in Transcript().extend(events).answer_tokens]

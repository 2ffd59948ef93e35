"""The reference model: sections, items, probes and blip candidates, as the parser builds them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..settings import LoopSettings
from .patterns import Pattern, PatternTimeout
from .text import as_prohibition, intent_sentences, plain

@dataclass(frozen=True)
class Item:
    """One top-level list item of a section; ``line`` is 1-based in the file."""

    id: str
    section_id: str
    text: str
    line: int
    detector: Pattern | None = None  # Never items: a match in the output is a rule hit
    trigger: Pattern | None = None  # Blips items: the blip is chosen when this matches
    last_line: int = 0  # 1-based line where the item ends (nested lists and code included)


@dataclass(frozen=True)
class Section:
    """A heading and the text up to the next heading (``body`` excludes the heading line)."""

    id: str
    title: str
    kind: str  # one of SECTION_KINDS
    level: int  # 1..6; 0 for the preamble before the first heading
    line: int
    body: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Probe:
    """A test prompt: every ``expect`` regex must match the answer, no ``forbid`` regex may."""

    prompt: str
    expect: tuple[Pattern, ...]
    forbid: tuple[Pattern, ...]
    line: int
    # Free labels; ``irrelevant`` marks a probe the reference has nothing to say about, where
    # the loop must not make the answer worse than the model alone.
    tags: tuple[str, ...] = ()

    def check(self, answer: str) -> str | None:
        """None when ``answer`` passes, else the first failing expectation, e.g. ``expect /max.*dose/``.

        A pattern that runs out of its time budget fails the probe with
        ``the pattern /…/ took too long`` instead of passing or failing by accident.
        """
        try:
            for pattern in self.expect:
                if not pattern.search_or_timeout(answer):
                    return f"expect /{pattern.pattern}/"
            for pattern in self.forbid:
                if pattern.search_or_timeout(answer):
                    return f"forbid /{pattern.pattern}/"
        except PatternTimeout as exc:
            return str(exc)
        return None


@dataclass(frozen=True)
class BlipCandidate:
    """A text the controller may inject, with where it came from."""

    id: str
    text: str
    kind: str  # 'blip' | 'always' | 'never' | 'intent'
    trigger: Pattern | None = None


@dataclass(frozen=True)
class Reference:
    """A parsed reference document. Build one with :func:`parse_reference` or :func:`load_reference`."""

    path: Path | None
    text: str
    sha256: str  # of text.encode("utf-8")
    title: str
    slug: str
    version: str
    author: str
    status: str
    tags: tuple[str, ...]
    links: tuple[str, ...]
    loop: LoopSettings
    loop_given: frozenset[str]  # loop keys set explicitly in the front matter
    sections: tuple[Section, ...]
    probes: tuple[Probe, ...]
    front_matter_end_line: int  # line of the closing ``---``; 0 without front matter

    @cached_property
    def _index(self) -> dict[str, Item | Section]:
        index: dict[str, Item | Section] = {}
        for section in self.sections:
            index[section.id] = section
            for item in section.items:
                index[item.id] = item
        return index

    @cached_property
    def _intent_sentences(self) -> list[tuple[str, str, int]]:
        return [s for section in self.sections if section.kind == "intent" for s in intent_sentences(section)]

    def item(self, id: str) -> Item | Section | None:
        """The section or item with this id, or None."""
        return self._index.get(id)

    def all_ids(self) -> list[str]:
        """Every section and item id, in document order."""
        return list(self._index)

    def detectors(self) -> list[tuple[str, Pattern]]:
        """``(item id, regex)`` of every Never detector, in document order."""
        return [
            (item.id, item.detector)
            for section in self.sections
            for item in section.items
            if item.detector is not None
        ]

    def blip_candidates(self) -> list[BlipCandidate]:
        """Expert blips (with their triggers), then Always items, Never items and Intent sentences.

        Never items are phrased as prohibitions exactly as :func:`render_reference` shows
        them: an item the author wrote as a prohibition ("Never …", "Do not …") is kept as
        given, a bare one ("Aspirin for children") becomes "Never aspirin for children",
        so that an injected blip can never read as an instruction to do the forbidden thing.
        Intent sentences have ids ``<intent section id>.s1``, ``.s2``, ….
        """
        out: list[BlipCandidate] = []
        for kind in ("blips", "always", "never"):
            for section in self.sections:
                if section.kind != kind:
                    continue
                for item in section.items:
                    text = item.text if kind != "never" else as_prohibition(item.text)
                    text = plain(text)
                    if text:
                        out.append(BlipCandidate(item.id, text, "blip" if kind == "blips" else kind, item.trigger))
        out.extend(BlipCandidate(sid, text, "intent") for sid, text, _line in self._intent_sentences)
        return out

    def line_of(self, id: str) -> int:
        """1-based line of a section, item or Intent sentence id; 0 if the id is unknown."""
        found = self._index.get(id)
        if found is not None:
            return found.line
        for sid, _text, line in self._intent_sentences:
            if sid == id:
                return line
        return 0

"""Reference documents: the parser, the data model and the one rendering the model sees.

A reference is UTF-8 Markdown with optional YAML front matter (DESIGN §2)::

    ---
    title: OTC analgesic counselling
    slug: otc-analgesics
    status: draft
    loop: {mode: blip, threshold: 1.5}
    ---
    ## Intent
    Help adults choose and use a pain reliever safely.
    ## Never
    - Never suggest aspirin for anyone under 16. `regex: aspirin.{0,40}\\b(child|kid)`

Decisions where the design is silent, so that every part of the studio agrees:

* **Front matter** opens with a ``---`` first line and closes with the next ``---``
  (or ``...``) line; a first ``---`` that is never closed is an error. It is read
  with PyYAML's safe loader, with YAML aliases (``*name``) refused (no front matter
  needs them, and refusing them makes "billion laughs" documents impossible), at most
  64 KB, and with ``RecursionError`` caught. Keys appear at most once; unknown keys
  are errors. ``title`` defaults to the first level-1 heading, then the humanised file
  stem, then ``""``; ``slug`` defaults to the slugified file stem (or title, or
  ``untitled``); ``status`` defaults to ``draft``; ``version`` and ``author`` to ``""``.
  ``version`` keeps its text exactly as written (``1.10`` stays ``"1.10"``).
  ``tags`` and ``links`` take a list or one comma-separated string; links must be
  slugs, and a link given twice is kept once (harmless, so not an error).
* **Sections** run from an ATX heading to the next one (headings in fenced code
  blocks do not count) and are flat: a ``###`` under a ``##`` is its own section.
  Text before the first heading, when not blank, is a prose section ``preamble``
  (level 0, no title). Section ids are heading slugs; two headings with the same
  slug become ``x``, ``x-2``, ``x-3`` in document order, so ids are never duplicated
  and duplicates are not an error. Kinds come from the title, case-insensitively
  (``Example``/``Blip``/``Probe`` singular forms too).
* **List items** are the top-level items of a section (``-``, ``*``, ``+``, ``1.``,
  ``1)``); a nested list belongs to its parent item, so removing an item for
  attribution removes its elaborations too. Item ``x.N`` is the N-th item of section x.
* **Never detectors** are inline code spans starting ``regex:`` (one per item; slashes
  around the regex are optional); **Blip triggers** read ``when: /regex/ → text`` (``->``
  too; the slashes may be left out). **Probe** entries take exactly the keys
  ``prompt``, ``expect``, ``forbid``; a single regex may stand for a one-item list.
  Every regex is compiled case-insensitively; an empty regex is an error.
* HTML comments (``<!-- … -->``) are notes for authors and never reach the model.

Every problem is a :class:`ReferenceFormatError` with one sentence naming the file
(or ``<text>``), the line and what is wrong; :func:`parse_reference` raises nothing else.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import yaml

from .errors import ReferenceFormatError, SettingsError
from .settings import LoopSettings, loop_overrides

MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_PROBES_YAML_CHARS = 64 * 1024
MAX_FILE_BYTES = 4 * 1024 * 1024
STATUSES = ("draft", "reviewed", "verified")
FRONT_MATTER_KEYS = ("title", "slug", "version", "author", "status", "tags", "loop", "links")
SECTION_KINDS = ("intent", "always", "never", "style", "examples", "blips", "probes", "prose")
_KIND_BY_TITLE = {
    "intent": "intent",
    "always": "always",
    "never": "never",
    "style": "style",
    "examples": "examples",
    "example": "examples",
    "blips": "blips",
    "blip": "blips",
    "probes": "probes",
    "probe": "probes",
}
PROBE_KEYS = ("prompt", "expect", "forbid", "tags")

SLUG_RE = re.compile(r"[a-z0-9-]+")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_HEADING_CLOSE_RE = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE_OPEN_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_ITEM_RE = re.compile(r"^( *)([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$")
_THEMATIC_BREAK_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_DETECTOR_RE = re.compile(r"(?<!`)(`+)(?!`)[ \t]*regex:[ \t]*(.*?)[ \t]*(?<!`)\1(?!`)", re.IGNORECASE | re.DOTALL)
_WHEN_RE = re.compile(r"^when\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_WHEN_SLASHED_RE = re.compile(r"^/(.*)/\s*(?:→|->)\s*(.*)$", re.DOTALL)
_WHEN_PLAIN_RE = re.compile(r"^(.*?)\s*(?:→|->)\s*(.*)$", re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_NESTED_MARKER_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_PROHIBITION_RE = re.compile(
    r"^(never|don['’]?t|do not|does not|doesn['’]t|must not|mustn['’]t|should not|shouldn['’]t|"
    r"cannot|can['’]t|no|not|avoid|refuse|stop|nothing|none|nobody)\b",
    re.IGNORECASE,
)
_LOOP_KEY_LINE_RE = re.compile(r"^([\"']?)loop\1[ \t]*:(?:\s|$)")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Item:
    """One top-level list item of a section; ``line`` is 1-based in the file."""

    id: str
    section_id: str
    text: str
    line: int
    detector: re.Pattern[str] | None = None  # Never items: a match in the output is a rule hit
    trigger: re.Pattern[str] | None = None  # Blips items: the blip is chosen when this matches


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
    expect: tuple[re.Pattern[str], ...]
    forbid: tuple[re.Pattern[str], ...]
    line: int
    # Free labels; ``irrelevant`` marks a probe the reference has nothing to say about, where
    # the loop must not make the answer worse than the model alone.
    tags: tuple[str, ...] = ()

    def check(self, answer: str) -> str | None:
        """None when ``answer`` passes, else the first failing expectation, e.g. ``expect /max.*dose/``."""
        for pattern in self.expect:
            if not pattern.search(answer):
                return f"expect /{pattern.pattern}/"
        for pattern in self.forbid:
            if pattern.search(answer):
                return f"forbid /{pattern.pattern}/"
        return None


@dataclass(frozen=True)
class BlipCandidate:
    """A text the controller may inject, with where it came from."""

    id: str
    text: str
    kind: str  # 'blip' | 'always' | 'never' | 'intent'
    trigger: re.Pattern[str] | None = None


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
        return [s for section in self.sections if section.kind == "intent" for s in _intent_sentences(section)]

    def item(self, id: str) -> Item | Section | None:
        """The section or item with this id, or None."""
        return self._index.get(id)

    def all_ids(self) -> list[str]:
        """Every section and item id, in document order."""
        return list(self._index)

    def detectors(self) -> list[tuple[str, re.Pattern[str]]]:
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
                    text = _plain(text)
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


# --------------------------------------------------------------------------- errors


class _Source:
    """Names the document in error messages and builds them."""

    def __init__(self, path: Path | None) -> None:
        self.name = path.name if path is not None and path.name else "<text>"

    def fail(self, line: int | None, what: str) -> NoReturn:
        what = " ".join(what.split()).rstrip(".")
        where = f"{self.name}, line {line}" if line else self.name
        raise ReferenceFormatError(f"{where}: {what}.")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compile(src: str, source: _Source, line: int, what: str) -> re.Pattern[str]:
    """Compile a user regex case-insensitively; ``/…/`` delimiters are optional."""
    src = src.strip()
    if len(src) >= 2 and src[0] == "/" and src[-1] == "/":
        src = src[1:-1]
    if not src.strip():
        source.fail(line, f"the {what} regex is empty")
    try:
        return re.compile(src, re.IGNORECASE)
    except re.error as exc:
        source.fail(line, f"the {what} regex {_short(src)!r} is not valid ({exc.msg})")
    except (RecursionError, OverflowError, MemoryError, ValueError, TypeError):
        source.fail(line, f"the {what} regex {_short(src)!r} is too large or too deeply nested")


# --------------------------------------------------------------------------- YAML


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases: no reference needs them and they allow YAML bombs."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in a reference", event.start_mark
            )
        return super().compose_node(parent, index)


_YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError, MemoryError)


def _compose_yaml(text: str, source: _Source, first_line: int, what: str) -> yaml.Node | None:
    """Compose one YAML document into a node tree; ``first_line`` is the file line of its line 1."""
    loader = None
    try:
        loader = _NoAliasLoader(text)
        return loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = first_line + text.count("\n", 0, max(exc.position, 0))
        source.fail(line, f"{what} holds the character U+{exc.character:04X}, which YAML does not allow")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark is not None else first_line
        problem = exc.problem or exc.context or "unreadable YAML"
        source.fail(line, f"{what} is not valid YAML ({problem})")
    except _YAML_FAILURES as exc:
        source.fail(first_line, f"{what} is not valid YAML ({_exc_text(exc)})")
    finally:
        if loader is not None:
            loader.dispose()


def _construct(node: yaml.Node, source: _Source, line: int, what: str) -> Any:
    """Turn a composed node into plain Python values."""
    try:
        return _NoAliasLoader("").construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        source.fail(line, f"{what} is not valid YAML ({exc.problem or exc.context})")
    except _YAML_FAILURES as exc:
        source.fail(line, f"{what} is not valid YAML ({_exc_text(exc)})")


def _exc_text(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large"
    return _short(str(exc) or type(exc).__name__, 120)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {_short(str(node.value), 40)!r}"


def _scalar_text(node: yaml.Node, source: _Source, line: int, key: str) -> str:
    """The text of a scalar exactly as written (``1.10`` stays ``1.10``); null is ``""``."""
    if _is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode):
        source.fail(line, f"the front matter key '{key}' must be text, not {_node_kind(node)}")
    return " ".join(str(node.value).split())


def _text_list(node: yaml.Node, source: _Source, line: int, key: str, base: int) -> list[tuple[str, int]]:
    """A list of scalars, or one comma-separated scalar, with the line of each entry."""
    if _is_null(node):
        return []
    if isinstance(node, yaml.ScalarNode):
        return [(part.strip(), line) for part in str(node.value).split(",") if part.strip()]
    if not isinstance(node, yaml.SequenceNode):
        source.fail(line, f"the front matter key '{key}' must be a list, not {_node_kind(node)}")
    out = []
    for entry in node.value:
        entry_line = base + entry.start_mark.line
        if not isinstance(entry, yaml.ScalarNode) or _is_null(entry):
            source.fail(entry_line, f"every entry of '{key}' must be text, not {_node_kind(entry)}")
        text = " ".join(str(entry.value).split())
        if text:
            out.append((text, entry_line))
    return out


# --------------------------------------------------------------------------- text helpers


def slugify(text: str) -> str:
    """Lowercase ASCII letters, digits and hyphens (``"Never (ever)!"`` → ``never-ever``); may be empty."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def as_prohibition(text: str) -> str:
    """A Never item as the model reads it: kept if already a prohibition, else prefixed "Never"."""
    text = text.strip()
    if not text or _PROHIBITION_RE.match(text.lstrip("*_ ")):
        return text
    if len(text) > 1 and text[1].isupper():  # an acronym: "PINs …"
        return f"Never {text}"
    return f"Never {text[0].lower()}{text[1:]}"


def _plain(text: str) -> str:
    """One line for a blip: no comments, emphasis or nested list markers; whitespace collapsed."""
    text = _COMMENT_RE.sub(" ", text).replace("**", "").replace("__", "")
    text = "\n".join(_NESTED_MARKER_RE.sub("", line) for line in text.split("\n"))
    return " ".join(text.split())


def _split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (editors' line numbers), without ``\\r`` and the BOM."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines


def _fence_open(line: str) -> tuple[str, int, str] | None:
    """``(char, length, info)`` when the line opens a fenced code block."""
    m = _FENCE_OPEN_RE.match(line)
    if m is None:
        return None
    fence, info = m.group(1), m.group(2).strip()
    if fence[0] == "`" and "`" in info:
        return None
    return fence[0], len(fence), info


def _fence_closes(line: str, fence: tuple[str, int, str]) -> bool:
    stripped = line.strip()
    return len(stripped) >= fence[1] and stripped == fence[0] * len(stripped)


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))


def _scan_items(lines: list[str]) -> list[tuple[int, int, str]]:
    """Top-level list items of a section body: ``(first line, end line (exclusive), text)``.

    Continuation lines (indented, or lazily following without a blank line) and nested
    lists belong to the item; a fence at the margin, a thematic break or an unindented
    paragraph after a blank line ends it. The same function serves parsing and rendering,
    so the items of a body and the items of its section always agree.
    """
    items: list[tuple[int, int, str]] = []
    current: list[Any] | None = None  # [start, end, content column, text lines]
    fence: tuple[str, int, str] | None = None
    fence_in_item = False
    blank_before = False

    def close() -> None:
        nonlocal current
        if current is not None:
            items.append((current[0], current[1], "\n".join(current[3]).strip()))
            current = None

    for i, line in enumerate(lines):
        indent = _indent(line)
        if fence is not None:
            if fence_in_item and current is not None:
                current[1] = i + 1
                current[3].append(line.expandtabs(4)[current[2]:] if indent >= current[2] else line.strip())
            if _fence_closes(line, fence):
                fence = None
            continue
        if not line.strip():
            blank_before = True
            continue
        opened = _fence_open(line)
        if opened is not None:
            fence = opened
            fence_in_item = current is not None and indent >= 2
            if fence_in_item:
                current[1] = i + 1
                current[3].append(line.expandtabs(4)[min(indent, current[2]):])
            else:
                close()
            blank_before = False
            continue
        if _THEMATIC_BREAK_RE.match(line) and (current is None or indent < current[2]):
            close()
            blank_before = False
            continue
        m = _ITEM_RE.match(line.expandtabs(4))
        if m is not None and (current is None or indent < current[2]) and indent <= 3:
            close()
            marker_end = len(m.group(1)) + len(m.group(2))
            gap = len(m.group(3) or " ")
            content_col = marker_end + (gap if gap <= 4 else 1)
            current = [i, i + 1, content_col, [m.group(4) or ""]]
        elif current is not None and (indent >= 2 or not blank_before):
            current[1] = i + 1
            expanded = line.expandtabs(4)
            current[3].append(expanded[min(indent, current[2]):] if indent >= 2 else line.strip())
        else:
            close()
        blank_before = False
    close()
    return items


def _strip_comments(text: str) -> str:
    """Remove HTML comments outside fenced code blocks."""
    out: list[str] = []
    chunk: list[str] = []
    fence: tuple[str, int, str] | None = None
    for line in text.split("\n"):
        if fence is None:
            opened = _fence_open(line)
            if opened is not None:
                if chunk:
                    out.append(_COMMENT_RE.sub("", "\n".join(chunk)))
                chunk = []
                fence = opened
                out.append(line)
            else:
                chunk.append(line)
        else:
            out.append(line)
            if _fence_closes(line, fence):
                fence = None
    if chunk:
        out.append(_COMMENT_RE.sub("", "\n".join(chunk)))
    return "\n".join(out)


def _tidy(text: str) -> str:
    """Trailing spaces off, runs of blank lines collapsed to one, outer blank lines off."""
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def _intent_sentences(section: Section) -> list[tuple[str, str, int]]:
    """``(id, sentence, line)`` for each sentence of an Intent section's prose and items."""
    base = section.line + (1 if section.level else 0)
    paragraphs: list[list[tuple[int, str]]] = [[]]
    fence: tuple[str, int, str] | None = None
    for offset, line in enumerate(section.body.split("\n")):
        if fence is not None:
            if _fence_closes(line, fence):
                fence = None
            continue
        opened = _fence_open(line)
        if opened is not None:
            fence = opened
            paragraphs.append([])
            continue
        m = _ITEM_RE.match(line.expandtabs(4))
        text = (m.group(4) or "") if m is not None else line
        if m is not None or not text.strip():
            paragraphs.append([])
        if text.strip():
            paragraphs[-1].append((base + offset, text.strip()))
    out: list[tuple[str, str, int]] = []
    for paragraph in paragraphs:
        if not paragraph:
            continue
        starts, joined = [], ""
        for _line_no, text in paragraph:
            starts.append(len(joined))
            joined += text + " "
        pos = 0
        for piece in [*_SENTENCE_END_RE.finditer(joined), None]:
            end = piece.start() if piece is not None else len(joined)
            sentence = _plain(joined[pos:end])
            if sentence:
                line = paragraph[bisect.bisect_right(starts, pos) - 1][0]
                out.append((f"{section.id}.s{len(out) + 1}", sentence, line))
            pos = piece.end() if piece is not None else len(joined)
    return out


# --------------------------------------------------------------------------- parsing


@dataclass
class _FrontMatter:
    values: dict[str, Any]
    loop: LoopSettings
    loop_given: frozenset[str]
    end_index: int  # index of the closing fence line


def _front_matter_end(lines: list[str], source: _Source) -> int | None:
    """Index of the closing ``---`` line, None without front matter."""
    if not lines or lines[0].rstrip() != "---":
        return None
    size = 0
    for i in range(1, len(lines)):
        if lines[i].rstrip() in ("---", "..."):
            return i
        size += len(lines[i]) + 1
        if size > MAX_FRONT_MATTER_CHARS:
            source.fail(1, f"the front matter is larger than {MAX_FRONT_MATTER_CHARS // 1024} KB")
    source.fail(1, "the front matter opened by '---' is never closed (add a '---' line after it)")


def _read_front_matter(lines: list[str], source: _Source) -> _FrontMatter | None:
    end = _front_matter_end(lines, source)
    if end is None:
        return None
    root = _compose_yaml("\n".join(lines[1:end]), source, 2, "the front matter")
    values: dict[str, Any] = {}
    loop, loop_given = LoopSettings(), frozenset()
    if root is None or _is_null(root):
        return _FrontMatter(values, loop, loop_given, end)
    if not isinstance(root, yaml.MappingNode):
        source.fail(
            2 + root.start_mark.line,
            f"the front matter must be a mapping of keys such as title and slug, not {_node_kind(root)}",
        )
    seen: set[str] = set()
    for key_node, value_node in root.value:
        line = 2 + key_node.start_mark.line
        if not isinstance(key_node, yaml.ScalarNode) or _is_null(key_node):
            source.fail(line, f"front matter keys must be plain names, not {_node_kind(key_node)}")
        key = str(key_node.value)
        if key not in FRONT_MATTER_KEYS:
            source.fail(line, f"unknown front matter key {_short(key, 40)!r} (known: {', '.join(FRONT_MATTER_KEYS)})")
        if key in seen:
            source.fail(line, f"the front matter key '{key}' is given twice")
        seen.add(key)
        if key in ("title", "version", "author"):
            values[key] = _scalar_text(value_node, source, line, key)
        elif key == "slug":
            slug = _scalar_text(value_node, source, line, key)
            if not SLUG_RE.fullmatch(slug):
                what = f"the slug {_short(slug, 40)!r} may use only lowercase letters a-z, digits and hyphens"
                source.fail(line, what)
            values[key] = slug
        elif key == "status":
            status = _scalar_text(value_node, source, line, key)
            if status.lower() not in STATUSES:
                source.fail(line, f"the status {_short(status, 40)!r} must be one of {', '.join(STATUSES)}")
            values[key] = status.lower()
        elif key == "tags":
            values[key] = tuple(dict.fromkeys(text for text, _ in _text_list(value_node, source, line, key, 2)))
        elif key == "links":
            links = []
            for text, entry_line in _text_list(value_node, source, line, key, 2):
                if not SLUG_RE.fullmatch(text):
                    what = f"the link {_short(text, 40)!r} is not a slug (lowercase letters a-z, digits and hyphens)"
                    source.fail(entry_line, what)
                links.append(text)
            values[key] = tuple(dict.fromkeys(links))
        else:  # loop
            loop, loop_given = _read_loop(value_node, source, line, 2)
    return _FrontMatter(values, loop, loop_given, end)


def _read_loop(node: yaml.Node, source: _Source, line: int, base: int) -> tuple[LoopSettings, frozenset[str]]:
    data = _construct(node, source, line, "the loop settings")
    if data is None:
        return LoopSettings(), frozenset()
    if not isinstance(data, dict):
        source.fail(line, f"the loop settings must be a mapping of names to values, not {_node_kind(node)}")
    try:
        return LoopSettings.from_mapping(data), frozenset(str(k) for k in data)
    except (SettingsError, TypeError, ValueError) as exc:
        bad_line = line
        if isinstance(node, yaml.MappingNode):  # point at the offending setting
            for key_node, value_node in node.value:
                try:
                    value = _NoAliasLoader("").construct_object(value_node, deep=True)
                    LoopSettings.from_mapping({key_node.value: value})
                except Exception:  # noqa: BLE001 - any failure locates the key
                    bad_line = base + key_node.start_mark.line
                    break
        message = str(exc) or type(exc).__name__
        source.fail(bad_line, f"in the loop settings, {message[0].lower()}{message[1:]}")


@dataclass
class _RawSection:
    title: str
    level: int
    line_index: int  # index of the heading line (or first body line for the preamble)
    body_start: int
    body_end: int


def _split_sections(lines: list[str], start: int) -> list[_RawSection]:
    raw: list[_RawSection] = []
    fence: tuple[str, int, str] | None = None
    heading_indexes: list[tuple[int, int, str]] = []
    for i in range(start, len(lines)):
        line = lines[i]
        if fence is not None:
            if _fence_closes(line, fence):
                fence = None
            continue
        opened = _fence_open(line)
        if opened is not None:
            fence = opened
            continue
        m = _HEADING_RE.match(line)
        if m is not None:
            title = _HEADING_CLOSE_RE.sub("", m.group(2) or "").strip()
            heading_indexes.append((i, len(m.group(1)), title))
    first = heading_indexes[0][0] if heading_indexes else len(lines)
    if any(line.strip() for line in lines[start:first]):
        raw.append(_RawSection("", 0, start, start, first))
    for n, (i, level, title) in enumerate(heading_indexes):
        end = heading_indexes[n + 1][0] if n + 1 < len(heading_indexes) else len(lines)
        raw.append(_RawSection(title, level, i, i + 1, end))
    return raw


def _kind_of(title: str) -> str:
    key = re.sub(r"[*_`]", "", title).strip().rstrip(":").strip().lower()
    return _KIND_BY_TITLE.get(key, "prose")


def _never_item(text: str, source: _Source, line: int) -> tuple[str, re.Pattern[str] | None]:
    """Strip a ``regex:`` detector out of a Never item; the rest is what the model reads."""
    matches = list(_DETECTOR_RE.finditer(text))
    if not matches:
        return text, None
    if len(matches) > 1:
        source.fail(line, "a Never item may carry one detector; join the regexes with | instead")
    m = matches[0]
    detector = _compile(m.group(2), source, line, "Never detector")
    before, after = text[: m.start()].rstrip(), text[m.end():].lstrip()
    if before.endswith("(") and after.startswith(")"):
        before, after = before[:-1].rstrip(), after[1:].lstrip()
    if not after:
        before = before.rstrip(" :—–-")
    joined = before + after if not before or not after or after[0] in ".,;:!?)" else f"{before} {after}"
    return joined.strip(), detector


def _blip_item(text: str, source: _Source, line: int) -> tuple[str, re.Pattern[str] | None]:
    """Split ``when: /regex/ → text`` into text and trigger; other items have no trigger."""
    m = _WHEN_RE.match(text)
    if m is None:
        return text, None
    rest = m.group(1).strip()
    parts = _WHEN_SLASHED_RE.match(rest) if rest.startswith("/") else None
    if parts is None:
        parts = _WHEN_PLAIN_RE.match(rest)
    if parts is None:
        source.fail(line, "a blip trigger must read 'when: /regex/ → text' (the arrow is missing)")
    blip_text = " ".join(parts.group(2).split())
    if not blip_text:
        source.fail(line, "the blip has a trigger but no text after the arrow")
    return blip_text, _compile(parts.group(1), source, line, "Blip trigger")


def _is_yaml_fence(fence: tuple[str, int, str]) -> bool:
    words = fence[2].split()
    return bool(words) and words[0].lower() in ("yaml", "yml")


def _parse_probes(section: Section, source: _Source) -> list[Probe]:
    body_lines = section.body.split("\n")
    base = section.line + (1 if section.level else 0)
    blocks: list[tuple[int, list[str]]] = []  # (file line of the opening fence, content)
    fence: tuple[str, int, str] | None = None
    content: list[str] = []
    opened_at = 0
    for offset, line in enumerate(body_lines):
        if fence is None:
            opened = _fence_open(line)
            if opened is not None:
                fence, content, opened_at = opened, [], base + offset
            continue
        if _fence_closes(line, fence):
            if _is_yaml_fence(fence):
                blocks.append((opened_at, content))
                if len(blocks) > 1:
                    source.fail(opened_at, "the Probes section has a second ```yaml block; put all probes in one list")
            fence = None
        else:
            content.append(line)
    if fence is not None and _is_yaml_fence(fence):
        source.fail(opened_at, "the ```yaml block of the Probes section is never closed")
    if not blocks:
        source.fail(section.line, "the Probes section needs one ```yaml block with a list of probes, and has none")
    opened_at, content = blocks[0]
    text = "\n".join(content)
    if len(text) > MAX_PROBES_YAML_CHARS:
        source.fail(opened_at, f"the probes block is larger than {MAX_PROBES_YAML_CHARS // 1024} KB")
    root = _compose_yaml(text, source, opened_at + 1, "the probes block")
    if root is None or _is_null(root):
        return []
    if not isinstance(root, yaml.SequenceNode):
        source.fail(
            opened_at + 1 + root.start_mark.line,
            f"the probes block must be a list of probes, each starting with '- prompt:', not {_node_kind(root)}",
        )
    probes = []
    for n, entry in enumerate(root.value, start=1):
        line = opened_at + 1 + entry.start_mark.line
        if not isinstance(entry, yaml.MappingNode):
            source.fail(line, f"probe {n} must be a mapping with a prompt, not {_node_kind(entry)}")
        fields: dict[str, tuple[yaml.Node, int]] = {}
        for key_node, value_node in entry.value:
            key_line = opened_at + 1 + key_node.start_mark.line
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            if key not in PROBE_KEYS:
                shown = _short(key or _node_kind(key_node), 40)
                source.fail(key_line, f"probe {n} has an unknown key {shown!r} (known: {', '.join(PROBE_KEYS)})")
            if key in fields:
                source.fail(key_line, f"probe {n} gives '{key}' twice")
            fields[key] = (value_node, key_line)
        if "prompt" not in fields:
            source.fail(line, f"probe {n} has no prompt")
        prompt_node, prompt_line = fields["prompt"]
        if not isinstance(prompt_node, yaml.ScalarNode) or _is_null(prompt_node) or not str(prompt_node.value).strip():
            source.fail(prompt_line, f"probe {n} has no prompt text")
        patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        for key in ("expect", "forbid"):
            if key not in fields:
                patterns[key] = ()
                continue
            node, key_line = fields[key]
            if _is_null(node):
                patterns[key] = ()
                continue
            if isinstance(node, yaml.ScalarNode):
                entries = [node]
            elif isinstance(node, yaml.SequenceNode):
                entries = node.value
            else:
                source.fail(key_line, f"the '{key}' of probe {n} must be a list of regexes, not {_node_kind(node)}")
            compiled = []
            for pattern_node in entries:
                pattern_line = opened_at + 1 + pattern_node.start_mark.line
                if not isinstance(pattern_node, yaml.ScalarNode) or _is_null(pattern_node):
                    what = f"every '{key}' entry of probe {n} must be a regex, not {_node_kind(pattern_node)}"
                    source.fail(pattern_line, what)
                compiled.append(_compile(str(pattern_node.value), source, pattern_line, f"probe {n} {key}"))
            patterns[key] = tuple(compiled)
        tags: tuple[str, ...] = ()
        if "tags" in fields:
            node, key_line = fields["tags"]
            tags = tuple(text for text, _line in _text_list(node, source, key_line, "tags", opened_at + 1))
        probes.append(Probe(str(prompt_node.value).strip(), patterns["expect"], patterns["forbid"], line, tags))
    return probes


def parse_reference(text: str, path: str | Path | None = None) -> Reference:
    """Parse a reference document; ``path`` only names it in messages and for defaults.

    Raises :class:`ReferenceFormatError` (and nothing else) with one sentence naming
    the file, the line and the problem.
    """
    ref_path = Path(path) if path is not None else None
    source = _Source(ref_path)
    if not isinstance(text, str):
        source.fail(None, f"a reference must be text, not {type(text).__name__}")
    try:
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        source.fail(line, "the text holds a character that is not valid Unicode (a lone surrogate)")
    lines = _split_lines(text)
    front = _read_front_matter(lines, source)
    body_start = front.end_index + 1 if front is not None else 0

    sections: list[Section] = []
    probes: list[Probe] = []
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    for raw in _split_sections(lines, body_start):
        base_id = "preamble" if raw.level == 0 else (slugify(raw.title) or "section")
        section_id, n = base_id, next_suffix.get(base_id, 1)
        while section_id in used:
            n += 1
            section_id = f"{base_id}-{n}"
        next_suffix[base_id] = n
        used.add(section_id)
        kind = "prose" if raw.level == 0 else _kind_of(raw.title)
        body_lines = lines[raw.body_start : raw.body_end]
        items = []
        for number, (start, _end, item_text) in enumerate(_scan_items(body_lines), start=1):
            line = raw.body_start + start + 1
            detector = trigger = None
            if kind == "never":
                item_text, detector = _never_item(item_text, source, line)
            elif kind == "blips":
                item_text, trigger = _blip_item(item_text, source, line)
            items.append(Item(f"{section_id}.{number}", section_id, item_text, line, detector, trigger))
        body = "\n".join(body_lines)
        section = Section(section_id, raw.title, kind, raw.level, raw.line_index + 1, body, tuple(items))
        sections.append(section)
        if kind == "probes":
            probes.extend(_parse_probes(section, source))

    values = front.values if front is not None else {}
    title = values.get("title") or ""
    if not title:
        first_h1 = next((s.title for s in sections if s.level == 1 and s.kind == "prose" and s.title), "")
        stem = ref_path.stem if ref_path is not None else ""
        humanised = " ".join(re.split(r"[-_\s]+", stem)).strip()
        title = first_h1 or humanised[:1].upper() + humanised[1:]
    slug = values.get("slug") or slugify(ref_path.stem if ref_path is not None else "") or slugify(title) or "untitled"
    return Reference(
        path=ref_path,
        text=text,
        sha256=sha,
        title=title,
        slug=slug,
        version=values.get("version", ""),
        author=values.get("author", ""),
        status=values.get("status", "draft"),
        tags=values.get("tags", ()),
        links=values.get("links", ()),
        loop=front.loop if front is not None else LoopSettings(),
        loop_given=front.loop_given if front is not None else frozenset(),
        sections=tuple(sections),
        probes=tuple(probes),
        front_matter_end_line=front.end_index + 1 if front is not None else 0,
    )


def load_reference(path: str | Path) -> Reference:
    """Read and parse a reference file; unreadable, too large or non-UTF-8 files are ReferenceFormatError."""
    ref_path = Path(path)
    source = _Source(ref_path)
    try:
        size = ref_path.stat().st_size
        if size > MAX_FILE_BYTES:
            source.fail(None, f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        data = ref_path.read_bytes()
    except OSError as exc:
        source.fail(None, f"the file could not be read ({exc.strerror or exc})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        source.fail(line, f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8")
    return parse_reference(text, ref_path)


def empty_reference() -> Reference:
    """A reference with no content (``render_reference`` gives ``""``): the ``none`` mode's reference."""
    return parse_reference("")


# --------------------------------------------------------------------------- rendering


def _render_body(section: Section, exclude: Collection[str]) -> str:
    lines = section.body.split("\n")
    # the parser built section.items from this same scan, so the two line up one to one
    scanned = _scan_items(lines)
    spans = {start: (end, item) for (start, end, _text), item in zip(scanned, section.items, strict=False)}
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in spans:
            end, item = spans[i]
            if item.id not in exclude:
                if section.kind == "always":
                    out.append("- " + item.text.replace("\n", "\n  "))
                elif section.kind == "never":
                    out.append("- " + as_prohibition(item.text).replace("\n", "\n  "))
                else:
                    out.extend(lines[i:end])
            i = end
            continue
        out.append(lines[i])
        i += 1
    return _tidy(_strip_comments("\n".join(out)))


def _has_shown_child(blocks: list[tuple[int, str, str]], n: int) -> bool:
    """True when a deeper section under block ``n`` (before the next sibling) has a body."""
    for level, _heading, body in blocks[n + 1 :]:
        if level <= blocks[n][0]:
            return False
        if body:
            return True
    return False


def render_reference(ref: Reference, exclude: Collection[str] = ()) -> str:
    """The text the model sees (sidecar system message, ``prompt`` mode): THE one rendering.

    The title as a heading, then every section in document order with its body as
    written, except: Always items as plain bullets, Never items as bullets phrased as
    prohibitions with their detectors removed, and never the front matter, the Probes
    or Blips sections (blips are held back for injection) or HTML comments. ``exclude``
    drops sections and items by id (attribution). Empty sections are left out unless a
    deeper section under them is shown. Headings start at ``##`` under the title.
    """
    exclude = frozenset(exclude)
    blocks: list[tuple[int, str, str]] = []  # (level as written, heading, body)
    for section in ref.sections:
        if section.id in exclude or section.kind in ("probes", "blips"):
            continue
        heading = section.title
        if section.level == 0 or (section.level == 1 and heading.strip().lower() == ref.title.strip().lower()):
            heading = ""
        blocks.append((section.level, heading, _render_body(section, exclude)))
    kept = [block for n, block in enumerate(blocks) if block[2] or (block[1] and _has_shown_child(blocks, n))]
    parts = [f"# {ref.title}"] if ref.title else []
    for level, heading, body in kept:
        heading_line = f"{'#' * max(level, 2)} {heading}" if heading else ""
        parts.append("\n".join(p for p in (heading_line, body) if p))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- saving loop settings


def _lines_keepends(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def update_front_matter_loop(text: str, loop: dict[str, Any]) -> str:
    """``text`` with only the front matter's ``loop:`` block replaced by ``loop`` (every other byte kept).

    Adds the block (and the front matter) when missing; an empty ``loop`` removes the
    block. The settings are validated first (``SettingsError``); front matter that
    cannot take a block key (unclosed, not a mapping, flow style) is ReferenceFormatError.
    """
    source = _Source(None)
    checked = loop_overrides(dict(loop))
    LoopSettings.from_mapping(checked)
    lines = _lines_keepends(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = ""
    if checked:
        dumped = yaml.safe_dump({"loop": checked}, sort_keys=False, default_flow_style=False, allow_unicode=True)
        block = dumped.replace("\n", newline)
    plain = _split_lines(text)
    end = _front_matter_end(plain, source)
    if end is None:
        if not block:
            return text
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        return f"{bom}---{newline}{block}---{newline}{text[len(bom):]}"
    root = _compose_yaml("\n".join(plain[1:end]), source, 2, "the front matter")
    if root is not None and not _is_null(root):
        if not isinstance(root, yaml.MappingNode):
            source.fail(2, f"the front matter must be a mapping of keys, not {_node_kind(root)}")
        if root.flow_style:
            source.fail(2, "the front matter is in flow style ({…}); write one key per line to save loop settings")
    key_index = next((i for i in range(1, end) if _LOOP_KEY_LINE_RE.match(plain[i])), None)
    if key_index is None:
        start = stop = end
    else:
        start, stop = key_index, key_index + 1
        while stop < end and (not plain[stop].strip() or plain[stop][0] in " \t#-"):
            stop += 1
        while stop > start + 1 and (not plain[stop - 1].strip() or plain[stop - 1].startswith("#")):
            stop -= 1
    updated = "".join(lines[:start]) + block + "".join(lines[stop:])
    # Check the edit instead of trusting the line scan: YAML knows line breaks (U+0085,
    # U+2028, a lone CR) that editors do not, so only a verified result is returned.
    new_plain = _split_lines(updated)
    new_end = _front_matter_end(new_plain, source)
    new_root = _compose_yaml("\n".join(new_plain[1 : new_end or 1]), source, 2, "the updated front matter")
    if new_end is None or _other_keys(root) != _other_keys(new_root) or _loop_value(new_root) != checked:
        source.fail(start + 1, "the front matter's loop block could not be rewritten safely; edit it by hand")
    return updated


def _canonical(node: yaml.Node) -> Any:
    """A comparable form of a YAML node: tags and values, without positions."""
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    if isinstance(node, yaml.SequenceNode):
        return (node.tag, tuple(_canonical(n) for n in node.value))
    return (node.tag, tuple((_canonical(k), _canonical(v)) for k, v in node.value))


def _other_keys(root: yaml.Node | None) -> Any:
    """Every top-level front matter entry except ``loop``, comparable."""
    if root is None or not isinstance(root, yaml.MappingNode):
        return ()
    try:
        return tuple((_canonical(k), _canonical(v)) for k, v in root.value if k.value != "loop")
    except RecursionError:
        return None


def _loop_value(root: yaml.Node | None) -> Any:
    """The ``loop`` mapping of a front matter node as plain values ({} when absent)."""
    if root is None or not isinstance(root, yaml.MappingNode):
        return {}
    for key_node, value_node in root.value:
        if key_node.value == "loop":
            try:
                return _NoAliasLoader("").construct_object(value_node, deep=True)
            except _YAML_FAILURES:
                return None
    return {}


__all__ = [
    "BlipCandidate",
    "Item",
    "Probe",
    "Reference",
    "Section",
    "SECTION_KINDS",
    "STATUSES",
    "as_prohibition",
    "empty_reference",
    "load_reference",
    "parse_reference",
    "render_reference",
    "slugify",
    "update_front_matter_loop",
]

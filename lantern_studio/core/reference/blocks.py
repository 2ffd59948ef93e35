"""The one block scanner for reference Markdown: front matter, then CommonMark blocks with line ranges.

The parser, the rendering, the studio's outline (through the parsed reference), preview and
highlighter all read a document's structure from here, so they cannot disagree about where a
heading, a list item, a fence or the front matter is.

* **Front matter** opens with a ``---`` first line (after an optional BOM, trailing blanks
  allowed) and closes with the next ``---`` or ``...`` line: :func:`front_matter_end`, with
  the line predicates :func:`opens_front_matter` / :func:`closes_front_matter` for the
  highlighter, which sees one line at a time.
* **Blocks** come from markdown-it-py's CommonMark block parser (``token.map`` gives the line
  range of every block); inline parsing is skipped. Choices on top of CommonMark, shared with
  the preview: HTML comments (``<!-- … -->``) that open a line, outside fenced code, are notes
  for authors, so they are blanked before the scan and a heading or item inside one does not
  exist (as in a CommonMark HTML block, but ending at the ``-->`` itself); other raw
  HTML has no block meaning (a ``<div>`` line is a paragraph line, so it cannot swallow the
  headings after it); only ATX headings (``## Title``) make sections, so setext underlines
  (``Title`` over ``---``) stay a paragraph and a thematic break; and a lone carriage return
  is not a line break (lines are split on ``\\n`` only, as editors number them). GFM tables
  are on.
* :func:`fence_opening` and :class:`FenceMark` are CommonMark's fence rules for one
  top-level line, for the highlighter; inside list items the scanner is the authority.

Every step is linear in the text: no regular expression here can backtrack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt

BOM = "\ufeff"


# --------------------------------------------------------------------------- front matter


def opens_front_matter(first_line: str) -> bool:
    """True when the document's first line opens front matter."""
    return first_line.removeprefix(BOM).rstrip() == "---"


def closes_front_matter(line: str) -> bool:
    """True when a line inside the front matter closes it."""
    return line.rstrip() in ("---", "...")


def front_matter_end(lines: Sequence[str], limit: int | None = None) -> int | None:
    """Index of the closing line, None without front matter or when it is never closed.

    With ``limit``, stop looking once the front matter holds more than ``limit`` characters
    and return ``-1`` (the parser refuses such a document; a view shows it as text).
    """
    if not lines or not opens_front_matter(lines[0]):
        return None
    size = 0
    for i in range(1, len(lines)):
        if closes_front_matter(lines[i]):
            return i
        size += len(lines[i]) + 1
        if limit is not None and size > limit:
            return -1
    return None


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (editors' line numbers), without ``\\r`` and the BOM."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[0].startswith(BOM):
        lines[0] = lines[0][1:]
    return lines


# --------------------------------------------------------------------------- fences, line by line


@dataclass(frozen=True)
class FenceMark:
    """An opening code fence: its character, length and info string."""

    char: str
    length: int
    info: str

    def closed_by(self, line: str) -> bool:
        """True when ``line`` (top level) closes this fence."""
        if _indent(line) > 3:
            return False
        stripped = line.strip(" \t")
        run = len(stripped) - len(stripped.lstrip(self.char))
        return run >= self.length and run == len(stripped)


def fence_opening(line: str) -> FenceMark | None:
    """The fence a top-level line opens, or None."""
    if _indent(line) > 3:
        return None
    body = line.lstrip(" ")
    char = body[:1]
    if char not in ("`", "~"):
        return None
    length = len(body) - len(body.lstrip(char))
    if length < 3:
        return None
    info = body[length:]
    if char == "`" and "`" in info:
        return None
    return FenceMark(char, length, info.strip())


def _indent(line: str) -> int:
    """Columns of leading blanks, tabs stopping at multiples of 4."""
    column = 0
    for ch in line:
        if ch == " ":
            column += 1
        elif ch == "\t":
            column += 4 - column % 4
        else:
            break
    return column


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Block:
    """One block of the document; ``first``/``end`` are line indexes (``end`` exclusive)."""

    kind: str  # heading | item | fence | html | paragraph | code | quote | hr | table
    first: int
    end: int
    depth: int  # 0 for a block at the top level, deeper inside lists and quotes
    level: int = 0  # headings: 1..6
    title: str = ""  # headings: the text without the #s
    info: str = ""  # fences: the info string
    closed: bool = True  # fences: False when the fence runs to the end of its container
    content: str = ""  # fences: the code, as markdown-it reads it


_KINDS = {
    "heading_open": "heading",
    "list_item_open": "item",
    "fence": "fence",
    "html_block": "html",
    "paragraph_open": "paragraph",
    "code_block": "code",
    "blockquote_open": "quote",
    "hr": "hr",
    "table_open": "table",
}


@lru_cache(maxsize=2)
def markdown(inline: bool = False) -> MarkdownIt:
    """The configured CommonMark parser (``inline=True`` for the preview, which renders inline text)."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.disable(["lheading", "normalize", "html_block"])
    if not inline:
        md.disable("inline")
    else:
        md.enable("strikethrough")
    return md


def scan_blocks(lines: Sequence[str], offset: int = 0) -> list[Block]:
    """Every block of ``lines`` in document order; line indexes are shifted by ``offset``.

    Blocks do not include the blank lines after them (a line holding only a comment is blank).
    """
    masked = mask_comments(lines)
    tokens = markdown().parse("\n".join(masked))
    blocks: list[Block] = []
    for token in tokens:
        kind = _KINDS.get(token.type)
        if kind is None or token.map is None:
            continue
        first, end = token.map
        while end > first + 1 and not masked[end - 1].strip():
            end -= 1
        depth = token.level if kind != "item" else token.level - 1
        if kind == "heading":
            blocks.append(Block(kind, first + offset, end + offset, depth, int(token.tag[1:]), heading_title(lines[first])))
        elif kind == "fence":
            content_lines = token.content.count("\n")
            closed = token.map[1] - token.map[0] - 1 > content_lines
            blocks.append(Block(kind, first + offset, token.map[1] + offset, depth, info=token.info.strip(),
                                closed=closed, content=token.content))
        else:
            blocks.append(Block(kind, first + offset, end + offset, depth))
    return blocks


def mask_comments(lines: Sequence[str]) -> Sequence[str]:
    """``lines`` with every closed HTML comment that starts a line blanked (line breaks kept).

    Only comments that open at the start of a line (after blanks) hide structure, as an HTML
    block does in CommonMark; a comment inside a line's text is left to the rendering, and
    comments inside fenced code (the fences of the unmasked lines) are code.
    """
    text = "\n".join(lines)
    if "<!--" not in text:
        return lines
    tokens = markdown().parse(text)
    fenced = {i for t in tokens if t.type == "fence" and t.map for i in range(t.map[0], t.map[1])}
    out: list[str] = []
    chunk: list[str] = []
    for i, line in enumerate(lines):
        if i in fenced:
            out.extend(_blank_comments("\n".join(chunk)).split("\n") if chunk else [])
            chunk = []
            out.append(line)
        else:
            chunk.append(line)
    if chunk:
        out.extend(_blank_comments("\n".join(chunk)).split("\n"))
    return out


def _blank_comments(text: str) -> str:
    pieces: list[str] = []
    pos = search = 0
    while True:
        start = text.find("<!--", search)
        if start < 0:
            break
        line_start = start
        while line_start > pos and text[line_start - 1] in " \t":
            line_start -= 1
        if line_start > 0 and text[line_start - 1] != "\n":  # inside a line's text
            search = start + 4
            continue
        stop = text.find("-->", start + 4)
        if stop < 0:  # no comment after this one can close either
            break
        pieces.append(text[pos:start])
        pieces.append("".join("\n" if ch == "\n" else " " for ch in text[start : stop + 3]))
        pos = search = stop + 3
    pieces.append(text[pos:])
    return "".join(pieces)


def heading_title(line: str) -> str:
    """The title of an ATX heading line as written: without the #s, a closing run of #s and blanks."""
    body = line.lstrip(" ").lstrip("#").rstrip(" \t")
    unclosed = body.rstrip("#")
    if not unclosed or unclosed[-1] in " \t":
        body = unclosed
    return body.strip()


def fenced_lines(blocks: Sequence[Block], inner: bool = False) -> set[int]:
    """Indexes of the lines of fenced code blocks: all of them, or (``inner``) all but the opening line."""
    skip = 1 if inner else 0
    return {i for block in blocks if block.kind == "fence" for i in range(block.first + skip, block.end)}


# --------------------------------------------------------------------------- inline bits


def remove_comments(text: str, replacement: str = "") -> str:
    """``text`` without HTML comments (``<!-- … -->``); an unclosed one is left as it is."""
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("<!--", pos)
        if start < 0:
            break
        stop = text.find("-->", start + 4)
        if stop < 0:
            break
        out.append(text[pos:start])
        out.append(replacement)
        pos = stop + 3
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class DetectorSpan:
    """A ``regex:`` code span in an item: where it is and the regex it holds."""

    start: int
    end: int
    source: str


def detector_spans(text: str) -> list[DetectorSpan]:
    """Code spans that start with ``regex:`` (case-insensitive), left to right.

    A span opens with a run of backticks followed by optional blanks and ``regex:``, and closes
    at the next run of exactly as many backticks; blanks around the regex are dropped.
    """
    runs: list[tuple[int, int]] = []  # (start, length) of each maximal run of backticks
    i = text.find("`")
    while i >= 0:
        j = i
        while j < len(text) and text[j] == "`":
            j += 1
        runs.append((i, j - i))
        i = text.find("`", j)
    next_same = [0] * len(runs)  # index of the next run of the same length, or -1
    last: dict[int, int] = {}
    for k in range(len(runs) - 1, -1, -1):
        next_same[k] = last.get(runs[k][1], -1)
        last[runs[k][1]] = k
    spans: list[DetectorSpan] = []
    k = 0
    while k < len(runs):
        start, length = runs[k]
        after = start + length
        head = after
        while head < len(text) and text[head] in " \t":
            head += 1
        close = next_same[k]
        if text[head : head + 6].lower() == "regex:" and close >= 0:
            close_start = runs[close][0]
            source = text[head + 6 : close_start].strip(" \t")
            spans.append(DetectorSpan(start, close_start + length, source))
            k = close + 1
            continue
        k += 1
    return spans


def trigger_spans(line: str) -> list[tuple[int, int]]:
    """``when: /…/`` spans in one line (for highlighting)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        at = line.find("when:", pos)
        if at < 0:
            return spans
        head = at + 5
        while head < len(line) and line[head].isspace():
            head += 1
        if line[head : head + 1] != "/":
            pos = at + 5
            continue
        close = line.find("/", head + 1)
        if close < 0:
            return spans
        spans.append((at, close + 1))
        pos = close + 1


__all__ = [
    "Block",
    "DetectorSpan",
    "FenceMark",
    "closes_front_matter",
    "detector_spans",
    "fence_opening",
    "fenced_lines",
    "front_matter_end",
    "heading_title",
    "markdown",
    "mask_comments",
    "opens_front_matter",
    "remove_comments",
    "scan_blocks",
    "split_lines",
    "trigger_spans",
]

"""Small text helpers shared by the parser, the model and the rendering.

Every regex here is linear: no two adjacent quantifiers range over the same characters, and
the anchored ones are tried once.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import TYPE_CHECKING

from .blocks import fenced_lines, remove_comments, scan_blocks

if TYPE_CHECKING:
    from .model import Section

_NESTED_MARKER_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_PROHIBITION_RE = re.compile(
    r"^(never|don['’]?t|do not|does not|doesn['’]t|must not|mustn['’]t|should not|shouldn['’]t|"
    r"cannot|can['’]t|no|not|avoid|refuse|stop|nothing|none|nobody)\b",
    re.IGNORECASE,
)
_DIGITS = "0123456789"


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


def plain(text: str) -> str:
    """One line for a blip: no comments, emphasis or nested list markers; whitespace collapsed."""
    text = remove_comments(text, " ").replace("**", "").replace("__", "")
    text = "\n".join(_NESTED_MARKER_RE.sub("", line) for line in text.split("\n"))
    return " ".join(text.split())


def tidy(text: str) -> str:
    """Trailing spaces off, runs of blank lines collapsed to one, outer blank lines off."""
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def strip_comments(text: str) -> str:
    """Remove HTML comments outside fenced code blocks."""
    if "<!--" not in text:
        return text
    lines = text.split("\n")
    fenced = fenced_lines(scan_blocks(lines))
    out: list[str] = []
    chunk: list[str] = []
    for i, line in enumerate(lines):
        if i in fenced:
            if chunk:
                out.append(remove_comments("\n".join(chunk)))
                chunk = []
            out.append(line)
        else:
            chunk.append(line)
    if chunk:
        out.append(remove_comments("\n".join(chunk)))
    return "\n".join(out)


def item_marker(line: str) -> tuple[int, str] | None:
    """``(content column, text after the marker)`` of a list item's first line, else None.

    Columns count tabs as stops every 4; a gap of more than 4 blanks after the marker means
    the text is indented code, so the content column is one past the marker.
    """
    expanded = line.expandtabs(4)
    body = expanded.lstrip(" ")
    lead = len(expanded) - len(body)
    if body[:1] in ("-", "*", "+"):
        marker = 1
    else:
        digits = len(body) - len(body.lstrip(_DIGITS))
        if not 1 <= digits <= 9 or body[digits : digits + 1] not in (".", ")"):
            return None
        marker = digits + 1
    rest = body[marker:]
    content = rest.lstrip(" \t")
    gap = len(rest) - len(content)
    if content and not gap:
        return None
    gap = gap if content else max(gap, 1)
    return lead + marker + (gap if gap <= 4 else 1), content


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def item_text(lines: list[str], first: int, end: int, in_fence: set[int]) -> str:
    """The text of the list item on ``lines[first:end]``: markers and indentation off, blank lines dropped.

    Lines inside a fenced block of the item (``in_fence``: after an opening fence line, up to
    and with its closing line) keep their blank lines and relative indentation.
    """
    found = item_marker(lines[first])
    column, head = found if found is not None else (0, lines[first].strip())
    out = [head]
    for i in range(first + 1, end):
        line = lines[i]
        indent = _indent(line)
        if i in in_fence:
            out.append(line.expandtabs(4)[column:] if indent >= column else line.strip())
        elif line.strip():
            out.append(line.expandtabs(4)[min(indent, column):] if indent >= 2 else line.strip())
    return "\n".join(out).strip()


def intent_sentences(section: Section) -> list[tuple[str, str, int]]:
    """``(id, sentence, line)`` for each sentence of an Intent section's prose and items."""
    base = section.line + (1 if section.level else 0)
    lines = section.body.split("\n")
    blocks = scan_blocks(lines)
    fenced = fenced_lines(blocks)
    fence_starts = {b.first for b in blocks if b.kind == "fence"}
    item_starts = {b.first for b in blocks if b.kind == "item"}
    paragraphs: list[list[tuple[int, str]]] = [[]]
    for offset, line in enumerate(lines):
        if offset in fenced:
            if offset in fence_starts:
                paragraphs.append([])
            continue
        marker = item_marker(line) if offset in item_starts else None
        text = marker[1] if marker is not None else line
        if marker is not None or not text.strip():
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
            sentence = plain(joined[pos:end])
            if sentence:
                line = paragraph[bisect.bisect_right(starts, pos) - 1][0]
                out.append((f"{section.id}.s{len(out) + 1}", sentence, line))
            pos = piece.end() if piece is not None else len(joined)
    return out

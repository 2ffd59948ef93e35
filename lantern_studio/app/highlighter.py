"""Markdown highlighting with pygments, one block (line) at a time.

Each block restores the state its predecessor left (``previousBlockState``): plain Markdown,
inside the front matter, or inside a code fence (with the fence's character and length); it
lexes only its own line and stores the state it ends in (``setCurrentBlockState``), so typing
re-lexes a line and, only if its end state changed, the lines after it. Formats are built once
per theme.

Front matter and fences are recognised by the parser's own line rules
(``core/reference/blocks.py``), so the highlighter and the parser agree on where they are.
pygments' Markdown lexer keeps no state across lines (its fenced-code rules span lines, and
fences are handled here instead), so each line is lexed from scratch through its public
``get_tokens_unprocessed``. Lines longer than :data:`MAX_LEXED_LINE` are not lexed: some of
the lexer's rules rescan the rest of the line from every ``[`` or backtick, which a hostile
line could make quadratic.
"""

from __future__ import annotations

from pygments.lexers.markup import MarkdownLexer
from pygments.token import Comment, Generic, Keyword, Literal, Name, Number, String
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

from lantern_studio.core.reference.blocks import (
    FenceMark,
    closes_front_matter,
    detector_spans,
    fence_opening,
    opens_front_matter,
    trigger_spans,
)

MAX_LEXED_LINE = 2000

# Block state: NORMAL, FRONT, or FENCE | backtick flag | fence length << 3 (a Qt int).
NORMAL, FRONT, FENCE = 1, 2, 3
_BACKTICK = 4
_MAX_FENCE = 1 << 24

PALETTES = {
    "light": {
        "heading": "#1f4e99", "strong": "#222222", "emph": "#444444", "code": "#8a3f00",
        "list": "#b35c00", "link": "#0b6e4f", "front": "#6b4c9a", "comment": "#8a8a8a",
        "detector": "#b00020", "quote": "#55606e",
    },
    "dark": {
        "heading": "#82aaff", "strong": "#eeeeee", "emph": "#cccccc", "code": "#f0a060",
        "list": "#ffb86c", "link": "#6fdfb0", "front": "#c3a6ff", "comment": "#7f8a96",
        "detector": "#ff7b8a", "quote": "#a0aab4",
    },
}


def fence_state(fence: FenceMark) -> int:
    """The block state of a line inside ``fence``."""
    return FENCE | (_BACKTICK if fence.char == "`" else 0) | (min(fence.length, _MAX_FENCE) << 3)


def fence_of_state(state: int) -> FenceMark:
    """The fence a FENCE block state stands for."""
    return FenceMark("`" if state & _BACKTICK else "~", state >> 3, "")


def next_state(state: int, line: str, first: bool) -> int:
    """The state after ``line``, given the state before it (``first``: the document's first line).

    Pure, so that the highlighter's line states can be checked against the parser's scanner.
    """
    mode = state & 3 if state >= 0 else NORMAL
    if first and opens_front_matter(line):
        return FRONT
    if mode == FRONT:
        return NORMAL if closes_front_matter(line) else FRONT
    if mode == FENCE:
        return NORMAL if fence_of_state(state).closed_by(line) else state
    opened = fence_opening(line)
    return fence_state(opened) if opened is not None else NORMAL


class MarkdownHighlighter(QSyntaxHighlighter):
    """Highlights a reference document: front matter, headings, lists, code, detectors."""

    def __init__(self, document: QTextDocument, theme: str = "light") -> None:
        super().__init__(document)
        self._lexer = MarkdownLexer()
        self.formats: dict[str, QTextCharFormat] = {}
        self.set_theme(theme)

    def set_theme(self, theme: str) -> None:
        palette = PALETTES.get(theme, PALETTES["light"])

        def fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
            f = QTextCharFormat()
            f.setForeground(QColor(color))
            if bold:
                f.setFontWeight(QFont.Weight.Bold)
            if italic:
                f.setFontItalic(True)
            return f

        self.formats = {
            "heading": fmt(palette["heading"], bold=True),
            "strong": fmt(palette["strong"], bold=True),
            "emph": fmt(palette["emph"], italic=True),
            "code": fmt(palette["code"]),
            "list": fmt(palette["list"], bold=True),
            "link": fmt(palette["link"]),
            "front": fmt(palette["front"]),
            "comment": fmt(palette["comment"], italic=True),
            "detector": fmt(palette["detector"], bold=True),
            "quote": fmt(palette["quote"], italic=True),
        }
        self.rehighlight()

    def _format_for(self, ttype) -> QTextCharFormat | None:
        if ttype in Generic.Heading or ttype in Generic.Subheading:
            return self.formats["heading"]
        if ttype in Generic.Strong:
            return self.formats["strong"]
        if ttype in Generic.Emph:
            return self.formats["emph"]
        if ttype in String.Backtick or ttype in Literal.String or ttype in Name.Builtin:
            return self.formats["code"]
        if ttype in Keyword or ttype in Number:
            return self.formats["list"]
        if ttype in Name.Tag or ttype in Name.Attribute or ttype in Name.Label or ttype in Name.Entity:
            return self.formats["link"]
        if ttype in Comment:
            return self.formats["comment"]
        return None

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt override)
        before = self.previousBlockState()
        state = next_state(before, text, self.currentBlock().blockNumber() == 0)
        self.setCurrentBlockState(state)
        if state == FRONT or (before >= 0 and before & 3 == FRONT):
            self.setFormat(0, len(text), self.formats["front"])
            return
        if state & 3 == FENCE or (before >= 0 and before & 3 == FENCE):
            self.setFormat(0, len(text), self.formats["code"])
            return
        if len(text) <= MAX_LEXED_LINE:
            for start, ttype, value in self._lexer.get_tokens_unprocessed(text + "\n"):
                fmt = self._format_for(ttype)
                if fmt is not None and value and start < len(text):
                    self.setFormat(start, min(len(value), len(text) - start), fmt)
        for span in detector_spans(text):
            self.setFormat(span.start, span.end - span.start, self.formats["detector"])
        for start, end in trigger_spans(text):
            self.setFormat(start, end - start, self.formats["detector"])

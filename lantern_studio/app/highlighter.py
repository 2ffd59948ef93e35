"""Markdown highlighting with pygments, one block (line) at a time.

Each block restores the lexer state its predecessor left (``previousBlockState``), lexes only
its own line and stores the state it ends in (``setCurrentBlockState``), so typing re-lexes a
line and, only if its end state changed, the lines after it. Formats are built once per theme.
"""

from __future__ import annotations

import re

from pygments.lexers.markup import MarkdownLexer
from pygments.token import Comment, Generic, Keyword, Literal, Name, Number, String, Token
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
FRONT_RE = re.compile(r"^---\s*$")
DETECTOR_RE = re.compile(r"`regex:[^`]*`")
TRIGGER_RE = re.compile(r"when:\s*/[^/]*/")

# Block state = mode | (pygments stack id << 3)
NORMAL, FRONT, FENCE = 1, 2, 3

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


class MarkdownHighlighter(QSyntaxHighlighter):
    """Highlights a reference document: front matter, headings, lists, code, detectors."""

    def __init__(self, document: QTextDocument, theme: str = "light") -> None:
        super().__init__(document)
        self._lexer = MarkdownLexer()
        self._rules = self._lexer._tokens  # pygments' compiled state table
        self._stacks: list[tuple[str, ...]] = [("root",)]
        self._stack_ids: dict[tuple[str, ...], int] = {("root",): 0}
        self.formats: dict[str, QTextCharFormat] = {}
        self.set_theme(theme)

    def set_theme(self, theme: str) -> None:
        palette = PALETTES.get(theme, PALETTES["light"])

        def fmt(color: str, bold: bool = False, italic: bool = False, mono: bool = False) -> QTextCharFormat:
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

    # -- state ------------------------------------------------------------------------------
    def _stack_id(self, stack: tuple[str, ...]) -> int:
        found = self._stack_ids.get(stack)
        if found is None:
            found = len(self._stacks)
            self._stacks.append(stack)
            self._stack_ids[stack] = found
        return found

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
        if ttype in Generic.Emph:
            return self.formats["quote"]
        return None

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt override)
        prev = self.previousBlockState()
        block = self.currentBlock()
        mode = prev & 7 if prev >= 0 else NORMAL
        stack_id = prev >> 3 if prev >= 0 else 0
        if block.blockNumber() == 0 and FRONT_RE.match(text):
            self.setFormat(0, len(text), self.formats["front"])
            self.setCurrentBlockState(FRONT)
            return
        if mode == FRONT:
            self.setFormat(0, len(text), self.formats["front"])
            self.setCurrentBlockState(NORMAL if FRONT_RE.match(text) else FRONT)
            return
        if mode == FENCE:
            self.setFormat(0, len(text), self.formats["code"])
            self.setCurrentBlockState(NORMAL if FENCE_RE.match(text) else FENCE)
            return
        if FENCE_RE.match(text):
            self.setFormat(0, len(text), self.formats["code"])
            self.setCurrentBlockState(FENCE)
            return
        stack = self._lex_line(text, list(self._stacks[stack_id]))
        for m in DETECTOR_RE.finditer(text):
            self.setFormat(m.start(), m.end() - m.start(), self.formats["detector"])
        for m in TRIGGER_RE.finditer(text):
            self.setFormat(m.start(), m.end() - m.start(), self.formats["detector"])
        self.setCurrentBlockState(NORMAL | (self._stack_id(tuple(stack)) << 3))

    def _lex_line(self, text: str, stack: list[str]) -> list[str]:
        """Run pygments' state machine over one line from ``stack``; returns the end stack."""
        line = text + "\n"
        pos = 0
        end = len(line)
        while pos < end:
            for rexmatch, action, new_state in self._rules[stack[-1]]:
                m = rexmatch(line, pos)
                if not m or m.end() == pos and new_state is None:
                    continue
                if action is not None:
                    if type(action) is type(Token):  # a plain token type
                        self._apply(m.start(), m.end(), action)
                    else:
                        try:
                            for start, ttype, value in action(self._lexer, m):
                                if ttype is not None and value:
                                    self._apply(start, start + len(value), ttype)
                        except Exception:  # noqa: BLE001 — delegating callbacks may need more text
                            pass
                if new_state is not None:
                    if isinstance(new_state, tuple):
                        for state in new_state:
                            if state == "#pop":
                                if len(stack) > 1:
                                    stack.pop()
                            elif state == "#push":
                                stack.append(stack[-1])
                            else:
                                stack.append(state)
                    elif isinstance(new_state, int):
                        if abs(new_state) >= len(stack):
                            del stack[1:]
                        else:
                            del stack[new_state:]
                    elif new_state == "#push":
                        stack.append(stack[-1])
                pos = max(m.end(), pos + (m.end() == pos))
                break
            else:
                if line[pos] == "\n":
                    del stack[1:]  # as pygments: an unmatched newline returns to root
                pos += 1
        return stack

    def _apply(self, start: int, stop: int, ttype) -> None:
        fmt = self._format_for(ttype)
        if fmt is not None and start < stop:
            self.setFormat(start, stop - start, fmt)

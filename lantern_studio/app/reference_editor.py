"""The reference editor: a plain-text editor with line numbers, Markdown highlighting,
find/replace, inline parse-error marks, and a tab that pairs it with a preview.

Logic that needs no widget (atomic save, error-line parsing) lives in free functions.
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (QColor, QFont, QFontDatabase, QKeySequence, QPainter, QShortcut, QTextCharFormat,
                           QTextCursor, QTextDocument, QTextFormat)
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QSplitter, QTextEdit, QToolButton, QVBoxLayout, QWidget)

from lantern_studio.core.atomic import atomic_write
from lantern_studio.core.describe import format_factor, likelihood_factor
from lantern_studio.core.errors import ReferenceFormatError
from lantern_studio.core.reference import Reference, parse_reference

from .highlighter import MarkdownHighlighter
from .preview import PreviewBrowser

ERROR_LINE_RE = re.compile(r"line (\d+)")
HEAT_SUPPORTS = "#2f6fd0"  # blue: removing the item makes the answer less likely
HEAT_OPPOSES = "#d63031"  # red: the item pushes the sidecar away from the answer

NEW_REFERENCE = """---
title: Untitled reference
slug: untitled
status: draft
---
# Intent
Describe what a good answer does, for whom, and why.

# Always
- State what must always hold.

# Never
- Say what must never appear `regex: forbidden`

# Style
Short, plain sentences.

# Blips
- when: /dose|how much/ → A short reminder the loop may give when a question matches.

# Probes
```yaml
- prompt: A question a user might ask
  expect: ['a word a good answer contains']
  forbid: ['a word a good answer never contains']
```
"""


def error_line(message: str) -> int | None:
    """The 1-based line named in a ReferenceFormatError message ("x.md, line 14: …")."""
    m = ERROR_LINE_RE.search(message)
    return int(m.group(1)) if m else None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def editor_font() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSize(max(font.pointSize(), 10))
    return font


class _LineNumberArea(QWidget):
    def __init__(self, editor: "CodeEditor") -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.editor.line_number_width(), 0)

    def paintEvent(self, event) -> None:  # noqa: N802
        self.editor.paint_line_numbers(event)

    def event(self, ev) -> bool:
        if ev.type() == ev.Type.ToolTip:
            line = self.editor.line_at_y(ev.pos().y())
            tip = self.editor.error_lines.get(line) or self.editor.heat_tooltip(line)
            if tip:
                from PySide6.QtWidgets import QToolTip
                QToolTip.showText(ev.globalPos(), tip, self)
                return True
        return super().event(ev)


class CodeEditor(QPlainTextEdit):
    """QPlainTextEdit with a line-number gutter, error marks and a highlighted line."""

    def __init__(self, parent: QWidget | None = None, theme: str = "light") -> None:
        super().__init__(parent)
        self.setFont(editor_font())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        self._gutter = _LineNumberArea(self)
        self.highlighter = MarkdownHighlighter(self.document(), theme)
        self.error_lines: dict[int, str] = {}
        self.heat: dict[int, tuple[str, float]] = {}  # line -> (item id, influence) from Explain
        self._heat_max = 1.0
        self._marked_line = 0
        self._find_selections: list[QTextEdit.ExtraSelection] = []
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self._update_gutter_width()

    # -- gutter --------------------------------------------------------------------------
    def line_number_width(self) -> int:
        digits = max(3, len(str(max(1, self.blockCount()))))
        return 12 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_gutter_width(self, *_args) -> None:
        self.setViewportMargins(self.line_number_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        cr = self.contentsRect()
        self._gutter.setGeometry(QRect(cr.left(), cr.top(), self.line_number_width(), cr.height()))

    def paint_line_numbers(self, event) -> None:
        painter = QPainter(self._gutter)
        pal = self.palette()
        painter.fillRect(event.rect(), pal.alternateBase())
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        current = self.textCursor().blockNumber()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                line = number + 1
                if line in self.heat:
                    painter.fillRect(0, top, self._gutter.width(), bottom - top, self.heat_color(line))
                if line in self.error_lines:
                    painter.fillRect(0, top, self._gutter.width(), bottom - top, QColor(220, 40, 40, 60))
                color = pal.text().color() if number == current else pal.placeholderText().color()
                painter.setPen(color)
                painter.drawText(0, top, self._gutter.width() - 6, self.fontMetrics().height(),
                                 Qt.AlignmentFlag.AlignRight, str(line))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1

    def line_at_y(self, y: int) -> int:
        """The 1-based line at viewport height ``y`` (0 if none)."""
        block = self.firstVisibleBlock()
        top = self.blockBoundingGeometry(block).translated(self.contentOffset()).top()
        while block.isValid():
            bottom = top + self.blockBoundingRect(block).height()
            if top <= y < bottom:
                return block.blockNumber() + 1
            block = block.next()
            top = bottom
        return 0

    # -- attribution heat ----------------------------------------------------------------
    def set_heat(self, heat: dict[int, tuple[str, float]]) -> None:
        """Colour the margin per line by an item's influence (Explain); an empty dict clears."""
        self.heat = dict(heat)
        self._heat_max = max((abs(v) for _i, v in self.heat.values()), default=1.0) or 1.0
        self._gutter.update()

    def heat_color(self, line: int) -> QColor:
        """Blue: the item supports the answer; red: it pushes away from it; alpha by |influence|."""
        _item, value = self.heat[line]
        strength = min(1.0, abs(value) / self._heat_max)
        base = QColor(HEAT_SUPPORTS if value > 0 else HEAT_OPPOSES)
        base.setAlpha(round(30 + 190 * strength))
        return base

    def heat_tooltip(self, line: int) -> str:
        if line not in self.heat:
            return ""
        item, value = self.heat[line]
        effect = "supports the answer" if value > 0 else "pushes away from the answer"
        return (f"<b>{html.escape(item)}</b> {effect}: without it the answer is "
                f"{format_factor(likelihood_factor(value))} {'less' if value > 0 else 'more'} likely.<br>"
                f"<small>influence {value:+.3f} nats (Δ log-likelihood of the answer when the item is removed)"
                "</small>")

    # -- marks ---------------------------------------------------------------------------
    def set_error_lines(self, errors: dict[int, str]) -> None:
        """Mark lines (1-based) with a red wavy underline; the message shows as tooltip."""
        self.error_lines = dict(errors)
        self._refresh_selections()
        self._gutter.update()

    def mark_line(self, line: int, move: bool = True) -> None:
        """Highlight a whole line (1-based; 0 clears), e.g. a blip's source item."""
        self._marked_line = line
        if line > 0 and move:
            block = self.document().findBlockByNumber(line - 1)
            if block.isValid():
                cursor = QTextCursor(block)
                self.setTextCursor(cursor)
                self.centerCursor()
        self._refresh_selections()

    def _refresh_selections(self) -> None:
        selections: list[QTextEdit.ExtraSelection] = []
        if self._marked_line > 0:
            block = self.document().findBlockByNumber(self._marked_line - 1)
            if block.isValid():
                sel = QTextEdit.ExtraSelection()
                sel.format.setBackground(QColor(255, 200, 0, 70))
                sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
                sel.cursor = QTextCursor(block)
                selections.append(sel)
        for line in self.error_lines:
            block = self.document().findBlockByNumber(line - 1)
            if not block.isValid():
                continue
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            fmt.setUnderlineColor(QColor("#d0202a"))
            fmt.setToolTip(self.error_lines[line])
            sel.format = fmt
            cursor = QTextCursor(block)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
            if not cursor.hasSelection():  # an empty line: underline the next character instead
                cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            selections.append(sel)
        selections.extend(self._find_selections)
        self.setExtraSelections(selections)

    def viewportEvent(self, ev) -> bool:  # noqa: N802
        # Tooltips over the text arrive at the viewport, in its coordinates (not at event()).
        if ev.type() == ev.Type.ToolTip and self.error_lines:
            message = self.error_lines.get(self.line_at_y(ev.pos().y()))
            if message:
                from PySide6.QtWidgets import QToolTip
                QToolTip.showText(ev.globalPos(), message, self.viewport())
                return True
        return super().viewportEvent(ev)

    # -- find ------------------------------------------------------------------------------
    def find_text(self, needle: str, backward: bool = False, case: bool = False) -> bool:
        flags = QTextDocument.FindFlag(0)
        if backward:
            flags |= QTextDocument.FindFlag.FindBackward
        if case:
            flags |= QTextDocument.FindFlag.FindCaseSensitively
        if not needle:
            return False
        if self.find(needle, flags):
            return True
        cursor = self.textCursor()  # wrap around
        cursor.movePosition(QTextCursor.MoveOperation.End if backward else QTextCursor.MoveOperation.Start)
        self.setTextCursor(cursor)
        return self.find(needle, flags)

    def replace_all(self, needle: str, replacement: str, case: bool = False) -> int:
        """Replace every occurrence as one undo step; returns the count."""
        if not needle:
            return 0
        flags = QTextDocument.FindFlag.FindCaseSensitively if case else QTextDocument.FindFlag(0)
        count = 0
        edit = QTextCursor(self.document())
        edit.beginEditBlock()
        cursor = self.document().find(needle, 0, flags)
        while not cursor.isNull():
            cursor.insertText(replacement)
            count += 1
            cursor = self.document().find(needle, cursor.position(), flags)
        edit.endEditBlock()
        return count


class FindBar(QWidget):
    """Find (Ctrl+F) and replace (Ctrl+H) under the editor."""

    def __init__(self, editor: CodeEditor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.find_edit = QLineEdit(placeholderText="Find")
        self.replace_edit = QLineEdit(placeholderText="Replace with")
        self.case = QCheckBox("Match case")
        self.status = QLabel()
        prev_btn, next_btn = QPushButton("Previous"), QPushButton("Next")
        self.replace_btn, self.replace_all_btn = QPushButton("Replace"), QPushButton("Replace all")
        close = QToolButton(text="✕", autoRaise=True)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for w in (self.find_edit, prev_btn, next_btn, self.case, self.replace_edit, self.replace_btn,
                  self.replace_all_btn, self.status, close):
            row.addWidget(w)
        self.find_edit.returnPressed.connect(self.find_next)
        next_btn.clicked.connect(self.find_next)
        prev_btn.clicked.connect(lambda: self._find(True))
        self.replace_btn.clicked.connect(self.replace_one)
        self.replace_all_btn.clicked.connect(self._replace_all)
        close.clicked.connect(self.hide)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.hide,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.hide()

    def open(self, replace: bool) -> None:
        for w in (self.replace_edit, self.replace_btn, self.replace_all_btn):
            w.setVisible(replace)
        selected = self.editor.textCursor().selectedText()
        if selected and "\u2029" not in selected:
            self.find_edit.setText(selected)
        self.show()
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def _find(self, backward: bool) -> bool:
        found = self.editor.find_text(self.find_edit.text(), backward, self.case.isChecked())
        self.status.setText("" if found else "Not found")
        return found

    def find_next(self) -> bool:
        return self._find(False)

    def replace_one(self) -> None:
        cursor = self.editor.textCursor()
        if cursor.hasSelection() and cursor.selectedText().lower() == self.find_edit.text().lower():
            cursor.insertText(self.replace_edit.text())
        self.find_next()

    def _replace_all(self) -> None:
        n = self.editor.replace_all(self.find_edit.text(), self.replace_edit.text(), self.case.isChecked())
        self.status.setText(f"{n} replaced")


class ReferenceTab(QWidget):
    """One open reference: editor, find bar, preview; parses itself after edits."""

    parsed = Signal(object)  # Reference or None
    parseError = Signal(str)
    dirtyChanged = Signal(bool)

    def __init__(self, text: str = "", path: Path | None = None, parent: QWidget | None = None,
                 theme: str = "light") -> None:
        super().__init__(parent)
        self.path = Path(path) if path else None
        self.autosave_key = uuid.uuid4().hex[:12]  # names this tab's autosave files
        self.pack_verdict: str | None = None  # set for a reference opened from a pack
        self.editor = CodeEditor(theme=theme)
        self.find_bar = FindBar(self.editor)
        self.preview = PreviewBrowser()
        self.preview.hide()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.editor)
        self.splitter.addWidget(self.preview)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.find_bar)
        self.reference: Reference | None = None
        self.error: str | None = None
        self._saved_hash = text_hash(text)
        self._parse_timer = QTimer(self, singleShot=True, interval=250)
        self._parse_timer.timeout.connect(self.reparse)
        self._preview_timer = QTimer(self, singleShot=True, interval=300)
        self._preview_timer.timeout.connect(self._update_preview)
        self.editor.setPlainText(text)
        self.editor.document().setModified(False)
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.document().modificationChanged.connect(self.dirtyChanged)
        self.reparse()

    @property
    def title(self) -> str:
        return self.path.name if self.path else "Untitled"

    def text(self) -> str:
        return self.editor.toPlainText()

    def is_dirty(self) -> bool:
        return text_hash(self.text()) != self._saved_hash

    def _on_text_changed(self) -> None:
        self._parse_timer.start()
        if self.preview.isVisible():
            self._preview_timer.start()

    def reparse(self) -> Reference | None:
        """Parse the text now; marks the error line, emits parsed / parseError."""
        try:
            ref = parse_reference(self.text(), self.path)
        except ReferenceFormatError as exc:
            self.error = str(exc)
            line = error_line(self.error)
            self.editor.set_error_lines({line: self.error} if line else {})
            self.parseError.emit(self.error)
            return None
        self.error = None
        self.reference = ref
        self.editor.set_error_lines({})
        self.parsed.emit(ref)
        return ref

    def set_preview_visible(self, visible: bool) -> None:
        self.preview.setVisible(visible)
        if visible:
            self._update_preview()
            self.splitter.setSizes([1, 1])

    def _update_preview(self) -> None:
        self.preview.set_markdown(self.text())

    def save(self, path: Path | None = None) -> Path:
        """Save atomically to ``path`` (or the tab's own path)."""
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no path")
        text = self.text()
        atomic_write(target, text)
        self.path = target
        self._saved_hash = text_hash(text)
        self.editor.document().setModified(False)
        self.dirtyChanged.emit(False)
        return target

    def replace_text_undoably(self, text: str) -> None:
        """Replace the whole text as one undoable edit (keeps the undo history)."""
        cursor = QTextCursor(self.editor.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()


__all__ = ["CodeEditor", "FindBar", "NEW_REFERENCE", "ReferenceTab", "atomic_write", "error_line", "text_hash"]

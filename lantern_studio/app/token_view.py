"""The answer, token by token, coloured by error; blips as chips; rewound tokens struck through.

A view of a ``RunModel``: events arrive in batches (one per frame) and the document is only
ever appended to, so streaming stays flat in the answer's length. Colours follow a fixed,
explained scale (``error_colors``), or the run's own spread when the user picks "relative".
"""

from __future__ import annotations

import bisect
import html
import math

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QLinearGradient, QPainter, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSizePolicy, QTextEdit, QToolTip, QVBoxLayout,
                               QWidget)

from lantern_studio.core.describe import describe_error, short_text
from lantern_studio.core.events import (BlipEvent, Done, Failed, RewindEvent, ScoreUpdate, TokenEvent,
                                        Transcript)

from . import error_colors as ec
from .run_model import RunModel

CHIP_BG = QColor(*ec.CHIP_BG)
CHIP_FG = QColor(*ec.CHIP_FG)
SCALE_LABELS = {"fixed": "Fixed scale", "relative": "Relative to this run"}
SCALE_TIPS = {
    "fixed": f"Full colour means the reference makes a word {ec.FIXED_FACTOR:.0f}× less likely (red) or more "
             "likely (blue); the same colour means the same thing in every run.",
    "relative": "Colours stretch to this run's own spread (mean ± 2.5σ): small differences show, but colours "
                "of two runs cannot be compared.",
}


def rgb(color: QColor) -> ec.RGB:
    return color.red(), color.green(), color.blue()


def theme_of(view: QWidget) -> str:
    return "dark" if view.palette().base().color().lightness() < 128 else "light"


def blip_label(blip: BlipEvent) -> str:
    """The chip's text: what the reminder said, shortened."""
    return f"⚑ {short_text(blip.text, 40)}"


class ErrorLegend(QWidget):
    """Gradient bar with both ends in words; the chip and the rewound look."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = ec.ErrorScale()
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    @property
    def limits(self) -> tuple[float, float]:
        return self.scale.limits

    def set_scale(self, scale: ec.ErrorScale) -> None:
        self.scale = scale
        self.update()

    def words(self) -> tuple[str, str]:
        return ec.legend_words(self.scale)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        base = rgb(pal.base().color())
        theme = theme_of(self)
        f = QFont(self.font())
        f.setPointSizeF(max(7.5, f.pointSizeF() - 1))
        p.setFont(f)
        fm = p.fontMetrics()
        chips_w = fm.horizontalAdvance(" ⚑ blip ") + fm.horizontalAdvance("rewound") + 40
        w = max(120, min(self.width() - 16 - chips_w, 420))
        x0 = 8
        bar = QRectF(x0, 4, w, 10)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        grad.setColorAt(0.0, QColor(*ec.shade(-1, base, theme)))
        grad.setColorAt(0.5, QColor(*base))
        grad.setColorAt(1.0, QColor(*ec.shade(1, base, theme)))
        p.setBrush(QBrush(grad))
        p.setPen(pal.mid().color())
        p.drawRoundedRect(bar, 3, 3)
        p.setPen(pal.text().color())
        y = 16 + fm.ascent()
        left, right = self.words()
        left = fm.elidedText(left, Qt.TextElideMode.ElideRight, int(w / 2 - 8))
        right = fm.elidedText(right, Qt.TextElideMode.ElideRight, int(w / 2 - 8))
        middle = "with the reference"
        p.drawText(int(x0), y, left)
        p.drawText(int(x0 + w - fm.horizontalAdvance(right)), y, right)
        if fm.horizontalAdvance(left + right + middle) + 24 < w:
            p.setPen(pal.placeholderText().color())
            p.drawText(int(x0 + w / 2 - fm.horizontalAdvance(middle) / 2), y, middle)
        x = x0 + w + 18
        chip = QRectF(x, 2, fm.horizontalAdvance(" ⚑ blip ") + 4, fm.height() + 2)
        p.setBrush(CHIP_BG)
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(chip, 4, 4)
        p.setPen(CHIP_FG)
        p.drawText(chip, Qt.AlignmentFlag.AlignCenter, "⚑ blip")
        x = chip.right() + 12
        p.setPen(QColor(*ec.THEME_COLORS[theme]["rewound"]))
        f2 = QFont(f)
        f2.setStrikeOut(True)
        p.setFont(f2)
        p.drawText(int(x), int(chip.top() + fm.ascent() + 1), "rewound")


class _AnswerEdit(QTextEdit):
    def __init__(self, view: "TokenView") -> None:
        super().__init__()
        self.view = view
        self.setReadOnly(True)
        self.setMouseTracking(True)
        self.setUndoRedoEnabled(False)
        self.document().setUndoRedoEnabled(False)
        f = self.font()
        f.setPointSizeF(max(f.pointSizeF(), 10.5))
        self.setFont(f)

    def viewportEvent(self, ev) -> bool:  # noqa: N802 — tooltips of the text arrive on the viewport
        if ev.type() == ev.Type.ToolTip:
            tip = self.view.tooltip_at(self.cursorForPosition(ev.pos()).position())
            if tip:
                QToolTip.showText(ev.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        super().mouseReleaseEvent(ev)
        if ev.button() == Qt.MouseButton.LeftButton and not self.textCursor().hasSelection():
            self.view.click_at(self.cursorForPosition(ev.position().toPoint()).position())


class TokenView(QWidget):
    """Shows a RunModel as coloured tokens; emits what the user picks."""

    tokenSelected = Signal(int)  # token index
    blipSelected = Signal(object)  # BlipEvent
    ruleSelected = Signal(object)  # RuleHit
    scaleChanged = Signal(str)

    def __init__(self, model: RunModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model or RunModel(self)
        self.legend = ErrorLegend()
        self.edit = _AnswerEdit(self)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setStyleSheet("color: palette(placeholder-text);")
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.scale_box = QComboBox()
        for kind in ec.SCALES:
            self.scale_box.addItem(SCALE_LABELS[kind], kind)
            self.scale_box.setItemData(self.scale_box.count() - 1, SCALE_TIPS[kind], Qt.ItemDataRole.ToolTipRole)
        self.scale_box.setToolTip(SCALE_TIPS["fixed"])
        self.scale_box.currentIndexChanged.connect(lambda _i: self.set_scale_kind(self.scale_box.currentData()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.header, 1)
        top.addWidget(self.scale_box)
        layout.addLayout(top)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.legend)
        self.scale_kind = "fixed"
        self.model.cleared.connect(self._on_cleared)
        self.model.applied.connect(self._on_applied)
        self.model.headerChanged.connect(self.header.setText)
        self._on_cleared(self.model.header)

    # -- the model ---------------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript:
        return self.model.transcript

    def clear(self, header: str = "") -> None:
        self.model.clear(header)

    def set_header(self, text: str) -> None:
        self.model.set_header(text)

    def apply_events(self, events: list) -> None:
        self.model.apply(events)

    def load_events(self, events: list, header: str = "") -> None:
        """Show a whole recorded run (history, trace replay)."""
        self.model.load(events, header)

    def set_scale_kind(self, kind: str) -> None:
        """'fixed' or 'relative'; recolours what is shown."""
        if kind not in ec.SCALES:
            return
        self.scale_kind = kind
        i = self.scale_box.findData(kind)
        if self.scale_box.currentIndex() != i:
            self.scale_box.setCurrentIndex(i)
        self.scale_box.setToolTip(SCALE_TIPS[kind])
        self.recolor()
        self.scaleChanged.emit(kind)

    def _on_cleared(self, header: str) -> None:
        self.scale = ec.ErrorScale(self.scale_kind)
        self._starts: list[int] = []  # document start of each item, ascending
        self._items: list[tuple[str, object, int]] = []  # (kind, event or index, length)
        self._span: dict[int, tuple[int, int]] = {}  # token index -> (start, length)
        self.selected: int | None = None
        self.edit.clear()
        self.header.setText(header)
        self.legend.set_scale(self.scale)
        self.edit.setExtraSelections([])

    def _on_applied(self, events: list) -> None:
        bar = self.edit.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.edit.document())
        cursor.beginEditBlock()
        rescored = settle = False
        for event in events:
            if isinstance(event, TokenEvent):
                if event.error is not None:
                    self.scale.add(event.error)
                self._append(cursor, "token", event.index, event.text, self._token_format(event))
            elif isinstance(event, BlipEvent):
                self._append(cursor, "blip", event, f" {blip_label(event)} ", self._chip_format())
            elif isinstance(event, RewindEvent):
                self._strike(cursor)
            elif isinstance(event, ScoreUpdate):
                rescored = True
            elif isinstance(event, (Done, Failed)):
                settle = True
        cursor.endEditBlock()
        if rescored or (settle and self.scale_kind == "relative"):
            self.recolor()
        self.legend.set_scale(self.scale)
        if at_end:
            bar.setValue(bar.maximum())

    def _append(self, cursor: QTextCursor, kind: str, payload, text: str, fmt: QTextCharFormat) -> None:
        cursor.movePosition(QTextCursor.MoveOperation.End)
        start = cursor.position()
        cursor.insertText(text, fmt)
        length = cursor.position() - start
        self._starts.append(start)
        self._items.append((kind, payload, length))
        if kind == "token":
            self._span[payload] = (start, length)

    def _token_format(self, tok: TokenEvent) -> QTextCharFormat:
        fmt = QTextCharFormat()
        pal = self.edit.palette()
        theme = theme_of(self.edit)
        if tok.index in self.transcript.rewound:
            fmt.setFontStrikeOut(True)
            fmt.setForeground(QColor(*ec.THEME_COLORS[theme]["rewound"]))
            return fmt
        fmt.setForeground(pal.text())
        if tok.error is not None:
            fmt.setBackground(self.token_color(tok.error))
        return fmt

    def token_color(self, error: float) -> QColor:
        """The background of a token with this error, on the current scale and theme."""
        return QColor(*ec.shade(self.scale.position(error), rgb(self.edit.palette().base().color()),
                                theme_of(self.edit)))

    def _chip_format(self) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setBackground(CHIP_BG)
        fmt.setForeground(CHIP_FG)
        fmt.setFontWeight(QFont.Weight.Bold)
        fmt.setFontPointSize(max(7.0, self.edit.font().pointSizeF() - 1.5))
        return fmt

    def _strike(self, cursor: QTextCursor) -> None:
        for index in sorted(self.transcript.rewound):
            span = self._span.get(index)
            tok = self.transcript.token(index)
            if span is None or tok is None:
                continue
            cursor.setPosition(span[0])
            cursor.setPosition(span[0] + span[1], QTextCursor.MoveMode.KeepAnchor)
            cursor.setCharFormat(self._token_format(tok))
        cursor.clearSelection()

    def recolor(self) -> None:
        """Recompute the scale from every error and recolour all tokens (end of run, re-score,
        another scale or theme)."""
        scale = ec.ErrorScale(self.scale_kind)
        for tok in self.transcript.tokens:
            if tok.error is not None:
                scale.add(tok.error)
        self.scale = scale
        cursor = QTextCursor(self.edit.document())
        cursor.beginEditBlock()
        for tok in self.transcript.tokens:
            span = self._span.get(tok.index)
            if span is None:
                continue
            cursor.setPosition(span[0])
            cursor.setPosition(span[0] + span[1], QTextCursor.MoveMode.KeepAnchor)
            cursor.setCharFormat(self._token_format(tok))
        cursor.endEditBlock()
        self.legend.set_scale(self.scale)

    # -- lookup and interaction ---------------------------------------------------------------
    def item_at(self, position: int) -> tuple[str, object] | None:
        i = bisect.bisect_right(self._starts, position) - 1
        if i < 0:
            return None
        kind, payload, length = self._items[i]
        if position >= self._starts[i] + length:
            return None
        return kind, payload

    def token_rect(self, index: int):
        """The viewport rectangle of a token (for tests and scrolling)."""
        span = self._span.get(index)
        if span is None:
            return None
        cursor = QTextCursor(self.edit.document())
        cursor.setPosition(span[0])
        return self.edit.cursorRect(cursor)

    def tooltip_at(self, position: int) -> str:
        found = self.item_at(position)
        if found is None:
            return ""
        kind, payload = found
        if kind == "blip":
            return blip_tooltip(payload)  # type: ignore[arg-type]
        tok = self.transcript.token(payload)  # type: ignore[arg-type]
        return token_tooltip(tok, self.transcript) if tok else ""

    def click_at(self, position: int) -> None:
        found = self.item_at(position)
        if found is None:
            return
        kind, payload = found
        if kind == "blip":
            self.blipSelected.emit(payload)
        else:
            self.select(payload)  # type: ignore[arg-type]

    def select(self, index: int, emit: bool = True) -> None:
        """Select a token: outline it, and say which blip or rule it relates to."""
        span = self._span.get(index)
        if span is None:
            return
        self.selected = index
        sel = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self.edit.document())
        cursor.setPosition(span[0])
        cursor.setPosition(span[0] + span[1], QTextCursor.MoveMode.KeepAnchor)
        sel.cursor = cursor
        sel.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
        sel.format.setFontUnderline(True)
        sel.format.setFontWeight(QFont.Weight.Bold)
        self.edit.setExtraSelections([sel])
        if emit:
            self.tokenSelected.emit(index)
            for hit in self.transcript.rules:
                if hit.index == index:
                    self.ruleSelected.emit(hit)
                    break


def _percent(logp: float | None) -> str:
    if logp is None:
        return "–"
    p = math.exp(logp) * 100
    return f"{p:.1f}%" if p >= 0.1 else "<0.1%"


def blip_tooltip(b: BlipEvent) -> str:
    rewound = f" It first took back {b.rewound} words." if b.rewound else ""
    return (f"<b>Reminder (blip)</b> after word {b.index}: “{html.escape(b.text)}”<br>"
            f"Why: {html.escape(b.reason)}.{rewound}<br>"
            f"<small>From the reference item <code>{html.escape(b.source_id)}</code>; click to show it.</small>")


def token_tooltip(tok: TokenEvent, transcript: Transcript | None = None) -> str:
    """The token in words first (how much likelier or less likely the reference makes it),
    then both sides' chances and top-5 lists, then the raw numbers."""

    def num(x) -> str:
        return "–" if x is None else f"{x:+.3f}"

    def top(rows) -> str:
        return "".join(f"<tr><td><code>{html.escape(repr(t))}</code></td><td align=right>{_percent(lp)}</td></tr>"
                       for t, lp in rows[:5]) or "<tr><td>–</td></tr>"

    state = ""
    if transcript is not None and tok.index in transcript.rewound:
        state = " <i>(taken back by the loop)</i>"
    sentence = describe_error(tok.error)
    approx = " (estimated)" if getattr(tok, "approx", False) else ""
    return (f"<b><code>{html.escape(repr(tok.text))}</code></b> · word {tok.index}{state}<br>"
            f"<b>{html.escape(sentence[0].upper() + sentence[1:])}</b>{approx}.<br>"
            f"Chance of this word: model {_percent(tok.logp_plant)} · with the reference {_percent(tok.logp_ref)}"
            "<table cellspacing=6><tr><th>model's top-5</th><th>reference's top-5</th></tr>"
            f"<tr><td valign=top><table>{top(tok.top_plant)}</table></td>"
            f"<td valign=top><table>{top(tok.top_ref)}</table></td></tr></table>"
            f"<small>error {num(tok.error)} nats (log p model − log p reference) · "
            f"divergence {num(tok.divergence)}"
            + (f" · control {num(tok.control)}" if tok.control is not None else "") + "</small>")

"""The answer, token by token, coloured by error; blips as chips; rewound tokens struck through.

The model behind the view is a core ``Transcript``. Events arrive in batches (one per frame)
and the document is only ever appended to, so streaming stays flat in the answer's length;
colours use the run's running mean ± 2.5σ and are settled once when the run ends.
"""

from __future__ import annotations

import bisect
import html
import math

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import (QBrush, QColor, QFont, QLinearGradient, QPainter, QTextCharFormat, QTextCursor)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QTextEdit, QToolTip, QVBoxLayout, QWidget

from lantern_studio.core.events import (BlipEvent, Done, Failed, RewindEvent, RuleHit, ScoreUpdate, TokenEvent,
                                        Transcript)

SIGMAS = 2.5
NEG = QColor(50, 110, 200)  # the reference pulls toward the token
POS = QColor(214, 48, 49)  # drift: the reference finds the token unlikely
CHIP_BG = QColor(255, 196, 61)
CHIP_FG = QColor(60, 40, 0)


class ErrorScale:
    """Running mean/σ (Welford) of the errors and the diverging colour map around zero."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self._m2 += d * (x - self.mean)

    @property
    def sigma(self) -> float:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 1.0

    @property
    def limits(self) -> tuple[float, float]:
        """Clamping limits: mean ± 2.5σ, always straddling zero."""
        s = max(self.sigma, 1e-3)
        lo, hi = self.mean - SIGMAS * s, self.mean + SIGMAS * s
        return min(lo, -0.25), max(hi, 0.25)

    def color(self, error: float, base: QColor) -> QColor:
        lo, hi = self.limits
        t = max(-1.0, min(1.0, error / hi if error >= 0 else -error / lo))
        end = POS if t >= 0 else NEG
        a = abs(t) * 0.85
        return QColor(round(base.red() + (end.red() - base.red()) * a),
                      round(base.green() + (end.green() - base.green()) * a),
                      round(base.blue() + (end.blue() - base.blue()) * a))


class ErrorLegend(QWidget):
    """Gradient bar: reference pulls toward ← 0 → drift; limits of the current run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.limits = (-1.0, 1.0)
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_limits(self, limits: tuple[float, float]) -> None:
        if limits != self.limits:
            self.limits = limits
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        base = pal.base().color()
        w = min(self.width() - 16, 340)
        x0 = 8
        bar = QRectF(x0, 4, w, 10)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        grad.setColorAt(0.0, _mix(base, NEG, 0.85))
        grad.setColorAt(0.5, base)
        grad.setColorAt(1.0, _mix(base, POS, 0.85))
        p.setBrush(QBrush(grad))
        p.setPen(pal.mid().color())
        p.drawRoundedRect(bar, 3, 3)
        p.setPen(pal.text().color())
        f = QFont(self.font())
        f.setPointSizeF(max(7.5, f.pointSizeF() - 1))
        p.setFont(f)
        lo, hi = self.limits
        fm = p.fontMetrics()
        y = 16 + fm.ascent()
        left = f"≤ {lo:+.2f}  ref prefers"
        right = f"drift  ≥ {hi:+.2f}"
        p.drawText(int(x0), y, left)
        p.drawText(int(x0 + w / 2 - fm.horizontalAdvance("0") / 2), y, "0")
        p.drawText(int(x0 + w - fm.horizontalAdvance(right)), y, right)
        # chips and rewinds
        x = x0 + w + 18
        chip = QRectF(x, 2, fm.horizontalAdvance(" ⚑ blip ") + 4, fm.height() + 2)
        p.setBrush(CHIP_BG)
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(chip, 4, 4)
        p.setPen(CHIP_FG)
        p.drawText(chip, Qt.AlignmentFlag.AlignCenter, "⚑ blip")
        x = chip.right() + 12
        p.setPen(pal.placeholderText().color())
        f2 = QFont(f)
        f2.setStrikeOut(True)
        p.setFont(f2)
        p.drawText(int(x), int(chip.top() + fm.ascent() + 1), "rewound")


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


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

    def event(self, ev) -> bool:
        if ev.type() == ev.Type.ToolTip:
            tip = self.view.tooltip_at(self.cursorForPosition(ev.pos() - self.viewport().pos()).position())
            if tip:
                QToolTip.showText(ev.globalPos(), tip, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(ev)

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        super().mouseReleaseEvent(ev)
        if ev.button() == Qt.MouseButton.LeftButton and not self.textCursor().hasSelection():
            self.view.click_at(self.cursorForPosition(ev.position().toPoint()).position())


class TokenView(QWidget):
    """Shows a Transcript as coloured tokens; emits what the user picks."""

    tokenSelected = Signal(int)  # token index
    blipSelected = Signal(object)  # BlipEvent
    ruleSelected = Signal(object)  # RuleHit

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.legend = ErrorLegend()
        self.edit = _AnswerEdit(self)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setStyleSheet("color: palette(placeholder-text);")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.header, 1)
        layout.addLayout(top)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.legend)
        self.clear()

    # -- model -----------------------------------------------------------------------------
    def clear(self, header: str = "") -> None:
        self.transcript = Transcript()
        self.scale = ErrorScale()
        self._starts: list[int] = []  # document start of each item, ascending
        self._items: list[tuple[str, object, int]] = []  # (kind, event or index, length)
        self._span: dict[int, tuple[int, int]] = {}  # token index -> (start, length)
        self.selected: int | None = None
        self.edit.clear()
        self.header.setText(header)
        self.legend.set_limits(self.scale.limits)
        self.edit.setExtraSelections([])

    def set_header(self, text: str) -> None:
        self.header.setText(text)

    def apply_events(self, events: list) -> None:
        """Apply a batch of events to the transcript and append what they add to the document."""
        bar = self.edit.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        doc = self.edit.document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        rescored: list[int] = []
        settle = False
        for event in events:
            self.transcript.apply(event)
            if isinstance(event, TokenEvent):
                if event.error is not None:
                    self.scale.add(event.error)
                self._append(cursor, "token", event.index, event.text, self._token_format(event))
            elif isinstance(event, BlipEvent):
                self._append(cursor, "blip", event, f" ⚑ {event.source_id} ", self._chip_format())
            elif isinstance(event, RewindEvent):
                self._strike(cursor, event)
            elif isinstance(event, RuleHit):
                pass
            elif isinstance(event, ScoreUpdate):
                rescored.extend(range(event.start, event.start + len(event.error)))
            elif isinstance(event, (Done, Failed)):
                settle = True
        cursor.endEditBlock()
        if rescored or settle:
            self.recolor()
        self.legend.set_limits(self.scale.limits)
        if at_end:
            bar.setValue(bar.maximum())

    def load_events(self, events: list, header: str = "") -> None:
        """Show a whole recorded run (history, trace replay)."""
        self.clear(header)
        self.apply_events(list(events))

    def _append(self, cursor: QTextCursor, kind: str, payload, text: str, fmt: QTextCharFormat) -> None:
        cursor.movePosition(QTextCursor.MoveOperation.End)
        start = cursor.position()
        cursor.insertText(text, fmt)
        length = cursor.position() - start
        self._starts.append(start)
        self._items.append((kind, payload, length))
        if kind == "token":
            self._span[payload] = (start, length)  # type: ignore[index]

    def _token_format(self, tok: TokenEvent) -> QTextCharFormat:
        fmt = QTextCharFormat()
        if tok.error is not None:
            fmt.setBackground(self.scale.color(tok.error, self.edit.palette().base().color()))
        if tok.index in self.transcript.rewound:
            fmt.setFontStrikeOut(True)
            fmt.setForeground(self.edit.palette().placeholderText())
        return fmt

    def _chip_format(self) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setBackground(CHIP_BG)
        fmt.setForeground(CHIP_FG)
        fmt.setFontWeight(QFont.Weight.Bold)
        fmt.setFontPointSize(max(7.0, self.edit.font().pointSizeF() - 1.5))
        return fmt

    def _strike(self, cursor: QTextCursor, event: RewindEvent) -> None:
        fmt = QTextCharFormat()
        fmt.setFontStrikeOut(True)
        fmt.setForeground(self.edit.palette().placeholderText())
        for index in sorted(self.transcript.rewound):
            span = self._span.get(index)
            if span is None:
                continue
            cursor.setPosition(span[0])
            cursor.setPosition(span[0] + span[1], QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(fmt)
        cursor.clearSelection()

    def recolor(self) -> None:
        """Recompute the scale from every error and recolour all tokens (end of run, re-score)."""
        scale = ErrorScale()
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
        self.legend.set_limits(self.scale.limits)

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
            b: BlipEvent = payload  # type: ignore[assignment]
            rewound = f"; rewound {b.rewound} tokens" if b.rewound else ""
            return (f"<b>Blip</b> from <code>{html.escape(b.source_id)}</code> at token {b.index}<br>"
                    f"“{html.escape(b.text)}”<br><i>{html.escape(b.reason)}{rewound}</i>")
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


def token_tooltip(tok: TokenEvent, transcript: Transcript | None = None) -> str:
    """Rich tooltip: the token, both log-probabilities, error, divergence and both top-5s."""

    def num(x) -> str:
        return "–" if x is None else f"{x:+.3f}"

    def top(rows) -> str:
        return "".join(f"<tr><td><code>{html.escape(repr(t))}</code></td><td align=right>{lp:.2f}</td></tr>"
                       for t, lp in rows[:5]) or "<tr><td>–</td></tr>"

    state = ""
    if transcript is not None and tok.index in transcript.rewound:
        state = " <i>(rewound)</i>"
    return (f"<b><code>{html.escape(repr(tok.text))}</code></b> #{tok.index}{state}<br>"
            f"log p plant {num(tok.logp_plant)} · log p ref {num(tok.logp_ref)}<br>"
            f"error <b>{num(tok.error)}</b> · divergence {num(tok.divergence)}"
            + (f" · control {num(tok.control)}" if tok.control is not None else "")
            + "<table cellspacing=6><tr><th>plant top-5</th><th>reference top-5</th></tr>"
            f"<tr><td valign=top><table>{top(tok.top_plant)}</table></td>"
            f"<td valign=top><table>{top(tok.top_ref)}</table></td></tr></table>")

"""Per-token error over the run (pyqtgraph): controller signal, a draggable threshold,
blip and rewind markers, and a cursor on the selected token.

A view of two models: the run on show (``RunModel``) and the loop settings (``LoopModel``),
whose threshold the line shows and a drag changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from lantern_studio.core.describe import short_text
from lantern_studio.core.events import BlipEvent, Transcript

from .run_model import LoopModel, RunModel

# Per theme: plot colours whose text keeps WCAG AA contrast (≥ 4.5:1) on the plot's background.
TIMELINE_COLORS = {
    "light": {"error": (200, 40, 42), "control": (30, 100, 180), "threshold": (95, 95, 95),
              "label": (70, 70, 70), "blip": (200, 130, 10), "blip_label": (128, 78, 0),
              "cursor": (30, 30, 30, 160), "zero": (120, 120, 120, 110), "rewound": (120, 120, 120)},
    "dark": {"error": (255, 110, 105), "control": (110, 170, 255), "threshold": (175, 178, 184),
             "label": (205, 208, 214), "blip": (240, 180, 60), "blip_label": (245, 190, 90),
             "cursor": (230, 230, 230, 170), "zero": (160, 160, 160, 110), "rewound": (170, 170, 170)},
}


class ErrorTimeline(QWidget):
    """The error stream of a run; drag the threshold, click to pick a token."""

    thresholdChanged = Signal(float)
    tokenClicked = Signal(int)

    def __init__(self, run: RunModel | None = None, loop: LoopModel | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run = run or RunModel(self)
        self.loop = loop or LoopModel(parent=self)
        self.theme = "light"
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "word (token) in the answer")
        self.plot.setLabel("left", "drift")
        self.plot.setMouseEnabled(x=True, y=False)
        self.legend = self.plot.addLegend(offset=(-10, 8), labelTextSize="8pt")
        self.error_curve = self.plot.plot([], [], name="drift of each word")
        self.control_curve = self.plot.plot([], [], name="loop signal")
        self.rewound_points = pg.ScatterPlotItem(symbol="x", size=7, brush=None, name="taken back")
        self.plot.addItem(self.rewound_points)
        self.threshold = pg.InfiniteLine(pos=self.loop.settings.threshold, angle=0, movable=True,
                                         label="threshold {value:.2f}",
                                         labelOpts={"position": 0.06, "movable": True})
        self.threshold.setToolTip("The loop steps in when its signal reaches this line; drag it to change.")
        self.plot.addItem(self.threshold)
        self.threshold.sigPositionChangeFinished.connect(self._on_threshold_moved)
        self.zero = pg.InfiniteLine(pos=0, angle=0)
        self.plot.addItem(self.zero)
        self.cursor = pg.InfiniteLine(pos=0, angle=90)
        self.cursor.hide()
        self.plot.addItem(self.cursor)
        self._markers: list[pg.InfiniteLine] = []
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._blips_drawn = 0
        self.setMinimumHeight(120)
        self.set_theme("light")
        self.run.cleared.connect(lambda _h: self.clear())
        self.run.applied.connect(lambda _events: self.update_from(self.run.transcript))
        self.loop.changed.connect(lambda s: self.set_threshold(s.threshold))
        self.thresholdChanged.connect(lambda v: self.loop.update("threshold", v))

    def colors(self) -> dict:
        return TIMELINE_COLORS[self.theme]

    def set_theme(self, theme: str) -> None:
        """Colours for a light or dark background (the plot's background follows the palette)."""
        self.theme = theme if theme in TIMELINE_COLORS else "light"
        c = self.colors()
        self.plot.setBackground(self.palette().base().color())
        for axis in ("left", "bottom"):
            ax = self.plot.getPlotItem().getAxis(axis)
            ax.setPen(pg.mkPen(c["label"]))
            ax.setTextPen(pg.mkPen(c["label"]))
        self.error_curve.setPen(pg.mkPen(color=c["error"], width=1.5))
        self.control_curve.setPen(pg.mkPen(color=c["control"], width=1.5, style=Qt.PenStyle.DashLine))
        self.rewound_points.setPen(pg.mkPen(c["rewound"]))
        self.threshold.setPen(pg.mkPen(color=c["threshold"], width=2))
        self.threshold.setHoverPen(pg.mkPen(color=c["label"], width=3))
        self.threshold.label.setColor(c["label"])
        self.zero.setPen(pg.mkPen(c["zero"]))
        self.cursor.setPen(pg.mkPen(c["cursor"], width=1))
        for item in self.legend.items:
            item[1].setText(item[1].text, color=c["label"])
        for marker in self._markers:
            self._style_marker(marker)

    def set_threshold(self, value: float) -> None:
        if abs(self.threshold.value() - value) > 1e-9:
            self.threshold.setValue(value)  # the label follows (no blocked signals)

    def _on_threshold_moved(self) -> None:
        value = round(float(self.threshold.value()), 2)
        if value < 0:  # below 0 the loop would fire at every word
            value = 0.0
            self.threshold.setValue(0.0)
        self.thresholdChanged.emit(value)

    def clear(self) -> None:
        self.error_curve.setData([], [])
        self.control_curve.setData([], [])
        self.rewound_points.setData([], [])
        for m in self._markers:
            self.plot.removeItem(m)
        self._markers.clear()
        self._blips_drawn = 0
        self.cursor.hide()

    def update_from(self, transcript: Transcript) -> None:
        """Redraw from the transcript (cheap arrays; called once per batch)."""
        toks = [t for t in transcript.tokens if t.error is not None]
        xs = np.fromiter((t.index for t in toks), float, len(toks))
        self.error_curve.setData(xs, np.fromiter((t.error for t in toks), float, len(toks)))
        ctl = [t for t in transcript.tokens if t.control is not None and np.isfinite(t.control)]
        self.control_curve.setData(np.fromiter((t.index for t in ctl), float, len(ctl)),
                                   np.fromiter((t.control for t in ctl), float, len(ctl)))
        rew = [t for t in toks if t.index in transcript.rewound]
        self.rewound_points.setData([t.index for t in rew], [t.error for t in rew])
        if len(transcript.blips) < self._blips_drawn:
            self.clear()
            self.update_from(transcript)
            return
        for blip in transcript.blips[self._blips_drawn:]:
            self._add_marker(blip)
        self._blips_drawn = len(transcript.blips)

    def _add_marker(self, blip: BlipEvent) -> None:
        line = pg.InfiniteLine(pos=blip.index, angle=90, movable=False, label=f"⚑ {short_text(blip.text, 24)}",
                               labelOpts={"position": 0.7, "rotateAxis": (1, 0)})
        line.setToolTip(f"Reminder (blip) from {blip.source_id}: {blip.text}")
        self._style_marker(line)
        self.plot.addItem(line)
        self._markers.append(line)

    def _style_marker(self, line: pg.InfiniteLine) -> None:
        c = self.colors()
        line.setPen(pg.mkPen(color=c["blip"], width=2))
        line.label.setColor(c["blip_label"])

    def select(self, index: int) -> None:
        self.cursor.setValue(index)
        self.cursor.show()

    def _on_click(self, event) -> None:
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        x = vb.mapSceneToView(event.scenePos()).x()
        index = int(round(x))
        if index >= 0:
            self.select(index)
            self.tokenClicked.emit(index)

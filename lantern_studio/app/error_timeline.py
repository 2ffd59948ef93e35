"""Per-token error over the run (pyqtgraph): controller signal, a draggable threshold,
blip and rewind markers, and a cursor on the selected token."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from lantern_studio.core.events import BlipEvent, RewindEvent, Transcript

ERROR_PEN = pg.mkPen(color=(214, 48, 49), width=1.5)
CONTROL_PEN = pg.mkPen(color=(40, 120, 200), width=1.5, style=Qt.PenStyle.DashLine)
THRESHOLD_PEN = pg.mkPen(color=(120, 120, 120), width=2)
BLIP_PEN = pg.mkPen(color=(230, 160, 20), width=2)


class ErrorTimeline(QWidget):
    """The error stream of a transcript; drag the threshold, click to pick a token."""

    thresholdChanged = Signal(float)
    tokenClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "token")
        self.plot.setLabel("left", "error (nats)")
        self.plot.setMouseEnabled(x=True, y=False)
        self.legend = self.plot.addLegend(offset=(-10, 8), labelTextSize="8pt")
        self.error_curve = self.plot.plot([], [], pen=ERROR_PEN, name="error")
        self.control_curve = self.plot.plot([], [], pen=CONTROL_PEN, name="controller")
        self.rewound_points = pg.ScatterPlotItem(symbol="x", size=7, pen=pg.mkPen((140, 140, 140)), brush=None,
                                                 name="rewound")
        self.plot.addItem(self.rewound_points)
        self.threshold = pg.InfiniteLine(pos=1.5, angle=0, movable=True, pen=THRESHOLD_PEN,
                                         hoverPen=pg.mkPen((60, 60, 60), width=3),
                                         label="threshold {value:.2f}",
                                         labelOpts={"position": 0.06, "color": (90, 90, 90), "movable": True})
        self.plot.addItem(self.threshold)
        self.threshold.sigPositionChangeFinished.connect(self._on_threshold_moved)
        self.zero = pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen((160, 160, 160, 90)))
        self.plot.addItem(self.zero)
        self.cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen((30, 30, 30, 160), width=1))
        self.cursor.hide()
        self.plot.addItem(self.cursor)
        self._markers: list[pg.InfiniteLine] = []
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._blips_drawn = 0

    def set_threshold(self, value: float) -> None:
        self.threshold.blockSignals(True)
        self.threshold.setValue(value)
        self.threshold.blockSignals(False)

    def _on_threshold_moved(self) -> None:
        self.thresholdChanged.emit(round(float(self.threshold.value()), 2))

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
        ctl = [t for t in transcript.tokens if t.control is not None]
        self.control_curve.setData(np.fromiter((t.index for t in ctl), float, len(ctl)),
                                   np.fromiter((t.control for t in ctl), float, len(ctl)))
        rew = [t for t in toks if t.index in transcript.rewound]
        self.rewound_points.setData([t.index for t in rew], [t.error for t in rew])
        for blip in transcript.blips[self._blips_drawn:]:
            self._add_marker(blip)
        self._blips_drawn = len(transcript.blips)

    def _add_marker(self, blip: BlipEvent) -> None:
        line = pg.InfiniteLine(pos=blip.index, angle=90, pen=BLIP_PEN, movable=False,
                               label=f"⚑ {blip.source_id}",
                               labelOpts={"position": 0.7, "color": (170, 110, 0), "rotateAxis": (1, 0)})
        line.setToolTip(f"Blip from {blip.source_id}: {blip.text}")
        self.plot.addItem(line)
        self._markers.append(line)

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


__all__ = ["ErrorTimeline", "RewindEvent"]

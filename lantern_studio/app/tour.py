"""Help › Quick tour, and the hint a first-time user sees until they open it or close it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QTextBrowser, QToolButton, QVBoxLayout, QWidget

TOUR_HTML = """
<h2>Lantern Studio in five steps</h2>
<ol>
<li><b>Write what a good answer does</b> in the reference on the left: what it is for
(<i>Intent</i>), what must always hold (<i>Always</i>), what must never appear (<i>Never</i>),
reminders the studio may give the model (<i>Blips</i>), and test questions (<i>Probes</i>).
File › New reference starts from a template with every section.</li>
<li><b>Ask the model something</b> in the prompt bar and press <b>Run</b> (Ctrl+Return).
The answer appears word by word on the right.</li>
<li><b>Read the colours.</b> Red words are ones your reference makes <i>less likely</i> than the
model would on its own (drift); blue words are ones it makes <i>more likely</i>. Full colour means
20 times; hover a word for the exact figure in words. The scale is fixed, so colours mean the
same in every run (choose “Relative to this run” above the answer to see small differences).</li>
<li><b>Pick how the studio steps in</b> with the mode: <i>observe</i> only measures; <i>blip</i>
gives the model a short reminder (a yellow chip shows what it said) and may take back the
drifting sentence (struck through); <i>guide</i> steers every word. The timeline at the bottom
shows the drift over the answer; drag its threshold line to make the studio step in sooner or later.</li>
<li><b>Check and share.</b> <i>Probes</i> runs your test questions in every mode and says in words
why an answer failed. <i>Explain</i> (Ctrl+E) colours the reference's margin by what moved the
answer. File › Export pack signs the reference so others can trust who wrote it.</li>
</ol>
<p>With <b>Live</b> on, every edit of the reference re-scores or re-runs the last answer.</p>
"""


class TourDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Quick tour")
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setHtml(TOUR_HTML)  # our own text, not user input
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(620, 520)


class FirstRunHint(QWidget):
    """A one-line banner: 'New here? Help › Quick tour …' with a button and a close cross."""

    tourRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("New here? The quick tour explains the studio in five steps.")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        show = QToolButton(text="Quick tour")
        close = QToolButton(text="✕", toolTip="Hide this hint", autoRaise=True)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 3, 6, 3)
        row.addWidget(self.label, 1)
        row.addWidget(show)
        row.addWidget(close)
        self.setAutoFillBackground(True)
        self.setStyleSheet("FirstRunHint { background: palette(alternate-base); }")
        show.clicked.connect(self.tourRequested)
        close.clicked.connect(self._dismiss)

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

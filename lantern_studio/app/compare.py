"""Compare: one prompt in several modes side by side, and a token diff of this run against
the run made before the last reference edit."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QDialog, QHBoxLayout, QLabel, QPushButton, QSplitter, QTabWidget,
                               QTextBrowser, QVBoxLayout, QWidget)

from lantern_studio.core.compare import CompareEvent, answer_token_texts, token_diff
from lantern_studio.core.settings import MODES

from .token_view import TokenView

INSERT_BG = "#c6efce"
DELETE_BG = "#ffc7ce"


def diff_html(ops: list[tuple[str, str]]) -> str:
    """Insertions on green, deletions struck through on red; whitespace kept."""
    parts = []
    for op, text in ops:
        t = html.escape(text)
        if op == "insert":
            parts.append(f"<span style='background:{INSERT_BG};color:#0b3d14'>{t}</span>")
        elif op == "delete":
            parts.append(f"<span style='background:{DELETE_BG};color:#5c0010;text-decoration:line-through'>{t}</span>")
        else:
            parts.append(t)
    return f"<div style='white-space:pre-wrap'>{''.join(parts)}</div>"


class CompareDialog(QDialog):
    """Non-modal: checkboxes for the modes, one read-only token view per mode, and the diff tab."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Compare")
        self.checks = {m: QCheckBox(m) for m in MODES}
        for m in ("none", "observe", "blip"):
            self.checks[m].setChecked(True)
        self.run_button = QPushButton("Run modes")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.status = QLabel("Runs the prompt bar's prompt in each checked mode, one after another.")
        row = QHBoxLayout()
        for c in self.checks.values():
            row.addWidget(c)
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.stop_button)
        self.columns = QSplitter(Qt.Orientation.Horizontal)
        modes_page = QWidget()
        lay = QVBoxLayout(modes_page)
        lay.addLayout(row)
        lay.addWidget(self.columns, 1)
        lay.addWidget(self.status)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.diff_label = QLabel()
        self.diff_label.setTextFormat(Qt.TextFormat.PlainText)
        self.diff_label.setWordWrap(True)
        self.diff_view = QTextBrowser()
        diff_page = QWidget()
        lay2 = QVBoxLayout(diff_page)
        lay2.addWidget(self.diff_label)
        lay2.addWidget(self.diff_view, 1)
        legend = QLabel(f"<span style='background:{INSERT_BG}'>&nbsp;inserted in this run&nbsp;</span>&nbsp;&nbsp;"
                        f"<span style='background:{DELETE_BG};text-decoration:line-through'>&nbsp;only in the "
                        f"previous run&nbsp;</span>")
        lay2.addWidget(legend)
        self.tabs = QTabWidget()
        self.tabs.addTab(modes_page, "Modes side by side")
        self.tabs.addTab(diff_page, "Diff against previous run")
        outer = QVBoxLayout(self)
        outer.addWidget(self.tabs)
        self.views: dict[str, TokenView] = {}
        self.run_button.clicked.connect(self.run_modes)
        self.stop_button.clicked.connect(window.stop)
        self.resize(1100, 560)

    def selected_modes(self) -> list[str]:
        return [m for m, c in self.checks.items() if c.isChecked()]

    def _make_columns(self, modes: list[str]) -> None:
        while self.columns.count():
            w = self.columns.widget(0)
            w.setParent(None)
            w.deleteLater()
        self.views = {}
        for m in modes:
            view = TokenView()
            view.set_header(m)
            self.views[m] = view
            self.columns.addWidget(view)

    def run_modes(self) -> bool:
        """Start the comparison in the window's worker; False (with a status message) if it cannot."""
        modes = self.selected_modes()
        if not modes:
            self.status.setText("Check at least one mode.")
            return False
        self._make_columns(modes)
        started = self.window_.start_compare(modes, self._on_events, self._on_finished)
        if started:
            self.run_button.setEnabled(False)
            self.stop_button.setEnabled(True)
            self.status.setText(f"Running {', '.join(modes)}…")
        else:
            self.status.setText(self.window_.statusBar().currentMessage() or "The engine is busy.")
        return started

    def _on_events(self, batch: list) -> None:
        by_mode: dict[str, list] = {}
        for ce in batch:
            if isinstance(ce, CompareEvent):
                by_mode.setdefault(ce.mode, []).append(ce.event)
        for mode, events in by_mode.items():
            view = self.views.get(mode)
            if view is not None:
                view.apply_events(events)
                done = view.transcript.done
                if done is not None:
                    view.set_header(f"{mode} · {done.stats.get('tokens', '?')} tok, {done.stats.get('blips', 0)} blips")

    def _on_finished(self, _job) -> None:
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.status.setText("Done.")

    def show_diff(self) -> bool:
        """Diff the current run against the run made before the last reference edit."""
        pair = self.window_.diff_pair()
        if pair is None:
            self.diff_label.setText("Nothing to compare yet: the diff needs two runs in History "
                                    "(run, edit the reference, run again).")
            self.diff_view.clear()
            return False
        old, new, why = pair
        ops = token_diff(answer_token_texts(old.events), answer_token_texts(new.events))
        ins = sum(1 for op, _ in ops if op == "insert")
        dele = sum(1 for op, _ in ops if op == "delete")
        self.diff_label.setText(f"This run [{new.loop.mode}] against {why} [{old.loop.mode}]: "
                                f"{ins} insertion(s), {dele} deletion(s).")
        self.diff_view.setHtml(diff_html(ops))
        self.ops = ops
        return True


__all__ = ["CompareDialog", "CompareEvent", "answer_token_texts", "diff_html", "token_diff"]

"""A safe, calm Markdown preview: raw HTML sanitised, nothing fetched, links routed by us."""

from __future__ import annotations

import html
import re

import markdown
import nh3
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QTextBrowser

FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.S)
ALLOWED_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "em", "strong", "code", "pre",
    "blockquote", "a", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "del", "div", "span",
}


def render_preview_html(text: str) -> str:
    """The reference as sanitised HTML; front matter shown as a code block, raw HTML removed."""
    front = ""
    m = FRONT_MATTER_RE.match(text)
    if m:
        front = f"<pre class='front'>{html.escape(m.group(1))}</pre>"
        text = text[m.end():]
    body = markdown.markdown(text, extensions=["fenced_code", "tables", "sane_lists"])
    clean = nh3.clean(front + body, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                      url_schemes={"http", "https", "mailto"}, link_rel=None)
    return clean


class PreviewBrowser(QTextBrowser):
    """QTextBrowser that never follows links itself and never loads external resources."""

    linkActivated = Signal(QUrl)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self.linkActivated)
        self.document().setDefaultStyleSheet(
            "pre { background: rgba(127,127,127,0.12); padding: 6px; }"
            "code { font-family: monospace; } h1, h2 { margin-top: 12px; }")

    def loadResource(self, kind: int, url: QUrl):  # noqa: N802 (Qt override)
        return None  # no images, no style sheets, nothing from disk or network

    def set_markdown(self, text: str) -> None:
        bar = self.verticalScrollBar()
        keep = bar.value()
        self.setHtml(render_preview_html(text))
        bar.setValue(keep)


__all__ = ["PreviewBrowser", "render_preview_html", "QTextDocument"]

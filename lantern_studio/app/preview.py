"""A safe, calm Markdown preview: raw HTML sanitised, nothing fetched, links routed by us.

The preview reads the document with the parser's own scanner (``core/reference/blocks.py``):
the same front matter detector, the same CommonMark block rules and the same treatment of
HTML comments, so what it shows as a heading or a list item is what the parser sees.
"""

from __future__ import annotations

import html

import nh3
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QTextBrowser

from lantern_studio.core.reference.blocks import front_matter_end, markdown, mask_comments, split_lines

ALLOWED_TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "em", "strong", "code", "pre",
    "blockquote", "a", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "del", "s", "div", "span",
}


def render_preview_html(text: str) -> str:
    """The reference as sanitised HTML; front matter shown as a code block, raw HTML removed."""
    lines = split_lines(text)
    front = ""
    end = front_matter_end(lines)
    if end is not None:
        front = f"<pre class='front'>{html.escape(chr(10).join(lines[1:end]))}</pre>"
        lines = lines[end + 1 :]
    body = markdown(inline=True).render("\n".join(mask_comments(lines)))
    return nh3.clean(front + body, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                     url_schemes={"http", "https", "mailto"}, link_rel=None)


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

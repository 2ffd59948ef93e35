"""THE rendering of a reference into the model's context (sidecar system message, ``prompt`` mode)."""

from __future__ import annotations

from collections.abc import Collection

from .model import Reference, Section
from .text import as_prohibition, strip_comments, tidy


def _render_body(section: Section, exclude: Collection[str]) -> str:
    lines = section.body.split("\n")
    body_start = section.line if section.level else section.line - 1  # file index of body line 0
    spans = {item.line - 1 - body_start: item for item in section.items}
    out: list[str] = []
    i = 0
    while i < len(lines):
        item = spans.get(i)
        if item is not None:
            if item.id not in exclude:
                if section.kind == "always":
                    out.append("- " + item.text.replace("\n", "\n  "))
                elif section.kind == "never":
                    out.append("- " + as_prohibition(item.text).replace("\n", "\n  "))
                else:
                    out.extend(lines[i : item.last_line - body_start])
            i = item.last_line - body_start
            continue
        out.append(lines[i])
        i += 1
    return tidy(strip_comments("\n".join(out)))


def _has_shown_child(blocks: list[tuple[int, str, str]], n: int) -> bool:
    """True when a deeper section under block ``n`` (before the next sibling) has a body."""
    for level, _heading, body in blocks[n + 1 :]:
        if level <= blocks[n][0]:
            return False
        if body:
            return True
    return False


def render_reference(ref: Reference, exclude: Collection[str] = ()) -> str:
    """The text the model sees (sidecar system message, ``prompt`` mode): THE one rendering.

    The title as a heading, then every section in document order with its body as
    written, except: Always items as plain bullets, Never items as bullets phrased as
    prohibitions with their detectors removed, and never the front matter, the Probes
    or Blips sections (blips are held back for injection) or HTML comments. ``exclude``
    drops sections and items by id (attribution). Empty sections are left out unless a
    deeper section under them is shown. Headings start at ``##`` under the title.
    """
    exclude = frozenset(exclude)
    blocks: list[tuple[int, str, str]] = []  # (level as written, heading, body)
    for section in ref.sections:
        if section.id in exclude or section.kind in ("probes", "blips"):
            continue
        heading = section.title
        if section.level == 0 or (section.level == 1 and heading.strip().lower() == ref.title.strip().lower()):
            heading = ""
        blocks.append((section.level, heading, _render_body(section, exclude)))
    kept = [block for n, block in enumerate(blocks) if block[2] or (block[1] and _has_shown_child(blocks, n))]
    parts = [f"# {ref.title}"] if ref.title else []
    for level, heading, body in kept:
        heading_line = f"{'#' * max(level, 2)} {heading}" if heading else ""
        parts.append("\n".join(p for p in (heading_line, body) if p))
    return "\n\n".join(parts)

"""Front matter: where it is (one detector, in blocks.py) and what it says (title, slug, loop …)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import SettingsError
from ..settings import LoopSettings
from .blocks import front_matter_end, opens_front_matter
from .source import Source, short
from .yaml_safe import NoAliasLoader, compose_yaml, construct, is_null, node_kind, scalar_text, text_list

MAX_FRONT_MATTER_CHARS = 64 * 1024
STATUSES = ("draft", "reviewed", "verified")
FRONT_MATTER_KEYS = ("title", "slug", "version", "author", "status", "tags", "loop", "links")
SLUG_RE = re.compile(r"[a-z0-9-]+")


@dataclass
class FrontMatter:
    values: dict[str, Any]
    loop: LoopSettings
    loop_given: frozenset[str]
    end_index: int  # index of the closing fence line


def locate_front_matter(lines: list[str], source: Source) -> int | None:
    """Index of the closing ``---`` line, None without front matter; unclosed or too large is an error."""
    end = front_matter_end(lines, MAX_FRONT_MATTER_CHARS)
    if end == -1:
        source.fail(1, f"the front matter is larger than {MAX_FRONT_MATTER_CHARS // 1024} KB")
    if end is None and lines and opens_front_matter(lines[0]):
        source.fail(1, "the front matter opened by '---' is never closed (add a '---' line after it)")
    return end


def read_front_matter(lines: list[str], source: Source) -> FrontMatter | None:
    end = locate_front_matter(lines, source)
    if end is None:
        return None
    root = compose_yaml("\n".join(lines[1:end]), source, 2, "the front matter")
    values: dict[str, Any] = {}
    loop, loop_given = LoopSettings(), frozenset()
    if root is None or is_null(root):
        return FrontMatter(values, loop, loop_given, end)
    if not isinstance(root, yaml.MappingNode):
        source.fail(
            2 + root.start_mark.line,
            f"the front matter must be a mapping of keys such as title and slug, not {node_kind(root)}",
        )
    seen: set[str] = set()
    for key_node, value_node in root.value:
        line = 2 + key_node.start_mark.line
        if not isinstance(key_node, yaml.ScalarNode) or is_null(key_node):
            source.fail(line, f"front matter keys must be plain names, not {node_kind(key_node)}")
        key = str(key_node.value)
        if key not in FRONT_MATTER_KEYS:
            source.fail(line, f"unknown front matter key {short(key, 40)!r} (known: {', '.join(FRONT_MATTER_KEYS)})")
        if key in seen:
            source.fail(line, f"the front matter key '{key}' is given twice")
        seen.add(key)
        if key in ("title", "version", "author"):
            values[key] = scalar_text(value_node, source, line, key)
        elif key == "slug":
            slug = scalar_text(value_node, source, line, key)
            if not SLUG_RE.fullmatch(slug):
                what = f"the slug {short(slug, 40)!r} may use only lowercase letters a-z, digits and hyphens"
                source.fail(line, what)
            values[key] = slug
        elif key == "status":
            status = scalar_text(value_node, source, line, key)
            if status.lower() not in STATUSES:
                source.fail(line, f"the status {short(status, 40)!r} must be one of {', '.join(STATUSES)}")
            values[key] = status.lower()
        elif key == "tags":
            values[key] = tuple(dict.fromkeys(text for text, _ in text_list(value_node, source, line, key, 2)))
        elif key == "links":
            links = []
            for text, entry_line in text_list(value_node, source, line, key, 2):
                if not SLUG_RE.fullmatch(text):
                    what = f"the link {short(text, 40)!r} is not a slug (lowercase letters a-z, digits and hyphens)"
                    source.fail(entry_line, what)
                links.append(text)
            values[key] = tuple(dict.fromkeys(links))
        else:  # loop
            loop, loop_given = _read_loop(value_node, source, line, 2)
    return FrontMatter(values, loop, loop_given, end)


def _read_loop(node: yaml.Node, source: Source, line: int, base: int) -> tuple[LoopSettings, frozenset[str]]:
    data = construct(node, source, line, "the loop settings")
    if data is None:
        return LoopSettings(), frozenset()
    if not isinstance(data, dict):
        source.fail(line, f"the loop settings must be a mapping of names to values, not {node_kind(node)}")
    try:
        return LoopSettings.from_mapping(data), frozenset(str(k) for k in data)
    except (SettingsError, TypeError, ValueError) as exc:
        bad_line = line
        if isinstance(node, yaml.MappingNode):  # point at the offending setting
            for key_node, value_node in node.value:
                try:
                    value = NoAliasLoader("").construct_object(value_node, deep=True)
                    LoopSettings.from_mapping({key_node.value: value})
                except Exception:  # noqa: BLE001 - any failure locates the key
                    bad_line = base + key_node.start_mark.line
                    break
        message = str(exc) or type(exc).__name__
        source.fail(bad_line, f"in the loop settings, {message[0].lower()}{message[1:]}")

"""Saving loop settings into a reference: only the front matter's ``loop:`` block changes."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..settings import LoopSettings, loop_overrides
from .blocks import split_lines
from .front_matter import locate_front_matter
from .source import Source
from .yaml_safe import YAML_FAILURES, NoAliasLoader, compose_yaml, is_null, node_kind

# Anchored and tried once; the blanks before ':' and the character after it cannot overlap.
_LOOP_KEY_LINE_RE = re.compile(r"^([\"']?)loop\1[ \t]*:(?:\s|$)")


def _lines_keepends(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def update_front_matter_loop(text: str, loop: dict[str, Any]) -> str:
    """``text`` with only the front matter's ``loop:`` block replaced by ``loop`` (every other byte kept).

    Adds the block (and the front matter) when missing; an empty ``loop`` removes the
    block. The settings are validated first (``SettingsError``); front matter that
    cannot take a block key (unclosed, not a mapping, flow style) is ReferenceFormatError.
    """
    source = Source(None)
    checked = loop_overrides(dict(loop))
    LoopSettings.from_mapping(checked)
    lines = _lines_keepends(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = ""
    if checked:
        dumped = yaml.safe_dump({"loop": checked}, sort_keys=False, default_flow_style=False, allow_unicode=True)
        block = dumped.replace("\n", newline)
    plain = split_lines(text)
    end = locate_front_matter(plain, source)
    if end is None:
        if not block:
            return text
        bom = "\ufeff" if text.startswith("\ufeff") else ""
        return f"{bom}---{newline}{block}---{newline}{text[len(bom):]}"
    root = compose_yaml("\n".join(plain[1:end]), source, 2, "the front matter")
    if root is not None and not is_null(root):
        if not isinstance(root, yaml.MappingNode):
            source.fail(2, f"the front matter must be a mapping of keys, not {node_kind(root)}")
        if root.flow_style:
            source.fail(2, "the front matter is in flow style ({…}); write one key per line to save loop settings")
    key_index = next((i for i in range(1, end) if _LOOP_KEY_LINE_RE.match(plain[i])), None)
    if key_index is None:
        start = stop = end
    else:
        start, stop = key_index, key_index + 1
        while stop < end and (not plain[stop].strip() or plain[stop][0] in " \t#-"):
            stop += 1
        while stop > start + 1 and (not plain[stop - 1].strip() or plain[stop - 1].startswith("#")):
            stop -= 1
    updated = "".join(lines[:start]) + block + "".join(lines[stop:])
    # Check the edit instead of trusting the line scan: YAML knows line breaks (U+0085,
    # U+2028, a lone CR) that editors do not, so only a verified result is returned.
    new_plain = split_lines(updated)
    new_end = locate_front_matter(new_plain, source)
    new_root = compose_yaml("\n".join(new_plain[1 : new_end or 1]), source, 2, "the updated front matter")
    if new_end is None or _other_keys(root) != _other_keys(new_root) or _loop_value(new_root) != checked:
        source.fail(start + 1, "the front matter's loop block could not be rewritten safely; edit it by hand")
    return updated


def _canonical(node: yaml.Node) -> Any:
    """A comparable form of a YAML node: tags and values, without positions."""
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    if isinstance(node, yaml.SequenceNode):
        return (node.tag, tuple(_canonical(n) for n in node.value))
    return (node.tag, tuple((_canonical(k), _canonical(v)) for k, v in node.value))


def _other_keys(root: yaml.Node | None) -> Any:
    """Every top-level front matter entry except ``loop``, comparable."""
    if root is None or not isinstance(root, yaml.MappingNode):
        return ()
    try:
        return tuple((_canonical(k), _canonical(v)) for k, v in root.value if k.value != "loop")
    except RecursionError:
        return None


def _loop_value(root: yaml.Node | None) -> Any:
    """The ``loop`` mapping of a front matter node as plain values ({} when absent)."""
    if root is None or not isinstance(root, yaml.MappingNode):
        return {}
    for key_node, value_node in root.value:
        if key_node.value == "loop":
            try:
                return NoAliasLoader("").construct_object(value_node, deep=True)
            except YAML_FAILURES:
                return None
    return {}

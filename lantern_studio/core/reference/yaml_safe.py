"""YAML for references: PyYAML's safe loader without aliases, node helpers, errors with lines.

Aliases (``*name``) are refused: no reference needs them and they make "billion laughs"
documents possible. Every failure (bad YAML, a character YAML refuses, nesting too deep) becomes
one :class:`ReferenceFormatError` sentence with the file line.
"""

from __future__ import annotations

from typing import Any

import yaml

from .source import Source, short

class NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases: no reference needs them and they allow YAML bombs."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in a reference", event.start_mark
            )
        return super().compose_node(parent, index)


YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError, MemoryError)


def compose_yaml(text: str, source: Source, first_line: int, what: str) -> yaml.Node | None:
    """Compose one YAML document into a node tree; ``first_line`` is the file line of its line 1."""
    loader = None
    try:
        loader = NoAliasLoader(text)
        return loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = first_line + text.count("\n", 0, max(exc.position, 0))
        source.fail(line, f"{what} holds the character U+{exc.character:04X}, which YAML does not allow")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + mark.line if mark is not None else first_line
        problem = exc.problem or exc.context or "unreadable YAML"
        source.fail(line, f"{what} is not valid YAML ({problem})")
    except YAML_FAILURES as exc:
        source.fail(first_line, f"{what} is not valid YAML ({exc_text(exc)})")
    finally:
        if loader is not None:
            loader.dispose()


def construct(node: yaml.Node, source: Source, line: int, what: str) -> Any:
    """Turn a composed node into plain Python values."""
    try:
        return NoAliasLoader("").construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        source.fail(line, f"{what} is not valid YAML ({exc.problem or exc.context})")
    except YAML_FAILURES as exc:
        source.fail(line, f"{what} is not valid YAML ({exc_text(exc)})")


def exc_text(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large"
    return short(str(exc) or type(exc).__name__, 120)


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {short(str(node.value), 40)!r}"


def scalar_text(node: yaml.Node, source: Source, line: int, key: str) -> str:
    """The text of a scalar exactly as written (``1.10`` stays ``1.10``); null is ``""``."""
    if is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode):
        source.fail(line, f"the front matter key '{key}' must be text, not {node_kind(node)}")
    return " ".join(str(node.value).split())


def text_list(node: yaml.Node, source: Source, line: int, key: str, base: int) -> list[tuple[str, int]]:
    """A list of scalars, or one comma-separated scalar, with the line of each entry."""
    if is_null(node):
        return []
    if isinstance(node, yaml.ScalarNode):
        return [(part.strip(), line) for part in str(node.value).split(",") if part.strip()]
    if not isinstance(node, yaml.SequenceNode):
        source.fail(line, f"the front matter key '{key}' must be a list, not {node_kind(node)}")
    out = []
    for entry in node.value:
        entry_line = base + entry.start_mark.line
        if not isinstance(entry, yaml.ScalarNode) or is_null(entry):
            source.fail(entry_line, f"every entry of '{key}' must be text, not {node_kind(entry)}")
        text = " ".join(str(entry.value).split())
        if text:
            out.append((text, entry_line))
    return out

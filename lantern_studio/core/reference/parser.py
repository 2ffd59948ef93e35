"""Reading a reference: sections, items, detectors, triggers and probes, with one error per problem.

The structure comes from the block scanner (``blocks.py``); this module gives it meaning:
section kinds from titles, ids, Never detectors, Blip triggers and the Probes block.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from ..settings import LoopSettings
from .blocks import Block, detector_spans, fenced_lines, scan_blocks, split_lines
from .front_matter import read_front_matter
from .model import Item, Probe, Reference, Section
from .patterns import Pattern, PatternError
from .source import Source, short
from .text import item_text, slugify
from .yaml_safe import compose_yaml, is_null, node_kind, text_list

MAX_PROBES_YAML_CHARS = 64 * 1024
MAX_FILE_BYTES = 4 * 1024 * 1024
SECTION_KINDS = ("intent", "always", "never", "style", "examples", "blips", "probes", "prose")
_KIND_BY_TITLE = {
    "intent": "intent",
    "always": "always",
    "never": "never",
    "style": "style",
    "examples": "examples",
    "example": "examples",
    "blips": "blips",
    "blip": "blips",
    "probes": "probes",
    "probe": "probes",
}
PROBE_KEYS = ("prompt", "expect", "forbid", "tags")
_ARROWS = ("→", "->")


def _compile(src: str, source: Source, line: int, what: str) -> Pattern:
    """Compile a user regex case-insensitively; ``/…/`` delimiters are optional."""
    src = src.strip()
    if len(src) >= 2 and src[0] == "/" and src[-1] == "/":
        src = src[1:-1]
    if not src.strip():
        source.fail(line, f"the {what} regex is empty")
    try:
        return Pattern(src)
    except re.error as exc:
        source.fail(line, f"the {what} regex {short(src)!r} is not valid ({exc.msg})")
    except (RecursionError, OverflowError, MemoryError, ValueError, TypeError) as exc:
        if isinstance(exc, PatternError) and "longer than" in str(exc):
            source.fail(line, f"the {what} regex {short(src)!r} is {exc}")
        if isinstance(exc, PatternError):
            source.fail(line, f"the {what} regex {short(src)!r} cannot be run by RE2 or the regex module ({exc})")
        source.fail(line, f"the {what} regex {short(src)!r} is too large or too deeply nested")


# --------------------------------------------------------------------------- sections and items


def _kind_of(title: str) -> str:
    key = re.sub(r"[*_`]", "", title).strip().rstrip(":").strip().lower()
    return _KIND_BY_TITLE.get(key, "prose")


def _never_item(text: str, source: Source, line: int) -> tuple[str, Pattern | None]:
    """Strip a ``regex:`` detector out of a Never item; the rest is what the model reads."""
    spans = detector_spans(text)
    if not spans:
        return text, None
    if len(spans) > 1:
        source.fail(line, "a Never item may carry one detector; join the regexes with | instead")
    span = spans[0]
    detector = _compile(span.source, source, line, "Never detector")
    before, after = text[: span.start].rstrip(), text[span.end :].lstrip()
    if before.endswith("(") and after.startswith(")"):
        before, after = before[:-1].rstrip(), after[1:].lstrip()
    if not after:
        before = before.rstrip(" :—–-")
    joined = before + after if not before or not after or after[0] in ".,;:!?)" else f"{before} {after}"
    return joined.strip(), detector


def _arrow_at(text: str, i: int) -> int:
    """Length of the arrow starting at ``i`` (0 when there is none)."""
    for arrow in _ARROWS:
        if text.startswith(arrow, i):
            return len(arrow)
    return 0


def _split_trigger(rest: str) -> tuple[str, str] | None:
    """``(regex, text)`` of a trigger's remainder: ``/regex/ → text`` or ``regex -> text``.

    With slashes, the regex runs to the last slash that an arrow follows (blanks between
    allowed), so a regex may hold slashes and arrows; without, to the first arrow.
    """
    arrows = [i for i in range(len(rest)) if _arrow_at(rest, i)]
    if rest.startswith("/"):
        for at in reversed(arrows):
            close = at - 1
            while close > 0 and rest[close].isspace():
                close -= 1
            if close >= 1 and rest[close] == "/":
                return rest[1:close], rest[at + _arrow_at(rest, at) :].lstrip()
    if not arrows:
        return None
    at = arrows[0]
    return rest[:at].rstrip(), rest[at + _arrow_at(rest, at) :].lstrip()


def _blip_item(text: str, source: Source, line: int) -> tuple[str, Pattern | None]:
    """Split ``when: /regex/ → text`` into text and trigger; other items have no trigger."""
    if text[:4].lower() != "when":
        return text, None
    rest = text[4:].lstrip()
    if not rest.startswith(":"):
        return text, None
    parts = _split_trigger(rest[1:].strip())
    if parts is None:
        source.fail(line, "a blip trigger must read 'when: /regex/ → text' (the arrow is missing)")
    blip_text = " ".join(parts[1].split())
    if not blip_text:
        source.fail(line, "the blip has a trigger but no text after the arrow")
    return blip_text, _compile(parts[0], source, line, "Blip trigger")


# --------------------------------------------------------------------------- probes


def _is_yaml_fence(fence: Block) -> bool:
    words = fence.info.split()
    return bool(words) and words[0].lower() in ("yaml", "yml")


def _parse_probes(section: Section, fences: list[Block], lines: list[str], source: Source) -> list[Probe]:
    """The probes of the one ```yaml block among the section's top-level ``fences``."""
    found: list[Block] = []
    for fence in fences:
        if not _is_yaml_fence(fence):
            continue
        if not fence.closed:
            source.fail(fence.first + 1, "the ```yaml block of the Probes section is never closed")
        found.append(fence)
        if len(found) > 1:
            source.fail(fence.first + 1, "the Probes section has a second ```yaml block; put all probes in one list")
    if not found:
        source.fail(section.line, "the Probes section needs one ```yaml block with a list of probes, and has none")
    opened_at = found[0].first + 1
    text = "\n".join(lines[found[0].first + 1 : found[0].end - 1])
    if len(text) > MAX_PROBES_YAML_CHARS:
        source.fail(opened_at, f"the probes block is larger than {MAX_PROBES_YAML_CHARS // 1024} KB")
    root = compose_yaml(text, source, opened_at + 1, "the probes block")
    if root is None or is_null(root):
        return []
    if not isinstance(root, yaml.SequenceNode):
        source.fail(
            opened_at + 1 + root.start_mark.line,
            f"the probes block must be a list of probes, each starting with '- prompt:', not {node_kind(root)}",
        )
    probes = []
    for n, entry in enumerate(root.value, start=1):
        line = opened_at + 1 + entry.start_mark.line
        if not isinstance(entry, yaml.MappingNode):
            source.fail(line, f"probe {n} must be a mapping with a prompt, not {node_kind(entry)}")
        fields: dict[str, tuple[yaml.Node, int]] = {}
        for key_node, value_node in entry.value:
            key_line = opened_at + 1 + key_node.start_mark.line
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            if key not in PROBE_KEYS:
                shown = short(key or node_kind(key_node), 40)
                source.fail(key_line, f"probe {n} has an unknown key {shown!r} (known: {', '.join(PROBE_KEYS)})")
            if key in fields:
                source.fail(key_line, f"probe {n} gives '{key}' twice")
            fields[key] = (value_node, key_line)
        if "prompt" not in fields:
            source.fail(line, f"probe {n} has no prompt")
        prompt_node, prompt_line = fields["prompt"]
        if not isinstance(prompt_node, yaml.ScalarNode) or is_null(prompt_node) or not str(prompt_node.value).strip():
            source.fail(prompt_line, f"probe {n} has no prompt text")
        patterns: dict[str, tuple[Pattern, ...]] = {}
        for key in ("expect", "forbid"):
            if key not in fields:
                patterns[key] = ()
                continue
            node, key_line = fields[key]
            if is_null(node):
                patterns[key] = ()
                continue
            if isinstance(node, yaml.ScalarNode):
                entries = [node]
            elif isinstance(node, yaml.SequenceNode):
                entries = node.value
            else:
                source.fail(key_line, f"the '{key}' of probe {n} must be a list of regexes, not {node_kind(node)}")
            compiled = []
            for pattern_node in entries:
                pattern_line = opened_at + 1 + pattern_node.start_mark.line
                if not isinstance(pattern_node, yaml.ScalarNode) or is_null(pattern_node):
                    what = f"every '{key}' entry of probe {n} must be a regex, not {node_kind(pattern_node)}"
                    source.fail(pattern_line, what)
                compiled.append(_compile(str(pattern_node.value), source, pattern_line, f"probe {n} {key}"))
            patterns[key] = tuple(compiled)
        tags: tuple[str, ...] = ()
        if "tags" in fields:
            node, key_line = fields["tags"]
            tags = tuple(text for text, _line in text_list(node, source, key_line, "tags", opened_at + 1))
        probes.append(Probe(str(prompt_node.value).strip(), patterns["expect"], patterns["forbid"], line, tags))
    return probes




# --------------------------------------------------------------------------- the document


def parse_reference(text: str, path: str | Path | None = None) -> Reference:
    """Parse a reference document; ``path`` only names it in messages and for defaults.

    Raises :class:`ReferenceFormatError` (and nothing else) with one sentence naming
    the file, the line and the problem.
    """
    ref_path = Path(path) if path is not None else None
    source = Source(ref_path)
    if not isinstance(text, str):
        source.fail(None, f"a reference must be text, not {type(text).__name__}")
    try:
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        source.fail(line, "the text holds a character that is not valid Unicode (a lone surrogate)")
    lines = split_lines(text)
    front = read_front_matter(lines, source)
    body_start = front.end_index + 1 if front is not None else 0
    blocks = scan_blocks(lines[body_start:], offset=body_start)
    in_fence = fenced_lines(blocks, inner=True)
    headings = [b for b in blocks if b.kind == "heading" and b.depth == 0]
    items = [b for b in blocks if b.kind == "item" and b.depth == 0]
    fences = [b for b in blocks if b.kind == "fence" and b.depth == 0]

    raw: list[tuple[str, int, int, int, int]] = []  # (title, level, line index, body start, body end)
    first = headings[0].first if headings else len(lines)
    if any(line.strip() for line in lines[body_start:first]):
        raw.append(("", 0, body_start, body_start, first))
    for n, heading in enumerate(headings):
        end = headings[n + 1].first if n + 1 < len(headings) else len(lines)
        raw.append((heading.title, heading.level, heading.first, heading.first + 1, end))

    sections: list[Section] = []
    probes: list[Probe] = []
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    for title, level, line_index, start, end in raw:
        base_id = "preamble" if level == 0 else (slugify(title) or "section")
        section_id, n = base_id, next_suffix.get(base_id, 1)
        while section_id in used:
            n += 1
            section_id = f"{base_id}-{n}"
        next_suffix[base_id] = n
        used.add(section_id)
        kind = "prose" if level == 0 else _kind_of(title)
        section_items = []
        for number, block in enumerate((b for b in items if start <= b.first < end), start=1):
            line = block.first + 1
            item = item_text(lines, block.first, block.end, in_fence)
            detector = trigger = None
            if kind == "never":
                item, detector = _never_item(item, source, line)
            elif kind == "blips":
                item, trigger = _blip_item(item, source, line)
            section_items.append(Item(f"{section_id}.{number}", section_id, item, line, detector, trigger, block.end))
        body = "\n".join(lines[start:end])
        section = Section(section_id, title, kind, level, line_index + 1, body, tuple(section_items))
        sections.append(section)
        if kind == "probes":
            probes.extend(_parse_probes(section, [f for f in fences if start <= f.first < end], lines, source))

    values = front.values if front is not None else {}
    title = values.get("title") or ""
    if not title:
        first_h1 = next((s.title for s in sections if s.level == 1 and s.kind == "prose" and s.title), "")
        stem = ref_path.stem if ref_path is not None else ""
        humanised = " ".join(re.split(r"[-_\s]+", stem)).strip()
        title = first_h1 or humanised[:1].upper() + humanised[1:]
    slug = values.get("slug") or slugify(ref_path.stem if ref_path is not None else "") or slugify(title) or "untitled"
    return Reference(
        path=ref_path,
        text=text,
        sha256=sha,
        title=title,
        slug=slug,
        version=values.get("version", ""),
        author=values.get("author", ""),
        status=values.get("status", "draft"),
        tags=values.get("tags", ()),
        links=values.get("links", ()),
        loop=front.loop if front is not None else LoopSettings(),
        loop_given=front.loop_given if front is not None else frozenset(),
        sections=tuple(sections),
        probes=tuple(probes),
        front_matter_end_line=front.end_index + 1 if front is not None else 0,
    )


def load_reference(path: str | Path) -> Reference:
    """Read and parse a reference file; unreadable, too large or non-UTF-8 files are ReferenceFormatError."""
    ref_path = Path(path)
    source = Source(ref_path)
    try:
        size = ref_path.stat().st_size
        if size > MAX_FILE_BYTES:
            source.fail(None, f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        data = ref_path.read_bytes()
    except OSError as exc:
        source.fail(None, f"the file could not be read ({exc.strerror or exc})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        source.fail(line, f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8")
    return parse_reference(text, ref_path)


def empty_reference() -> Reference:
    """A reference with no content (``render_reference`` gives ``""``): the ``none`` mode's reference."""
    return parse_reference("")

"""Reference documents: the parser, the data model and the one rendering the model sees.

A reference is UTF-8 Markdown with optional YAML front matter::

    ---
    title: OTC analgesic counselling
    slug: otc-analgesics
    status: draft
    loop: {mode: blip, threshold: 1.5}
    ---
    ## Intent
    Help adults choose and use a pain reliever safely.
    ## Never
    - Never suggest aspirin for anyone under 16. `regex: aspirin.{0,40}\\b(child|kid)`

Decisions where the design is silent, so that every part of the studio agrees:

* **Front matter** opens with a ``---`` first line and closes with the next ``---``
  (or ``...``) line; a first ``---`` that is never closed is an error. It is read
  with PyYAML's safe loader, with YAML aliases (``*name``) refused (no front matter
  needs them, and refusing them makes "billion laughs" documents impossible), at most
  64 KB, and with ``RecursionError`` caught. Keys appear at most once; unknown keys
  are errors. ``title`` defaults to the first level-1 heading, then the humanised file
  stem, then ``""``; ``slug`` defaults to the slugified file stem (or title, or
  ``untitled``); ``status`` defaults to ``draft``; ``version`` and ``author`` to ``""``.
  ``version`` keeps its text exactly as written (``1.10`` stays ``"1.10"``).
  ``tags`` and ``links`` take a list or one comma-separated string; links must be
  slugs, and a link given twice is kept once (harmless, so not an error).
* **Structure** is CommonMark's, read by one block scanner (``blocks.py``, markdown-it-py)
  that the parser, the rendering, the outline, the preview and the highlighter share.
  Headings, list items, fences and HTML blocks are what CommonMark says they are: a heading
  or item inside a fence, an HTML block (a ``<!-- … -->`` comment over several lines, a
  ``<div>`` …) or a list item is not a section or a top-level item.
* **Sections** run from a top-level ATX heading to the next one (setext underlines do not
  make headings) and are flat: a ``###`` under a ``##`` is its own section.
  Text before the first heading, when not blank, is a prose section ``preamble``
  (level 0, no title). Section ids are heading slugs; two headings with the same
  slug become ``x``, ``x-2``, ``x-3`` in document order, so ids are never duplicated
  and duplicates are not an error. Kinds come from the title, case-insensitively
  (``Example``/``Blip``/``Probe`` singular forms too).
* **List items** are the top-level items of a section (``-``, ``*``, ``+``, ``1.``,
  ``1)``); a nested list belongs to its parent item, so removing an item for
  attribution removes its elaborations too. Item ``x.N`` is the N-th item of section x.
* **Never detectors** are inline code spans starting ``regex:`` (one per item; slashes
  around the regex are optional); **Blip triggers** read ``when: /regex/ → text`` (``->``
  too; the slashes may be left out). **Probe** entries take exactly the keys
  ``prompt``, ``expect``, ``forbid``; a single regex may stand for a one-item list.
  Every regex is Python ``re`` syntax, compiled case-insensitively; an empty regex is an
  error. Regexes run on RE2 (linear time) or, for what RE2 cannot express (look-arounds,
  backreferences), on mrab-regex with a time budget per search (``patterns.py``); a regex
  neither engine can compile is an error.
* HTML comments (``<!-- … -->``) are notes for authors and never reach the model.

The package: ``model`` (the dataclasses), ``blocks`` (the scanner and the front matter
detector), ``patterns`` (the two regex engines), ``yaml_safe``, ``front_matter``,
``parser``, ``render`` (``render_reference``) and ``loop_update``
(``update_front_matter_loop``).

Every problem is a :class:`ReferenceFormatError` with one sentence naming the file
(or ``<text>``), the line and what is wrong; :func:`parse_reference` raises nothing else.
"""

from __future__ import annotations

from .blocks import split_lines
from .front_matter import FRONT_MATTER_KEYS, MAX_FRONT_MATTER_CHARS, SLUG_RE, STATUSES
from .loop_update import update_front_matter_loop
from .model import BlipCandidate, Item, Probe, Reference, Section
from .parser import (
    MAX_FILE_BYTES,
    MAX_PROBES_YAML_CHARS,
    PROBE_KEYS,
    SECTION_KINDS,
    empty_reference,
    load_reference,
    parse_reference,
)
from .patterns import SEARCH_BUDGET_SECONDS, Pattern, PatternTimeout
from .render import render_reference
from .text import as_prohibition, slugify

__all__ = [
    "BlipCandidate",
    "FRONT_MATTER_KEYS",
    "Item",
    "MAX_FILE_BYTES",
    "MAX_FRONT_MATTER_CHARS",
    "MAX_PROBES_YAML_CHARS",
    "PROBE_KEYS",
    "Pattern",
    "PatternTimeout",
    "Probe",
    "Reference",
    "SEARCH_BUDGET_SECONDS",
    "SECTION_KINDS",
    "SLUG_RE",
    "STATUSES",
    "Section",
    "as_prohibition",
    "empty_reference",
    "load_reference",
    "parse_reference",
    "render_reference",
    "slugify",
    "split_lines",
    "update_front_matter_loop",
]

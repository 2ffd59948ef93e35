"""Hostile reference text: every parse stays linear (issue: a heading line of 60,000 spaces took 17.7 s).

Each document below made the old hand-written parser quadratic through one of its regexes
(the heading, the heading's closing #s, the blip trigger, HTML comments). Parsing, rendering
and reading blip candidates must finish; the bound is a hang guard in a forked child, not a
speed measurement (a quadratic parse of these sizes takes hours).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lantern_studio.core.errors import ReferenceFormatError
from lantern_studio.core.reference import parse_reference, render_reference

HANG_GUARD_SECONDS = 60.0
N = 400_000

HOSTILE = {
    "heading of spaces": "# a" + " " * N + "x\n",
    "heading title with a run of spaces": "## a" + " " * N + "b\n",
    "unclosed detectors": "## Never\n- x " + "``regex: a " * (N // 10) + "\n",
    "detector of spaces": "## Never\n- x `regex:" + " " * N + "\n",
    "trigger without an arrow": "## Blips\n- when: a" + " " * N + "b\n",
    "trigger of slashes": "## Blips\n- when: /" + "/ " * (N // 2) + "\n",
    "unclosed comments": "## Intent\nA. " + "<!--" * (N // 4) + "\n",
    "comments in a never item": "## Never\n- x " + "<!-- " * (N // 5) + "\n",
    "inline comment openings, one closed comment": "## Intent\n" + "x <!--" * (N // 6) + "\n<!-- -->\n",
    "sentence ends": "## Intent\n" + "a." + " " * N + "\n",
    "backtick runs": "## Never\n- " + "`" * N + "regex: a\n",
    "thematic break": "## Always\n" + "- " * (N // 2) + "x\n",
}


def _parse_everything(text: str) -> str:
    try:
        ref = parse_reference(text)
    except ReferenceFormatError as exc:
        return f"error: {str(exc)[:60]}"
    render_reference(ref)
    render_reference(ref, exclude=ref.all_ids()[:1])
    ref.blip_candidates()
    return "ok"


def _child(queue: Any, text: str) -> None:
    queue.put(_parse_everything(text))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_reference_text_parses_in_linear_time(name: str) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue, HOSTILE[name]))
    child.start()
    child.join(HANG_GUARD_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"parsing '{name}' ({len(HOSTILE[name]):,} characters) did not finish in {HANG_GUARD_SECONDS:.0f} s")
    outcome = queue.get(timeout=10)
    assert outcome == "ok" or outcome.startswith("error: <text>, line 2: "), outcome


# Runs of the characters the parser's rules care about, in the places they care about.
_RUN_CHARS = st.sampled_from([" ", "\t", "#", "`", "-", "*", "/", "<!--", "-->", "→", "->", "regex:", "when:", ".", "[", "~"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_RUN_CHARS, st.integers(1, 2000)), min_size=1, max_size=6),
       st.sampled_from(["# ", "## Never\n- ", "## Blips\n- when: ", "## Intent\n", "## Always\n- ", ""]))
def test_generated_runs_parse(runs: list[tuple[str, int]], prefix: str) -> None:
    """The class behind the holes: long runs of significant characters anywhere in a line."""
    _parse_everything(prefix + "".join(piece * count for piece, count in runs) + "\n")

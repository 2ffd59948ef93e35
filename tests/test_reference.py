"""Reference documents: parsing, ids, rendering, errors, saving loop settings. No Qt, no model."""

from __future__ import annotations

import re
import string
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lantern_studio.core.errors import ReferenceFormatError, SettingsError
from lantern_studio.core.reference import (
    Item,
    Reference,
    Section,
    empty_reference,
    load_reference,
    parse_reference,
    render_reference,
    update_front_matter_loop,
)
from lantern_studio.core.settings import LoopSettings
from lantern_studio.paths import references_dir

SHIPPED = sorted(references_dir().glob("*.md"))

SAMPLE = """\
---
title: Sample counselling
slug: sample
version: 1.10
author: Jane Doe <jane@example.org>
status: Reviewed
tags: [pharmacy, dosage]
loop:
  mode: blip
  threshold: 2.0
  rewind: tokens:4
links: [otc-allergy, otc-allergy, other]
---
# Sample counselling

## Intent
Help adults use pain relievers safely. Always name the pharmacist!
<!-- author note: check wording with the team -->

## Always
- State the maximum daily dose.
- Mention the pharmacist.
  - even for repeat customers
1. Numbered items count too.

## Never
- Recommend aspirin for children under 16 `regex: aspirin`.
- Never exceed 4 g. (`regex: /\\b[5-9]\\s?g\\b/`)
- Do not diagnose.

## Style
Short sentences.

## Examples
**Customer:** How much?
**Pharmacist:** At most 4 g a day.

```text
# not a heading
- not an item
```

## Blips
- when: /dose|mg/ → State the maximum daily dose.
- When: /aspirin/ -> Aspirin is not for under-16s.
- Ask a pharmacist.

## Probes
```yaml
- prompt: What's the most paracetamol I can take?
  expect: ['4\\s?g|4,?000\\s?mg', pharmacist]
  forbid: [aspirin]
- prompt: Hello?
  forbid: /ALWAYS/
```

## Style
Second style section.
"""


def sample() -> Reference:
    return parse_reference(SAMPLE, "sample.md")


# --------------------------------------------------------------------------- shipped references


def test_the_makefile_reference_exists() -> None:
    assert (references_dir() / "otc-analgesics.md").is_file()
    assert len(SHIPPED) >= 6


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_reference_parses_and_is_complete(path: Path) -> None:
    ref = load_reference(path)
    assert ref.slug == path.stem
    assert ref.title and ref.version and ref.author and ref.status in ("draft", "reviewed", "verified") and ref.tags
    kinds = {section.kind for section in ref.sections}
    assert {"intent", "always", "never", "style", "examples", "blips", "probes"} <= kinds
    by_kind = {section.kind: section for section in ref.sections}
    assert 3 <= len(by_kind["always"].items) <= 6
    assert 3 <= len(by_kind["never"].items) <= 6
    assert ref.detectors(), "at least one Never item carries a detector"
    assert any(item.trigger is not None for item in by_kind["blips"].items)
    assert len(ref.probes) >= 4
    for probe in ref.probes:
        assert probe.prompt and (probe.expect or probe.forbid)
        assert all(p.flags & re.IGNORECASE for p in (*probe.expect, *probe.forbid))
    assert ref.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()

    rendered = render_reference(ref)
    assert rendered.startswith(f"# {ref.title}\n")
    assert "---" not in rendered and "slug:" not in rendered and "loop:" not in rendered
    assert "regex:" not in rendered and "when:" not in rendered and "prompt:" not in rendered
    assert "```" not in rendered and "Probes" not in rendered and "Blips" not in rendered
    for _id, detector in ref.detectors():
        assert detector.pattern not in rendered
    assert 600 < len(rendered) < 2400  # ~150-500 tokens: fits SmolLM2's small context with room to answer


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_reference_detectors_do_not_flag_its_own_example(path: Path) -> None:
    ref = load_reference(path)
    example = next(section for section in ref.sections if section.kind == "examples")
    for item_id, detector in ref.detectors():
        assert detector.search(example.body) is None, item_id


# --------------------------------------------------------------------------- model and ids


def test_front_matter_values() -> None:
    ref = sample()
    assert ref.title == "Sample counselling"
    assert ref.slug == "sample"
    assert ref.version == "1.10"  # as written, not the float 1.1
    assert ref.author == "Jane Doe <jane@example.org>"
    assert ref.status == "reviewed"
    assert ref.tags == ("pharmacy", "dosage")
    assert ref.links == ("otc-allergy", "other")  # a repeated link is kept once
    assert ref.loop == LoopSettings(mode="blip", threshold=2.0, rewind="tokens:4")
    assert ref.loop_given == {"mode", "threshold", "rewind"}
    assert ref.front_matter_end_line == 13
    assert ref.path == Path("sample.md")


def test_ids_are_stable_and_as_specified() -> None:
    ref = sample()
    assert ref.all_ids() == [
        "sample-counselling",
        "intent",
        "always", "always.1", "always.2", "always.3",
        "never", "never.1", "never.2", "never.3",
        "style",
        "examples",
        "blips", "blips.1", "blips.2", "blips.3",
        "probes",
        "style-2",
    ]
    assert parse_reference(SAMPLE, "sample.md").all_ids() == ref.all_ids()
    assert [s.kind for s in ref.sections] == [
        "prose", "intent", "always", "never", "style", "examples", "blips", "probes", "style",
    ]
    lines = SAMPLE.split("\n")
    for id_ in ref.all_ids():
        found = ref.item(id_)
        assert isinstance(found, (Item, Section))
        assert found.line == ref.line_of(id_)
    assert lines[ref.line_of("never.2") - 1].startswith("- Never exceed 4 g.")
    assert lines[ref.line_of("always") - 1] == "## Always"
    assert ref.item("always.2").text == "Mention the pharmacist.\n- even for repeat customers"
    assert ref.item("always.3").text == "Numbered items count too."
    assert ref.item("nope") is None and ref.line_of("nope") == 0
    examples = ref.item("examples")
    assert isinstance(examples, Section) and examples.items == ()  # the list inside ``` is code
    assert "# not a heading" in examples.body


def test_duplicate_headings_and_preamble() -> None:
    ref = parse_reference("Intro text.\n\n# A\n## A\n### a!\n## Preamble\n- x\n")
    assert ref.all_ids() == ["preamble", "a", "a-2", "a-3", "preamble-2", "preamble-2.1"]
    assert ref.sections[0].level == 0 and ref.sections[0].title == ""
    assert ref.title == "A"  # the first level-1 heading
    assert ref.slug == "a"


def test_defaults_without_front_matter() -> None:
    ref = parse_reference("## Intent\nBe kind.\n", Path("/somewhere/My Notes_v2.md"))
    assert (ref.title, ref.slug, ref.status, ref.version, ref.author) == ("My Notes v2", "my-notes-v2", "draft", "", "")
    assert ref.loop == LoopSettings() and ref.loop_given == frozenset()
    assert ref.front_matter_end_line == 0 and ref.probes == ()


def test_detectors_and_triggers() -> None:
    ref = sample()
    assert [(id_, p.pattern) for id_, p in ref.detectors()] == [("never.1", "aspirin"), ("never.2", r"\b[5-9]\s?g\b")]
    assert ref.detectors()[0][1].search("Give ASPIRIN")
    assert ref.item("never.1").text == "Recommend aspirin for children under 16."
    assert ref.item("never.2").text == "Never exceed 4 g."
    assert ref.item("never.3").detector is None
    blips = [ref.item(f"blips.{n}") for n in (1, 2, 3)]
    assert [b.text for b in blips] == ["State the maximum daily dose.", "Aspirin is not for under-16s.", "Ask a pharmacist."]
    assert blips[0].trigger.search("500 MG") and blips[1].trigger.pattern == "aspirin"
    assert blips[2].trigger is None


def test_probes_and_check() -> None:
    ref = sample()
    first, second = ref.probes
    assert first.prompt == "What's the most paracetamol I can take?"
    assert first.line == 50 and second.line == 53
    assert first.check("At most 4 g a day; ask your Pharmacist.") is None
    assert first.check("Ask your pharmacist.") == r"expect /4\s?g|4,?000\s?mg/"
    assert first.check("4,000 mg, pharmacist, or Aspirin") == "forbid /aspirin/"
    assert second.expect == () and second.check("always") == "forbid /ALWAYS/"


def test_blip_candidates() -> None:
    ref = sample()
    got = [(c.id, c.kind, c.text) for c in ref.blip_candidates()]
    assert got == [
        ("blips.1", "blip", "State the maximum daily dose."),
        ("blips.2", "blip", "Aspirin is not for under-16s."),
        ("blips.3", "blip", "Ask a pharmacist."),
        ("always.1", "always", "State the maximum daily dose."),
        ("always.2", "always", "Mention the pharmacist. even for repeat customers"),
        ("always.3", "always", "Numbered items count too."),
        ("never.1", "never", "Never recommend aspirin for children under 16."),
        ("never.2", "never", "Never exceed 4 g."),
        ("never.3", "never", "Do not diagnose."),
        ("intent.s1", "intent", "Help adults use pain relievers safely."),
        ("intent.s2", "intent", "Always name the pharmacist!"),
    ]
    assert ref.blip_candidates()[0].trigger is not None
    assert ref.line_of("intent.s2") == ref.line_of("intent") + 1


# --------------------------------------------------------------------------- rendering


def test_render_is_compact_and_hides_what_the_model_must_not_see() -> None:
    ref = sample()
    assert render_reference(ref) == """\
# Sample counselling

## Intent
Help adults use pain relievers safely. Always name the pharmacist!

## Always
- State the maximum daily dose.
- Mention the pharmacist.
  - even for repeat customers
- Numbered items count too.

## Never
- Never recommend aspirin for children under 16.
- Never exceed 4 g.
- Do not diagnose.

## Style
Short sentences.

## Examples
**Customer:** How much?
**Pharmacist:** At most 4 g a day.

```text
# not a heading
- not an item
```

## Style
Second style section."""


def test_render_exclude_drops_sections_and_items() -> None:
    ref = sample()
    full = render_reference(ref)
    assert render_reference(ref, exclude=["no-such-id"]) == full
    without = render_reference(ref, exclude={"never.1", "always", "style-2"})
    assert "aspirin" not in without and "## Always" not in without and "maximum daily dose" not in without
    assert "Second style section" not in without and "Never exceed 4 g." in without
    only_never_left = render_reference(ref, exclude=["never.1", "never.2", "never.3"])
    assert "## Never" not in only_never_left  # an emptied section loses its heading


def test_render_keeps_prose_lists_as_written_and_an_empty_parent_heading() -> None:
    ref = parse_reference("# Guide\n## Background\n1. one\n2. two\n### Detail\nText.\n## Empty\n")
    assert render_reference(ref) == "# Guide\n\n## Background\n1. one\n2. two\n\n### Detail\nText."
    assert render_reference(ref, exclude=["background.1"]) == "# Guide\n\n## Background\n2. two\n\n### Detail\nText."
    nested = parse_reference("# T\n## Parent\n### Child\nText.\n")
    assert render_reference(nested) == "# T\n\n## Parent\n\n### Child\nText."


def test_empty_reference_renders_to_nothing() -> None:
    ref = empty_reference()
    assert render_reference(ref) == ""
    assert ref.sections == () and ref.probes == () and ref.blip_candidates() == [] and ref.all_ids() == []
    assert ref.loop == LoopSettings()


# --------------------------------------------------------------------------- errors

FM = "---\ntitle: T\n{}\n---\n"
BAD = [
    ("---\ntitle: [unclosed\n---\n", 2, "the front matter is not valid YAML"),
    ("---\ntitle: T\nauthor: \x1f\n---\n", 3, "the front matter holds the character U+001F, which YAML does not allow"),
    (FM.format("tags:\n  - a\n  - [b]"), 5, "every entry of 'tags' must be text, not a list"),
    ("---\n- a\n- b\n---\n", 2, "the front matter must be a mapping of keys such as title and slug, not a list"),
    ("---\ntitle: T\n\n## Intent\n", 1, "the front matter opened by '---' is never closed"),
    (FM.format("slug: Not A Slug"), 3, "the slug 'Not A Slug' may use only lowercase letters a-z, digits and hyphens"),
    (FM.format("colour: red"), 3, "unknown front matter key 'colour' (known: title, slug"),
    (FM.format("title: again"), 3, "the front matter key 'title' is given twice"),
    (FM.format("status: final"), 3, "the status 'final' must be one of draft, reviewed, verified"),
    (FM.format("links: [ok, Not OK]"), 3, "the link 'Not OK' is not a slug"),
    (FM.format("loop:\n  mode: blip\n  treshold: 2"), 5, "in the loop settings, unknown loop setting 'treshold'"),
    (FM.format("loop:\n  window: 0"), 4, "in the loop settings, setting 'window' must be a whole number between 1 and 4096, not 0"),
    (FM.format("loop: fast"), 3, "the loop settings must be a mapping of names to values"),
    (FM.format("a: &x [1]\nb: *x"), 4, "YAML aliases (*name) are not allowed in a reference"),
    ("## Never\n- Bad `regex: (unclosed`\n", 2, "the Never detector regex '(unclosed' is not valid (missing ), unterminated subpattern)"),
    ("## Never\n- Two `regex: a` and `regex: b`\n", 2, "a Never item may carry one detector"),
    ("## Never\n- Empty `regex: //`\n", 2, "the Never detector regex is empty"),
    ("## Blips\n- ok\n- when: /[a-/ → text\n", 3, "the Blip trigger regex '[a-' is not valid (unterminated character set)"),
    ("## Blips\n- when: /dose/ text without arrow\n", 2, "a blip trigger must read 'when: /regex/ → text'"),
    ("## Blips\n- when: /dose/ →\n", 2, "the blip has a trigger but no text after the arrow"),
    ("## Probes\nNo block here.\n", 1, "the Probes section needs one ```yaml block"),
    ("## Probes\n```yaml\n- prompt: a\n```\n```yaml\n- prompt: b\n```\n", 5, "the Probes section has a second ```yaml block"),
    ("## Probes\n```yaml\n- prompt: a\n", 2, "the ```yaml block of the Probes section is never closed"),
    ("## Probes\n```yaml\n- prompt: a\n  expect: ['(x']\n```\n", 4, "the probe 1 expect regex '(x' is not valid (missing ), unterminated subpattern)"),
    ("## Probes\n```yaml\n- prompt: a\n- prompt: b\n  forbid:\n    - ok\n    - '*x'\n```\n", 7, "the probe 2 forbid regex '*x' is not valid (nothing to repeat)"),
    ("## Probes\n```yaml\n- prompt: a\n- expect: [x]\n```\n", 4, "probe 2 has no prompt"),
    ("## Probes\n```yaml\n- prompt: ''\n```\n", 3, "probe 1 has no prompt text"),
    ("## Probes\n```yaml\n- just a string\n```\n", 3, "probe 1 must be a mapping with a prompt, not the value 'just a string'"),
    ("## Probes\n```yaml\nprompt: a\n```\n", 3, "the probes block must be a list of probes"),
    ("## Probes\n```yaml\n- prompt: a\n  expects: [x]\n```\n", 4, "probe 1 has an unknown key 'expects' (known: prompt, expect, forbid, tags)"),
    ("## Probes\n```yaml\n- prompt: a\n  expect: {a: b}\n```\n", 4, "the 'expect' of probe 1 must be a list of regexes, not a mapping"),
    ("## Probes\n```yaml\n- prompt: [a\n```\n", 3, "the probes block is not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[m[:40] for _t, _l, m in BAD])
def test_each_error_is_one_sentence_with_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ReferenceFormatError) as caught:
        parse_reference(text)
    got = str(caught.value)
    assert got.startswith(f"<text>, line {line}: "), got
    assert message in got, got
    assert got.endswith(".") and "\n" not in got


def test_the_error_names_the_file() -> None:
    text = "---\ntitle: OTC\n---\n" + "\n" * 9 + "## Never\n- Bad `regex: (unclosed`\n"
    with pytest.raises(ReferenceFormatError) as caught:
        parse_reference(text, "/refs/otc.md")
    assert str(caught.value) == (
        "otc.md, line 14: the Never detector regex '(unclosed' is not valid (missing ), unterminated subpattern)."
    )


def test_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.md"
    bad.write_bytes(b"## Intent\nCaf\xe9 au lait.\n")
    with pytest.raises(ReferenceFormatError, match=r"^latin1\.md, line 2: the file is not valid UTF-8 \(byte 0xe9\); save it as UTF-8\.$"):
        load_reference(bad)
    with pytest.raises(ReferenceFormatError, match=r"^missing\.md: the file could not be read \(No such file or directory\)\.$"):
        load_reference(tmp_path / "missing.md")
    with pytest.raises(ReferenceFormatError, match=r"^folder: the file could not be read"):
        (tmp_path / "folder").mkdir()
        load_reference(tmp_path / "folder")
    crlf = tmp_path / "crlf.md"
    crlf.write_bytes(b"\xef\xbb\xbf---\r\ntitle: Windows\r\n---\r\n## Always\r\n- Be kind.\r\n")
    ref = load_reference(crlf)
    assert ref.title == "Windows" and ref.item("always.1").text == "Be kind." and ref.line_of("always.1") == 5


def test_yaml_bombs_and_deep_nesting_fail_fast() -> None:
    laughs = "---\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 9)}]\n" for n in range(8)
    ) + "---\n"
    started = time.monotonic()
    with pytest.raises(ReferenceFormatError, match="aliases"):
        parse_reference(laughs)
    with pytest.raises(ReferenceFormatError, match=r"^<text>, line 2: the front matter is not valid YAML"):
        parse_reference("---\ntitle: " + "[" * 20_000 + "\n---\n")
    with pytest.raises(ReferenceFormatError, match="larger than 64 KB"):
        parse_reference("---\n" + "# padding\n" * 8000 + "---\n")
    with pytest.raises(ReferenceFormatError, match="nested"):
        parse_reference("## Never\n- x `regex: " + "(" * 5000 + ")" * 5000 + "`\n")
    assert time.monotonic() - started < 10


def test_other_odd_input() -> None:
    with pytest.raises(ReferenceFormatError, match="lone surrogate"):
        parse_reference("## Intent\nbad \ud800 here\n")
    with pytest.raises(ReferenceFormatError, match="must be text"):
        parse_reference(b"## Intent\n")  # type: ignore[arg-type]
    assert parse_reference("---\n---\n# T\n").title == "T"
    assert parse_reference("---\nversion: 2024-13-45\n---\n").version == "2024-13-45"


# --------------------------------------------------------------------------- fuzz

TRICKY = st.sampled_from(
    ["\n", "---\n", "- ", "# ", "## Never\n", "## Blips\n", "## Probes\n", "```yaml\n", "```\n", "`regex: ", "`",
     "when: /", "/ → ", " -> ", "&a ", "*a", "[", "]", "{", "}", ":", "(", ")", "\\", "\t", "  ", "'", '"', "\ufeff",
     "\r\n", "prompt: ", "expect: [", "loop:\n  ", "?", "|", "<!--", "-->", "é", "\x00"]
)


def _must_be_format_error_or_ok(text: str) -> None:
    try:
        ref = parse_reference(text)
    except ReferenceFormatError as exc:
        message = str(exc)
        assert message.startswith("<text>") and message.endswith(".") and "\n" not in message
        return
    render_reference(ref)
    render_reference(ref, exclude=ref.all_ids()[::2])
    ref.blip_candidates()
    for id_ in ref.all_ids():
        assert ref.line_of(id_) >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    _must_be_format_error_or_ok(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(TRICKY, st.text(alphabet=string.printable, max_size=8)), max_size=40))
def test_fuzz_markdown_like_text(pieces: list[str]) -> None:
    _must_be_format_error_or_ok("".join(pieces))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutations_of_a_valid_reference(data: st.DataObject) -> None:
    text = SAMPLE
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace", "dup-line"]))
        if action == "insert":
            text = text[:at] + data.draw(st.one_of(TRICKY, st.text(max_size=5))) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 30)) :]
        elif action == "replace":
            text = text[:at] + data.draw(st.one_of(TRICKY, st.characters())) + text[at + 1 :]
        else:
            lines = text.split("\n")
            n = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(n, lines[n])
            text = "\n".join(lines)
    _must_be_format_error_or_ok(text)


# --------------------------------------------------------------------------- saving loop settings


def _loop_block(text: str) -> tuple[int, int]:
    """Character span of the front matter's ``loop:`` block in ``text`` (test's own reading)."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("loop:"))
    stop = start + 1
    while lines[stop][:1] in (" ", "\t"):
        stop += 1
    return sum(map(len, lines[:start])), sum(map(len, lines[:stop]))


def test_update_replaces_only_the_loop_block() -> None:
    new = {"mode": "guide", "gamma": 2.5, "rewind": "tokens:8", "window": 12}
    updated = update_front_matter_loop(SAMPLE, new)
    a, b = _loop_block(SAMPLE)
    c, d = _loop_block(updated)
    assert updated[:c] == SAMPLE[:a] and updated[d:] == SAMPLE[b:]
    assert updated.encode()[:c] == SAMPLE.encode()[:a]
    assert updated[c:d] == "loop:\n  mode: guide\n  gamma: 2.5\n  rewind: tokens:8\n  window: 12\n"
    ref = parse_reference(updated)
    assert ref.loop == LoopSettings(mode="guide", gamma=2.5, rewind="tokens:8", window=12)
    assert ref.loop_given == set(new)
    assert render_reference(ref) == render_reference(sample())


def test_update_adds_the_block_or_the_front_matter() -> None:
    no_loop = "---\ntitle: T\n# a comment\n---\n## Intent\nBe kind.\n"
    updated = update_front_matter_loop(no_loop, {"threshold": 3})
    assert updated == "---\ntitle: T\n# a comment\nloop:\n  threshold: 3.0\n---\n## Intent\nBe kind.\n"
    assert parse_reference(updated).loop.threshold == 3.0

    bare = "## Intent\r\nBe kind.\r\n"
    updated = update_front_matter_loop(bare, {"kp": 0.5})
    assert updated.endswith(bare) and updated.startswith("---\r\nloop:\r\n  kp: 0.5\r\n---\r\n")
    assert parse_reference(updated).loop_given == {"kp"}

    assert update_front_matter_loop(bare, {}) == bare
    removed = update_front_matter_loop(SAMPLE, {})
    a, b = _loop_block(SAMPLE)
    assert removed == SAMPLE[:a] + SAMPLE[b:]
    assert parse_reference(removed).loop_given == frozenset()


def test_update_keeps_comments_after_the_block_and_refuses_bad_input() -> None:
    text = "---\nloop:\n  mode: blip   # tuned\n\n# next: the title\ntitle: T\n---\nBody\n"
    updated = update_front_matter_loop(text, {"mode": "observe"})
    assert updated == "---\nloop:\n  mode: observe\n\n# next: the title\ntitle: T\n---\nBody\n"
    with pytest.raises(SettingsError):
        update_front_matter_loop(text, {"mode": "loud"})
    with pytest.raises(SettingsError):
        update_front_matter_loop(text, {"nonsense": 1})
    with pytest.raises(ReferenceFormatError, match="never closed"):
        update_front_matter_loop("---\ntitle: T\n", {"mode": "blip"})
    with pytest.raises(ReferenceFormatError, match="flow style"):
        update_front_matter_loop("---\n{title: T}\n---\n", {"mode": "blip"})
    with pytest.raises(ReferenceFormatError, match="could not be rewritten safely; edit it by hand"):
        update_front_matter_loop("---\n? loop\n: {mode: blip}\n---\n", {"mode": "guide"})
    odd_break = "---\nloop:\x85  mode: blip\ntitle: T\n---\nBody\n"
    assert parse_reference(update_front_matter_loop(odd_break, {"mode": "guide"})).loop.mode == "guide"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_update_on_shipped_references(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    updated = update_front_matter_loop(text, {"mode": "blip", "threshold": 1.25, "cooldown": 16})
    ref = parse_reference(updated, path)
    assert (ref.loop.threshold, ref.loop.cooldown) == (1.25, 16)
    assert ref.all_ids() == load_reference(path).all_ids()
    body = text[text.index("\n---\n") :]
    assert updated.endswith(body)


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "mode": st.sampled_from(["none", "prompt", "observe", "blip", "guide"]),
            "threshold": st.floats(0, 100, allow_nan=False),
            "window": st.integers(1, 4096),
            "rewind": st.sampled_from(["none", "sentence", "tokens:3"]),
            "blip_style": st.sampled_from(["system-turn", "inline-note"]),
        },
    )
)
def test_update_round_trips_any_valid_loop(loop: dict) -> None:
    updated = update_front_matter_loop(SAMPLE, loop)
    ref = parse_reference(updated)
    assert ref.loop == LoopSettings.from_mapping(loop)
    assert ref.loop_given == set(loop)
    assert updated.endswith(SAMPLE[_loop_block(SAMPLE)[1] :])


# --------------------------------------------------------------------------- structure: CommonMark's


def test_html_comments_hide_what_they_hold() -> None:
    """A commented-out rule or section is an author's note: no item, no blip, no section (it was all three)."""
    ref = parse_reference(
        "## Never\n<!--\n- Never mention the old price.\n-->\n- Never guess.\n"
        "<!-- ## Blips\n- when: /x/ → Hidden blip.\n-->\n## Style\nShort. <!-- inline note --> Plain.\n"
    )
    assert [s.id for s in ref.sections] == ["never", "style"]
    assert [(c.id, c.text) for c in ref.blip_candidates()] == [("never.1", "Never guess.")]
    assert ref.line_of("never.1") == 5
    assert render_reference(ref) == "## Never\n- Never guess.\n\n## Style\nShort.  Plain."


def test_one_scanner_decides_what_is_a_heading_an_item_and_a_fence() -> None:
    ref = parse_reference(
        "## Always\n- a\n  # not a section: inside the item\n\n"
        "Intro\n2. not an item: a paragraph goes on\n1. an item\n\n"
        "Para\n    ```\n- an item: four spaces do not open a fence after a paragraph\n\n"
        "Title\n---\n"  # a paragraph and a break, not a setext heading
        "<div>\n## Never\n- html does not swallow the heading\n"
    )
    assert [s.id for s in ref.sections] == ["always", "never"]
    assert [i.text for i in ref.item("always").items] == [
        "a\n# not a section: inside the item",
        "an item",
        "an item: four spaces do not open a fence after a paragraph",
    ]
    assert [i.text for i in ref.item("never").items] == ["html does not swallow the heading"]

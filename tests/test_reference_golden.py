"""Golden records of reference parsing and rendering: the loop's numbers depend on them.

Every reference in ``references/`` and ``eval/``, the references the tests build and a set of
tricky inputs are parsed; what the parser found (ids, lines, items, detectors, triggers,
probes, blip candidates, errors) and what ``render_reference`` gives (whole, and with each id
left out, as attribution does) must equal the record in ``tests/data/reference_golden.json``.
A change here changes what the model reads: make it on purpose or not at all.

Record entries that are missing (a new reference, a new case) with::

    python tests/test_reference_golden.py              # with the implementation in this tree
    python tests/test_reference_golden.py --from REV   # with lantern_studio/core/reference* at REV

``--from`` is for recording what the parser did *before* a change, so that the change is
checked against it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "reference_golden.json"
if str(REPO / "tests") not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO / "tests"))

# --------------------------------------------------------------------------- inputs

TRICKY: dict[str, str] = {
    "empty": "",
    "blank-lines": "\n\n  \n\t\n",
    "only-front-matter": "---\ntitle: Only\n---\n",
    "empty-front-matter": "---\n---\n# T\n",
    "front-matter-dots": "---\ntitle: Dots\n...\n## Intent\nBe kind.\n",
    "front-matter-trailing-spaces": "---  \ntitle: Spaces\n---\t\n## Intent\nBe kind.\n",
    "front-matter-not-first-line": "\n---\ntitle: no\n---\n## Intent\nBe kind.\n",
    "front-matter-bom-crlf": "\ufeff---\r\ntitle: Win\r\n---\r\n## Always\r\n- One.\r\n- Two.\r\n",
    "front-matter-unclosed": "---\ntitle: T\n## Intent\n",
    "front-matter-indented-close": "---\ntitle: T\n ---\n---\n## Intent\nx\n",
    "preamble-and-h1-title": "Some intro.\n\n# The Title\n\n## Intent\nHelp.\n",
    "h1-equals-title": "---\ntitle: Guide\n---\n# guide\nIntro under h1.\n## Style\nTerse.\n",
    "heading-closing-hashes": "# Title ##\n## Intent ###   \nx\n### A # b #\ny\n#### C#\nz\n",
    "heading-empty-and-hash-only": "#\n##   \n## #\n### ###\ntext\n",
    "heading-seven-hashes": "####### not a heading\n## Real\n- item\n",
    "heading-no-space": "#NoSpace\n##\tTab heading\n## Real\n",
    "heading-indented": " # one\n  ## two\n   ### three\n    #### code\n",
    "heading-trailing-spaces": "## Intent" + " " * 40 + "\nx\n## Never   \t\n- a\n",
    "heading-escaped-hash": "## Intent \\#\nx\n## Style \\##\ny\n",
    "heading-emphasis-kind": "## **Never**\n- a\n## _Always_:\n- b\n## `Blips`\n- c\n## Example\nd\n## Probe\n```yaml\n- prompt: p\n```\n",
    "duplicate-headings": "# A\n## A\n### a!\n## A\n## Preamble\n- x\nIntro? no.\n",
    "heading-in-blockquote": "## Intent\n> # quoted heading\n> - quoted item\nx\n",
    "heading-in-list-item": "## Always\n- # item heading\n- two\n  # indented heading\n",
    "setext-headings": "Title\n=====\n\n## Always\n- a\n\nSub\n---\n- b\n",
    "thematic-breaks": "## Always\n- a\n***\n- b\n- - -\n___\n* * *\n- c\n",
    "list-markers": "## Always\n- dash\n* star\n+ plus\n1. one\n2) two\n10. ten\n1234567890. too long\n",
    "list-tab-after-marker": "## Always\n-\tTab item\n1.\tTab numbered\n",
    "list-wide-gap": "## Always\n-      wide gap item\n  continued\n-     five\n",
    "list-empty-items": "## Always\n-\n- \n- real\n1.\n",
    "list-lazy-continuation": "## Always\n- first line\nlazy second line\n- next\n",
    "list-blank-then-indented": "## Always\n- a\n\n  still a\n\n- b\n\nNot an item.\n- c\n",
    "list-blank-then-shallow-indent": "## Always\n1. one\n\n  two spaces\n\n 1 space\n",
    "list-nested": "## Always\n- a\n  - a1\n    - a11\n  - a2\n- b\n   1. b1\n",
    "list-numbered-after-paragraph": "## Always\nIntro line\n2. two\n1. one\n",
    "list-star-after-paragraph": "## Always\nIntro line\n- dash\n",
    "list-indented-4-after-para": "## Always\nIntro\n    - indented four\n",
    "list-in-blockquote": "## Always\n> - quoted\n- real\n",
    "list-with-indented-code": "## Always\n-     code in item\n- plain\n",
    "fence-backtick-and-tilde": "## Examples\n```\n# no\n- no\n```\n~~~python\n## no\n~~~\n## After\n- yes\n",
    "fence-longer-close": "## Always\n````\n- no\n```\n- still no\n`````\n- yes\n",
    "fence-info-with-backtick": "## Always\n``` a`b\n- yes, not a fence\n```\n- inside\n",
    "fence-unclosed": "## Always\n- a\n```\n- no\n# no\n",
    "fence-indented-4": "## Always\nPara\n    ```\n- is this an item\n    ```\n- b\n",
    "fence-close-with-text": "## Always\n```\n``` text\n- no\n```\n- yes\n",
    "fence-close-indented": "## Always\n```\n   ```\n- yes\n",
    "fence-in-item": "## Always\n- a\n  ```\n  - no\n  ```\n- b\n",
    "fence-in-item-unindented": "## Always\n- a\n```\n- no\n```\n- b\n",
    "fence-in-item-then-unindented-text": "## Always\n- a\n  ```\n  code\n  ```\nText after.\n- b\n",
    "fence-tilde-with-backticks-info": "## Always\n~~~ a`b\n- no\n~~~\n- yes\n",
    "never-detectors": (
        "## Never\n"
        "- Single `regex: aspirin` in the middle.\n"
        "- Slashes `regex: /\\b[5-9]\\s?g\\b/`\n"
        "- In parens (`regex: dose`).\n"
        "- Double ``regex: a`b`` ticks.\n"
        "- Upper `REGEX: Loud` case.\n"
        "- Trailing dash — `regex: x`\n"
        "- Spaces `  regex:   spaced   ` around.\n"
        "- No detector here.\n"
        "- Code `not a detector` only.\n"
        "- `regex: starts` the item\n"
        "- Unclosed `regex: oops\n"
        "- Mixed ```regex: three``` ticks\n"
        "- Before `x `regex: y` after\n"
        "- Multi-line item\n  with `regex: second\n  line` detector\n"
        "- Scoped `regex: (?-i:PIN)\\b` flag\n"
    ),
    "never-prohibitions": (
        "## Never\n- aspirin for kids\n- PINs in chat\n- don't shout\n- Don’t whisper\n- **Never** bold\n"
        "- _do not_ italic\n- No way\n- Nothing else\n- avoid this\n- x\n- Élan\n"
    ),
    "blips-triggers": (
        "## Blips\n"
        "- when: /dose|mg/ → State the dose.\n"
        "- When: /aspirin/ -> Not for kids.\n"
        "- WHEN : plain words → Unslashed trigger.\n"
        "- when: /a/b/ → slash inside\n"
        "- when: /x/ → first → second arrow\n"
        "- when:   /spaced/   ->   spaced text  \n"
        "- when: a -> b -> c\n"
        "- Plain blip without trigger.\n"
        "- when: /multi/ → line one\n  line two\n"
        "- when:/tight/→tight\n"
    ),
    "probes-variants": (
        "## Probes\nSome words first.\n```text\n- prompt: not probes\n```\n"
        "```yaml title\n- prompt: One\n  expect: single\n  forbid: [a, 'b|c']\n  tags: [irrelevant, x]\n"
        "- prompt: '  Two  '\n  expect: ~\n  forbid:\n    - z\n- prompt: Three\n  tags: solo\n```\n"
    ),
    "probes-tilde-yml": "## Probe\n~~~yml\n- prompt: Tilde\n  expect: [t]\n~~~\n",
    "probes-empty-block": "## Probes\n```yaml\n```\n",
    "probes-null": "## Probes\n```yaml\n~\n```\n",
    "probes-two-sections": "## Probes\n```yaml\n- prompt: a\n```\n## Probes\n```yaml\n- prompt: b\n```\n",
    "comments": (
        "## Intent\nVisible. <!-- hidden --> Also visible.\n<!--\n- not an item?\n-->\nAfter.\n"
        "## Always\n- a <!-- note -->\n<!-- between -->\n- b\n"
        "## Examples\n```\n<!-- kept in code -->\n```\n<!-- unclosed comment\n"
    ),
    "comment-lines-in-never": "## Never\n<!--\n- commented item\n-->\n- real item\n",
    "intent-sentences": (
        "## Intent\nFirst sentence. Second one! Third? \"Quoted.\" (Paren.) e.g. not split. 4 starts a digit.\n"
        "\n- An item sentence. Another in the item.\n  Continued line.\n"
        "```\nCode. Not sentences.\n```\n"
        "Last paragraph\nspans lines. **Bold** end.\n"
    ),
    "intent-two-sections": "## Intent\nOne.\n## Intent\nTwo. Three.\n",
    "html-block": "## Always\n<div>\n- in html\n</div>\n\n- after\n",
    "html-inline-and-script": "## Intent\n<b>bold</b> text\n<script>alert(1)</script>\n\n## Always\n- x <i>y</i>\n",
    "crlf-everywhere": "## Intent\r\nHello.\r\n## Always\r\n- a\r\n  - nested\r\n- b\r\n```\r\n- no\r\n```\r\n",
    "lone-cr": "## Intent\rNot a line break here.\n## Always\n- a\rb\n",
    "tabs": "##\tIntent\n\tIndented by tab.\n## Always\n-\ta\n\t- nested by tab\n",
    "unicode-line-breaks": "## Intent\nOne\u2028two\u0085three.\n## Always\n- a\u2029b\n",
    "nul-and-controls": "## Intent\nNUL \x00 here \x07 bell.\n## Always\n- x\x00y\n",
    "non-ascii-headings": "## Intention générale\nTexte.\n## Никогда\n- нет\n## 🚫\n- emoji\n",
    "exclude-parents": "# T\n## Parent\n### Child\nText.\n## Empty\n### Also empty\n## Last\nEnd.\n",
    "trailing-whitespace-body": "## Style\nLine one.   \n\n\n\nLine two.\t\n\n",
    "lists-in-prose": "# Guide\n## Background\n1. one\n2. two\n### Detail\nText.\n",
    "always-multiline-items": "## Always\n- a\n  more a\n    deeper a\n- b\n\n  para in b\n",
    "link-reference-definition": "## Always\n[ref]: http://example.org\n- a\n[x]\n",
    "table": "## Examples\n| a | b |\n|---|---|\n| - x | # y |\n- after table\n",
    "yaml-in-other-section": "## Examples\n```yaml\n- prompt: not a probe\n```\n",
    "loop-front-matter": "---\nloop:\n  mode: blip\n  threshold: 2\ntags: a, b, a\nlinks: [x, x]\nversion: 01.10\n---\n## Intent\nx\n",
    "errors-detector-invalid": "## Never\n- Bad `regex: (unclosed`\n",
    "errors-blip-arrow": "## Blips\n- when: /dose/ no arrow\n",
    "errors-probes-missing": "## Probes\nNone.\n",
    "errors-probe-unclosed": "## Probes\n```yaml\n- prompt: a\n",
    "errors-front-matter-key": "---\ncolour: red\n---\n",
}


# Records that changed on purpose when the hand-written scanner gave way to CommonMark's
# (markdown-it-py); every other record was kept byte for byte. The random ``generated-*``
# documents were re-recorded then too; the ``wellformed-*`` ones (references as authors write
# them) did not change.
CHANGED_ON_PURPOSE = {
    "comment-lines-in-never": "an item inside a multi-line HTML comment no longer exists (it became a blip)",
    "comments": "a list item inside a multi-line HTML comment no longer exists (it was an Intent sentence)",
    "fence-indented-4": "a fence indented 4 spaces after a paragraph is paragraph text, not a fence",
    "heading-in-list-item": "a heading indented under a list item belongs to the item",
    "list-blank-then-shallow-indent": "text after a blank line indented less than the item's content ends the list",
    "list-numbered-after-paragraph": "a numbered item not starting at 1 cannot interrupt a paragraph",
    "fence-in-item-then-unindented-text": "an unindented line after a fence inside an item is not part of the item",
    # Its Examples read "**Analyst:** 1. Close …" then "2. Sign in …": the 2. and 3. lines continue
    # that paragraph, so examples.1/.2 are gone; what the model reads and the blips are unchanged.
    "eval/test/it-service-desk.md": "numbered lines after a paragraph line are that paragraph, not items",
}


def _generated(count: int = 400, seed: int = 20240101) -> dict[str, str]:
    """Random documents from Markdown-ish pieces: broad, deterministic coverage."""
    pieces = [
        "\n", "\n\n", "---\n", "- ", "* ", "1. ", "2) ", "  ", "    ", "\t", "# ", "## ", "### ", "## Never\n",
        "## Always\n", "## Blips\n", "## Intent\n", "## Examples\n", "## Probes\n", "```yaml\n- prompt: p\n```\n",
        "```\n", "~~~\n", "````\n", "`regex: a`", "`regex: b|c`", "``regex: x``", "when: /d/ → t", "when: e -> f",
        "<!-- c -->", "<!--", "-->", "> ", "***\n", "text", "Word.", " More words. ", "Next!", "\r\n", "é",
        "**b**", "_i_", "[l](u)", "<div>", "</div>", "|a|b|\n|-|-|\n", "===\n", "Sentence one. Two",
    ]
    rng = random.Random(seed)
    docs = {}
    for n in range(count):
        docs[f"generated-{n:03d}"] = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
    return docs


def _well_formed(count: int = 300, seed: int = 20240202) -> dict[str, str]:
    """Random references of the kind authors write: every part the parser knows, tidily spelled."""
    headings = ["# Title", "## Intent", "## Always", "## Never", "## Blips", "## Style", "## Examples",
                "## Background", "### Detail", "## Probes", "## Example", "## Intent"]
    prose = ["Help adults use pain relievers safely.", "Give the dose. Then stop!", "Short sentences, plain words.",
             "**Customer:** How much?", "**Pharmacist:** At most 4 g a day.", "A line with <!-- a note --> inside.",
             "Ask the pharmacist (not a doctor).", "Use “quotes” and ’apostrophes’. Next sentence?"]
    items = ["- State the maximum daily dose.", "- Mention the pharmacist.", "* Star item.", "+ Plus item.",
             "1. Numbered item.", "1) Other numbered item.", "- Never give aspirin. `regex: aspirin`",
             "- Do not exceed 4 g. (`regex: /\\b[5-9]\\s?g\\b/`)", "- when: /dose|mg/ → State the dose.",
             "- when: aspirin -> Not for children.", "- Item with <!-- a note -->", "-\tTabbed item.",
             "- PINs are secret.", "- Multi-line item\n  continued here.", "- Parent item\n  - nested item\n  - another",
             "- Item with code\n\n  ```\n  code in item\n  ```\n"]
    fences = ["```\ncode line\n# not a heading\n- not an item\n```", "~~~text\nplain\n~~~",
              "```yaml\n- prompt: What is the dose?\n  expect: ['4 ?g']\n  forbid: [aspirin]\n```"]
    rng = random.Random(seed)
    docs = {}
    for n in range(count):
        parts = []
        if rng.random() < 0.5:
            parts.append("---\ntitle: Generated\nslug: generated\n---")
        for _ in range(rng.randint(1, 8)):
            heading = rng.choice(headings)
            parts.append(heading)
            for _ in range(rng.randint(0, 5)):
                pool = rng.choice([prose, items, items, fences])
                if heading == "## Probes" and pool is fences:
                    continue
                parts.append(rng.choice(pool))
            if heading == "## Probes":
                parts.append(fences[2])
        docs[f"wellformed-{n:03d}"] = "".join(p + rng.choice(["\n", "\n\n", "\n"]) for p in parts)
    return docs


def _fixtures() -> dict[str, str]:
    """References the other tests build (their loop numbers come from these texts).

    Read as constants from the test sources (``ast``), so no test module is imported here.
    """
    wanted = {"helpers.py": "PIRATE", "test_reference.py": "SAMPLE", "app/conftest.py": "PARIS_REFERENCE",
              "test_pack.py": "REF"}
    found = {}
    for file, constant in wanted.items():
        source = REPO / "tests" / file
        if not source.exists():
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == constant for t in node.targets):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                if isinstance(value, str):
                    if constant == "REF":  # a template: fill it as the pack tests do
                        value = value.format(title="Test A", slug="test-a", links="test-b")
                    found[f"fixture-{file}:{constant}"] = value
    return found


def reference_files() -> dict[str, Path]:
    files = sorted((REPO / "references").glob("*.md")) + sorted(
        p for p in (REPO / "eval").glob("**/*.md") if p.name.lower() != "readme.md")
    return {path.relative_to(REPO).as_posix(): path for path in files}


def all_cases() -> dict[str, tuple[str, str | None]]:
    """name → (text, path given to the parser or None)."""
    cases: dict[str, tuple[str, str | None]] = {}
    for name, path in reference_files().items():
        cases[name] = (path.read_text(encoding="utf-8"), path.name)
    for name, text in {**_fixtures(), **TRICKY}.items():
        cases[name] = (text, None)
        cases[f"{name}@file"] = (text, "/refs/My_Notes-v2.md")
    for name, text in {**_generated(), **_well_formed()}.items():
        cases[name] = (text, None)
    return cases


# --------------------------------------------------------------------------- the record


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _pattern(p: Any) -> str | None:
    return None if p is None else p.pattern


def snapshot(ref_module: Any, text: str, path: str | None) -> dict[str, Any]:
    """What the parser and renderer make of ``text``, through the public API only."""
    from lantern_studio.core.errors import ReferenceFormatError

    try:
        ref = ref_module.parse_reference(text, path)
    except ReferenceFormatError as exc:
        return {"error": str(exc)}
    render = ref_module.render_reference
    ids = ref.all_ids()
    candidates = ref.blip_candidates()
    return {
        "meta": [ref.title, ref.slug, ref.version, ref.author, ref.status, list(ref.tags), list(ref.links),
                 ref.front_matter_end_line, ref.sha256],
        # only what the front matter sets: LoopSettings gains fields as the loop grows
        "loop": {key: getattr(ref.loop, key) for key in sorted(ref.loop_given)},
        "sections": [[s.id, s.title, s.kind, s.level, s.line, s.body] for s in ref.sections],
        "items": [[i.id, i.section_id, i.text, i.line, _pattern(i.detector), _pattern(i.trigger)]
                  for s in ref.sections for i in s.items],
        "probes": [[p.prompt, [_pattern(x) for x in p.expect], [_pattern(x) for x in p.forbid], p.line,
                    list(getattr(p, "tags", ()))] for p in ref.probes],
        "detectors": [[i, _pattern(p)] for i, p in ref.detectors()],
        "blips": [[c.id, c.text, c.kind, _pattern(c.trigger)] for c in candidates],
        "lines": {i: ref.line_of(i) for i in [*ids, *(c.id for c in candidates)]},
        "render": render(ref),
        "render_half": render(ref, exclude=ids[::2]),
        "render_without": {i: _sha(render(ref, exclude=[i])) for i in ids},
    }


def compact(name: str, record: dict[str, Any]) -> Any:
    """Generated cases are kept as a hash (many, and only their equality matters)."""
    if name.startswith(("generated-", "wellformed-")):
        return _sha(json.dumps(record, sort_keys=True, ensure_ascii=True))
    return record


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}


# --------------------------------------------------------------------------- tests

CASES = all_cases()
GOLDEN_DATA = load_golden()


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_and_render_match_the_golden_record(name: str) -> None:
    from lantern_studio.core import reference

    text, path = CASES[name]
    assert name in GOLDEN_DATA, (
        f"no golden record for {name}: record it with `python tests/test_reference_golden.py --from <rev>`, "
        "where <rev> is the last commit before any parser change"
    )
    entry = GOLDEN_DATA[name]
    assert entry["input"] == _sha(text), f"the input of {name} changed since its record; re-record it"
    assert compact(name, snapshot(reference, text, path)) == entry["record"]


def test_every_golden_record_has_its_input() -> None:
    stale = sorted(set(GOLDEN_DATA) - set(CASES))
    assert not stale, f"golden records without an input (remove them by re-recording): {stale[:5]}"


# --------------------------------------------------------------------------- recording


def _module_from_rev(rev: str) -> types.ModuleType:
    """``lantern_studio.core.reference`` as it was at ``rev`` (a module or a package)."""
    tree = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "lantern_studio/core/"],
                          cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    wanted = [p for p in tree if p == "lantern_studio/core/reference.py" or p.startswith("lantern_studio/core/reference/")]
    if not wanted:
        raise SystemExit(f"{rev} has no lantern_studio/core/reference*")
    root = Path(tempfile.mkdtemp(prefix="golden-"))
    package = any(p.startswith("lantern_studio/core/reference/") for p in wanted)
    for p in wanted:
        target = root / p.replace("lantern_studio/core/reference", "_golden_reference", 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "show", f"{rev}:{p}"], cwd=REPO, check=True, capture_output=True).stdout
        # the old code imports the core's other modules relatively; point those at today's core
        if package:
            blob = blob.replace(b"from ..", b"from lantern_studio.core.")
        else:
            blob = blob.replace(b"from .", b"from lantern_studio.core.")
        target.write_bytes(blob)
    sys.path.insert(0, str(root))
    return importlib.import_module("_golden_reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="rev", help="record with the reference code at this git revision")
    parser.add_argument("--all", action="store_true", help="re-record every entry, not only missing or stale ones")
    args = parser.parse_args()
    if args.rev:
        module = _module_from_rev(args.rev)
    else:
        from lantern_studio.core import reference as module
    golden = {} if args.all else load_golden()
    changed = 0
    for name, (text, path) in sorted(CASES.items()):
        entry = golden.get(name)
        if entry is not None and entry["input"] == _sha(text):
            continue
        golden[name] = {"input": _sha(text), "record": compact(name, snapshot(module, text, path))}
        changed += 1
    for name in set(golden) - set(CASES):
        del golden[name]
        changed += 1
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{changed} record(s) written to {GOLDEN.relative_to(REPO)}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()

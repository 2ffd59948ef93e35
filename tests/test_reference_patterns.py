"""Reference regexes (detectors, triggers, probes): RE2 where it can, a time budget elsewhere.

Answers must equal Python's ``re`` (the syntax authors write), and no pattern and text may hang
a run. Wall-clock bounds here only guard against a hang (a forked child that is killed), they
never measure speed.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, example, given, note, settings
from hypothesis import strategies as st

from lantern_studio.core.errors import ReferenceFormatError
from lantern_studio.core.reference import Pattern, PatternTimeout, load_reference, parse_reference
from lantern_studio.core.reference import patterns as patterns_module
from lantern_studio.paths import references_dir

HANG_GUARD_SECONDS = 60.0


def _child(queue: Any, fn: Any, args: tuple) -> None:
    queue.put(fn(*args))


def finishes(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a forked child; fails the test if it has not finished within the hang guard."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue, fn, args))
    child.start()
    child.join(HANG_GUARD_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"{fn.__name__} did not finish within {HANG_GUARD_SECONDS:.0f} s")
    assert child.exitcode == 0
    return queue.get(timeout=10)


# --------------------------------------------------------------------------- the cases

CATASTROPHIC_NEVER = "## Never\n- Never say zzz. `regex: (.*.*)*zzz$`\n"


def _detect_like_the_engine(text: str) -> list[tuple[int, str]]:
    """What the engine's detector loop does on each new piece of output (its 256-character tail)."""
    (_id, detector), = parse_reference(CATASTROPHIC_NEVER).detectors()
    hits = []
    for end in range(100, len(text) + 1, 100):
        tail = text[:end][-256:]
        for m in detector.finditer(tail):
            if m.group(0):
                hits.append((end, m.group(0)[-3:]))
                break
    whole = detector.search(text)
    return hits + [(-1, whole.group(0)[-3:] if whole else "")]


def test_the_catastrophic_detector_no_longer_hangs_a_run() -> None:
    (_id, detector), = parse_reference(CATASTROPHIC_NEVER).detectors()
    assert detector.engine == "re2"
    output = ("a" * 99 + " ") * 100  # 10,000 characters, no zzz
    assert finishes(_detect_like_the_engine, output) == [(-1, "")]
    ending = output[:-4] + "zzz\n"
    assert finishes(_detect_like_the_engine, ending)[-1] == (-1, "zzz")


def _slow_lookbehind(text: str) -> tuple[Any, str | None, str]:
    ref = parse_reference(
        "## Never\n- No. `regex: (?<!x)(a|aa)+b`\n"
        "## Blips\n- when: /(?<!x)(a|aa)+b/ → Slow trigger.\n"
        "## Probes\n```yaml\n- prompt: p\n  expect: ['(?<!x)(a|aa)+b']\n```\n"
    )
    (_id, detector), = ref.detectors()
    trigger = ref.item("blips.1").trigger
    found = [m.group(0) for m in detector.finditer(text)]
    return (detector.search(text), ref.probes[0].check(text), f"{trigger.search(text)}|{found}")


def test_a_pattern_out_of_budget_is_no_match_for_detectors_and_triggers_and_a_reason_for_probes() -> None:
    text = ("a" * 30 + " ") * 20
    detector, probe_failure, trigger_and_iter = finishes(_slow_lookbehind, text)
    assert detector is None
    assert trigger_and_iter == "None|[]"
    assert probe_failure == "the pattern /(?<!x)(a|aa)+b/ took too long"
    with pytest.raises(PatternTimeout, match="took too long"):
        Pattern("(?<!x)(a|aa)+b").search_or_timeout(text)


def test_shipped_patterns_run_on_the_engine_they_need() -> None:
    engines = {}
    for path in sorted(references_dir().glob("*.md")):
        ref = load_reference(path)
        for item_id, detector in ref.detectors():
            engines[f"{path.stem}:{item_id}"] = detector.engine
            assert ("(?<" in detector.pattern) == (detector.engine == "regex"), detector.pattern
        for probe in ref.probes:
            for p in (*probe.expect, *probe.forbid):
                assert p.flags & re.IGNORECASE and p.engine in ("re2", "regex")
    assert "re2" in engines.values() and "regex" in engines.values()


def test_scoped_flags_and_case_insensitivity_on_both_engines() -> None:
    for source in (r"(?-i:PIN)\b", r"(?<!x)(?-i:PIN)\b"):
        pattern = Pattern(source)
        assert pattern.search("my PIN, please") and not pattern.search("my pin, please"), pattern
    assert Pattern(r"aspirin").search("ASPIRIN") and Pattern(r"(?<!n)aspirin").search("Aspirin")
    assert Pattern(r"(?-i:PIN)\b").engine == "re2" and Pattern(r"(?<!x)(?-i:PIN)\b").engine == "regex"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_re2_answers_only_where_it_means_what_python_means() -> None:
    word = Pattern(r"\bcafé\b")
    assert word.search("un café noir")  # RE2's \b is ASCII-only: this text goes to the fallback
    assert re.search(r"\bcafé\b", "un café noir")
    dollar = Pattern(r"zzz$")
    assert dollar.search("zzz\n") and re.search("zzz$", "zzz\n", re.I)  # $ before a final newline
    empty = Pattern(r"|a")
    assert [m.span() for m in empty.finditer("a")] == [m.span() for m in re.finditer("|a", "a")]
    assert Pattern(r"a{,2}").search("aaa").span() == (0, 2) and Pattern(r"x{}").search("x{}")
    posix = Pattern(r"[[:alpha:]]")  # to Python, a class of "[:alph" and then "]"; to RE2, letters
    assert posix.search("a]") and not posix.search("b") and re.search(r"[[:alpha:]]", "a]")
    assert Pattern(r"\s").search("\x1c") and Pattern(r"\s").engine == "re2"  # Python's \s, not RE2's


def test_the_documented_differences_from_re() -> None:
    """Python's re also folds i with the dotless ı and I with İ; both engines here do not."""
    assert re.search("i", "ı", re.IGNORECASE) and not Pattern("i").search("ı")
    assert re.search("(?<!x)i", "ı", re.IGNORECASE) and not Pattern("(?<!x)i").search("ı")
    # \B on an empty text matches, as in RE2, mrab-regex and Perl
    assert Pattern(r"\B").search("") and Pattern(r"(?<!x)\B").search("")


def test_patterns_neither_engine_can_take_are_refused_with_file_and_line() -> None:
    long_regex = "a" * (patterns_module.MAX_PATTERN_CHARS + 1)
    with pytest.raises(ReferenceFormatError) as caught:
        parse_reference(f"## Never\n- x `regex: {long_regex}`\n", "r.md")
    message = str(caught.value)
    assert message.startswith("r.md, line 2: the Never detector regex 'aaaa") and "longer than 16 KB" in message
    assert message.endswith(".") and "\n" not in message


def test_pack_verify_refuses_a_reference_whose_pattern_cannot_be_compiled(tmp_path) -> None:
    import hashlib
    import zipfile

    from lantern_studio.core.pack import canonical_json, verify_pack

    for regex in ("(unclosed", "a" * (patterns_module.MAX_PATTERN_CHARS + 1)):
        data = (f"---\ntitle: T\nslug: t\nversion: 1.0.0\nauthor: A\nstatus: draft\n---\n"
                f"# Never\n- x `regex: {regex}`\n").encode()
        files = {"references/t.md": data}
        manifest = {
            "format": "lantern-pack", "format_version": 1, "name": "T", "slug": "t", "version": "1.0.0",
            "author": None, "created": None, "description": "", "entry": "references/t.md", "loop": {},
            "model_hint": None, "files": {name: hashlib.sha256(d).hexdigest() for name, d in files.items()},
        }
        path = tmp_path / "t.lantern"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("manifest.json", canonical_json(manifest))
            zf.writestr("references/t.md", data)
        verdict = verify_pack(path)
        assert verdict.verdict == "invalid" and "Never detector regex" in (verdict.error or ""), verdict


# --------------------------------------------------------------------------- the class: generated

_ATOMS = ["a", "b", "A", " ", ".", "[ab]", "[^a]", "[a-c]", r"\b", r"\B", r"\w", r"\W", r"\s", r"\S", r"\d",
          "^", "$", "é", "’", r"\.", "_", "1"]
_LOOKS = ["(?=a)", "(?!b)", "(?<=a)", "(?<!b)", "(?<=ab)", "(?<! )"]


@st.composite
def regexes(draw: Any, depth: int = 0) -> str:
    """Small regexes from a grammar: nested quantifiers, alternations, groups, look-arounds, flags."""
    if depth > 3 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(_ATOMS + _LOOKS if depth else _ATOMS))
    kind = draw(st.sampled_from(["concat", "alt", "group", "star", "plus", "opt", "rep", "lazy", "look", "flag"]))
    inner = draw(regexes(depth + 1))
    if kind == "concat":
        return inner + draw(regexes(depth + 1))
    if kind == "alt":
        return f"(?:{inner}|{draw(regexes(depth + 1))})"
    if kind == "group":
        return f"({inner})"
    if kind in ("star", "plus", "opt"):
        return f"(?:{inner}){ {'star': '*', 'plus': '+', 'opt': '?'}[kind]}"
    if kind == "rep":
        return f"(?:{inner}){draw(st.sampled_from(['{2}', '{0,3}', '{,2}', '{1,}']))}"
    if kind == "lazy":
        return f"(?:{inner}){draw(st.sampled_from(['*?', '+?', '??']))}"
    if kind == "look":
        return draw(st.sampled_from(_LOOKS)) + inner
    return f"(?-i:{inner})"


# İ and ı are left out: their folding is the one documented difference from re.
_TEXT_ALPHABET = "aAbB \n1._é’"


@st.composite
def texts(draw: Any) -> str:
    """Short texts and adversarial ones (long runs that make backtracking engines explode)."""
    if draw(st.booleans()):
        return draw(st.text(alphabet=_TEXT_ALPHABET, max_size=40))
    unit = draw(st.text(alphabet=_TEXT_ALPHABET, min_size=1, max_size=3))
    return unit * draw(st.integers(10, 400)) + draw(st.text(alphabet=_TEXT_ALPHABET, max_size=3))


def _python_answer(conn: Any) -> None:
    """Worker: Python's own answer for (pattern, text)."""
    while True:
        pattern, text = conn.recv()
        compiled = re.compile(pattern, re.IGNORECASE)
        found = compiled.search(text)
        spans = [m.span() for _, m in zip(range(200), compiled.finditer(text), strict=False)]
        conn.send((found.span() if found else None, spans))


class PythonRe:
    """Python's ``re`` in a child process: an answer, or None when it does not finish quickly."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("fork")
        self.child = None
        self._start()

    def _start(self) -> None:
        self.conn, child_conn = self.ctx.Pipe()
        self.child = self.ctx.Process(target=_python_answer, args=(child_conn,), daemon=True)
        self.child.start()

    def answer(self, pattern: str, text: str, timeout: float = 0.5) -> Any:
        self.conn.send((pattern, text))
        if self.conn.poll(timeout):
            return self.conn.recv()
        self.child.kill()
        self.child.join()
        self._start()
        return None

    def close(self) -> None:
        self.child.kill()
        self.child.join()


@pytest.fixture(scope="module")
def python_re():
    worker = PythonRe()
    yield worker
    worker.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(regexes(), texts())
@example("(?:(?:a|A)+)+$", "a" * 40 + "b")  # exponential for a backtracking engine; RE2 is linear
@example("(?<=a)(?:(?:a|A)+)+$", "a" * 40 + "b")  # the same with a look-behind: the budget holds it
@example("(?:.*.*)*zzz$", "a" * 3000 + "zzz!")
def test_generated_patterns_answer_as_python_re_and_never_hang(python_re: PythonRe, source: str, text: str) -> None:
    try:
        re.compile(source, re.IGNORECASE)
    except re.error:
        assume(False)
    assume(text or r"\B" not in source)  # re never matches \B on "": a documented difference
    pattern = Pattern(source)
    note(f"engine {pattern.engine}")
    started = time.monotonic()
    try:
        found = pattern.search_or_timeout(text)
        timed_out = False
    except PatternTimeout:
        found, timed_out = None, True
    iter_started = time.monotonic()
    spans = [m.span() for _, m in zip(range(200), pattern.finditer(text), strict=False)]
    cut = time.monotonic() - iter_started >= patterns_module.SEARCH_BUDGET_SECONDS  # may have stopped early
    # a hang guard, not a speed test: the budget is 0.1 s per search
    assert time.monotonic() - started < 30 * patterns_module.SEARCH_BUDGET_SECONDS + 10
    expected = python_re.answer(source, text)
    if expected is None or timed_out:
        event("not compared: re is slow here, or the budget ran out")
        return  # only "no hang" is asserted
    event(f"compared with re ({pattern.engine})")
    assert (found.span() if found else None) == expected[0]
    if not cut:
        assert spans == expected[1]

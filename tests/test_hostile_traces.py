"""Issue 12, traces: the reader raises only TraceError, and text with unusual line breaks round-trips."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from helpers import one_sentence
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pack_builders import call_on_fifo, lantern_runner, write_ref

from lantern_studio.core.errors import TraceError
from lantern_studio.core.events import (
    EVENT_TYPES,
    BlipEvent,
    Done,
    RewindEvent,
    RuleHit,
    TokenEvent,
    Transcript,
    event_to_json,
)
from lantern_studio.core.pack import export_pack, import_pack, read_pack
from lantern_studio.core.trace import make_header, parse_trace_lines, read_trace, write_trace

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SEPARATORS = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e\r"


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERN_CONFIG_DIR", str(tmp_path / "config"))


def header(**overrides) -> dict:
    return make_header(model_name="m", model_sha256="0" * 64, prompt="hi", mode="observe") | overrides


def token(**overrides) -> dict:
    return event_to_json(TokenEvent(index=0, token_id=5, text="Hi", logp_plant=-0.5, logp_ref=-1.0, error=0.5)) | overrides


def write_lines(path, *objs) -> object:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), "utf-8")
    return path


# ---------------------------------------------------------------------------
# Item 10: only TraceError, for every hand-edited trace in the issue and its class


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, "line 2"),
        ('{"kind": "token", "index": 0, "token_id": 1, "text": "x", "top_plant": "not a list"}', "top_plant"),
        ('{"kind": "token", "index": "zero", "token_id": 1, "text": "x"}', "index"),
        ('{"kind": "token", "index": -3, "token_id": 1, "text": "x"}', "negative"),
        ('{"kind": "rewind", "from_index": 0, "count": 1.5}', "count"),
        ('{"kind": ["token"], "index": 0}', "unknown event kind"),
        ('{"kind": "rescore", "start": 0, "logp_ref": [1.0], "error": [], "divergence": [], "top_ref": []}', "lengths"),
        ('{"kind": "done", "stats": ' + "[" * 40 + "]" * 40 + "}", "deeper"),
        ('{"kind": "token", "index": 0, "token_id": 1, "text": "x", "error": NaN}', "not valid JSON"),
        ('{"kind": "blip", "index": 0, "text": 5, "source_id": "a", "reason": "r"}', "text"),
    ],
    ids=["deep-nesting", "string-for-list", "index-zero", "negative-index", "float-count", "list-kind",
         "ragged-rescore", "deep-stats", "nan", "number-for-text"],  # fmt: skip
)
def test_a_hand_edited_event_line_is_one_trace_error(tmp_path, line, needle):
    path = write_lines(tmp_path / "edited.jsonl", header(), line)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    one_sentence(caught.value, needle)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [({"reference": "a string"}, "'reference'"), ({"model": ["m"]}, "'model'"), ({"prompt": 42}, "'prompt'"),
     ({"loop": "fast"}, "'loop'"), ({"model": {"name": 5}}, "name")],  # fmt: skip
)
def test_a_header_of_the_wrong_shape_is_one_trace_error(tmp_path, changes, needle):
    path = write_lines(tmp_path / "edited.jsonl", header(**changes), token())
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    one_sentence(caught.value, needle)


def test_a_trace_that_is_a_fifo_or_a_directory_is_refused_at_once(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.jsonl")
    result = call_on_fifo(tmp_path / "fifo.jsonl", lambda: read_trace(tmp_path / "fifo.jsonl"))
    assert isinstance(result, TraceError) and "cannot be opened" in str(result)
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(TraceError, match="cannot be opened"):
        read_trace(tmp_path / "dir.jsonl")


def _json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )


_FIELD_NAMES = sorted({f.name for cls in EVENT_TYPES.values() for f in fields(cls)})


def _replayable(trace) -> None:
    """What the studio does with a trace: the events replay into a Transcript and keep their types."""
    transcript = Transcript().extend(trace.events)
    _ = transcript.answer
    for event in trace.events:
        if isinstance(event, TokenEvent):
            assert isinstance(event.index, int) and isinstance(event.text, str)
            assert all(isinstance(t, str) and isinstance(lp, float) for t, lp in event.top_plant)
    h = trace.header
    (h.get("reference") or {}).get("slug")
    (h.get("model") or {}).get("name")
    str(h.get("prompt", ""))


@FUZZ
@given(kind=st.sampled_from(sorted(EVENT_TYPES)), key=st.sampled_from(_FIELD_NAMES), value=_json_values())
def test_fuzz_any_value_in_any_event_field(tmp_path, kind, key, value):
    base = {
        "token": token(), "blip": event_to_json(BlipEvent(0, "b", "s", "r")), "rewind": event_to_json(RewindEvent(0, 1)),
        "rule": event_to_json(RuleHit(0, "s", "m")), "done": event_to_json(Done({})),
        "rescore": {"kind": "rescore", "start": 0, "logp_ref": [], "error": [], "divergence": [], "top_ref": []},
        "failed": {"kind": "failed", "message": "x"},
    }[kind]  # fmt: skip
    path = write_lines(tmp_path / "f.jsonl", header(), token(), base | {key: value})
    try:
        trace = read_trace(path)
    except TraceError:
        return
    _replayable(trace)


@FUZZ
@given(key=st.sampled_from(["reference", "model", "prompt", "loop", "sampling", "mode", "answer", "created"]),
       value=_json_values())  # fmt: skip
def test_fuzz_any_value_in_any_header_field(tmp_path, key, value):
    path = write_lines(tmp_path / "h.jsonl", header(**{key: value}), token())
    try:
        trace = read_trace(path)
    except TraceError:
        return
    _replayable(trace)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes_after_a_header(tmp_path, data):
    path = tmp_path / "r.jsonl"
    path.write_bytes(json.dumps(header()).encode() + b"\n" + data)
    try:
        _replayable(read_trace(path))
    except TraceError:
        pass


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=6))
def test_fuzz_flipped_bytes_of_a_valid_trace(tmp_path, flips):
    path = write_trace(tmp_path / "v.jsonl", header(), [TokenEvent(0, 1, "a", -0.1, -0.2, 0.1, top_plant=[("a", -0.1)]),
                                                         RewindEvent(0, 1), Done({"tokens": 1})])  # fmt: skip
    data = bytearray(path.read_bytes())
    for index, xor in flips:
        data[index % len(data)] ^= xor
    path.write_bytes(bytes(data))
    try:
        _replayable(read_trace(path))
    except TraceError:
        pass


# ---------------------------------------------------------------------------
# Item 11: line breaks other than "\n" inside text round-trip, through traces and packs


def test_the_issue_case_a_prompt_with_u2028_packs_and_imports(tmp_path, monkeypatch, capsys):
    lantern = lantern_runner(monkeypatch, capsys)
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a")
    trace = write_trace(tmp_path / "run.jsonl", header(prompt="line one\u2028line two"),
                        [TokenEvent(0, 1, "a\u2029b"), Done({})])  # fmt: skip
    code, _, err = lantern("pack", "export", d / "test-a.md", "-o", tmp_path / "a.lantern", "--include-traces", trace)
    assert code == 0, err
    written = import_pack(tmp_path / "a.lantern", tmp_path / "in")
    back = read_trace(next(p for p in written if p.suffix == ".jsonl"))
    assert back.header["prompt"] == "line one\u2028line two" and back.events[0].text == "a\u2029b"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(SEPARATORS)),
       texts=st.lists(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(SEPARATORS)), max_size=5))  # fmt: skip
@example(prompt="line one\u2028line two", texts=["\u2029", "\x85", "a\rb"])
def test_any_text_round_trips_through_a_trace_and_a_pack(tmp_path, prompt, texts):
    events = [TokenEvent(i, i, text) for i, text in enumerate(texts)] + [Done({})]
    path = write_trace(tmp_path / "t.jsonl", header(prompt=prompt), events)
    back = read_trace(path)
    assert back.header["prompt"] == prompt
    assert [event_to_json(e) for e in back.events] == [event_to_json(e) for e in events]
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert parse_trace_lines(lines).header["prompt"] == prompt
    d = tmp_path / "refs"
    d.mkdir(exist_ok=True)
    write_ref(d, "test-a")
    pack = read_pack(export_pack([d / "test-a.md"], tmp_path / "a.lantern", trace_paths=[path]))
    assert pack.traces["traces/t.jsonl"] == path.read_bytes()

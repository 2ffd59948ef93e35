"""Traces: a run written as JSONL and read back equals the live run."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers import PIRATE, one_sentence

from lantern_studio.core.errors import TraceError
from lantern_studio.core.events import (
    BlipEvent,
    Done,
    RewindEvent,
    RuleHit,
    TokenEvent,
    Transcript,
    event_to_json,
)
from lantern_studio.core.models import BUILTINS
from lantern_studio.core.reference import load_reference
from lantern_studio.core.settings import LoopSettings, SamplingSettings
from lantern_studio.core.trace import (
    TraceWriter,
    make_header,
    parse_trace_lines,
    read_trace,
    write_trace,
)

PARIS = "What is the capital of France?"




class LiveRun:
    def __init__(self, engine, reference, prompt, loop, sampling):
        self.reference, self.prompt, self.loop, self.sampling = reference, prompt, loop, sampling
        self.events = []
        self.at_yield = []  # each event's JSON at the moment it was yielded
        for ev in engine.run(prompt, reference, loop, sampling):
            self.at_yield.append(event_to_json(ev))
            self.events.append(ev)
        self.transcript = Transcript().extend(self.events)
        self.header = make_header(
            model_name=engine.model_name, model_sha256=engine.backend.model_sha256(), prompt=prompt,
            mode=loop.mode, reference_slug=reference.slug, reference_sha256=reference.sha256,
            loop=loop.to_dict(), sampling=asdict(sampling))


@pytest.fixture(scope="module")
def pirate(tmp_path_factory):
    path = tmp_path_factory.mktemp("refs") / "pirate.md"
    path.write_text(PIRATE, encoding="utf-8")
    return load_reference(path)


@pytest.fixture(scope="module")
def paris_run(engine, pirate):
    """Blip mode against the Never rule: rule hits, rewinds and blips all happen."""
    return LiveRun(engine, pirate, PARIS, LoopSettings(mode="blip"), SamplingSettings(max_tokens=40))


def kinds(events) -> set[str]:
    return {e.kind for e in events}


def test_the_live_run_has_every_kind_of_event(paris_run):
    # Guards the other tests: a roundtrip of tokens alone would prove little.
    assert {"token", "rule", "rewind", "blip", "done"} <= kinds(paris_run.events)
    assert paris_run.transcript.rewound


def test_write_then_read_gives_the_live_events(paris_run, tmp_path):
    path = write_trace(tmp_path / "run.jsonl", paris_run.header, paris_run.events)
    trace = read_trace(path)
    assert [event_to_json(e) for e in trace.events] == [event_to_json(e) for e in paris_run.events]
    assert [type(e) for e in trace.events] == [type(e) for e in paris_run.events]
    assert [event_to_json(e) for e in trace.replay()] == [event_to_json(e) for e in paris_run.events]
    top = next(e for e in trace.events if isinstance(e, TokenEvent) and e.top_ref)
    assert isinstance(top.top_ref[0], tuple)  # same shapes as live: (text, logp) tuples


def test_replayed_transcript_equals_the_live_one(paris_run, tmp_path):
    trace = read_trace(write_trace(tmp_path / "run.jsonl", paris_run.header, paris_run.events))
    live, replay = paris_run.transcript, Transcript().extend(trace.replay())
    assert replay.answer == live.answer
    assert replay.visible == live.visible and replay.rewound == live.rewound
    assert [asdict(b) for b in replay.blips] == [asdict(b) for b in live.blips]
    assert [asdict(r) for r in replay.rules] == [asdict(r) for r in live.rules]
    assert replay.done.stats == live.done.stats


def test_header_fields(paris_run, pirate, engine, tmp_path):
    trace = read_trace(write_trace(tmp_path / "run.jsonl", paris_run.header, paris_run.events))
    h = trace.header
    assert h["format"] == "lantern-trace" and h["version"] == 1
    assert h["model"] == {"name": engine.model_name, "sha256": BUILTINS["smollm2"].sha256}
    assert h["reference"]["slug"] == "pirate"
    assert h["reference"]["sha256"] == pirate.sha256 and re.fullmatch(r"[0-9a-f]{64}", pirate.sha256)
    assert h["prompt"] == PARIS and h["mode"] == "blip"
    assert h["loop"] == LoopSettings(mode="blip").to_dict()
    assert LoopSettings.from_mapping(h["loop"]) == LoopSettings(mode="blip")
    assert h["sampling"] == asdict(SamplingSettings(max_tokens=40))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", h["created"])


def test_summary_line_is_last_and_matches_the_run(paris_run, tmp_path):
    path = write_trace(tmp_path / "run.jsonl", paris_run.header, paris_run.events)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(paris_run.events) + 1
    last = json.loads(lines[-1])
    assert last["kind"] == "summary"
    summary = read_trace(path).summary
    assert summary == last
    live = paris_run.transcript
    assert summary["answer"] == live.answer
    assert summary["tokens"] == len(live.visible) and summary["blips"] == len(live.blips)
    assert summary["stats"] == live.done.stats


def test_streamed_trace_equals_the_live_events(paris_run, tmp_path):
    """As `lantern run --trace` does it: written event by event while the run goes on."""
    path = tmp_path / "streamed.jsonl"
    with TraceWriter(path, paris_run.header) as writer:
        for ev in paris_run.events:
            writer.write(ev)
    assert [event_to_json(e) for e in read_trace(path).events] == paris_run.at_yield


def test_events_do_not_change_after_they_are_yielded_in_blip_mode(engine, pirate, tmp_path):
    run = LiveRun(engine, pirate, "Tell me about the sea.", LoopSettings(mode="blip"),
                  SamplingSettings(max_tokens=30))
    final = [event_to_json(e) for e in run.events]
    assert any(e.get("control") is not None for e in final)  # the controller ran on scored tokens
    path = tmp_path / "streamed.jsonl"
    with TraceWriter(path, run.header) as writer:
        for ev, snapshot in zip(run.events, run.at_yield):
            writer.write(ev.__class__(**snapshot) if ev.kind != "done" else ev)
    replay = Transcript().extend(read_trace(path).events)
    assert [t.control for t in replay.tokens] == [t.control for t in run.transcript.tokens]


# -- refusing what is not a trace we understand --------------------------------------------

def header(**changes):
    h = make_header(model_name="m", model_sha256="0" * 64, prompt="p", mode="observe")
    h.update(changes)
    return h


def write_lines(path: Path, *objs_or_text) -> Path:
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objs_or_text]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TOKEN = event_to_json(TokenEvent(index=0, token_id=5, text="Hi", logp_plant=-0.5, logp_ref=-1.0, error=0.5))


def test_a_future_version_is_refused_naming_the_version(tmp_path):
    path = write_lines(tmp_path / "future.jsonl", header(version=99), TOKEN)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "version 99", "future.jsonl")


@pytest.mark.parametrize("version", [0, -1, "1", True, None, 1.0])
def test_invalid_versions_are_refused(tmp_path, version):
    path = write_lines(tmp_path / "odd.jsonl", header(version=version), TOKEN)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "version")


@pytest.mark.parametrize("first", [{"hello": "world"}, {"format": "lantern-pack", "version": 1}, [1, 2], "42"])
def test_a_jsonl_that_is_not_a_trace_is_refused(tmp_path, first):
    path = write_lines(tmp_path / "other.jsonl", first, {"kind": "token"})
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "not a Lantern trace")


def test_a_broken_json_line_is_refused_naming_the_line(tmp_path):
    path = write_lines(tmp_path / "broken.jsonl", header(), TOKEN, '{"kind": "token", "index": 1,', TOKEN)
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "line 3", "not valid JSON")


def test_an_unknown_event_is_refused_naming_the_line(tmp_path):
    path = write_lines(tmp_path / "odd.jsonl", header(), TOKEN, TOKEN, {"kind": "explosion"})
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "line 4", "explosion")


def test_an_event_with_extra_fields_is_refused(tmp_path):
    path = write_lines(tmp_path / "odd.jsonl", header(), dict(TOKEN, secret=1))
    with pytest.raises(TraceError) as info:
        read_trace(path)
    one_sentence(info.value, "line 2", "secret")


def test_empty_missing_and_binary_files_are_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(TraceError) as info:
        read_trace(empty)
    one_sentence(info.value, "empty")
    with pytest.raises(TraceError) as info:
        read_trace(tmp_path / "absent.jsonl")
    one_sentence(info.value, "absent.jsonl")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00GGUF\x80\x81")
    with pytest.raises(TraceError) as info:
        read_trace(binary)
    one_sentence(info.value, "UTF-8")


def test_blank_lines_are_skipped(tmp_path):
    path = write_lines(tmp_path / "gaps.jsonl", header(), "", TOKEN, "   ", {"kind": "done", "stats": {}})
    trace = read_trace(path)
    assert [e.kind for e in trace.events] == ["token", "done"]
    assert trace.summary == {}


def test_parse_trace_lines_reads_an_in_memory_trace():
    lines = [json.dumps(header()), json.dumps(TOKEN),
             json.dumps(event_to_json(RewindEvent(0, 1))), json.dumps({"kind": "summary", "answer": ""})]
    trace = parse_trace_lines(lines)
    assert Transcript().extend(trace.events).answer == ""
    assert trace.summary["answer"] == ""


# -- writing -------------------------------------------------------------------------------

def small_events():
    return [TokenEvent(index=0, token_id=1, text="Arr", logp_plant=-0.1, logp_ref=-0.2, error=0.1,
                       top_plant=[("Arr", -0.1)], top_ref=[("Ahoy", -0.05)]),
            TokenEvent(index=1, token_id=2, text=" Paris", logp_plant=-0.3, logp_ref=-4.0, error=3.7),
            RuleHit(index=1, source_id="never.1", match="Paris"),
            RewindEvent(from_index=1, count=1),
            BlipEvent(index=2, text="Never mention Paris.", source_id="never.1", reason="rule", rewound=1),
            TokenEvent(index=2, token_id=3, text=", matey", logp_plant=-0.2, logp_ref=-0.1, error=-0.1),
            Done(stats={"tokens": 2})]


def test_aborted_writer_leaves_no_file_and_no_temp_file(tmp_path):
    path = tmp_path / "traces" / "run.jsonl"
    with pytest.raises(RuntimeError):
        with TraceWriter(path, header()) as writer:
            writer.write(small_events()[0])
            assert not path.exists()  # nothing under the real name while writing
            raise RuntimeError("the run crashed")
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_aborted_writer_keeps_an_existing_trace_intact(tmp_path):
    path = write_trace(tmp_path / "run.jsonl", header(prompt="first"), small_events())
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with TraceWriter(path, header(prompt="second")) as writer:
            writer.write(small_events()[0])
            raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.jsonl"]


def test_closed_writer_leaves_only_the_trace(tmp_path):
    path = write_trace(tmp_path / "nested" / "dir" / "run.jsonl", header(), small_events())
    assert [p.name for p in path.parent.iterdir()] == ["run.jsonl"]
    trace = read_trace(path)
    assert [event_to_json(e) for e in trace.events] == [event_to_json(e) for e in small_events()]
    assert trace.summary["answer"] == "Arr, matey" == Transcript().extend(trace.events).answer
    assert trace.summary["tokens"] == 2 and trace.summary["blips"] == 1


def test_non_finite_numbers_are_written_as_valid_json(tmp_path):
    events = [TokenEvent(index=0, token_id=1, text="x", control=float("inf"), error=float("nan")),
              Done(stats={"tokens_per_s": float("inf")})]
    path = write_trace(tmp_path / "inf.jsonl", header(), events)

    def refuse(name):
        raise AssertionError(f"{name} written into the trace")

    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=refuse)  # strict JSON: no NaN / Infinity
    trace = read_trace(path)
    assert trace.events[0].control is None and trace.events[0].error is None
    assert trace.summary["stats"]["tokens_per_s"] is None


def test_unwritable_location_is_one_sentence(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(TraceError) as info:
        TraceWriter(blocker / "run.jsonl", header())
    one_sentence(info.value, "run.jsonl")

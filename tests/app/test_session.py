"""The engine session (issue 14): Stop right after Run, loads and jobs never overlap, shutdown
honours waitForDone, Explain stops, events arrive coalesced; studio traces carry the model's
sha256 and every sampling setting."""

from __future__ import annotations

import threading
from dataclasses import fields

import pytest

from lantern_studio.app.session import EngineSession, Job
from lantern_studio.core.events import Done, TokenEvent
from lantern_studio.core.settings import SamplingSettings

pytestmark = pytest.mark.model
STORY = "Write a long story about a lighthouse keeper."


class Watched:
    """The real engine, with ``close`` counted instead of done (the session fixture owns it)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def __getattr__(self, name):
        return getattr(self._engine, name)


def test_stop_right_after_run_is_not_lost(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(400)
    window.prompt_bar.prompt.setText(STORY)
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000) as blocker:
        assert window.run_prompt()
        window.stop()  # before the worker has even entered the engine
    job = blocker.args[0]
    assert job.end.stats["stop_reason"] == "cancelled"
    assert len(window.run_model.transcript.tokens) < 40
    assert window.prompt_bar.run_button.isEnabled()


def test_events_arrive_coalesced_and_in_order(engine, qtbot):
    session = EngineSession()
    session.use_engine(engine)

    def burst(_engine):
        for i in range(300):
            yield TokenEvent(i, 0, "x")
        yield Done({"stop_reason": "max_tokens"})

    batches: list[int] = []
    session.eventsReady.connect(lambda job, batch: batches.append(len(batch)))
    job = Job("other", burst)
    with qtbot.waitSignal(session.jobFinished, timeout=20000):
        assert session.start(job)
    assert [e.index for e in job.events[:-1]] == list(range(300)) and isinstance(job.end, Done)
    assert len(batches) < 301
    assert session.shutdown()


def test_no_job_while_a_model_loads_and_no_engine_closed_under_a_job(engine, qtbot):
    session = EngineSession()
    old = Watched(engine)
    session.use_engine(old, owned=True)
    assert session.load("smollm2")
    assert not session.start(Job("other", lambda eng: iter([Done({})])))  # loading: refused
    with qtbot.waitSignal(session.modelLoaded, timeout=120000):
        pass
    assert old.closed == 1 and session.engine is not old
    # a job holds the engine: a load that finishes meanwhile waits for it to end
    release = threading.Event()

    def slow(_eng):
        release.wait(20)
        yield Done({"stop_reason": "ended"})

    first = session.engine
    closed = []
    first_close = first.close
    first.close = lambda: closed.append(1) or first_close()
    assert session.start(Job("other", slow))
    session._loader = object()  # what load() sets; the worker's result arrives while the job runs
    second = Watched(engine)
    session._on_loaded(second)
    assert session.engine is first and not closed
    release.set()
    with qtbot.waitSignal(session.jobFinished, timeout=20000):
        pass
    assert session.engine is second and closed == [1]
    session._owns_engine = False
    assert session.shutdown()


def test_shutdown_leaves_the_engine_open_when_a_worker_does_not_end(engine, qtbot):
    session = EngineSession()
    watched = Watched(engine)
    session.use_engine(watched, owned=True)
    release, entered = threading.Event(), threading.Event()

    def stuck(_eng):
        entered.set()
        release.wait(20)  # not the engine's loop: cancel cannot reach it
        yield Done({})

    assert session.start(Job("other", stuck))
    assert entered.wait(10)
    assert session.shutdown(timeout_ms=100) is False
    assert watched.closed == 0
    release.set()
    session._pool.waitForDone(20000)


def test_explain_can_be_stopped(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(16)
    window.prompt_bar.prompt.setText("What is the capital of France?")
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000):
        assert window.run_prompt()
    assert window.act_stop.isEnabled() is False
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000) as blocker:
        assert window.explain()
        assert window.act_stop.isEnabled()
        window.act_stop.trigger()
    assert blocker.args[0].end.stats["stop_reason"] == "cancelled"
    assert window.explanation is None and not window.tab.editor.heat


def test_studio_traces_carry_the_model_hash_and_all_sampling(make_window, engine, paris_file, qtbot, tmp_path):
    from lantern_studio.core.history import HistoryStore
    from lantern_studio.core.trace import read_trace
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(8)
    window.prompt_bar.prompt.setText("What is the capital of France?")
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000):
        assert window.run_prompt()
    exported = read_trace(window.export_trace(tmp_path / "run.jsonl")).header
    kept = read_trace(HistoryStore().files("geo")[-1]).header
    for header in (exported, kept):
        assert header["model"]["sha256"] == engine.backend.model_sha256() and len(header["model"]["sha256"]) == 64
        assert set(header["sampling"]) == {f.name for f in fields(SamplingSettings)}
    # and a new window (a restart) lists the run
    other = make_window()
    other.open_reference(paris_file)
    assert [e.prompt for e in other.history] == ["What is the capital of France?"]
    assert other.history[0].model_sha256 == engine.backend.model_sha256()


def test_live_stats_update_during_the_run_and_reset_on_a_model_switch(make_window, engine, paris_file, qtbot):
    window = make_window(engine)
    window.open_reference(paris_file)
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(400)
    window.prompt_bar.prompt.setText(STORY)
    seen = []
    window.run_model.applied.connect(lambda _e: seen.append((window.speed_label.text(), window.context_label.text())))
    with qtbot.waitSignal(window.session.jobFinished, timeout=120000):
        assert window.run_prompt()
        qtbot.waitUntil(lambda: len(window.run_model.transcript.tokens) > 20, timeout=60000)
        during = (window.speed_label.text(), window.context_label.text())
        window.stop()
    assert "tok/s" in during[0] and not during[0].startswith("–")
    assert not during[1].startswith("context –") and not during[1].startswith("context 0/")
    window.session.use_engine(engine)  # a model switch
    assert window.speed_label.text() == "– tok/s" and window.blips_label.text() == "blips 0"


def test_a_failed_load_keeps_the_working_model(make_window, engine, qtbot, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    window = make_window(engine)
    with qtbot.waitSignal(window.session.modelFailed, timeout=60000):
        window.load_model(broken)
    assert window.session.engine is engine
    assert window.model_label.text() == engine.model_name
    assert window.act_run.isEnabled() and window.prompt_bar.run_button.isEnabled()
    assert "Still using" in window.statusBar().currentMessage()

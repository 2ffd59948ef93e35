"""The studio's controller: the engine session, the history, and live re-scoring.

It builds the jobs (run, score text, re-score, probes, explain, compare), feeds the events of
a run to the ``RunModel`` the views show, keeps every finished run in the history (and on
disk, per reference, via ``core.history``), and re-scores or re-runs after a reference edit
the way Frescobaldi's auto-compile does: a single-shot timer restarted on every change, work
only if the text's hash changed, and when a job is running, once more when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from lantern_studio.core.backend import PLANT, SIDECAR
from lantern_studio.core.errors import LanternError
from lantern_studio.core.events import Done, Failed
from lantern_studio.core.history import HistoryStore
from lantern_studio.core.reference import Reference
from lantern_studio.core.run_job import RunStats
from lantern_studio.core.settings import LoopSettings, SamplingSettings
from lantern_studio.core.trace import make_header, read_trace, write_trace

from .run_model import HistoryEntry, LoopModel, RunModel
from .session import EngineSession, Job

LIVE_DEBOUNCE_MS = 400
SHOWN_KINDS = ("run", "score", "rescore")


class StudioController(QObject):
    """Owns the session and the history; the window asks, the controller does, the models tell."""

    message = Signal(str, int)  # status text, timeout in ms (0: until replaced)
    error = Signal(str)  # one sentence for the user
    runningChanged = Signal(bool)
    statsChanged = Signal(dict)  # tokens_per_s, context_used, context_size, blips (any may be absent)
    historyChanged = Signal()
    jobDone = Signal(object)  # the finished Job, after the controller has handled it

    def __init__(self, session: EngineSession, run: RunModel, loop: LoopModel,
                 store: HistoryStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.run_model = run
        self.loop = loop
        self.store = store or HistoryStore()
        self.history: list[HistoryEntry] = []
        self.current: HistoryEntry | None = None
        self._loaded_slugs: set[str | None] = set()
        self._closing = False
        # live re-runs: the inputs are asked for when the timer fires
        self.reference_source: Callable[[], Reference | None] = lambda: None
        self.prompt_source: Callable[[], str] = lambda: ""
        self.sampling_source: Callable[[], SamplingSettings] = SamplingSettings
        self.live = False
        self._live_hash: str | None = None
        self._live_outdated = False
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DEBOUNCE_MS)
        self._live_timer.timeout.connect(self._on_live_timeout)
        session.eventsReady.connect(self._on_events)
        session.jobFinished.connect(self._on_job_finished)
        session.modelLoaded.connect(self._on_model_loaded)

    # -- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.session.busy

    def _ready(self) -> bool:
        if self.session.engine is None:
            self.message.emit("The model is not loaded yet." if not self.session.loading
                              else "The model is still loading.", 8000)
            return False
        if self.session.busy:
            self.message.emit("A run is already going; stop it first.", 8000)
            return False
        return True

    def _start(self, job: Job, text: str) -> bool:
        if not self.session.start(job):
            self.message.emit("The engine is busy.", 8000)
            return False
        self.runningChanged.emit(True)
        self.message.emit(text, 0)
        return True

    def stop(self) -> None:
        if self.session.busy:
            self.session.cancel()
            self.message.emit("Stopping…", 2000)

    # -- runs ------------------------------------------------------------------------------------
    def run(self, prompt: str, reference: Reference | None, loop: LoopSettings, sampling: SamplingSettings) -> bool:
        """Start a run; False (with a message) if it cannot."""
        if not prompt.strip():
            self.message.emit("Type a prompt first.", 8000)
            return False
        if not self._ready():
            return False
        entry = self._entry("run", prompt, reference, loop, sampling)
        job = Job("run", lambda eng: self._hashed(eng, entry, lambda: eng.run(prompt, reference, loop, sampling)),
                  {"entry": entry})
        return self._start_shown(job, entry, f"{loop.mode} · “{prompt}”")

    def score_text(self, answer: str, prompt: str, reference: Reference | None) -> bool:
        if not self._ready():
            return False
        entry = self._entry("score", prompt, reference, self.loop.settings.updated(mode="observe"),
                            self.sampling_source())
        entry.answer = answer
        job = Job("score", lambda eng: self._hashed(eng, entry, lambda: eng.score_text(reference, prompt, answer)),
                  {"entry": entry})
        return self._start_shown(job, entry, f"scored text · “{prompt}”")

    def rescore(self, reference: Reference | None) -> bool:
        """Re-score the shown run against ``reference`` (observe mode, no generation)."""
        if reference is None or self.session.engine is None or self.session.busy:
            return False
        self._live_hash = reference.sha256
        job = Job("rescore", lambda eng: eng.rescore(reference), {})
        return self._start(job, "Re-scoring against the edited reference…")

    def _entry(self, kind: str, prompt: str, reference: Reference | None, loop: LoopSettings,
               sampling: SamplingSettings) -> HistoryEntry:
        assert self.session.engine is not None
        return HistoryEntry(kind, prompt, loop, sampling, reference.slug if reference else None,
                            reference.sha256 if reference else None, self.session.engine.model_name)

    @staticmethod
    def _hashed(engine, entry: HistoryEntry, make):
        """In the worker: note the model's sha256 (hashed once per file), then run."""
        try:
            entry.model_sha256 = engine.backend.model_sha256()
        except (OSError, LanternError):
            entry.model_sha256 = ""
        yield from make()

    def _start_shown(self, job: Job, entry: HistoryEntry, header: str) -> bool:
        if not self.session.start(job):
            self.message.emit("The engine is busy.", 8000)
            return False
        self.current = entry
        self._live_hash = entry.reference_sha256
        self.run_model.clear(header, live=True)
        self.statsChanged.emit({"blips": 0, "tokens_per_s": None})
        self.runningChanged.emit(True)
        self.message.emit("Running…", 0)
        return True

    def _on_events(self, job: Job, batch: list) -> None:
        if job.kind in SHOWN_KINDS:
            self.run_model.apply(batch)
            stats = {"blips": len(self.run_model.transcript.blips), "tokens_per_s": self.run_model.tokens_per_s()}
            engine = self.session.engine
            if engine is not None:
                try:
                    stats["context_used"] = engine.backend.length(PLANT) + engine.backend.length(SIDECAR)
                    stats["context_size"] = engine.n_ctx
                except (AttributeError, LanternError):
                    pass
            self.statsChanged.emit(stats)
        handler = job.info.get("on_events")
        if handler:
            handler(batch)

    def _on_job_finished(self, job: Job) -> None:
        self.runningChanged.emit(False)
        end = job.end
        entry: HistoryEntry | None = job.info.get("entry")
        if entry is not None:
            entry.events = list(job.events)
            self.add_history(entry)
            self._store(entry)
        if isinstance(end, Failed):
            self.error.emit(end.message)
        elif isinstance(end, Done) and job.kind in SHOWN_KINDS:
            self.show_stats(end.stats)
        handler = job.info.get("on_finished")
        if handler:
            handler(job)
        self.jobDone.emit(job)
        if self._live_outdated and not self._closing:
            self._live_outdated = False
            self._live_timer.start(0)

    def show_stats(self, stats: dict) -> None:
        self.statsChanged.emit({k: stats[k] for k in ("tokens_per_s", "context_used", "context_size", "blips")
                                if k in stats})
        mean = stats.get("mean_error")
        extra = f", mean error {mean:+.2f}" if isinstance(mean, (int, float)) else ""
        note = RunStats.from_dict(stats).drive_note()
        extra += f"; {note}" if note else ""
        self.message.emit(f"Done: {stats.get('stop_reason', '')}{extra}.", 10000)

    def _on_model_loaded(self, _name: str) -> None:
        engine = self.session.engine
        self.statsChanged.emit({"tokens_per_s": None, "blips": 0, "context_used": 0,
                                "context_size": engine.n_ctx if engine else None})

    # -- history -------------------------------------------------------------------------------
    def add_history(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        self.history.sort(key=lambda e: e.when)
        self.historyChanged.emit()

    def header_of(self, entry: HistoryEntry) -> dict:
        """The trace header of an entry: model name and sha256, reference, prompt, every setting."""
        if entry.header is not None:
            return entry.header
        return make_header(model_name=entry.model, model_sha256=entry.model_sha256, prompt=entry.prompt,
                           mode=entry.loop.mode, reference_slug=entry.reference_slug,
                           reference_sha256=entry.reference_sha256, loop=entry.loop.to_dict(),
                           sampling=asdict(entry.sampling), answer=entry.answer)

    def _store(self, entry: HistoryEntry) -> None:
        try:
            entry.path = self.store.save(entry.reference_slug, self.header_of(entry), entry.events)
        except (LanternError, OSError) as exc:
            self.message.emit(f"The run could not be kept in History on disk ({exc}).", 10000)

    def load_history(self, slug: str | None) -> int:
        """Add the stored runs of a reference (once per session); returns how many were added."""
        if slug in self._loaded_slugs:
            return 0
        self._loaded_slugs.add(slug)
        runs, problems = self.store.load(slug)
        known = {getattr(e, "path", None) for e in self.history}
        added = 0
        for stored in runs:
            if stored.path in known:
                continue
            entry = entry_from_trace(stored.trace.header, stored.trace.events, stored.created)
            entry.path = stored.path
            self.history.append(entry)
            added += 1
        if added:
            self.history.sort(key=lambda e: e.when)
            self.historyChanged.emit()
        if problems:
            self.message.emit(problems[0] + (f" ({len(problems) - 1} more)" if len(problems) > 1 else ""), 15000)
        return added

    def show(self, entry: HistoryEntry) -> None:
        self.current = entry
        self.run_model.load(entry.events, f"{entry.loop.mode} · “{entry.prompt}”")
        self.show_stats(entry.stats)

    def export_trace(self, path: Path, entry: HistoryEntry | None = None) -> Path:
        entry = entry or self.current
        if entry is None:
            raise LanternError("There is no run to export yet.")
        return write_trace(path, self.header_of(entry), entry.events)

    def open_trace(self, path: str | Path) -> HistoryEntry | None:
        """Replay a trace file without a model; an unreadable file is one sentence, not a crash."""
        try:
            trace = read_trace(path)
        except LanternError as exc:
            self.error.emit(str(exc))
            return None
        entry = entry_from_trace(trace.header, trace.events, time.time(), kind="trace")
        self.add_history(entry)
        self.show(entry)
        self.message.emit(f"Replaying {Path(path).name} (recorded with {entry.model or 'an unknown model'}).", 10000)
        return entry

    def exportable_runs(self) -> list[HistoryEntry]:
        return [e for e in self.history if e.kind in ("run", "trace") and e.events]

    def diff_pair(self) -> tuple[HistoryEntry, HistoryEntry, str] | None:
        """(older, newer, description): the current run and the run made before the last reference edit."""
        runs = [r for r in self.history if r.kind == "run"]
        new = self.current if self.current in runs else (runs[-1] if runs else None)
        if new is None:
            return None
        earlier = runs[:runs.index(new)]
        for r in reversed(earlier):
            if r.reference_sha256 != new.reference_sha256:
                return r, new, "the run before the last reference edit"
        if earlier:
            return earlier[-1], new, "the previous run (same reference)"
        return None

    # -- probes, explain, compare ---------------------------------------------------------------
    def run_probes(self, reference: Reference, modes: list[str], loop: LoopSettings, sampling: SamplingSettings,
                   on_result, on_finished) -> bool:
        from lantern_studio.core.probes import run_probes
        if not reference.probes:
            self.message.emit("The current reference has no probes (add a Probes section).", 8000)
            return False
        if not self._ready():
            return False

        def on_events(batch: list) -> None:
            for result in batch:
                if hasattr(result, "probe"):
                    on_result(result)

        job = Job("probes", lambda eng: run_probes(eng, reference, modes, loop=loop, sampling=sampling),
                  {"on_events": on_events, "on_finished": on_finished})
        return self._start(job, f"Running {len(reference.probes)} probes × {len(modes)} modes…")

    def explain(self, reference: Reference, prompt: str, answer: str, on_explained) -> bool:
        """Attribute ``answer`` to the reference's items in the worker; Stop ends it between items."""
        from lantern_studio.core.explain import Explanation, explain_events
        if not self._ready():
            return False
        results: list = []

        def on_events(batch: list) -> None:
            results.extend(e for e in batch if isinstance(e, Explanation))

        def on_finished(job: Job) -> None:
            if results:
                on_explained(results[-1])
            elif isinstance(job.end, Done) and job.end.stats.get("stop_reason") == "cancelled":
                self.message.emit("Explain was stopped.", 6000)

        job = Job("explain", lambda eng: explain_events(eng, reference, prompt, answer, should_stop=job.stop.is_set),
                  {"on_events": on_events, "on_finished": on_finished})
        return self._start(job, "Explaining: scoring the answer without each reference item…")

    def compare(self, prompt: str, reference: Reference | None, loop: LoopSettings, sampling: SamplingSettings,
                modes: list[str], on_events, on_finished) -> bool:
        from lantern_studio.core.compare import compare_events
        if not prompt.strip():
            self.message.emit("Type a prompt first.", 8000)
            return False
        if not self._ready():
            return False
        if reference is None and any(m != "none" for m in modes):
            self.message.emit("Open or write a reference first (or compare mode none only).", 8000)
            return False

        def finished(job: Job) -> None:
            self.message.emit(f"Compared {', '.join(modes)}.", 8000)
            on_finished(job)

        job = Job("compare", lambda eng: compare_events(eng, prompt, reference, loop, sampling, modes),
                  {"on_events": on_events, "on_finished": finished})
        return self._start(job, f"Comparing {len(modes)} modes…")

    # -- live ------------------------------------------------------------------------------------
    def set_live(self, on: bool) -> None:
        self.live = on
        if on:
            self._live_timer.start()

    def reference_edited(self) -> None:
        if self.live:
            self._live_timer.start()

    def _on_live_timeout(self) -> None:
        if not self.live or self.session.engine is None:
            return
        ref = self.reference_source()
        if ref is None:
            return
        if self._live_hash is not None and ref.sha256 == self._live_hash:
            return
        if self.session.busy:
            self._live_outdated = True
            return
        mode = self.loop.settings.mode
        last = self.current
        if (mode == "observe" and last is not None and last.kind == "run" and last.loop.mode == "observe"
                and self.run_model.transcript.tokens):
            self.rescore(ref)
        elif mode != "none" and self.prompt_source().strip():
            self.run(self.prompt_source().strip(), ref, self.loop.settings, self.sampling_source())

    def shutdown(self) -> bool:
        self._closing = True
        self._live_timer.stop()
        return self.session.shutdown()


def entry_from_trace(header: dict, events: list, when: float, kind: str | None = None) -> HistoryEntry:
    """A history entry for a trace read from disk (values checked: a trace is untrusted)."""
    try:
        loop = LoopSettings.from_mapping(header.get("loop") or {})
    except (LanternError, TypeError, AttributeError):
        loop = LoopSettings()
    sampling_keys = {"temperature", "top_k", "top_p", "seed", "max_tokens"}
    raw = header.get("sampling") if isinstance(header.get("sampling"), dict) else {}
    try:
        sampling = SamplingSettings(**{k: v for k, v in raw.items() if k in sampling_keys})
    except (LanternError, TypeError):
        sampling = SamplingSettings()
    ref = header.get("reference") if isinstance(header.get("reference"), dict) else {}
    model = header.get("model") if isinstance(header.get("model"), dict) else {}
    answer = header.get("answer") if isinstance(header.get("answer"), str) else None
    if kind is None:
        kind = "score" if answer is not None else "run"
    return HistoryEntry(kind, str(header.get("prompt", "")), loop, sampling,
                        ref.get("slug") if isinstance(ref.get("slug"), str) else None,
                        ref.get("sha256") if isinstance(ref.get("sha256"), str) else None,
                        str(model.get("name", "")), str(model.get("sha256", "") or ""), list(events), when,
                        header=header, answer=answer)

"""The engine seen from the UI: one engine, one job at a time, always off the UI thread.

A job is a generator of core events run in superqt's ``GeneratorWorker``. The worker yields
*batches*: events that arrive within ``FLUSH_MS`` of the last batch wait for the next one, so
a fast model hands the UI a frame's worth of tokens at once instead of one signal per token.
Stop is honoured twice: the engine is told to cancel at its next token, and the worker is
asked to abort between yields (so a Stop pressed before the engine even started the run, or
during a job that is not the engine's own loop, is never lost).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker, GeneratorWorker

from lantern_studio.core.engine import Engine
from lantern_studio.core.errors import LanternError
from lantern_studio.core.events import Done, Failed
from lantern_studio.core.settings import EngineSettings

FLUSH_MS = 30
CANCELLED = {"stop_reason": "cancelled"}


@dataclass(eq=False)
class Job:
    """One operation on the engine: ``make(engine)`` returns the event iterator.

    ``stop`` is set when the user asks the job to stop; long jobs that are not the engine's
    token loop (Explain) pass ``stop.is_set`` down so they can end between steps."""

    kind: str  # 'run' | 'rescore' | 'score' | 'probes' | 'explain' | 'compare'
    make: Callable[[Engine], Iterator[Any]]
    info: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    started: float = 0.0
    end: Any = None  # the Done / Failed that ended it
    stop: threading.Event = field(default_factory=threading.Event)
    iterator: Any = None  # the running event iterator, closed when the job ends


def batched(job: Job, engine: Engine, interval_s: float = FLUSH_MS / 1000) -> Iterator[list]:
    """The job's events in batches (the worker's generator); failures become one Failed."""
    batch: list = []
    last = 0.0
    try:
        if job.stop.is_set():
            yield [Done(dict(CANCELLED))]
            return
        job.iterator = job.make(engine)
        for event in job.iterator:
            batch.append(event)
            if job.stop.is_set():
                engine.cancel()  # again: the engine may have cleared an earlier cancel on entry
            now = time.perf_counter()
            if isinstance(event, (Done, Failed)) or now - last >= interval_s:
                yield batch
                batch, last = [], now
    except LanternError as exc:  # a job's own code (probes) may raise
        batch.append(Failed(str(exc)))
    except Exception as exc:  # noqa: BLE001 — one sentence for the user, never a crash
        batch.append(Failed(f"The run stopped on an unexpected error ({type(exc).__name__}: {exc})."))
    if batch:
        yield batch


class EngineSession(QObject):
    """Owns the Engine; loads it and runs jobs in worker threads."""

    modelLoading = Signal(str)
    loadProgress = Signal(float)
    modelLoaded = Signal(str)
    modelFailed = Signal(str)
    jobStarted = Signal(object)
    eventsReady = Signal(object, list)  # job, batch of events
    jobFinished = Signal(object)  # job (job.end is Done/Failed)
    _progressed = Signal(float)  # from the loader thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine: Engine | None = None
        self.model_source: str | None = None  # what was asked for: a built-in name or a path
        self._owns_engine = True
        self.job: Job | None = None
        self._worker: GeneratorWorker | None = None
        self._loader: FunctionWorker | None = None
        self._pending_engine: tuple[Engine, str | None] | None = None
        self._loading_source: str | None = None
        self._closing = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._progressed.connect(self.loadProgress)

    # -- loading ------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._loader is not None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def load(self, model: str | Path | None = None, settings: EngineSettings = EngineSettings()) -> bool:
        """Load a model asynchronously; modelLoaded or modelFailed follows. The engine in use
        stays until the new one has loaded, and stays for good if the new one fails."""
        if self.busy or self.loading:
            self.modelFailed.emit("Wait for the current run to end before loading a model.")
            return False
        source = str(model) if model else None
        self.modelLoading.emit(source or "smollm2")

        def progress(value: float) -> bool:
            self._progressed.emit(float(value))
            return not self._closing

        worker = FunctionWorker(Engine.load, model, settings, progress)
        self._loading_source = source
        worker.returned.connect(self._on_loaded)
        worker.errored.connect(self._on_load_error)
        self._loader = worker
        self._pool.start(worker)
        return True

    def _on_loaded(self, engine: Engine) -> None:
        self._loader = None
        source = self._loading_source
        if self._closing:
            engine.close()
            return
        if self.busy:  # never close an engine under a running job: swap when it ends
            self._pending_engine = (engine, source)
            return
        self._adopt(engine, source, owned=True)

    def _adopt(self, engine: Engine, source: str | None, owned: bool) -> None:
        old, self.engine = self.engine, engine
        if old is not None and old is not engine and self._owns_engine:
            old.close()
        self._owns_engine = owned
        self.model_source = source
        self.modelLoaded.emit(engine.model_name)

    def _on_load_error(self, exc: BaseException) -> None:
        self._loader = None
        message = str(exc) if isinstance(exc, LanternError) else f"The model could not be loaded ({exc})."
        self.modelFailed.emit(message)

    def use_engine(self, engine: Engine, owned: bool = False) -> None:
        """Adopt an already loaded engine (tests, embedding); closed on shutdown only if owned."""
        self._adopt(engine, None, owned)

    def model_sha256(self) -> str:
        """The loaded model's sha256 ('' without a model); hashed once per file and cached."""
        if self.engine is None:
            return ""
        try:
            return self.engine.backend.model_sha256()
        except (OSError, LanternError):
            return ""

    # -- jobs -----------------------------------------------------------------------------
    def start(self, job: Job) -> bool:
        """Start ``job`` if the engine is loaded and free; False if busy, loading or closing."""
        if self.engine is None or self.job is not None or self.loading or self._closing:
            return False
        self.job = job
        job.started = time.perf_counter()
        worker = GeneratorWorker(batched, job, self.engine)
        worker.yielded.connect(self._on_batch)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.jobStarted.emit(job)
        self._pool.start(worker)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop: at the engine's next token, or at the next batch."""
        job = self.job
        if job is None:
            return
        job.stop.set()
        if self._worker is not None:
            self._worker.quit()
        if self.engine is not None:
            self.engine.cancel()

    def _on_batch(self, batch: list) -> None:
        job = self.job
        if job is None:
            return
        job.events.extend(batch)
        for event in batch:
            if isinstance(event, (Done, Failed)):
                job.end = event
        self.eventsReady.emit(job, batch)

    def _on_worker_finished(self) -> None:
        self._worker = None
        job, self.job = self.job, None
        if job is None:
            return
        _close(job)
        if job.end is None:
            job.end = Done(dict(CANCELLED) if job.stop.is_set() else {"stop_reason": "ended"})
            self.eventsReady.emit(job, [job.end])
        if self._pending_engine is not None:
            engine, source = self._pending_engine
            self._pending_engine = None
            self._adopt(engine, source, owned=True)
        self.jobFinished.emit(job)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel whatever runs, wait for the workers, close the engine. False when a worker
        did not end in time: the engine is then left open (closing it under a running job
        would crash), and the process exit reclaims it."""
        self._closing = True
        self.cancel()
        if not self._pool.waitForDone(timeout_ms):
            return False
        if self.job is not None:
            _close(self.job)
        self.job = None
        self._worker = None
        pending, self._pending_engine = self._pending_engine, None
        if pending is not None:
            pending[0].close()
        if self.engine is not None and self._owns_engine:
            self.engine.close()
        self.engine = None
        return True


def _close(job: Job) -> None:
    """Close the job's generator so the engine's lock is released now, not at garbage collection."""
    close = getattr(job.iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 — a generator that fails while closing has ended anyway
            pass

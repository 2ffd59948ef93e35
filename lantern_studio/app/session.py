"""The engine seen from the UI: one engine, one job at a time, always off the UI thread.

Jobs are generators of core events run in a superqt worker; the worker only appends events
to a queue and a ~30 ms timer hands them to the UI in batches, so a fast model never floods
the event loop and the views append a frame's worth of tokens at once.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal
from superqt.utils import FunctionWorker

from lantern_studio.core.engine import Engine
from lantern_studio.core.errors import LanternError
from lantern_studio.core.events import Done, Failed
from lantern_studio.core.settings import EngineSettings

FLUSH_MS = 30


@dataclass
class Job:
    """One operation on the engine: ``make(engine)`` returns the event iterator."""

    kind: str  # 'run' | 'rescore' | 'score' | 'probes' | 'other'
    make: Callable[[Engine], Iterator[Any]]
    info: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    started: float = 0.0
    end: Any = None  # the Done / Failed that ended it


class EngineSession(QObject):
    """Owns the Engine; loads it and runs jobs in worker threads."""

    modelLoading = Signal(str)
    loadProgress = Signal(float)
    modelLoaded = Signal(str)
    modelFailed = Signal(str)
    jobStarted = Signal(object)
    eventsReady = Signal(object, list)  # job, batch of events
    jobFinished = Signal(object)  # job (job.end is Done/Failed)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine: Engine | None = None
        self._owns_engine = True
        self.job: Job | None = None
        self._queue: collections.deque = collections.deque()
        self._worker: FunctionWorker | None = None
        self._loader: FunctionWorker | None = None
        self._load_progress = 0.0
        self._closing = False
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)

    # -- loading ------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._loader is not None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def load(self, model: str | Path | None = None, settings: EngineSettings = EngineSettings()) -> None:
        """Load a model asynchronously; modelLoaded or modelFailed follows."""
        if self.busy or self.loading:
            self.modelFailed.emit("Wait for the current run to end before loading a model.")
            return
        self.modelLoading.emit(str(model) if model else "smollm2")
        self._load_progress = 0.0

        def progress(value: float) -> bool:
            self._load_progress = float(value)
            return not self._closing

        def load() -> Engine:
            return Engine.load(model, settings, progress)

        worker = FunctionWorker(load)
        worker.returned.connect(self._on_loaded)
        worker.errored.connect(self._on_load_error)
        self._loader = worker
        self._timer.start()
        self._pool.start(worker)

    def _on_loaded(self, engine: Engine) -> None:
        self._loader = None
        if self._closing:
            engine.close()
            return
        old, self.engine = self.engine, engine
        if old is not None and self._owns_engine:
            old.close()
        self._owns_engine = True
        self.modelLoaded.emit(engine.model_name)

    def _on_load_error(self, exc: BaseException) -> None:
        self._loader = None
        if isinstance(exc, LanternError):
            message = str(exc)
        else:
            message = f"The model could not be loaded ({exc})."
        self.modelFailed.emit(message)

    def use_engine(self, engine: Engine, owned: bool = False) -> None:
        """Adopt an already loaded engine (tests, embedding); closed on shutdown only if owned."""
        self.engine = engine
        self._owns_engine = owned
        self.modelLoaded.emit(engine.model_name)

    # -- jobs -----------------------------------------------------------------------------
    def start(self, job: Job) -> bool:
        """Start ``job`` if the engine is free; False if it is busy or not loaded."""
        if self.engine is None or self.job is not None or self._closing:
            return False
        engine = self.engine
        queue = self._queue
        self.job = job
        job.started = time.perf_counter()

        def work() -> None:
            try:
                for event in job.make(engine):
                    queue.append(event)
            except LanternError as exc:  # a job's own code (probes) may raise
                queue.append(Failed(str(exc)))
            except Exception as exc:  # noqa: BLE001 — one sentence for the user, never a crash
                queue.append(Failed(f"The run stopped on an unexpected error ({type(exc).__name__}: {exc})."))

        worker = FunctionWorker(work)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.jobStarted.emit(job)
        self._timer.start()
        self._pool.start(worker)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at the next token."""
        if self.engine is not None and self.job is not None:
            self.engine.cancel()

    def _flush(self) -> None:
        if self._loader is not None:
            self.loadProgress.emit(self._load_progress)
        job = self.job
        if not self._queue:
            if job is None and self._loader is None:
                self._timer.stop()
            return
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if job is None:
            return
        job.events.extend(batch)
        for event in batch:
            if isinstance(event, (Done, Failed)):
                job.end = event
        self.eventsReady.emit(job, batch)

    def _on_worker_finished(self) -> None:
        self._worker = None
        self._flush()
        job, self.job = self.job, None
        if job is None:
            return
        if job.end is None:
            job.end = Done({"stop_reason": "ended"})
        self.jobFinished.emit(job)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel whatever runs, wait for the workers, close the engine."""
        self._closing = True
        self.cancel()
        self._pool.waitForDone(timeout_ms)
        self._timer.stop()
        self._queue.clear()
        self.job = None
        if self.engine is not None and self._owns_engine:
            self.engine.close()
        self.engine = None

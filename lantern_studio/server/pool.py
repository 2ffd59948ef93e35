"""A bounded queue in front of N engine workers, one ``Engine`` (and model context) each.

A request becomes a ``Job``; a worker thread runs it with ``Engine.run`` and hands every
event to the request's event loop. Admission is decided at once: when every worker is busy
and ``queue_limit`` jobs already wait, ``submit`` refuses and the caller answers 503. A job
is cancelled from the request side (the client went away): a waiting job is dropped, a
running one is stopped through ``Engine.cancel`` at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.engine import Engine
from ..core.events import Event, Failed
from ..core.reference import Reference
from ..core.settings import LoopSettings, SamplingSettings

END = object()  # pushed after a job's last event


@dataclass
class Job:
    prompt: str
    reference: Reference
    loop: LoopSettings
    sampling: SamplingSettings
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    cancelled: threading.Event = field(default_factory=threading.Event)
    engine: Engine | None = None
    started: float | None = None

    def push(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the request's loop is gone (server shutting down)
            pass

    def cancel(self) -> None:
        self.cancelled.set()
        engine = self.engine
        if engine is not None:
            engine.cancel()


@dataclass
class PoolStats:
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    rejected: int = 0
    mean_job_s: float = 0.0


class EnginePool:
    def __init__(self, engines: list[Engine], queue_limit: int) -> None:
        if not engines:
            raise ValueError("an engine pool needs at least one engine")
        self.engines = engines
        self.queue_limit = queue_limit
        self.stats = PoolStats()
        self._waiting: deque[Job] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, args=(e,), name=f"lantern-worker-{i}", daemon=True)
                         for i, e in enumerate(engines)]
        for t in self._threads:
            t.start()

    @property
    def workers(self) -> int:
        return len(self.engines)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            s = self.stats
            return {"workers": self.workers, "busy": self._busy, "queued": len(self._waiting),
                    "queue_limit": self.queue_limit, "completed": s.completed, "cancelled": s.cancelled,
                    "failed": s.failed, "rejected": s.rejected}

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (and nothing queued) when the queue is full."""
        with self._cond:
            idle = self.workers - self._busy
            if self._stopping or len(self._waiting) >= idle + self.queue_limit:
                self.stats.rejected += 1
                return False
            self._waiting.append(job)
            self._cond.notify()
            return True

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the time for the queue to move by one."""
        with self._cond:
            mean = self.stats.mean_job_s or 1.0
        return max(1, round(mean / self.workers))

    def drop(self, job: Job) -> None:
        """Cancel ``job`` wherever it is."""
        with self._cond:
            try:
                self._waiting.remove(job)
                self.stats.cancelled += 1
                job.push(END)
                return
            except ValueError:
                pass
        job.cancel()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        for job in waiting:
            job.push(END)
        for engine in self.engines:
            engine.cancel()
        for t in self._threads:
            t.join(timeout=10)
        for engine in self.engines:
            engine.close()

    def _work(self, engine: Engine) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                self._busy += 1
            outcome = self._run(engine, job)
            with self._cond:
                self._busy -= 1
                setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
                if outcome == "completed" and job.started is not None:
                    took = time.perf_counter() - job.started
                    n = self.stats.completed
                    self.stats.mean_job_s += (took - self.stats.mean_job_s) / min(n, 20)

    def _run(self, engine: Engine, job: Job) -> str:
        outcome = "completed"
        job.started = time.perf_counter()
        job.engine = engine
        try:
            if job.cancelled.is_set():
                return "cancelled"
            for event in engine.run(job.prompt, job.reference, job.loop, job.sampling):
                if job.cancelled.is_set():
                    engine.cancel()  # Engine.run clears a cancel that came before it started
                    outcome = "cancelled"
                job.push(event)
                if isinstance(event, Failed):
                    outcome = "failed"
        except Exception as exc:  # a bug must not kill the worker: the client gets one sentence
            job.push(Failed(f"The run failed inside the server ({type(exc).__name__})."))
            outcome = "failed"
        finally:
            job.engine = None
            job.push(END)
        return outcome


def make_engines(load: Callable[[int], Engine], n: int) -> list[Engine]:
    """``n`` engines from ``load(i)``; those already made are closed if one fails."""
    engines: list[Engine] = []
    try:
        for i in range(n):
            engines.append(load(i))
    except BaseException:
        for e in engines:
            e.close()
        raise
    return engines


__all__ = ["EnginePool", "Job", "END", "make_engines", "Event"]

"""Studio responsiveness and costs with the real default model, in one run; prints JSON.

Usage: ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_studio.py [--json] [--threads N]`` (with the
package installed, e.g. ``make`` did it, or ``PYTHONPATH=.``).

Measures:
  startup      window construction (as ``main()`` does it) to window shown, then the model
               loading after it in the worker
  ui_stall     the longest gap of a 5 ms heartbeat QTimer on the UI thread during a full-speed
               300-token observe run (max and p99, ms)
  flushes      token events per UI flush during that run (mean, max)
  append       TokenView append cost per batch of 50 synthetic TokenEvents: tokens 0-500 vs
               3,500-4,000, and their ratio (flat = about 1)
  rescore      engine.rescore after an edit near the end of a ~1,500-token reference vs a cold
               observe run (after backend.reset()) with the same prompt and answer length
  stop         Stop pressed during a full-speed run → the run's end reaches the UI (ms); and
               closing the window during a run → the window closed (ms)
  rss          the studio's peak RSS (getrusage maxrss) after the runs, default model loaded
Settings and keys live in a temporary config dir; nothing of the user's is read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

STORY = "Write a long story about a lighthouse keeper and the ships she saves."
REFERENCE = ROOT / "references" / "otc-analgesics.md"
NOTE_SENTENCES = [
    "Ask which medicines the person already takes, including herbal remedies and cold and flu products.",
    "Check the age of the person who will take the medicine before giving any dose.",
    "Explain that taking the tablets with food can protect the stomach for ibuprofen.",
    "Say how long to wait between doses and what to do if a dose is missed.",
    "Mention that alcohol and regular paracetamol use together need a pharmacist's advice.",
    "Offer written information and say where to find the patient leaflet inside the pack.",
]


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def _pump_until(app, predicate, timeout_s: float) -> None:
    end = time.perf_counter() + timeout_s
    while not predicate():
        if time.perf_counter() > end:
            raise TimeoutError("the benchmark step timed out")
        app.processEvents()
        time.sleep(0.001)


def long_reference_text(engine, target_tokens: int = 1500) -> tuple[str, int]:
    """The OTC reference with a prose section appended until the rendered text has ~target tokens."""
    from lantern_studio.core.reference import parse_reference, render_reference
    base = REFERENCE.read_text(encoding="utf-8")
    lines: list[str] = []
    k = 0
    while True:
        text = base.rstrip() + "\n\n## Counter notes\n" + "\n".join(lines) + "\n"
        n = len(engine.backend.tokenize(render_reference(parse_reference(text)), special=False))
        if n >= target_tokens:
            return text, n
        lines.append(f"{NOTE_SENTENCES[k % len(NOTE_SENTENCES)]} (note {k + 1})")
        k += 1


def bench_startup(app, threads: int) -> tuple[object, dict]:
    from lantern_studio.app.main_window import MainWindow
    t0 = time.perf_counter()
    window = MainWindow(interactive=False)
    window.qsettings.setValue("threads", threads)
    window.new_tab()
    window.show()
    app.processEvents()
    shown = time.perf_counter() - t0
    loaded = {}
    window.session.modelLoaded.connect(lambda name: loaded.setdefault("t", time.perf_counter()))
    window.session.modelFailed.connect(lambda msg: loaded.setdefault("error", msg))
    window.load_model()
    _pump_until(app, lambda: loaded, 300)
    if "error" in loaded:
        raise SystemExit(loaded["error"])
    return window, {"window_shown_ms": _ms(shown), "model_loaded_after_start_ms": _ms(loaded["t"] - t0)}


def bench_run(app, window, max_tokens: int = 300) -> dict:
    """UI-thread stall (5 ms heartbeat) and events per flush during a full-speed run."""
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer

    from lantern_studio.core.events import TokenEvent
    gaps: list[float] = []
    clock = QElapsedTimer()
    state = {"last": 0.0, "done": False}
    heartbeat = QTimer(interval=5)
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)

    def beat() -> None:
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - state["last"])
        state["last"] = now

    heartbeat.timeout.connect(beat)
    per_flush: list[int] = []
    window.session.eventsReady.connect(
        lambda job, batch: per_flush.append(sum(isinstance(e, TokenEvent) for e in batch)))
    window.session.jobFinished.connect(lambda job: state.update(done=True, job=job))
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(max_tokens)
    window.prompt_bar.prompt.setText(STORY)
    window.tab.replace_text_undoably(REFERENCE.read_text(encoding="utf-8"))
    window.tab.reparse()
    clock.start()
    heartbeat.start()
    t0 = time.perf_counter()
    if not window.run_prompt():
        raise SystemExit(window.statusBar().currentMessage())
    while not state["done"]:
        app.processEvents()
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    heartbeat.stop()
    stats = state["job"].end.stats
    gaps_sorted = sorted(gaps[1:]) or [0.0]
    token_flushes = [n for n in per_flush if n]
    return {
        "ui_stall": {"heartbeat_ms": 5, "max_gap_ms": round(gaps_sorted[-1], 2),
                     "p99_gap_ms": round(gaps_sorted[min(len(gaps_sorted) - 1, int(0.99 * len(gaps_sorted)))], 2),
                     "beats": len(gaps)},
        "run": {"tokens": stats.get("tokens"), "elapsed_s": round(elapsed, 3),
                "tokens_per_s": round(float(stats.get("tokens_per_s", 0.0)), 1)},
        "flushes": {"token_events_per_flush_mean": round(statistics.fmean(token_flushes), 2) if token_flushes else 0,
                    "token_events_per_flush_max": max(token_flushes, default=0),
                    "flushes_with_tokens": len(token_flushes)},
    }


def bench_append(app, total: int = 4000, batch: int = 50) -> dict:
    """TokenView append cost per batch of synthetic events, early vs late in a long answer."""
    from lantern_studio.app.token_view import TokenView
    from lantern_studio.core.events import TokenEvent
    view = TokenView()
    view.resize(600, 800)
    view.show()
    words = ["the", " keeper", " watched", " the", " sea", ",", " and", " a", " ship", " came", ".", "\n"]
    times: list[float] = []
    for start in range(0, total, batch):
        events = [TokenEvent(i, 0, words[i % len(words)], -1.0, -1.2, ((i * 37) % 17 - 8) / 4.0, 0.1,
                             [("a", -1.0)] * 5, [("b", -1.1)] * 5) for i in range(start, start + batch)]
        t0 = time.perf_counter()
        view.apply_events(events)
        app.processEvents()  # include the layout and paint the batch causes
        times.append(time.perf_counter() - t0)
    per = 500 // batch
    early, late = statistics.fmean(times[:per]), statistics.fmean(times[-per:])
    view.close()
    view.deleteLater()
    return {"batch": batch, "ms_per_batch_0_500": _ms(early), "ms_per_batch_3500_4000": _ms(late),
            "late_over_early": round(late / early, 2) if early else None}


def bench_rescore(engine, repeats: int, answer_tokens: int = 120) -> dict:
    """Re-score after an edit near the end of a ~1,500-token reference vs a cold observe run."""
    from lantern_studio.core.events import Done
    from lantern_studio.core.reference import parse_reference
    from lantern_studio.core.settings import LoopSettings, SamplingSettings
    text, n_ref = long_reference_text(engine)
    loop = LoopSettings(mode="observe")
    sampling = SamplingSettings(max_tokens=answer_tokens)
    prompt = "How much paracetamol can I take for a headache, and for how long?"
    rescore_s, cold_s, tokens = [], [], 0

    def consume(events) -> dict:
        stats = {}
        for e in events:
            if isinstance(e, Done):
                stats = e.stats
            elif getattr(e, "message", None) and e.__class__.__name__ == "Failed":
                raise SystemExit(e.message)
        return stats

    for i in range(repeats):
        before = parse_reference(text)
        edited = parse_reference(text.rstrip() + f"\nAlways end by asking if there is anything else (edit {i}).\n")
        tokens = consume(engine.run(prompt, before, loop, sampling)).get("tokens", 0)  # the run to re-score
        t0 = time.perf_counter()
        consume(engine.rescore(edited))
        rescore_s.append(time.perf_counter() - t0)
        engine.backend.reset()
        t0 = time.perf_counter()
        consume(engine.run(prompt, edited, loop, sampling))
        cold_s.append(time.perf_counter() - t0)
    r, c = statistics.median(rescore_s), statistics.median(cold_s)
    return {"reference_tokens": n_ref, "answer_tokens": tokens, "repeats": repeats,
            "rescore_ms": _ms(r), "cold_observe_ms": _ms(c), "ratio": round(r / c, 3), "target": 0.35}


def _start_long_run(app, window) -> None:
    window.prompt_bar.mode.setCurrentText("observe")
    window.prompt_bar.max_tokens.setValue(2000)
    window.prompt_bar.prompt.setText(STORY)
    if not window.run_prompt():
        raise SystemExit(window.statusBar().currentMessage())
    _pump_until(app, lambda: len(window.run_model.transcript.tokens) > 2, 120)


def bench_stop(app, window) -> dict:
    """Stop during a run until its end reaches the UI; then closing the window during a run."""
    ended = {}
    window.session.jobFinished.connect(lambda job: ended.setdefault("t", time.perf_counter()))
    _start_long_run(app, window)
    t0 = time.perf_counter()
    window.act_stop.trigger()
    _pump_until(app, lambda: ended, 60)
    stop_s = ended["t"] - t0
    _start_long_run(app, window)
    t0 = time.perf_counter()
    window.close()
    return {"stop_ms": _ms(stop_s), "close_during_run_ms": _ms(time.perf_counter() - t0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core, the studio default)")
    p.add_argument("--repeats", type=int, default=3, help="re-score vs cold repeats (median)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lantern-bench-") as tmp:
        os.environ["LANTERN_CONFIG_DIR"] = str(Path(tmp) / "config")
        from PySide6.QtWidgets import QApplication

        from lantern_studio.app.main import configure_settings
        from lantern_studio.app.theme import apply_theme
        configure_settings()
        app = QApplication.instance() or QApplication([])
        apply_theme(app, "light")
        def stage(name: str) -> None:
            print(f"[bench_studio] {name}…", file=sys.stderr, flush=True)

        stage("startup")
        window, startup = bench_startup(app, args.threads)
        engine = window.session.engine
        result: dict = {"benchmark": "studio", "model": engine.model_name, "threads": args.threads,
                        "cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(), "qpa": os.environ.get("QT_QPA_PLATFORM", ""),
                        "startup": startup}
        stage("300-token run (UI stall, flushes)")
        result.update(bench_run(app, window))
        result["rss_after_run_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        stage("token view append")
        result["append"] = bench_append(app)
        stage("re-score vs cold observe")
        result["rescore"] = bench_rescore(engine, args.repeats)
        stage("stop and close during a run")
        result["stop"] = bench_stop(app, window)
        window.deleteLater()
        app.processEvents()

    text = json.dumps(result, indent=2)
    if not args.json:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

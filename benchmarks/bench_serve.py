"""`lantern serve` under load: 1, 4 and 16 concurrent clients, one run.

    .venv/bin/python benchmarks/bench_serve.py [--json] [--workers N] [--tokens N]

Starts `lantern serve` (a child process on 127.0.0.1) with a pack of the shipped
otc-analgesics reference in observe mode and the default model, then, per concurrency level,
lets each client send requests back to back (non-streaming chat completions of --tokens
tokens, greedy). Reports requests/s, p50/p95 latency and failed requests per level. The queue
is sized so that 16 clients fit: a failure here is a bug, not back-pressure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import httpx

from lantern_studio.core.pack import export_pack

REFERENCE = REPO / "references" / "otc-analgesics.md"
PROMPTS = ["How much paracetamol can I take for a headache?", "Can I take ibuprofen with a cold?",
           "Is aspirin safe for a child?", "What helps a sore back?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def level(url: str, clients: int, per_client: int, tokens: int) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(timeout=600) as http:
            for i in range(per_client):
                body = {"model": "otc-analgesics", "max_tokens": tokens,
                        "messages": [{"role": "user", "content": PROMPTS[(k + i) % len(PROMPTS)]}]}
                t0 = time.perf_counter()
                try:
                    r = http.post(url + "/v1/chat/completions", json=body)
                    ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None
                except httpx.HTTPError as exc:
                    ok, r = False, exc
                took = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(took)
                    else:
                        failures.append(str(getattr(r, "status_code", r)))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"clients": clients, "requests": len(lat) + len(failures), "failed": len(failures),
            "requests_per_s": round(len(lat) / wall, 3),
            "p50_s": round(statistics.median(lat), 3) if lat else None,
            "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
            "wall_s": round(wall, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        pack = export_pack([REFERENCE], Path(tmp) / "otc.lantern", loop={"mode": "observe"})
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "lantern_studio.cli", "serve", "--pack", str(pack),
                                 "--port", str(port), "--workers", str(args.workers), "--queue", str(max(levels))],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("lantern serve did not start")
                time.sleep(0.2)
            level(url, args.workers, 1, args.tokens)  # warm-up: every worker reads the reference once
            results = [level(url, c, max(1, 16 // c) if c < 16 else 1, args.tokens) for c in levels]
            health = httpx.get(url + "/health").json()
        finally:
            proc.terminate()
            proc.wait(20)
    out = {"workers": args.workers, "max_tokens": args.tokens, "mode": "observe", "levels": results,
           "server_counts": {k: health[k] for k in ("completed", "failed", "cancelled", "rejected")}}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in results:
            print(f"{r['clients']:3d} clients: {r['requests']} requests, {r['failed']} failed, "
                  f"{r['requests_per_s']} req/s, p50 {r['p50_s']} s, p95 {r['p95_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

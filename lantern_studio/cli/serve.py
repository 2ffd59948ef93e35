"""`lantern serve`: a pack as an OpenAI-compatible service (docs/remote.md)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from ..core.errors import LanternError

API_KEY_ENV = "LANTERN_SERVE_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a pack as an OpenAI-compatible chat-completions endpoint",
                       description="Answer /v1/chat/completions with the pack's entry reference and loop applied.")
    p.add_argument("--pack", required=True, metavar="X.lantern", help="the pack to serve (verified on start)")
    p.add_argument("--model", metavar="NAME|PATH|URL", help="the terrain: a built-in name, a .gguf path or a "
                   "model server's URL (default: smollm2)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="engines running requests side by side")
    p.add_argument("--queue", type=int, default=8, metavar="N", help="requests that may wait for a worker")
    p.add_argument("--api-key", metavar="K", help=f"require 'Authorization: Bearer K' (or set {API_KEY_ENV})")
    p.add_argument("--require-trusted", action="store_true", help="refuse a pack whose signer is not trusted")
    p.add_argument("--allow-other-model", action="store_true",
                   help="serve even if the terrain is not the model the pack names")
    p.add_argument("--max-tokens-limit", type=int, default=1024, metavar="N", help="largest max_tokens a request may ask")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per local engine (default: cores / workers)")
    p.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from ..core.pack import read_pack

    for name, lo, hi in (("workers", 1, 64), ("queue", 0, 10_000), ("port", 1, 65535), ("max_tokens_limit", 1, 100_000)):
        value = getattr(args, name)
        if not lo <= value <= hi:
            raise LanternError(f"--{name.replace('_', '-')} must be between {lo} and {hi}.")
    pack = read_pack(args.pack)
    if args.require_trusted and pack.verdict != "trusted":
        shown = {"valid-unknown": "signed by a key that is not in your trust store", "unsigned": "unsigned"}[pack.verdict]
        raise LanternError(f"The pack is {shown}, and --require-trusted serves only packs of trusted signers.")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not _is_loopback(args.host) and api_key is None:
        print(f"lantern: warning: serving on {args.host} without an API key; anyone who reaches it can use it.",
              file=sys.stderr)
    pool = _make_pool(args, pack)
    try:
        from ..server.app import ServeLimits, Service

        limits = ServeLimits(max_tokens=args.max_tokens_limit,
                             default_max_tokens=min(ServeLimits().default_max_tokens, args.max_tokens_limit))
        service = Service(pack, pool, pool.engines[0].model_name, api_key, limits)
        _run_uvicorn(service, args.host, args.port, pool.workers)
    finally:
        pool.close()
    return 0


def _make_pool(args: argparse.Namespace, pack):
    from ..core.engine import Engine
    from ..core.remote import check_model, connect, is_url
    from ..core.settings import EngineSettings
    from ..server.pool import EnginePool, make_engines

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)

    def load(i: int) -> Engine:
        if is_url(args.model):  # each worker gets its own pair of the server's slots
            return Engine(connect(args.model, slots=range(2 * i, 2 * i + 2)))
        return Engine.load(args.model, EngineSettings(n_threads=threads))

    print(f"Loading {args.workers} engine(s)…", file=sys.stderr)
    engines = make_engines(load, args.workers)
    try:
        if not args.allow_other_model:
            check_model(engines[0].backend, pack.manifest.get("model_hint"))
    except BaseException:
        for e in engines:
            e.close()
        raise
    return EnginePool(engines, args.queue)


def _run_uvicorn(service, host: str, port: int, workers: int) -> None:
    import uvicorn

    config = uvicorn.Config(service.app(), host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, lifespan="off")
    server = uvicorn.Server(config)
    print(f"Serving pack '{service.model_id}' on http://{host}:{port}/v1 with {workers} worker(s); "
          f"terrain: {service.terrain}.", file=sys.stderr, flush=True)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        server.started = False
    if not server.started:
        raise LanternError(f"The server could not listen on {host}:{port} (is the port in use?).")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

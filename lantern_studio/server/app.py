"""The ASGI app of ``lantern serve`` (Starlette + sse-starlette): a pack as an
OpenAI-compatible chat-completions service.

Routes: ``GET /health`` (open), ``GET /v1/models`` and ``POST /v1/chat/completions``
(behind the bearer token when one is set). Every error is a JSON ``{"error": {...}}`` with
one sentence; a full queue is 503 with ``Retry-After``; a client that goes away cancels its
run, whether it streams or waits.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.events import Done, Failed, TokenEvent, Transcript
from ..core.pack import Pack
from .chat import (ChatRequest, RequestError, chunk, completion_id, error_body, event_json, finish_reason,
                   full_response, lantern_block, parse_chat_request)
from .pool import END, EnginePool, Job

DISCONNECT_POLL_S = 0.25


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for."""

    max_request_bytes: int = 256 * 1024
    max_tokens: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 256
    max_prompt_chars: int = 16_000


class Service:
    """The state behind the routes: the pack, the worker pool and the limits."""

    def __init__(self, pack: Pack, pool: EnginePool, terrain: str, api_key: str | None = None,
                 limits: ServeLimits = ServeLimits()) -> None:
        self.pack = pack
        self.pool = pool
        self.terrain = terrain
        self.api_key = api_key or None
        self.limits = limits
        self.model_id = pack.manifest["slug"]
        self.info = {"pack": self.model_id, "pack_version": pack.manifest.get("version"),
                     "verdict": pack.verdict, "signer": pack.signer, "terrain": terrain}
        self.started = int(time.time())

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ])

    # -- routes ---------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "pack": self.model_id, "terrain": self.terrain, **self.pool.snapshot()})

    async def models(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        m = self.pack.manifest
        return JSONResponse({"object": "list", "data": [{
            "id": self.model_id, "object": "model", "created": self.started, "owned_by": "lantern",
            "lantern": {**self.info, "name": m.get("name"), "entry": m.get("entry"),
                        "mode": self.pack.loop.mode, "description": m.get("description")}}]})

    async def chat(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            body = await _read_body(request, self.limits.max_request_bytes)
            req = parse_chat_request(body, self.model_id, self.pack.loop, self.limits.max_tokens,
                                     self.limits.default_max_tokens, self.limits.max_prompt_chars)
        except RequestError as exc:
            return JSONResponse(error_body(str(exc), exc.code), status_code=exc.status)
        job = Job(req.prompt, self.pack.entry, req.loop, req.sampling)
        if not self.pool.submit(job):
            return JSONResponse(
                error_body("All workers are busy and the queue is full; retry later.", "server_busy", "server_error"),
                status_code=503, headers={"Retry-After": str(self.pool.retry_after())})
        if req.stream:
            return EventSourceResponse(self._stream(job, req), ping=15, send_timeout=30)
        return await self._wait(request, job, req)

    # -- answering --------------------------------------------------------------------------
    async def _wait(self, request: Request, job: Job, req: ChatRequest) -> Response:
        transcript = Transcript()
        finished = False
        checked = time.monotonic()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(job.events.get(), DISCONNECT_POLL_S)
                except TimeoutError:
                    item = None
                # Asked at least every DISCONNECT_POLL_S, also while events keep coming: a run
                # that streams steadily must still stop when its client has gone.
                if item is None or time.monotonic() - checked >= DISCONNECT_POLL_S:
                    checked = time.monotonic()
                    if await request.is_disconnected():
                        return Response(status_code=499)  # nobody reads it; the finally cancels the run
                if item is None:
                    continue
                if item is END:
                    finished = True
                    break
                transcript.apply(item)
        finally:
            if not finished:
                self.pool.drop(job)
        if transcript.failed is not None or transcript.done is None:
            return _failure(transcript.failed)
        if transcript.done.stats.get("stop_reason") == "cancelled":
            return JSONResponse(error_body("The run was cancelled.", "cancelled", "server_error"), status_code=503)
        prompt_tokens = int(transcript.done.stats.get("prompt_tokens", 0))
        return JSONResponse(full_response(completion_id(), self.model_id, self.info, req, transcript, prompt_tokens))

    async def _stream(self, job: Job, req: ChatRequest):
        """SSE chunks. Token text streams live unless the loop can take tokens back (blip
        mode, guide with rewinds): then the final text comes in one chunk at the end, and
        the live chunks carry only the ``lantern`` events, rewinds included."""
        cid, created = completion_id(), int(time.time())
        live = not (req.loop.mode == "blip" or (req.loop.mode == "guide" and req.loop.guide_rewind))
        transcript = Transcript()
        finished = False
        try:
            yield _data(chunk(cid, self.model_id, created, {"role": "assistant", "content": ""},
                              lantern=lantern_block(self.info, req)))
            while True:
                item = await job.events.get()
                if item is END:
                    finished = True
                    break
                transcript.apply(item)
                if isinstance(item, Failed):
                    yield _data(error_body(item.message, "run_failed", "server_error"))
                    continue
                if isinstance(item, Done):
                    if item.stats.get("stop_reason") == "cancelled":
                        yield _data(error_body("The run was cancelled.", "cancelled", "server_error"))
                        continue
                    if not live and transcript.answer:
                        yield _data(chunk(cid, self.model_id, created, {"content": transcript.answer}))
                    yield _data(chunk(cid, self.model_id, created, {}, finish_reason(item),
                                      lantern={"stats": item.stats, "answer_indices": list(transcript.visible)}))
                    continue
                extra = event_json(item)
                if extra is None:
                    continue
                delta = {"content": item.text} if live and isinstance(item, TokenEvent) else {}
                yield _data(chunk(cid, self.model_id, created, delta, lantern=extra))
            yield {"data": "[DONE]"}
        finally:
            if not finished:  # the client went away (sse-starlette cancelled us): stop the run
                self.pool.drop(job)

    def _check_key(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            return None
        return JSONResponse(error_body("The API key is missing or wrong.", "invalid_api_key", "authentication_error"),
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _data(obj: dict[str, Any]) -> dict[str, str]:
    return {"data": json.dumps(obj, ensure_ascii=False, separators=(",", ":"))}


async def _read_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"The request is larger than {limit} bytes.", 413, "request_too_large")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise RequestError(f"The request is larger than {limit} bytes.", 413, "request_too_large")
    try:
        return json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        raise RequestError("The request body is not valid JSON.") from None


def _failure(failed: Failed | None) -> Response:
    message = failed.message if failed is not None else "The run ended without an answer."
    if "context" in message.lower():
        return JSONResponse(error_body(message, "context_length_exceeded"), status_code=400)
    return JSONResponse(error_body(message, "run_failed", "server_error"), status_code=500)


__all__ = ["Service", "ServeLimits"]

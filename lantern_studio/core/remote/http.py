"""One HTTP connection to a model server, with requests that another thread can cancel.

The engine runs in a worker thread and ``Backend.abort()`` arrives from another (the Stop
button, a client that went away). A blocking client cannot be interrupted, so requests run
as tasks on a private event loop thread with httpx's async client; the calling thread
waits on a future that ``abort()`` cancels at once, which also closes the request's socket
so that the server stops working on it. Every failure becomes one ``ServerError`` sentence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import Cancelled, ContextOverflow, LanternError
from .errors import (ServerAuthError, ServerDisconnected, ServerError, ServerHTTPError, ServerProtocolError,
                     ServerTimeout, ServerUnavailable)

T = TypeVar("T")

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a 150k-token vocabulary with pieces is ~8 MB
_SENTENCE_BREAK = re.compile(r"[.!?]+\s+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """How Lantern talks to a model server."""

    api_key: str | None = None
    timeout_s: float = 60.0  # one request, from sending to the last byte of the answer
    connect_timeout_s: float = 5.0
    # Log-probabilities asked for per position. The sampler's default top_k is 40, so
    # with 64 temperature sampling never reaches the estimated tail.
    n_probs: int = 64

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise LanternError(f"The server setting {name!r} must be a number of seconds between 0 and 3600.")
        if isinstance(self.n_probs, bool) or not isinstance(self.n_probs, int) or not 1 <= self.n_probs <= 1000:
            raise LanternError("The server setting 'n_probs' must be a whole number between 1 and 1000.")


def is_url(spec: object) -> bool:
    """True for ``http://…`` and ``https://…`` model specs (a server, not a file)."""
    return isinstance(spec, str) and spec.strip().lower().startswith(("http://", "https://"))


def normalise_url(url: str) -> str:
    """``url`` without trailing slashes; LanternError unless it is an http(s) URL with a host."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise LanternError(f"The server address {url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LanternError(f"The server address {url!r} must look like http://HOST:PORT.")
    if parts.query or parts.fragment:
        raise LanternError(f"The server address {url!r} must not have a query or a fragment.")
    del port
    return url.rstrip("/")


def one_clause(text: str, limit: int = 160) -> str:
    """A server's free text made safe to embed in one of our sentences."""
    text = _SPACES.sub(" ", _SENTENCE_BREAK.sub("; ", str(text))).strip(" ;.!?")
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class ServerConnection:
    """HTTP(S) requests to one server; thread-safe; ``abort()`` cancels what is in flight."""

    def __init__(self, url: str, settings: RemoteSettings = RemoteSettings()) -> None:
        self.url = normalise_url(url)
        self.settings = settings
        self._aborted = threading.Event()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lantern-remote", daemon=True)
        self._thread.start()
        headers = {"Accept": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)

        async def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits, trust_env=False)

        self._client = asyncio.run_coroutine_threadsafe(make(), self._loop).result()
        self.closed = False

    # -- running requests from a synchronous caller --------------------------------------
    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run the coroutine ``make()`` on the connection's loop and wait for it; raises
        Cancelled at once when ``abort()`` is called meanwhile."""
        if self.closed:
            raise ServerError("The connection to the model server has been closed.")
        if self._aborted.is_set():
            raise Cancelled("The run was cancelled.")
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)  # type: ignore[arg-type]
        with self._lock:
            self._inflight.add(future)
        if self._aborted.is_set():  # abort() may have run between the check and the add
            future.cancel()
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise Cancelled("The run was cancelled.") from None
        finally:
            with self._lock:
                self._inflight.discard(future)

    def abort(self) -> None:
        """Cancel every request in flight and refuse new ones until ``clear_abort()``."""
        self._aborted.set()
        with self._lock:
            pending = list(self._inflight)
        for future in pending:
            future.cancel()

    def clear_abort(self) -> None:
        self._aborted.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.abort()
        try:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=5)
        except Exception:  # closing is best effort: the loop thread is a daemon
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    # -- requests (coroutines, run on the loop) -------------------------------------------
    async def get_json(self, path: str) -> Any:
        return await self._request("GET", path, None)

    async def post_json(self, path: str, body: Any) -> Any:
        return await self._request("POST", path, body)

    def get(self, path: str) -> Any:
        """Blocking GET of a JSON endpoint (for set-up calls)."""
        return self.run(lambda: self.get_json(path))

    def post(self, path: str, body: Any) -> Any:
        return self.run(lambda: self.post_json(path, body))

    async def _request(self, method: str, path: str, body: Any) -> Any:
        url = self.url + path
        where = self.url
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                async with self._client.stream(method, url, content=content, headers=headers) as resp:
                    data = await _read_limited(resp, where)
                    status = resp.status_code
        except TimeoutError:
            raise ServerTimeout(
                f"The model server at {where} did not answer within {self.settings.timeout_s:g} s.") from None
        except httpx.ConnectTimeout:
            raise ServerUnavailable(
                f"The model server at {where} could not be reached within {self.settings.connect_timeout_s:g} s.") from None
        except httpx.ConnectError:
            raise ServerUnavailable(f"Nothing answers at {where}: the model server is not running or refuses connections.") from None
        except httpx.TimeoutException:
            raise ServerTimeout(
                f"The model server at {where} did not answer within {self.settings.timeout_s:g} s.") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError):
            raise ServerDisconnected(
                f"The model server at {where} closed the connection during a request; it may have stopped.") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"The request to the model server at {where} failed ({type(exc).__name__}).") from None
        if status >= 400:
            raise _http_error(status, data, where, path)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ServerProtocolError(f"The model server at {where} sent an answer to {path} that is not JSON.") from None


async def _read_limited(resp: httpx.Response, where: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ServerProtocolError(f"The model server at {where} sent an answer larger than {MAX_RESPONSE_BYTES >> 20} MB.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ServerProtocolError(
                f"The model server at {where} sent an answer larger than {MAX_RESPONSE_BYTES >> 20} MB.")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_text(data: bytes) -> tuple[str, str]:
    """(message, type) from an error body: llama-server and OpenAI both send
    ``{"error": {"message", "type"}}``; anything else is shown as text."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data[:300].decode("utf-8", "replace"), ""
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", "")), str(err.get("type", ""))
    if isinstance(err, str):
        return err, ""
    if isinstance(obj, dict) and isinstance(obj.get("detail"), str):  # FastAPI-style servers
        return obj["detail"], ""
    return "", ""


def _http_error(status: int, data: bytes, where: str, path: str) -> LanternError:
    message, kind = _error_text(data)
    detail = one_clause(message)
    if kind == "exceed_context_size_error" or "context size" in message.lower() or "maximum context length" in message.lower():
        return ContextOverflow(f"The run no longer fits in the context of the model server at {where} ({detail}).")
    if status in (401, 403):
        return ServerAuthError(f"The model server at {where} refused the API key (HTTP {status}).", status)
    if status == 404:
        return ServerHTTPError(f"The model server at {where} has no {path} endpoint (HTTP 404), so the address or the server kind is wrong.", status)
    if status == 503:
        return ServerHTTPError(f"The model server at {where} is busy or still loading its model (HTTP 503).", status)
    tail = f": {detail}" if detail else ""
    return ServerHTTPError(f"The model server at {where} answered HTTP {status}{tail}.", status)


__all__ = ["RemoteSettings", "ServerConnection", "is_url", "normalise_url", "one_clause", "MAX_RESPONSE_BYTES"]

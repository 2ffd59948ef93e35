"""Remote terrain: the engine's ``Backend`` over a model server (docs/remote.md).

``connect(url)`` asks the server what it is: a llama.cpp ``llama-server`` (its ``/props``)
gets the native backend; a server that only speaks the OpenAI API (vLLM, SGLang) gets the
completions backend, which needs the model's vocabulary from a local GGUF.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LanternError
from .base import RemoteBackend
from .credentials import api_key_for, save_api_key
from .errors import (ServerAuthError, ServerDisconnected, ServerError, ServerHTTPError, ServerModelMismatch,
                     ServerProtocolError, ServerTimeout, ServerUnavailable)
from .http import RemoteSettings, ServerConnection, is_url, normalise_url, one_clause
from .llama_server import LlamaServerBackend, model_name


def connect(url: str, settings: RemoteSettings | None = None, *, slots: Sequence[int] | None = None,
            vocabulary: str | None = None) -> RemoteBackend:
    """A backend on the server at ``url``; ``slots`` pins llama-server slots to this backend
    (several engines on one server), ``vocabulary`` names a local GGUF with the served
    model's tokenizer for an OpenAI-only server. Raises a ServerError sentence on failure."""
    if settings is None:
        settings = RemoteSettings(api_key=api_key_for(url))
    conn = ServerConnection(url, settings)
    try:
        props = _llama_props(conn)
        if props is not None:
            return LlamaServerBackend.connect(conn, props, slots)
        from .openai_compat import OpenAICompletionsBackend
        return OpenAICompletionsBackend.connect(conn, vocabulary)
    except BaseException:
        conn.close()
        raise


@dataclass(frozen=True)
class ServerInfo:
    """What "Test connection" shows: the server's kind and the model it reports."""

    url: str
    kind: str  # "llama-server" or "openai-completions"
    model: str
    n_ctx: int | None
    slots: int | None

    def describe(self) -> str:
        parts = [f"{self.model} on {self.kind}"]
        if self.n_ctx:
            parts.append(f"{self.n_ctx} tokens of context")
        if self.slots:
            parts.append(f"{self.slots} slots")
        return ", ".join(parts) + "."


def probe(url: str, settings: RemoteSettings | None = None) -> ServerInfo:
    """Ask the server at ``url`` what it runs, cheaply (no vocabulary); ServerError if it
    cannot be used."""
    if settings is None:
        settings = RemoteSettings(api_key=api_key_for(url))
    conn = ServerConnection(url, settings)
    try:
        props = _llama_props(conn)
        models = conn.get("/v1/models")
        data = models.get("data") if isinstance(models, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        if props is not None:
            meta = first.get("meta") if isinstance(first.get("meta"), dict) else {}
            name = model_name(props.get("model_alias") or first.get("id"), props.get("model_path")
                              if isinstance(props.get("model_path"), str) else None)
            settings_ = props.get("default_generation_settings")
            n_ctx = settings_.get("n_ctx") if isinstance(settings_, dict) else meta.get("n_ctx")
            slots = props.get("total_slots")
            return ServerInfo(conn.url, "llama-server", one_clause(str(name), 120),
                              n_ctx if isinstance(n_ctx, int) else None, slots if isinstance(slots, int) else None)
        if not isinstance(first.get("id"), str):
            raise ServerProtocolError(f"The server at {conn.url} is neither a llama-server nor lists a model at /v1/models.")
        n_ctx = first.get("max_model_len")
        return ServerInfo(conn.url, "openai-completions", one_clause(first["id"], 120),
                          n_ctx if isinstance(n_ctx, int) else None, None)
    finally:
        conn.close()


def _llama_props(conn: ServerConnection) -> dict[str, Any] | None:
    """llama-server's /props, or None when the server is something else."""
    try:
        props = conn.get("/props")
    except ServerHTTPError as exc:
        if exc.status in (404, 405):
            return None
        raise
    except ServerProtocolError:
        return None
    return props if isinstance(props, dict) and "default_generation_settings" in props else None


def check_model(backend: Any, hint: Mapping[str, Any] | None, what: str = "the pack") -> None:
    """Refuse a terrain whose model differs from what a pack's ``model_hint`` or a trace's
    ``model`` header names: by sha256 when both sides know it, else by name."""
    if not hint:
        return
    want_sha = hint.get("sha256")
    have_sha = backend.model_sha256() if hasattr(backend, "model_sha256") else ""
    if want_sha and have_sha:
        if want_sha != have_sha:
            raise ServerModelMismatch(
                f"{what.capitalize()} names a model with sha256 {want_sha[:12]}… but the terrain's model has {have_sha[:12]}….")
        return
    want_name = hint.get("name")
    if want_name and not any(_same_name(str(want_name), name) for name in _names(backend, have_sha)):
        raise ServerModelMismatch(
            f"{what.capitalize()} names the model {one_clause(want_name, 80)!r} but the terrain runs {one_clause(backend.model_name, 80)!r}.")


def _names(backend: Any, sha256: str) -> list[str]:
    """What the terrain's model is called: its own name, its file's name, and the built-in
    model's names when the file is a built-in one."""
    from pathlib import PurePath

    from ..models import BUILTINS

    names = [str(backend.model_name)]
    path = getattr(backend, "model_path", None) or getattr(backend, "_model_path", None)
    if path:
        names.append(PurePath(str(path)).name)
    for m in BUILTINS.values():
        if sha256 and m.sha256 == sha256:
            names += [m.name, m.title, m.filename]
    return names


def _same_name(a: str, b: str) -> bool:
    """Model names as servers and GGUF files spell them: case, punctuation and a file
    extension do not count; one may carry extra words (a quantisation, a version)."""
    def norm(s: str) -> str:
        s = s.lower().removesuffix(".gguf")
        return "".join(ch for ch in s if ch.isalnum())
    x, y = norm(a), norm(b)
    return bool(x) and bool(y) and (x in y or y in x)


__all__ = ["connect", "probe", "ServerInfo", "check_model", "api_key_for", "save_api_key", "is_url", "normalise_url", "RemoteBackend", "RemoteSettings",
           "LlamaServerBackend", "ServerConnection", "ServerError", "ServerUnavailable", "ServerDisconnected",
           "ServerTimeout", "ServerHTTPError", "ServerAuthError", "ServerProtocolError", "ServerModelMismatch",
           "LanternError"]

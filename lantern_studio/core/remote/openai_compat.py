"""OpenAI-compatible completions servers with log-probabilities (vLLM, SGLang) as terrain.

What the OpenAI API gives: ``/v1/completions`` with a token-id prompt (or a list of them,
one choice each), ``max_tokens: 1`` and ``logprobs: k`` returns the top-k log-probabilities
of the next token; vLLM's ``return_tokens_as_token_ids`` names them ``token_id:N``. What it
lacks: the vocabulary, the chat template and end-of-turn tokens, and slots. So this backend
reads the tokenizer from a local GGUF of the same model (``vocabulary``, ``LANTERN_VOCABULARY``, or
the installed built-in model the server names), checks it against
the server's ``/tokenize`` where the server has one, and relies on the server's automatic
prefix caching instead of slots. All positions of a sidecar chunk go in one request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LanternError
from .base import RemoteBackend
from .errors import ServerHTTPError, ServerModelMismatch, ServerProtocolError
from .http import ServerConnection
from .rows import row_from_top

VOCABULARY_ENV = "LANTERN_VOCABULARY"  # a built-in name or a GGUF path with the served model's tokenizer
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs; OpenAI's own limit is lower still
VIRTUAL_SEQUENCES = 8  # no slots: sequences are only prompts, the server's cache is shared
_PROBE_TEXT = "Lantern checks the tokenizer: naïve café, 12345, <b>x</b>."


class OpenAICompletionsBackend(RemoteBackend):
    server_kind = "openai-completions"

    def __init__(self, conn: ServerConnection, vocab_model: Any, served: str, n_ctx: int) -> None:
        self._vocab_model = vocab_model
        self.served_model = served
        model = vocab_model
        end = {t for t in range(model.n_vocab) if model.is_eog(t)}
        bos = [model.bos()] if model.add_bos() else []
        super().__init__(conn, model_name=served, n_ctx=n_ctx, n_vocab=model.n_vocab,
                         slots=range(VIRTUAL_SEQUENCES), pieces=model.pieces(), end_tokens=end, bos=bos,
                         template=model.chat_template())
        self.k = min(self.settings.n_probs, MAX_LOGPROBS)

    @classmethod
    def connect(cls, conn: ServerConnection, vocabulary: str | None) -> "OpenAICompletionsBackend":
        models = conn.get("/v1/models")
        data = models.get("data") if isinstance(models, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) or not isinstance(data[0].get("id"), str):
            raise ServerProtocolError(f"The server at {conn.url} is neither a llama-server nor lists a model at /v1/models.")
        served = data[0]["id"]
        vocabulary = vocabulary or os.environ.get(VOCABULARY_ENV) or _installed_builtin(served)
        if not vocabulary:
            raise LanternError(
                f"The server at {conn.url} speaks only the OpenAI API; name a local GGUF of its model in {VOCABULARY_ENV}.")
        from ..llama_native import LlamaModel
        from ..models import resolve_model
        vocab_model = LlamaModel(resolve_model(vocabulary))
        try:
            n_ctx = data[0].get("max_model_len")
            if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx <= 0:
                n_ctx = vocab_model.n_ctx_train
            backend = cls(conn, vocab_model, served, n_ctx)
            backend._check_tokenizer()
            return backend
        except BaseException:
            vocab_model.close()
            raise

    def _check_tokenizer(self) -> None:
        """Compare the local tokenizer with the server's when it has vLLM's /tokenize."""
        try:
            answer = self.conn.post("/tokenize", {"model": self.served_model, "prompt": _PROBE_TEXT,
                                                  "add_special_tokens": False})
        except ServerHTTPError:
            return  # no /tokenize (SGLang, OpenAI): the vocabulary is taken on trust
        theirs = answer.get("tokens") if isinstance(answer, dict) else None
        if theirs != self.tokenize(_PROBE_TEXT):
            raise ServerModelMismatch(
                f"The server at {self.url} tokenizes text differently from {Path(self._vocab_model.path).name}; give the served model's GGUF.")

    # -- text ----------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._vocab_model.tokenize(text, add_special=False, parse_special=special)

    def render_chat(self, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str:
        template = self.chat_template()
        if template is None:
            from ..errors import ModelError
            raise ModelError("The model has no chat template.")
        return self._vocab_model.apply_chat_template(template, messages, add_assistant)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._vocab_model.close()

    # -- distributions ------------------------------------------------------------------
    async def fetch_rows(self, slot: int, tokens: list[int], positions: list[int]) -> list[np.ndarray]:
        body = {"model": self.served_model, "prompt": [tokens[:p + 1] for p in positions], "max_tokens": 1,
                "temperature": 0.0, "logprobs": self.k, "echo": False, "return_tokens_as_token_ids": True}
        answer = await self.conn.post_json("/v1/completions", body)
        self.requests += len(positions)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or len(choices) != len(positions):
            raise ServerProtocolError(f"The server at {self.url} sent {len(choices) if isinstance(choices, list) else 'no'} "
                                      f"choices for {len(positions)} prompts.")
        rows: list[np.ndarray | None] = [None] * len(positions)
        for n, choice in enumerate(choices):
            index = choice.get("index", n) if isinstance(choice, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(positions) or rows[index] is not None:
                raise ServerProtocolError(f"The server at {self.url} sent choices with bad indices.")
            ids, logprobs = parse_top_logprobs(choice, self.n_vocab, self.url)
            rows[index] = row_from_top(ids, logprobs, self.n_vocab)
        return rows  # type: ignore[return-value]


def _installed_builtin(served: str) -> str | None:
    """The built-in model the server says it serves (e.g. HuggingFaceTB/SmolLM2-135M-Instruct),
    when it is installed here: its GGUF carries the same tokenizer."""
    from ..models import BUILTINS, is_installed

    def norm(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    name = norm(served.rsplit("/", 1)[-1])
    for m in BUILTINS.values():
        stem = norm(m.filename.split(".")[0])
        if name and (name in stem or stem in name) and is_installed(m.name):
            return m.name
    return None


def parse_top_logprobs(choice: Any, n_vocab: int, where: str) -> tuple[list[int], list[float]]:
    """Token ids and log-probs of the first generated token of a legacy completions choice
    (``logprobs.top_logprobs[0]`` maps ``token_id:N`` to a log-probability)."""
    bad = ServerProtocolError(f"The server at {where} sent log-probabilities without token ids "
                              f"(it must honour return_tokens_as_token_ids).")
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    top = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(top, list) or not top or not isinstance(top[0], dict) or not top[0]:
        raise ServerProtocolError(f"The server at {where} returned no log-probabilities.")
    ids: list[int] = []
    values: list[float] = []
    for key, lp in top[0].items():
        if not isinstance(key, str) or not key.startswith("token_id:") or not key[9:].isdigit():
            raise bad
        tid = int(key[9:])
        if not 0 <= tid < n_vocab or isinstance(lp, bool) or not isinstance(lp, (int, float)):
            raise ServerProtocolError(f"The server at {where} sent malformed log-probabilities.")
        lp = float(lp)
        if math.isnan(lp) or lp > 1e-3:
            raise ServerProtocolError(f"The server at {where} sent malformed log-probabilities.")
        ids.append(tid)
        values.append(max(min(lp, 0.0), -1e4))
    return ids, values


__all__ = ["OpenAICompletionsBackend", "parse_top_logprobs", "MAX_LOGPROBS"]

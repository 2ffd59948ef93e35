"""llama.cpp's ``llama-server`` as terrain, through its native API.

Each engine sequence is pinned to one server slot (``id_slot``), so the slot's prompt cache
holds that sequence and a request costs only the tokens it adds. A distribution is one
``/completion`` request with the token-id prompt, ``n_predict: 1`` and ``n_probs: k``:
llama-server's ``n_probs`` (with ``post_sampling_probs`` off) is the softmax of the raw
logits, before temperature or any sampler, which is exactly the engine's log p. The server
returns no log-probabilities for prompt tokens, so the sidecar's chunk of k tokens costs k
such requests, each riding the cache of the one before (docs/remote.md has the figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

import numpy as np

from ..errors import LanternError, ModelError
from .base import RemoteBackend
from .errors import ServerModelMismatch, ServerProtocolError
from .http import ServerConnection, one_clause
from .rows import row_from_top

# Texts llama.cpp itself treats as end-of-generation when the vocabulary marks them special.
END_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
             "<|eom_id|>", "<EOT>", "<|return|>", "<|call|>", "<end_of_utterance>", "</s>",
             "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>")


class LlamaServerBackend(RemoteBackend):
    server_kind = "llama-server"

    @classmethod
    def connect(cls, conn: ServerConnection, props: dict[str, Any], slots: Sequence[int] | None = None) -> "LlamaServerBackend":
        """Read the server's model facts and vocabulary; ``props`` is its ``/props`` answer."""
        where = conn.url
        total = _int(props.get("total_slots"), where, "total_slots")
        if slots is None:
            slots = range(total)
        slots = list(slots)
        if not slots or any(not 0 <= s < total for s in slots) or len(set(slots)) != len(slots):
            raise LanternError(f"The slots {slots} do not fit the {total} slots of the model server at {where}.")
        if len(slots) < 2:
            raise LanternError(
                f"The model server at {where} has {total} slot(s) for Lantern; the plant and the sidecar need two (start it with -np 2 or more).")
        settings = props.get("default_generation_settings")
        n_ctx = _int(settings.get("n_ctx") if isinstance(settings, dict) else None, where, "n_ctx")
        models = conn.get("/v1/models")
        meta = _model_meta(models, where)
        n_vocab = _int(meta.get("n_vocab"), where, "n_vocab")
        path = props.get("model_path") if isinstance(props.get("model_path"), str) else None
        name = model_name(props.get("model_alias") or meta.get("id"), path)
        template = props.get("chat_template")
        template = template if isinstance(template, str) and template.strip() else None
        pieces = _vocabulary(conn, n_vocab)
        bos = _tokenize(conn, "", add_special=True, special=True, n_vocab=n_vocab)
        end = _end_tokens(conn, props, pieces, n_vocab)
        return cls(conn, model_name=name, n_ctx=n_ctx, n_vocab=n_vocab, slots=slots, pieces=pieces,
                   end_tokens=end, bos=bos, template=template, model_path=path)

    # -- text ----------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return _tokenize(self.conn, text, add_special=False, special=special, n_vocab=self.n_vocab)

    def render_chat(self, messages: Sequence[tuple[str, str]], add_assistant: bool) -> str:
        template = self.chat_template()
        if template is None:
            raise ModelError("The model has no chat template.")
        from ..llama_native import apply_chat_template
        try:
            # The same renderer as the local engine: same prompt tokens, same answers.
            return apply_chat_template(template, messages, add_assistant)
        except ModelError:
            pass  # a template llama.cpp's built-in list does not know: let the server render it
        answer = self.conn.post("/apply-template", {
            "messages": [{"role": r, "content": c} for r, c in messages],
            "add_generation_prompt": add_assistant})
        prompt = answer.get("prompt") if isinstance(answer, dict) else None
        if not isinstance(prompt, str):
            raise ServerProtocolError(f"The model server at {self.url} sent no prompt from /apply-template.")
        return prompt

    # -- distributions ------------------------------------------------------------------
    async def fetch_rows(self, slot: int, tokens: list[int], positions: list[int]) -> list[np.ndarray]:
        rows = []
        for p in positions:  # in order: each request extends the slot's cache by one token
            rows.append(await self._row(slot, tokens[:p + 1]))
        return rows

    async def _row(self, slot: int, prompt: list[int]) -> np.ndarray:
        body = {"prompt": prompt, "n_predict": 1, "n_probs": self.settings.n_probs, "post_sampling_probs": False,
                "cache_prompt": True, "id_slot": slot, "temperature": 0.0, "return_tokens": True,
                "stream": False, "response_fields": ["completion_probabilities", "tokens", "stop_type", "model"]}
        answer = await self.conn.post_json("/completion", body)
        self.requests += 1
        ids, logprobs, sampled, stop = _parse_completion(answer, self.n_vocab, self.url)
        model = answer.get("model") if isinstance(answer, dict) else None
        if isinstance(model, str) and model and self._served_name is not None and model != self._served_name:
            raise ServerModelMismatch(
                f"The model server at {self.url} now runs {one_clause(model, 80)!r} instead of {one_clause(self._served_name, 80)!r}; reconnect to use it.")
        if isinstance(model, str) and self._served_name is None:
            self._served_name = model
        if stop == "eos" and sampled is not None:
            self._end.add(sampled)  # the server's greedy pick ended generation: an end token
        return row_from_top(ids, logprobs, self.n_vocab)

    _served_name: str | None = None


def model_name(alias: Any, path: str | None) -> str:
    """The name to show for a llama-server's model: its alias, or its file's name (without an
    alias llama-server names the model by its path)."""
    if not isinstance(alias, str) or not alias:
        return PurePath(path).name if path else "model"
    return PurePath(alias).name if ("/" in alias or "\\" in alias) else alias


# -- parsing the server's answers (untrusted input) -------------------------------------------
def _int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ServerProtocolError(f"The model server at {where} reported no valid {what}.")
    return value


def _model_meta(models: Any, where: str) -> dict[str, Any]:
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ServerProtocolError(f"The model server at {where} lists no model at /v1/models.")
    meta = data[0].get("meta")
    if not isinstance(meta, dict):
        raise ServerProtocolError(f"The model server at {where} reports no model details at /v1/models.")
    return {**meta, "id": data[0].get("id")}


def _piece(raw: Any) -> bytes | None:
    if isinstance(raw, str):
        return raw.encode("utf-8")
    if isinstance(raw, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw):
        return bytes(raw)
    return None


def _vocabulary(conn: ServerConnection, n_vocab: int) -> list[bytes]:
    """Every token's bytes in one request: /tokenize takes token ids too and ``with_pieces``
    returns each one's piece (text, or a list of bytes when not valid UTF-8)."""
    answer = conn.post("/tokenize", {"content": list(range(n_vocab)), "with_pieces": True})
    items = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(items, list) or len(items) != n_vocab:
        raise ServerProtocolError(f"The model server at {conn.url} did not return its vocabulary of {n_vocab} tokens.")
    pieces: list[bytes] = []
    for i, item in enumerate(items):
        piece = _piece(item.get("piece")) if isinstance(item, dict) and item.get("id") == i else None
        if piece is None:
            raise ServerProtocolError(f"The model server at {conn.url} sent a malformed piece for token {i}.")
        pieces.append(piece)
    return pieces


def _tokenize(conn: ServerConnection, text: str, *, add_special: bool, special: bool, n_vocab: int) -> list[int]:
    answer = conn.post("/tokenize", {"content": text, "add_special": add_special, "parse_special": special})
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n_vocab for t in tokens):
        raise ServerProtocolError(f"The model server at {conn.url} sent a malformed tokenization.")
    return tokens


def _end_tokens(conn: ServerConnection, props: dict[str, Any], pieces: list[bytes], n_vocab: int) -> set[int]:
    """End-of-generation tokens: the server's EOS and the special end-of-turn tokens llama.cpp
    recognises by their text. More are learnt when the server stops on one (stop_type eos)."""
    texts = list(END_TEXTS)
    eos = props.get("eos_token")
    if isinstance(eos, str) and eos:
        texts.insert(0, eos)
    found: set[int] = set()
    for text in texts:
        toks = _tokenize(conn, text, add_special=False, special=True, n_vocab=n_vocab)
        if len(toks) == 1 and pieces[toks[0]] == text.encode("utf-8"):
            found.add(toks[0])
    return found


def _parse_completion(answer: Any, n_vocab: int, where: str) -> tuple[list[int], list[float], int | None, str]:
    """(top ids, their log-probs, the sampled token, stop type) of a /completion answer."""
    bad = ServerProtocolError(f"The model server at {where} sent malformed log-probabilities.")
    if not isinstance(answer, dict):
        raise bad
    probs = answer.get("completion_probabilities")
    if not isinstance(probs, list) or not probs or not isinstance(probs[0], dict):
        raise ServerProtocolError(f"The model server at {where} returned no log-probabilities (is n_probs supported?).")
    top = probs[0].get("top_logprobs")
    if not isinstance(top, list) or not top:
        raise bad
    ids: list[int] = []
    logprobs: list[float] = []
    seen: set[int] = set()
    for entry in top:
        if not isinstance(entry, dict):
            raise bad
        tid, lp = entry.get("id"), entry.get("logprob")
        if (isinstance(tid, bool) or not isinstance(tid, int) or not 0 <= tid < n_vocab or tid in seen
                or isinstance(lp, bool) or not isinstance(lp, (int, float))):
            raise bad
        lp = float(lp)
        if math.isnan(lp) or lp > 1e-3:
            raise bad
        seen.add(tid)
        ids.append(tid)
        logprobs.append(max(min(lp, 0.0), -1e4))  # -inf (a masked token) becomes very unlikely
    sampled = probs[0].get("id")
    if isinstance(sampled, bool) or not isinstance(sampled, int) or not 0 <= sampled < n_vocab:
        sampled = None
    stop = answer.get("stop_type")
    return ids, logprobs, sampled, stop if isinstance(stop, str) else ""


__all__ = ["LlamaServerBackend", "END_TEXTS", "model_name"]

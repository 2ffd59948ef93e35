"""OpenAI chat-completions requests in, Lantern runs out: parsing, limits and the shapes of
the answers, including the ``"lantern"`` extension field (docs/remote.md documents it).

How a conversation becomes a run: the engine answers one user prompt, with the pack's entry
reference as the sidecar's system message. So the last user message is the prompt; earlier
turns and the client's system messages are not shown to the model (the pack's reference is
what steers), and the answer's ``lantern.ignored_messages`` says how many were left out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..core.errors import LanternError
from ..core.events import BlipEvent, Done, RewindEvent, RuleHit, TokenEvent, Transcript
from ..core.settings import MODES, LoopSettings, SamplingSettings


class RequestError(LanternError):
    """A request that cannot be served as sent (HTTP 400), one sentence."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ChatRequest:
    prompt: str
    sampling: SamplingSettings
    loop: LoopSettings
    stream: bool
    ignored_messages: int


def parse_chat_request(body: Any, model_id: str, loop: LoopSettings, max_tokens_limit: int,
                       default_max_tokens: int, max_prompt_chars: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is not None and model != model_id:
        raise RequestError(f"This server serves the model {model_id!r} only.", 404, "model_not_found")
    n = body.get("n", 1)
    if n != 1:
        raise RequestError("Only one choice per request is supported (n must be 1).")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > 1000:
        raise RequestError("'messages' must be a list of 1 to 1000 messages.")
    prompt, last = None, -1
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(f"Message {i} must be an object with a 'role'.")
        if m["role"] == "user":
            prompt, last = _content(m.get("content"), i), i
    if prompt is None:
        raise RequestError("The conversation has no user message to answer.")
    if not prompt.strip():
        raise RequestError("The last user message is empty.")
    if len(prompt) > max_prompt_chars:
        raise RequestError(f"The last user message is longer than {max_prompt_chars} characters.", 413)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is None:
        limit = default_max_tokens
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_tokens_limit:
        raise RequestError(f"'max_tokens' must be a whole number from 1 to {max_tokens_limit}.")
    try:
        sampling = SamplingSettings(
            temperature=_number(body, "temperature", 0.0), top_p=_number(body, "top_p", SamplingSettings().top_p),
            seed=body.get("seed") if body.get("seed") is not None else 0, max_tokens=limit)
    except LanternError as exc:
        raise RequestError(str(exc)) from None
    extra = body.get("lantern")
    if extra is not None:
        if not isinstance(extra, dict) or set(extra) - {"mode"} or extra.get("mode") not in MODES:
            raise RequestError(f"'lantern' may only hold a 'mode', one of {', '.join(MODES)}.")
        loop = loop.updated(mode=extra["mode"])
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be true or false.")
    ignored = sum(1 for i, m in enumerate(messages) if i != last)
    return ChatRequest(prompt, sampling, loop, stream, ignored)


def _content(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text is understood
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"Message {i} has a content part that is not text.")
            texts.append(part["text"])
        return "\n".join(texts)
    raise RequestError(f"Message {i} has no text content.")


def _number(body: dict, key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"'{key}' must be a number.")
    return float(value)


# -- answers --------------------------------------------------------------------------------
def completion_id() -> str:
    return "chatcmpl-lantern-" + uuid.uuid4().hex[:24]


def token_json(ev: TokenEvent, rewound: bool | None = None) -> dict[str, Any]:
    out = {"index": ev.index, "token_id": ev.token_id, "text": ev.text, "logp_plant": ev.logp_plant,
           "logp_ref": ev.logp_ref, "error": ev.error, "divergence": ev.divergence, "control": ev.control,
           "approx": ev.approx}
    if rewound is not None:
        out["rewound"] = rewound
    return out


def finish_reason(done: Done | None) -> str:
    stop = (done.stats.get("stop_reason") if done else None) or ""
    return "length" if stop in ("max_tokens", "context_full") else "stop"


def lantern_block(info: dict[str, Any], req: ChatRequest) -> dict[str, Any]:
    return {**info, "mode": req.loop.mode, "ignored_messages": req.ignored_messages}


def full_response(cid: str, model_id: str, info: dict[str, Any], req: ChatRequest, tr: Transcript,
                  prompt_tokens: int) -> dict[str, Any]:
    stats = tr.done.stats if tr.done else {}
    completion = len(tr.visible)
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": tr.answer},
                     "finish_reason": finish_reason(tr.done), "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                  "total_tokens": prompt_tokens + completion},
        "lantern": {**lantern_block(info, req),
                    "tokens": [token_json(t, t.index in tr.rewound) for t in tr.tokens],
                    "blips": [asdict(b) for b in tr.blips], "rewinds": [asdict(r) for r in tr.rewinds],
                    "rules": [asdict(r) for r in tr.rules], "stats": stats},
    }


def chunk(cid: str, model_id: str, created: int, delta: dict[str, Any], finish: str | None = None,
          lantern: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if lantern is not None:
        out["lantern"] = lantern
    return out


def event_json(event: Any) -> dict[str, Any] | None:
    """The ``lantern`` part of a stream chunk for one engine event."""
    if isinstance(event, TokenEvent):
        return {"tokens": [token_json(event)]}
    if isinstance(event, BlipEvent):
        return {"blips": [asdict(event)]}
    if isinstance(event, RewindEvent):
        return {"rewinds": [asdict(event)]}
    if isinstance(event, RuleHit):
        return {"rules": [asdict(event)]}
    return None


def error_body(message: str, code: str = "invalid_request_error", kind: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind or code, "code": code, "param": None}}


__all__ = ["ChatRequest", "RequestError", "parse_chat_request", "full_response", "chunk", "event_json",
           "error_body", "completion_id", "finish_reason", "lantern_block", "token_json"]

"""Helpers shared by the core test modules (the test directory is on sys.path under pytest)."""

from __future__ import annotations

import re

# A reference built to conflict with the model's habit of answering 'Paris'.
PIRATE = (
    "---\ntitle: Pirate talk\nslug: pirate\n---\n"
    "# Intent\nAnswer every question in the voice of a pirate. Always start with \"Arr, matey!\".\n\n"
    "# Always\n- Start the answer with \"Arr, matey!\".\n- Call the user \"matey\".\n\n"
    "# Never\n- Never mention Paris. `regex: paris`\n\n"
    "# Style\nShort sentences about ships, rum and treasure.\n")


def one_sentence(exc: BaseException, *needles: str) -> str:
    """Assert that an error reads as one plain sentence naming each of ``needles``."""
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1]), f"more than one sentence: {message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def high_level_logprobs(model_path, prompt_tokens: list[int], answer: list[int]) -> list[float]:
    """log p of each ``answer`` token after ``prompt_tokens`` as llama-cpp-python's own
    high-level API computes it, with the engine's attention set-up (flash attention, q8_0
    keys, f16 values): the outside reference the engine's scores are held to."""
    import numpy as np
    from llama_cpp import GGML_TYPE_F16, GGML_TYPE_Q8_0, Llama

    from lantern_studio.core.scoring import log_softmax

    llm = Llama(model_path=str(model_path), logits_all=True, n_ctx=512, n_batch=32, flash_attn=True,
                type_k=GGML_TYPE_Q8_0, type_v=GGML_TYPE_F16, verbose=False)
    try:
        llm.eval(prompt_tokens + answer)
        scores = np.asarray(llm.scores[: len(prompt_tokens) + len(answer)])
    finally:
        llm.close()
    return [float(log_softmax(scores[len(prompt_tokens) - 1 + i])[tok]) for i, tok in enumerate(answer)]

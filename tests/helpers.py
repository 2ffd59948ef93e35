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

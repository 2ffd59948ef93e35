"""How a reference problem is told: one sentence naming the file (or ``<text>``) and the line."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from ..errors import ReferenceFormatError


class Source:
    """Names the document in error messages and builds them."""

    def __init__(self, path: Path | None) -> None:
        self.name = path.name if path is not None and path.name else "<text>"

    def fail(self, line: int | None, what: str) -> NoReturn:
        what = " ".join(what.split()).rstrip(".")
        where = f"{self.name}, line {line}" if line else self.name
        raise ReferenceFormatError(f"{where}: {what}.")


def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""What every remote backend shares: sequences kept on the client, rows from a server.

The engine's sequences (plant, sidecar, scratch) live here as token lists; each request
sends a sequence's whole token prefix and the server's prefix cache makes only the new
tokens cost anything. Truncating, rewinding and sharing a prefix are therefore list
operations on the client, and feeding tokens without wanting their logits costs nothing
until the next request that needs a distribution.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..backend import Feed
from ..errors import ContextOverflow, LanternError
from .http import RemoteSettings, ServerConnection
from .rows import is_filled


class RemoteBackend(ABC):
    """The ``Backend`` protocol over a model server; subclasses say how a row is fetched."""

    server_kind = "remote"

    def __init__(self, conn: ServerConnection, *, model_name: str, n_ctx: int, n_vocab: int,
                 slots: Sequence[int], pieces: list[bytes], end_tokens: set[int], bos: list[int],
                 template: str | None, model_path: str | None = None) -> None:
        self.conn = conn
        self.url = conn.url
        self.settings: RemoteSettings = conn.settings
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_vocab = n_vocab
        self.slots = list(slots)
        self.n_seq = len(self.slots)
        self._pieces = pieces
        self._end = set(end_tokens)
        self._control: dict[int, bool] = {}
        self._bos = list(bos)
        self._template = template
        self._model_path = model_path
        self._sha256: str | None = None
        self._seqs: list[list[int]] = [[] for _ in range(self.n_seq)]
        # Per sequence: position -> the token ids the server returned for the row there.
        self._returned: list[dict[int, frozenset[int]]] = [{} for _ in range(self.n_seq)]
        self.decode_seconds = 0.0  # time spent waiting for the server, for benchmarks
        self.requests = 0  # distributions asked of the server

    # -- model facts -------------------------------------------------------------------
    def model_sha256(self) -> str:
        """The sha256 of the server's model file when this machine can read that file (a
        server on the same host); otherwise empty, because no server API reports it."""
        if self._sha256 is None:
            self._sha256 = ""
            if self._model_path:
                from ..backend import _cached_sha256  # the one cache of model hashes
                path = Path(self._model_path)
                try:
                    if path.is_file():
                        self._sha256 = _cached_sha256(path)
                except OSError:
                    pass
        return self._sha256

    def pieces(self) -> list[bytes]:
        return self._pieces

    def is_end(self, token: int) -> bool:
        return token in self._end

    def is_control(self, token: int) -> bool:
        """A control token: one that only special-token parsing produces from its spelling
        (servers do not report token attributes). Asked of few tokens — the template's — and
        remembered."""
        known = self._control.get(token)
        if known is None:
            text = self._pieces[token].decode("utf-8", "replace") if 0 <= token < len(self._pieces) else ""
            known = bool(text) and self.tokenize(text, special=True) == [token] \
                and self.tokenize(text, special=False) != [token]
            self._control[token] = known
        return known

    def chat_template(self) -> str | None:
        return self._template

    def bos_tokens(self) -> list[int]:
        return list(self._bos)

    def description(self) -> str:
        return f"{self.model_name} on {self.server_kind} at {self.url}"

    # -- sequences ---------------------------------------------------------------------
    def tokens(self, seq: int) -> list[int]:
        return list(self._seqs[seq])

    def length(self, seq: int) -> int:
        return len(self._seqs[seq])

    def truncate(self, seq: int, n: int) -> None:
        del self._seqs[seq][n:]
        self._returned[seq] = {p: ids for p, ids in self._returned[seq].items() if p < n}

    def in_top_k(self, seq: int, position: int, token: int) -> bool | None:
        """Whether the server returned ``token``'s log-probability in the row computed at
        ``position`` of ``seq`` (the row predicting the token after it); None if no such row
        is known. The same fact as ``is_estimate``, asked by position instead of by row."""
        ids = self._returned[seq].get(position)
        return None if ids is None else token in ids

    def share_prefix(self, src: int, dst: int, n: int) -> None:
        # The destination's slot recomputes the prefix on its next request (a server cannot
        # share cache cells between slots); the scored blip choice pays this.
        self._seqs[dst] = self._seqs[src][:n]
        self._returned[dst] = {p: ids for p, ids in self._returned[src].items() if p < n}

    def knock_out(self, seq: int, p0: int, p1: int) -> None:
        raise LanternError("Attribution needs a local model: a model server cannot take a span out of a cached prompt.")

    def is_estimate(self, row: np.ndarray, token: int) -> bool:
        return is_filled(row, token)

    def forward(self, feeds: Sequence[Feed]) -> list[np.ndarray]:
        """Append each feed's tokens and return its wanted rows, as the local backend does;
        the rows are log-probabilities, exact for the server's top-k and filled elsewhere."""
        new_seqs: dict[int, list[int]] = {}
        wanted: dict[int, list[int]] = {}  # seq -> positions (index of the last token seen)
        spans: list[tuple[int, int, int]] = []  # per feed: seq, first and end index in wanted[seq]
        for feed in feeds:
            if not 0 <= feed.seq < self.n_seq:
                raise LanternError(f"Internal error: sequence {feed.seq} is beyond the server's {self.n_seq} slots.")
            toks = new_seqs.setdefault(feed.seq, list(self._seqs[feed.seq]))
            pos = wanted.setdefault(feed.seq, [])
            first = len(pos)
            for i, token in enumerate(feed.tokens):
                token = int(token)
                if not 0 <= token < self.n_vocab:
                    raise LanternError(f"Internal error: token {token} is outside the vocabulary.")
                toks.append(token)
                if feed.logits_from is not None and i >= feed.logits_from:
                    pos.append(len(toks) - 1)
            spans.append((feed.seq, first, len(pos)))
        for seq, toks in new_seqs.items():
            if len(toks) > self.n_ctx:
                raise ContextOverflow(
                    f"The run needs {len(toks)} tokens in one sequence but the model server's context holds {self.n_ctx}.")
        jobs = {seq: (new_seqs[seq], pos) for seq, pos in wanted.items() if pos}
        rows: dict[int, list[np.ndarray]] = {}
        if jobs:
            t0 = time.perf_counter()
            try:
                rows = self.conn.run(lambda: self._fetch_all(jobs))
            finally:
                self.decode_seconds += time.perf_counter() - t0
        for seq, toks in new_seqs.items():  # only now: a failed request changes nothing
            self._seqs[seq] = toks
        for seq, got in rows.items():
            for p, row in zip(jobs[seq][1], got):
                self._returned[seq][p] = frozenset(np.flatnonzero(row != row.min()).tolist())
        outs: list[np.ndarray] = []
        for feed, (seq, a, b) in zip(feeds, spans):
            got = rows.get(seq, [])[a:b]
            if feed.targets is not None:
                outs.append(np.asarray([r[int(t)] for r, t in zip(got, feed.targets)], dtype=np.float32))
            else:
                outs.append(np.vstack(got) if got else np.empty((0, self.n_vocab), dtype=np.float32))
        return outs

    async def _fetch_all(self, jobs: dict[int, tuple[list[int], list[int]]]) -> dict[int, list[np.ndarray]]:
        seqs = list(jobs)
        results = await asyncio.gather(*(self.fetch_rows(self.slots[s], *jobs[s]) for s in seqs))
        return dict(zip(seqs, results))

    @abstractmethod
    async def fetch_rows(self, slot: int, tokens: list[int], positions: list[int]) -> list[np.ndarray]:
        """Rows predicting the token after each of ``positions`` in ``tokens``."""

    # -- cancelling and closing -----------------------------------------------------------
    def abort(self) -> None:
        self.conn.abort()

    def clear_abort(self) -> None:
        self.conn.clear_abort()

    def close(self) -> None:
        self.conn.close()


__all__ = ["RemoteBackend"]

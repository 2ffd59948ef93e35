"""One way to write a file so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o666) -> None:
    """Write ``data`` (text is UTF-8, newlines as given) to a new file beside ``path``, flush
    it to disk, then ``os.replace`` it over ``path``. The temporary file is created with
    ``mode`` (less the umask) and removed if anything fails, so a full disk or a crash
    leaves the old file untouched and no stray temporary behind."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only file system: the original error is the one to report
            pass
        raise


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """For a file another writer produces (llama.cpp's quantizer, a download): yields a
    temporary path beside ``path`` (same name pattern as ``atomic_write``); when the block
    ends without an error the file there is flushed to disk and renamed over ``path``;
    otherwise it is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


__all__ = ["atomic_write", "atomic_output"]

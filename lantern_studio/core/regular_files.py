"""Open only regular files, read only a bounded number of bytes.

``path.read_bytes()`` on a FIFO blocks until someone writes to it, and on ``/dev/zero``
never ends; a symbolic link can point at either. Key files, trust stores, references,
traces and packs are all opened here: non-blocking (so opening a FIFO returns at
once), then checked with ``fstat`` on the open descriptor (so the check and the read
are about the same file), then read up to a limit. Errors are :class:`OSError`\\ s with a
readable ``strerror``, so callers that already turn an ``OSError`` into one sentence
need no new case.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


class NotRegularFileError(OSError):
    """The path names a directory, FIFO, device or socket, or a link to one."""


class FileTooLargeError(OSError):
    """The file holds more bytes than the reader allows."""


def open_regular(path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> BinaryIO:
    """The file at ``path`` opened for binary reading, if it is a regular file.

    With ``follow_symlinks=False`` a symbolic link as the last component is refused too
    (``O_NOFOLLOW``), for files the program itself manages.
    """
    flags = _OPEN_FLAGS
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno == errno.ELOOP:
            raise NotRegularFileError(errno.ELOOP, "a symbolic link, which is not followed", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise NotRegularFileError(errno.EINVAL, kind, str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(fh: BinaryIO, max_bytes: int, name: str = "") -> bytes:
    """At most ``max_bytes`` from ``fh``; :class:`FileTooLargeError` if there is more."""
    data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(errno.EFBIG, f"larger than {max_bytes} bytes", name)
    return data


def read_regular(path: str | os.PathLike[str], max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them."""
    with open_regular(path, follow_symlinks=follow_symlinks) as fh:
        return read_bounded(fh, max_bytes, str(Path(path)))


__all__ = ["FileTooLargeError", "NotRegularFileError", "open_regular", "read_bounded", "read_regular"]

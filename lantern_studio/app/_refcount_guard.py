"""Keep None, True and False alive under a PySide6 refcount bug on CPython < 3.12.

Measured with PySide6 6.12.0 on CPython 3.11: every call of a Python override of a Qt
virtual (``paintEvent``, ``sizeHint``, … — pyqtgraph and our own widgets have many) drops
one reference to ``None`` that it never took. ``None`` starts with ~5,000 references, so a
streaming run that repaints the answer, the timeline and the gutter aborts the studio with
"Fatal Python error: none_dealloc" within seconds to minutes. CPython 3.12 made these
singletons immortal (PEP 683), which hides the bug; on older versions we do the same by
giving them a reference count no session can exhaust.
"""

from __future__ import annotations

import ctypes
import platform
import sys

PINNED = 1 << 40  # ~10^12 calls; the field is a 64-bit Py_ssize_t
_done = False


def pin_singletons() -> bool:
    """Make None/True/False effectively immortal on CPython < 3.12; True if it did anything."""
    global _done
    if _done or sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every PyObject in CPython's (non-debug) ABI.
        ctypes.c_ssize_t.from_address(id(obj)).value += PINNED
    _done = True
    return True

"""The Qt desktop studio. Nothing in ``lantern_studio.core`` imports from here."""

from ._refcount_guard import pin_singletons

pin_singletons()

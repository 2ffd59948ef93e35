"""The project's own error types: each carries one plain sentence for the user."""

from __future__ import annotations


class LanternError(Exception):
    """Base of every error the project raises on purpose; str() is one sentence."""


class ModelError(LanternError):
    """A model file is missing, unreadable, not a GGUF, or failed to load."""


class ModelFetchError(LanternError):
    """A built-in model could not be downloaded, verified or stored."""


class ContextOverflow(LanternError):
    """The prompt or the run no longer fits in the model's context."""


class ReferenceFormatError(LanternError):
    """A reference document is malformed; the message names file and line."""


class TraceError(LanternError):
    """A trace file is unreadable or of an unknown format or version."""


class PackError(LanternError):
    """A pack failed a check; the message names the check."""


class KeyStoreError(LanternError):
    """A signing key or the trust store could not be read or written."""


class SettingsError(LanternError):
    """A loop or sampling setting has a wrong type or value."""


class Cancelled(LanternError):
    """The run was cancelled by the user."""


class LanternWarning(UserWarning):
    """Warnings of the project itself; the test suite turns them into errors."""

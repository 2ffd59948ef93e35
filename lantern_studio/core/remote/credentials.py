"""API keys of model servers, kept in the OS keyring (never in settings files or traces).

``LANTERN_API_KEY`` in the environment wins (CI, scripts); otherwise the key saved for the
server's address by Models › Connect to server… is used. A machine without a usable keyring
simply has no saved keys: reading never fails, saving says why it could not.
"""

from __future__ import annotations

import os

from ..errors import LanternError
from .http import normalise_url

SERVICE = "lantern-studio"
ENV_KEY = "LANTERN_API_KEY"


def api_key_for(url: str) -> str | None:
    """The API key to send to ``url``, or None."""
    env = os.environ.get(ENV_KEY)
    if env:
        return env
    try:
        import keyring
        return keyring.get_password(SERVICE, normalise_url(url)) or None
    except Exception:  # no keyring backend, a locked or broken one: no saved key
        return None


def save_api_key(url: str, key: str | None) -> None:
    """Remember ``key`` for ``url`` (None or empty: forget it); LanternError if the OS
    keyring cannot store it."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise LanternError("The API key cannot be saved: the 'keyring' package is not installed.") from None
    where = normalise_url(url)
    try:
        if key:
            keyring.set_password(SERVICE, where, key)
        else:
            try:
                keyring.delete_password(SERVICE, where)
            except keyring.errors.PasswordDeleteError:
                pass
    except Exception as exc:
        raise LanternError(f"The API key cannot be saved in the system keyring ({type(exc).__name__}).") from None


__all__ = ["api_key_for", "save_api_key", "SERVICE", "ENV_KEY"]

"""Errors of talking to a model server; each carries one plain sentence for the user."""

from __future__ import annotations

from ..errors import LanternError


class ServerError(LanternError):
    """A model server could not be used for a request."""


class ServerUnavailable(ServerError):
    """Nothing answers at the server's address (not running, wrong port, refused)."""


class ServerDisconnected(ServerError):
    """The server closed the connection in the middle of a request (it stopped or crashed)."""


class ServerTimeout(ServerError):
    """The server did not answer a request in time."""


class ServerHTTPError(ServerError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerAuthError(ServerHTTPError):
    """The server refused the API key (HTTP 401 or 403)."""


class ServerProtocolError(ServerError):
    """The server's answer is not what its API promises (malformed or oversized JSON)."""


class ServerModelMismatch(ServerError):
    """The server runs another model (or vocabulary) than the one a pack, a trace or the
    connection expected."""


__all__ = ["ServerError", "ServerUnavailable", "ServerDisconnected", "ServerTimeout", "ServerHTTPError",
           "ServerAuthError", "ServerProtocolError", "ServerModelMismatch"]

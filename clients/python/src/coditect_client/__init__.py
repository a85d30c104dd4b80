"""Python client of the Coditect platform for agents: ``Client`` (REST, sign-in, tokens) and
``SessionSocket`` (the session socket with resume, exactly-once delivery and leases).
clients/python/README.md has an example; docs/clients.md describes the guarantees.
"""

from coditect_client.client import Client
from coditect_client.errors import (
    AuthLost,
    BadRequest,
    CoditectError,
    Conflict,
    Disconnected,
    Forbidden,
    LockHeld,
    LockLost,
    LockNotHeld,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    RequestTimeout,
    ResyncRequired,
    ServerError,
    SessionGone,
    SocketError,
    SocketForbidden,
    TokenExpired,
    TransportError,
    Unauthorized,
    VersionConflict,
)
from coditect_client.models import Event, Session
from coditect_client.sockets import Lease, SessionSocket, SocketOptions

__all__ = [
    "AuthLost",
    "BadRequest",
    "Client",
    "CoditectError",
    "Conflict",
    "Disconnected",
    "Event",
    "Forbidden",
    "Lease",
    "LockHeld",
    "LockLost",
    "LockNotHeld",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "RequestTimeout",
    "ResyncRequired",
    "ServerError",
    "Session",
    "SessionGone",
    "SessionSocket",
    "SocketError",
    "SocketForbidden",
    "SocketOptions",
    "TokenExpired",
    "TransportError",
    "Unauthorized",
    "VersionConflict",
]

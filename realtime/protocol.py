"""The wire format of CONTRACT §4: parsing client messages, shaping server messages."""

from __future__ import annotations

from typing import Any

from core.strict_json import strict_loads
from workspaces.broadcast import wire_event

__all__ = [
    "JOIN_SCOPE",
    "MESSAGE_SCOPES",
    "PROTOCOL",
    "ProtocolError",
    "parse_message",
    "wire_event",
]

PROTOCOL = "coditect.v5"
CLIENT_TYPES = frozenset(
    {
        "auth",
        "ping",
        "resume",
        "state.patch",
        "event.publish",
        "lock.acquire",
        "lock.renew",
        "lock.release",
    }
)

# The scope an API token needs to join a session's socket, and to send each message there
# (CONTRACT §7); a user's access token has them all. Others (ping, resume, auth) need none.
JOIN_SCOPE = "sessions:read"
MESSAGE_SCOPES = {
    "state.patch": "sessions:write",
    "event.publish": "events:publish",
    "lock.acquire": "locks",
    "lock.renew": "locks",
    "lock.release": "locks",
}


class ProtocolError(Exception):
    """A message the server answers with ``error`` (the socket stays open)."""

    def __init__(self, code: str, detail: str, msg_id: Any = None) -> None:
        self.code = code
        self.detail = detail
        self.msg_id = msg_id
        super().__init__(code)


def parse_message(text: str | None) -> dict[str, Any]:
    if text is None:
        raise ProtocolError("invalid_message", "Messages are JSON text frames.")
    try:
        message = strict_loads(text)
    except ValueError:
        raise ProtocolError("invalid_message", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "A message is a JSON object.")
    msg_id = message.get("id")
    if msg_id is not None and not isinstance(msg_id, (str, int)):
        raise ProtocolError("invalid", "id must be a string or an integer.")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", "Unknown message type.", msg_id)
    return message

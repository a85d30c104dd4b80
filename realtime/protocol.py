"""The wire format of CONTRACT §4: parsing client messages, shaping server messages.

``parse_message`` checks a message's envelope (JSON object, ``id``, ``type``) and
``message_fields`` every field of its type, as a REST serializer checks a request body, before
any handler runs: a message that passes has the right types,
text that is valid Unicode (a JSON string may carry a lone surrogate as ``\\ud800``, which no
codec, key or token parser takes) and sizes within bounds. What a field means to a service
(a lock path's shape, a session field's rules) is the service's check. Unknown fields are
ignored, so a newer client still talks to an older server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError

from core.strict_json import strict_loads
from realtime.services import PRESENCE_PAGE_MAX
from workspaces.broadcast import wire_event
from workspaces.serializers import SessionPatchIn, event_name_check

__all__ = [
    "JOIN_SCOPE",
    "MESSAGE_SCOPES",
    "PROTOCOL",
    "ProtocolError",
    "auth_token_check",
    "message_fields",
    "parse_message",
    "wire_event",
]

PROTOCOL = "coditect.v5"
CLIENT_TYPES = frozenset(
    {
        "auth",
        "ping",
        "resume",
        "presence.list",
        "state.patch",
        "event.publish",
        "lock.acquire",
        "lock.renew",
        "lock.release",
    }
)
# An id is echoed in the reply: a short string, or an integer a browser reads exactly.
ID_TEXT_MAX = 200
SAFE_INTEGER = 2**53 - 1
# Access tokens are a few hundred characters and API tokens fewer; anything far longer is
# not a token and is not worth a signature check.
TOKEN_MAX = 8192
# Seqs and versions are unsigned 64-bit counters in the store.
COUNTER_MAX = 2**63 - 1
TTL_MIN_S, TTL_MAX_S, TTL_DEFAULT_S = 1, 300, 30

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
    """A message the server answers with ``error`` (the socket stays open).

    ``attr`` names the field at fault (``path``, ``changes.name``), as a problem's
    ``errors[].attr`` does over REST."""

    def __init__(
        self, code: str, detail: str, msg_id: Any = None, *, attr: str | None = None
    ) -> None:
        self.code = code
        self.detail = detail
        self.msg_id = msg_id
        self.attr = attr
        super().__init__(code)


def is_text(value: Any) -> bool:
    """A string that is valid Unicode: UTF-8 encoding fails exactly on lone surrogates."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_message(text: str | None) -> dict[str, Any]:
    """The client message in ``text`` with a valid ``id`` and a known ``type``; ProtocolError
    otherwise. Its other fields are ``message_fields``' to check."""
    if text is None:
        raise ProtocolError("invalid_message", "Messages are JSON text frames.")
    try:
        message = strict_loads(text)
    except ValueError:
        raise ProtocolError("invalid_message", "The message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "A message is a JSON object.")
    msg_id = message.get("id")
    if msg_id is not None and not (
        (is_text(msg_id) and len(msg_id) <= ID_TEXT_MAX)
        or _is_integer(msg_id, -SAFE_INTEGER, SAFE_INTEGER)
    ):
        # Not echoed: it is what was wrong.
        raise ProtocolError(
            "invalid",
            "id must be a string of up to 200 characters or an integer within ±(2^53 - 1).",
            attr="id",
        )
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", "Unknown message type.", msg_id)
    return message


def message_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The fields of a message from ``parse_message``, checked for its type; ProtocolError.

    Holds ``type``, ``id`` (None when absent) and the type's own fields, with defaults filled
    in (``ttl_s``, ``data``)."""
    kind, msg_id = message["type"], message.get("id")
    return {"type": kind, "id": msg_id, **_CHECKS[kind](message, msg_id)}


def auth_token_check(token: Any, msg_id: Any = None) -> str:
    """A token worth verifying: a non-empty string, valid Unicode, at most TOKEN_MAX long."""
    if not is_text(token) or not token or len(token) > TOKEN_MAX:
        raise ProtocolError(
            "invalid",
            "token must be a non-empty string of up to 8192 characters.",
            msg_id,
            attr="token",
        )
    return str(token)


Fields = dict[str, Any]


def _auth(message: dict[str, Any], msg_id: Any) -> Fields:
    return {"token": auth_token_check(message.get("token"), msg_id)}


def _nothing(message: dict[str, Any], msg_id: Any) -> Fields:
    return {}


def _resume(message: dict[str, Any], msg_id: Any) -> Fields:
    last_seq = message.get("last_seq")
    if not _is_integer(last_seq, 0, COUNTER_MAX):
        raise ProtocolError(
            "invalid", "last_seq must be an integer from 0 to 2^63 - 1.", msg_id, attr="last_seq"
        )
    return {"last_seq": last_seq}


def _presence_list(message: dict[str, Any], msg_id: Any) -> Fields:
    after = message.get("after")
    if after is not None and not (is_text(after) and 0 < len(after) <= ID_TEXT_MAX):
        raise ProtocolError(
            "invalid",
            "after must be a connection id (a string of 1 to 200 characters) or absent.",
            msg_id,
            attr="after",
        )
    limit = message.get("limit", settings.CODITECT_WS_PRESENCE_PAGE)
    if not _is_integer(limit, 1, PRESENCE_PAGE_MAX):
        raise ProtocolError(
            "invalid", "limit must be an integer from 1 to 500.", msg_id, attr="limit"
        )
    return {"after": after, "limit": limit}


def _state_patch(message: dict[str, Any], msg_id: Any) -> Fields:
    base = message.get("base_version")
    if not _is_integer(base, 0, COUNTER_MAX):
        raise ProtocolError(
            "invalid",
            "base_version must be an integer from 0 to 2^63 - 1.",
            msg_id,
            attr="base_version",
        )
    changes = message.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise ProtocolError(
            "invalid", "changes must be a non-empty object.", msg_id, attr="changes"
        )
    serializer = SessionPatchIn(data=changes)
    if not serializer.is_valid():
        wrong = next(iter(serializer.errors), "")
        attr = f"changes.{wrong}" if wrong and wrong != "non_field_errors" else "changes"
        raise ProtocolError("invalid", "changes are not valid session fields.", msg_id, attr=attr)
    return {"base_version": base, "changes": dict(serializer.validated_data)}


def _event_publish(message: dict[str, Any], msg_id: Any) -> Fields:
    name = message.get("event")
    try:
        if not isinstance(name, str):
            raise ValidationError("event must be a string.")
        event_name_check(name)
    except ValidationError:
        raise ProtocolError(
            "invalid",
            "event must be 1 to 100 letters, digits, '.', '_', ':' or '-'.",
            msg_id,
            attr="event",
        ) from None
    # Whether data can be stored, and its size, are session_event_publish's to say (the
    # same errors as REST's): it encodes the data once for the record and the wire.
    return {"event": name, "data": message.get("data")}


def _lock_path(message: dict[str, Any], msg_id: Any) -> str:
    # Only its type here: what makes a lock path valid is realtime.services.lock_path_check.
    path = message.get("path")
    if not isinstance(path, str):
        raise ProtocolError("invalid", "path must be a string.", msg_id, attr="path")
    return path


def _lock_lease(message: dict[str, Any], msg_id: Any) -> Fields:
    path = _lock_path(message, msg_id)
    ttl = message.get("ttl_s", TTL_DEFAULT_S)
    if not _is_integer(ttl, TTL_MIN_S, TTL_MAX_S):
        raise ProtocolError(
            "invalid", "ttl_s must be an integer from 1 to 300.", msg_id, attr="ttl_s"
        )
    return {"path": path, "ttl_s": ttl}


def _lock_release(message: dict[str, Any], msg_id: Any) -> Fields:
    return {"path": _lock_path(message, msg_id)}


_CHECKS: dict[str, Callable[[dict[str, Any], Any], Fields]] = {
    "auth": _auth,
    "ping": _nothing,
    "resume": _resume,
    "presence.list": _presence_list,
    "state.patch": _state_patch,
    "event.publish": _event_publish,
    "lock.acquire": _lock_lease,
    "lock.renew": _lock_lease,
    "lock.release": _lock_release,
}

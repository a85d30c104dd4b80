"""Delivering committed session events to the channel layer (never from inside a retry)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from channels.layers import get_channel_layer

from core.loops import awaited

log = logging.getLogger(__name__)

# A call's sends the channel layer has not finished by then are given up (and logged): the
# events are in the log, and the request that made them is not held up for longer.
SEND_TIMEOUT_S = 5.0


# Logged platform events go out as their own message types; custom ones as "event".
_OWN_TYPES = frozenset(
    {"state.changed", "presence.join", "presence.leave", "presence.batch", "lock.changed"}
)


def wire_event(event: dict[str, Any]) -> dict[str, Any]:
    """A logged event as the WebSocket message clients receive (docs/protocol.md)."""
    name = event["event"]
    if name in _OWN_TYPES:
        return {"type": name, "seq": event["seq"], **event["data"], "origin": event["origin"]}
    return {
        "type": "event",
        "seq": event["seq"],
        "event": name,
        "data": event["data"],
        "origin": event["origin"],
    }


def group_name(session_id: uuid.UUID) -> str:
    return f"session.{session_id.hex}"


def session_events_send(*, session_id: uuid.UUID, events: list[dict[str, Any]]) -> None:
    """Send committed events to every connection of the session, in seq order.

    Called only after commit. A failed send loses nothing: the events are in the log and a
    client that sees a gap in ``seq`` resumes from it.
    """
    layer = get_channel_layer()
    if layer is None or not events:
        return
    group = group_name(session_id)
    # Encoded once here rather than once per socket (a session may have hundreds), with the
    # data's own bytes reused as the service encoded them (orjson.Fragment).
    messages = [
        {
            "type": "session.event",
            "session": session_id.hex,
            "seq": event["seq"],
            "text": orjson.dumps(wire_event(event)).decode(),
            # Called right after the commit: the fan-out measures the lag from here.
            "committed_at": time.time(),
        }
        for event in events
    ]

    async def send_all() -> None:
        # One trip to the loop for them all, in order.
        for message in messages:
            await layer.group_send(group, message)

    try:
        awaited(send_all, SEND_TIMEOUT_S)()
    except Exception:
        log.exception("broadcast failed", extra={"session_id": str(session_id)})


def session_deleted_send(*, session_id: uuid.UUID) -> None:
    """Tell the session's open sockets that it is gone (they close with 4404)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        message = {"type": "session.deleted", "session": session_id.hex}
        awaited(layer.group_send, SEND_TIMEOUT_S)(group_name(session_id), message)
    except Exception:
        log.exception("broadcast failed", extra={"session_id": str(session_id)})

"""The records the platform returns, as typed values (the raw JSON stays in ``raw``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The event types the platform broadcasts itself; anything else is a published ``event``.
BUILTIN_EVENTS = frozenset(
    {"state.changed", "presence.join", "presence.leave", "presence.batch", "lock.changed"}
)
BROADCASTS = BUILTIN_EVENTS | {"event"}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Session:
    """A workspace session (CONTRACT §3). ``version`` is what ``If-Match`` compares."""

    id: str
    tenant_id: str
    owner_id: str
    name: str
    workspace_path: str
    active_files: list[str]
    editor_state: dict[str, Any]
    terminal_state: dict[str, Any]
    parent_session_id: str | None
    related_session_ids: list[str]
    created_at: datetime | None
    last_active_at: datetime | None
    version: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Session:
        return cls(
            id=str(body["id"]),
            tenant_id=str(body.get("tenant_id", "")),
            owner_id=str(body.get("owner_id", "")),
            name=str(body.get("name", "")),
            workspace_path=str(body.get("workspace_path", "")),
            active_files=list(body.get("active_files") or []),
            editor_state=dict(body.get("editor_state") or {}),
            terminal_state=dict(body.get("terminal_state") or {}),
            parent_session_id=body.get("parent_session_id"),
            related_session_ids=list(body.get("related_session_ids") or []),
            created_at=_time(body.get("created_at")),
            last_active_at=_time(body.get("last_active_at")),
            version=int(body.get("version", 0)),
            raw=dict(body),
        )


@dataclass(frozen=True)
class Event:
    """One event of a session's log, as the socket delivers it or ``GET .../events`` lists it.

    ``type`` is the broadcast type (``event`` for published ones, ``state.changed``,
    ``presence.join``, ``presence.leave``, ``lock.changed``), or ``resync`` for the marker a
    socket delivers when the log could not fill a gap (``data`` is then the full state, and
    ``seq`` the seq it is as of). ``event`` is the published name (the type for built-ins);
    ``data`` the published data (the rest of the message for built-ins); ``origin`` the
    connection id that caused it (``""`` for REST).
    """

    seq: int
    type: str
    event: str
    data: Any
    origin: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Event:
        """A socket broadcast (or a ``resync``)."""
        kind = str(message["type"])
        if kind == "event":
            name, data = str(message.get("event", "")), message.get("data")
        else:
            name = kind
            data = {k: v for k, v in message.items() if k not in ("type", "seq", "origin")}
        return cls(
            seq=int(message["seq"]),
            type=kind,
            event=name,
            data=data,
            origin=str(message.get("origin") or ""),
            raw=dict(message),
        )

    @classmethod
    def from_log(cls, item: Mapping[str, Any]) -> Event:
        """An entry of ``GET /api/v5/sessions/{id}/events``."""
        name = str(item.get("event", ""))
        return cls(
            seq=int(item["seq"]),
            type=name if name in BUILTIN_EVENTS else "event",
            event=name,
            data=item.get("data"),
            origin=str(item.get("origin") or ""),
            raw=dict(item),
        )

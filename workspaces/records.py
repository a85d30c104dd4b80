"""Record types of workspace sessions and where they live (DESIGN §3.3, docs/keyspace.md).

A workspace session is two records: a small *head* (names, owner, times, the event
sequence, indexes) and its *state* (open files, editor and terminal state, possibly
megabytes, split across keys by the records layer). Activity rewrites only the head.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from fdb_backend import keyspace
from fdb_backend.records import Collection, Index, Record, collection


def _recency(s: WorkspaceSession) -> list[tuple[Any, ...]]:
    return [(s.owner_id, s.last_active_at)]


@dataclass(frozen=True, kw_only=True)
class WorkspaceSession(Record):
    collection: ClassVar[str] = "workspace_sessions"
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("workspace_sessions_by_user", lambda s: (s.owner_id,)),
        Index("sessions_by_workspace", lambda s: (s.workspace_path, s.last_active_at)),
        Index("recent_sessions", _recency),
        Index("recent_sessions_tenant", lambda s: (s.last_active_at,)),
        # ?owner=me&workspace_path=...: both filters answered by one index range.
        Index(
            "sessions_by_owner_workspace",
            lambda s: (s.owner_id, s.workspace_path, s.last_active_at),
        ),
        Index(
            "sessions_by_parent",
            lambda s: (s.parent_session_id,) if s.parent_session_id else None,
        ),
    )

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    workspace_path: str
    parent_session_id: uuid.UUID | None = None
    created_at: datetime
    last_active_at: datetime
    seq: int = 0  # the latest event's sequence number
    last_event_id: uuid.UUID | None = None  # makes a retried append find itself
    # The stored size of the session's events (its log): what deleting it frees besides its
    # state, without reading the log. ``storage check`` verifies it.
    event_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class WorkspaceState(Record):
    """``version`` of this record is the session's API version (ETag, If-Match)."""

    collection: ClassVar[str] = "workspace_states"

    id: uuid.UUID
    active_files: list[Any]
    editor_state: dict[str, Any]
    terminal_state: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class SessionEvent(Record):
    collection: ClassVar[str] = "events"
    key_fields: ClassVar[tuple[str, ...]] = ("session_id", "seq")
    expires_field: ClassVar[str | None] = "expires_at"

    session_id: uuid.UUID
    seq: int
    event: str
    data: Any
    origin: str = ""
    created_at: datetime
    expires_at: datetime


# Records larger than one value are split; a state past this is refused before it is stored.
STATE_RECORD_MAX = 8 * 1024 * 1024


def heads(tenant_id: uuid.UUID) -> Collection[WorkspaceSession]:
    return collection(WorkspaceSession, keyspace.tenant(tenant_id))


def states(tenant_id: uuid.UUID) -> Collection[WorkspaceState]:
    return collection(WorkspaceState, keyspace.tenant(tenant_id), max_record_size=STATE_RECORD_MAX)


def events(tenant_id: uuid.UUID) -> Collection[SessionEvent]:
    # A state.changed event carries the changed state, so it may be as large as one.
    return collection(SessionEvent, keyspace.tenant(tenant_id), max_record_size=STATE_RECORD_MAX)


def session_ranges(tenant_id: uuid.UUID, session_id: uuid.UUID) -> list[tuple[bytes, bytes]]:
    """Every key range that holds something of one session besides its two records."""
    tenant = keyspace.tenant(tenant_id)
    ranges = []
    for name in ("events", "locks", "connections"):
        r = tenant.collection(name).records[session_id].range()
        ranges.append((r.start, r.stop))
    return ranges


def events_range(tenant_id: uuid.UUID, session_id: uuid.UUID) -> tuple[bytes, bytes]:
    """The key range of one session's event log (what its head's ``event_bytes`` counts)."""
    r = keyspace.tenant(tenant_id).collection("events").records[session_id].range()
    return r.start, r.stop

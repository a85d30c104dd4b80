"""Record types of live connections and file locks (DESIGN §3.3)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from fdb_backend import keyspace
from fdb_backend.records import Collection, Record, collection


@dataclass(frozen=True, kw_only=True)
class Connection(Record):
    """One open WebSocket; ``last_seen`` is refreshed by its server's heartbeat."""

    collection: ClassVar[str] = "connections"
    key_fields: ClassVar[tuple[str, ...]] = ("session_id", "connection_id")

    session_id: uuid.UUID
    connection_id: str
    user_id: uuid.UUID
    display_name: str
    connected_at: datetime
    last_seen: datetime


@dataclass(frozen=True, kw_only=True)
class Lock(Record):
    """A lease on a path. Expiry is checked by the services (an expired lock must still be
    found, so that its release can be broadcast)."""

    collection: ClassVar[str] = "locks"
    key_fields: ClassVar[tuple[str, ...]] = ("session_id", "path")

    session_id: uuid.UUID
    path: str
    connection_id: str
    user_id: uuid.UUID
    expires_at: datetime


def connections(tenant_id: uuid.UUID) -> Collection[Connection]:
    return collection(Connection, keyspace.tenant(tenant_id))


def locks(tenant_id: uuid.UUID) -> Collection[Lock]:
    return collection(Lock, keyspace.tenant(tenant_id))

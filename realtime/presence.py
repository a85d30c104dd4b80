"""What the sockets joining one session share, so 1,000 joins cost far less than 1,000 times one.

Joins and leaves of a session's sockets in this process queue in its ``Room``; one task
writes whatever has queued in one transaction (``services.connections_change``), announces
it (a ``presence.join``/``presence.leave`` each in a small room, one ``presence.batch`` in a
large one) and hands every joiner the same welcome, encoded once. While a transaction runs,
the next joins queue behind it, so a burst of joins becomes a few transactions instead of one
each; a large room (CODITECT_WS_PRESENCE_BATCH_MIN live connections) also waits
BATCH_WINDOW_S before each transaction to gather more. A welcome lists the first
CODITECT_WS_PRESENCE_PAGE connections and the count, not everyone (docs/protocol.md,
"Large rooms").

Sockets presenting the same token at the same time share one check of it
(``authenticate``): the second waits for the first's answer instead of verifying the
signature and reading the same auth session, user and tenant again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings

import fdb_backend
from accounts.errors import SESSION_REVOKED, fail
from accounts.services import Client, Principal, bearer_authenticate
from core.loops import PerLoop
from fdb_backend.pool import in_pool
from realtime import services
from realtime.records import Connection
from workspaces.errors import WorkspaceError
from workspaces.presenters import session_json

log = logging.getLogger(__name__)

# How long a large room gathers joins and leaves before writing them together: a little
# latency on each join against one transaction, one broadcast and one encoding per batch.
BATCH_WINDOW_S = 0.1


@dataclass(frozen=True)
class Joined:
    """A joiner's welcome: the data, and its JSON text without the socket's own fields
    (``welcome_text`` adds them)."""

    welcome: services.Welcome
    body: str

    def welcome_text(self, connection_id: str) -> str:
        """The ``welcome`` message of one socket: ``body`` with its type and connection id."""
        head = orjson.dumps({"type": "welcome", "connection_id": connection_id}).decode()
        return f"{head[:-1]},{self.body[1:]}"


@dataclass
class Room:
    """The queued joins (a Connection) and leaves (a connection id) of one session here."""

    tenant_id: uuid.UUID
    session_id: uuid.UUID
    pending: list[tuple[Connection | str, Principal | None, asyncio.Future[Any]]] = field(
        default_factory=list
    )
    task: asyncio.Task[None] | None = None
    large: bool = False


def _apply(
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    changes: list[Connection | str],
    principal: Principal | None,
) -> tuple[services.PresenceChanged, str | None]:
    """Write the changes (in the storage pool) and encode their welcome once."""
    changed = services.connections_change(
        db=fdb_backend.get_database(), tenant_id=tenant_id, session_id=session_id, changes=changes
    )
    welcome = changed.welcome
    if welcome is None or principal is None:
        return changed, None
    body = orjson.dumps(
        {
            "session": session_json(welcome.session, principal),
            "version": welcome.session.version,
            "seq": welcome.seq,
            "presence": welcome.presence,
            "presence_count": welcome.presence_count,
            "presence_next": welcome.presence_next,
            "locks": welcome.locks,
        }
    ).decode()
    return changed, body


class Rooms:
    """The rooms of one process (one event loop), and its token checks in flight."""

    def __init__(self) -> None:
        self.rooms: dict[tuple[uuid.UUID, uuid.UUID], Room] = {}
        self.checks: dict[tuple[str, str], asyncio.Future[Principal]] = {}

    async def join(
        self, *, principal: Principal, session_id: uuid.UUID, connection_id: str
    ) -> Joined:
        """Record the connection and announce it; its welcome. WorkspaceError 404 when the
        session is not the principal's tenant's, AccountError 401 when the user is gone
        (erased meanwhile): nothing is written then."""
        record = services.connection_new(
            principal=principal, session_id=session_id, connection_id=connection_id
        )
        joined: Joined = await self._submit(principal.tenant_id, session_id, record, principal)
        return joined

    async def leave(
        self, *, tenant_id: uuid.UUID, session_id: uuid.UUID, connection_id: str
    ) -> None:
        """Remove the connection record with its locks, and announce both."""
        await self._submit(tenant_id, session_id, connection_id, None)

    def _submit(
        self,
        tenant_id: uuid.UUID,
        session_id: uuid.UUID,
        change: Connection | str,
        principal: Principal | None,
    ) -> asyncio.Future[Any]:
        key = (tenant_id, session_id)
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(tenant_id, session_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        room.pending.append((change, principal, future))
        if room.task is None:
            room.task = asyncio.create_task(self._run(room))
        return future

    async def _run(self, room: Room) -> None:
        try:
            while room.pending:
                if room.large:
                    await asyncio.sleep(BATCH_WINDOW_S)
                batch, room.pending = room.pending, []
                await self._write(room, batch)
        finally:
            room.task = None
            key = (room.tenant_id, room.session_id)
            if room.pending:  # cancelled with work queued: never leave a joiner waiting
                room.task = asyncio.create_task(self._run(room))
            elif self.rooms.get(key) is room:
                del self.rooms[key]

    async def _write(
        self,
        room: Room,
        batch: list[tuple[Connection | str, Principal | None, asyncio.Future[Any]]],
    ) -> None:
        principal = next((p for _, p, _ in batch if p is not None), None)
        try:
            changed, body = await in_pool(_apply)(
                tenant_id=room.tenant_id,
                session_id=room.session_id,
                changes=[change for change, _, _ in batch],
                principal=principal,
            )
        except WorkspaceError as error:
            # The session is gone: joiners are refused, leaves have nothing left to remove.
            for _, joining, future in batch:
                if joining is None:
                    _settle(future, None)
                else:
                    _settle(future, None, error)
            return
        except Exception as error:
            log.exception("presence change failed", extra={"session_id": str(room.session_id)})
            for _, _, future in batch:
                _settle(future, None, error)
            return
        room.large = changed.count >= settings.CODITECT_WS_PRESENCE_BATCH_MIN
        joined = None
        if changed.welcome is not None and body is not None:
            joined = Joined(changed.welcome, body)
        for change, joining, future in batch:
            if isinstance(change, Connection) and change.connection_id in changed.refused:
                _settle(future, None, fail(SESSION_REVOKED))
            else:
                _settle(future, None if joining is None else joined)

    async def authenticate(self, *, token: str, client: Client) -> Principal:
        """``bearer_authenticate``, shared by the sockets presenting ``token`` from one
        address while a check of it is running: AccountError 401/403 as it raises."""
        key = (token, client.ip)
        running = self.checks.get(key)
        while running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not running.cancelled() or (task is not None and task.cancelling()):
                    raise  # this socket was cancelled, not the check it waited for
            running = self.checks.get(key)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self.checks[key] = future
        try:
            principal: Principal = await in_pool(bearer_authenticate)(
                db=fdb_backend.get_database(), token=token, client=client
            )
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, nobody else must
            raise
        except BaseException:
            future.cancel()  # the waiters check for themselves
            raise
        else:
            future.set_result(principal)
            return principal
        finally:
            if self.checks.get(key) is future:
                del self.checks[key]


def _settle(future: asyncio.Future[Any], result: Any, error: Exception | None = None) -> None:
    """Answer a joiner or leaver, unless its socket stopped waiting (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_rooms: PerLoop[Rooms] = PerLoop(Rooms)


def rooms() -> Rooms:
    """This event loop's rooms (a process serves its sockets from one loop)."""
    return _rooms.get()

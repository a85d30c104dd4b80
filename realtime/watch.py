"""The periodic work of a process's open sockets, done once per process instead of per socket.

Every open socket must be closed when it idles past the timeout, when its token expires and
when its auth session is revoked (re-checked every CODITECT_WS_AUTH_CHECK_S), and its
connection record must be refreshed every CODITECT_WS_HEARTBEAT_S so other servers don't take
it for a ghost. Done per socket, that is three timers per socket and, with a hundred sockets,
a hundred storage reads a second and ten commits a second that each scan the session's
connections. Here one task per process does it: the auth re-check reads each auth session once
in one transaction, and the heartbeat is one transaction per session for all of this
process's sockets on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from typing import Protocol

from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.services import Principal, principals_check
from core.loops import PerLoop
from fdb_backend.pool import in_pool
from realtime import services

log = logging.getLogger(__name__)

# Connections refreshed per heartbeat transaction: small transactions, so that a beat never
# holds the interpreter for long while the event loop is fanning events out.
HEARTBEAT_BATCH = 25


class Watched(Protocol):
    principal: Principal | None
    session_id: uuid.UUID
    connection_id: str
    token_expires_at: float
    last_message: float

    @property
    def tenant_id(self) -> uuid.UUID: ...

    async def close_for(self, error: AccountError) -> None: ...

    async def close_idle(self) -> None: ...

    async def close_expired(self) -> None: ...


class Watch:
    def __init__(self) -> None:
        self.members: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None
        self._checked_at = time.monotonic()
        self._beaten_at = time.monotonic()

    def add(self, member: Watched) -> None:
        self.members.add(member)
        if self._task is None or self._task.done():
            self._checked_at = self._beaten_at = time.monotonic()
            self._task = asyncio.create_task(self._run())

    def discard(self, member: Watched) -> None:
        self.members.discard(member)
        if not self.members and self._task is not None:
            # Nothing left to watch: stop, so an idle process keeps no timer.
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_tick())
            try:
                await self.tick()
            except Exception:
                log.exception("socket watch failed")

    async def tick(self) -> None:
        now = time.monotonic()
        idle_after = settings.CODITECT_WS_IDLE_TIMEOUT_S
        for member in list(self.members):
            if now - member.last_message > idle_after:
                await member.close_idle()
            elif time.time() >= member.token_expires_at:
                await member.close_expired()
        if now - self._checked_at >= settings.CODITECT_WS_AUTH_CHECK_S:
            self._checked_at = now
            await self.check_auth()
        if now - self._beaten_at >= settings.CODITECT_WS_HEARTBEAT_S:
            self._beaten_at = now
            await self.heartbeat()

    async def check_auth(self) -> None:
        signed_in = [(m, m.principal) for m in self.members if m.principal is not None]
        if not signed_in:
            return
        members = [member for member, _ in signed_in]
        principals = [principal for _, principal in signed_in]
        errors = await in_pool(principals_check)(
            db=fdb_backend.get_database(), principals=principals
        )
        for member, error in zip(members, errors, strict=True):
            if error is not None and member in self.members:
                await member.close_for(error)

    async def heartbeat(self) -> None:
        by_session: dict[tuple[uuid.UUID, uuid.UUID], list[str]] = defaultdict(list)
        for member in self.members:
            if member.principal is not None:
                by_session[(member.tenant_id, member.session_id)].append(member.connection_id)
        for (tenant_id, session_id), connection_ids in by_session.items():
            starts = range(0, len(connection_ids), HEARTBEAT_BATCH)
            for start in starts:
                try:
                    await in_pool(services.connections_heartbeat)(
                        db=fdb_backend.get_database(),
                        tenant_id=tenant_id,
                        session_id=session_id,
                        connection_ids=connection_ids[start : start + HEARTBEAT_BATCH],
                        sweep=start == starts[-1],
                    )
                except Exception:
                    log.exception("heartbeat failed", extra={"session_id": str(session_id)})


def _tick() -> float:
    """Often enough for the shortest of the intervals, at most once a second."""
    return max(
        0.05,
        min(
            1.0,
            settings.CODITECT_WS_AUTH_CHECK_S,
            settings.CODITECT_WS_HEARTBEAT_S,
            settings.CODITECT_WS_IDLE_TIMEOUT_S / 2,
        ),
    )


_watches: PerLoop[Watch] = PerLoop(Watch)


def watch() -> Watch:
    """This event loop's watch (a process serves its sockets from one loop)."""
    return _watches.get()

"""One channel-layer subscription per session per process, fanned out to the process's sockets.

With a group member per socket, the channel layer handles every event once per socket: the
in-memory layer starts a task, deep-copies the message and sweeps every queue for expired
messages for each member, and each socket's consumer task wakes to receive its copy;
channels_redis sends one copy per member. Here the process joins a session's group once, with a
channel of its own, and one task hands each event's pre-encoded text to the local sockets of
that session, in the order the layer delivered it. Sockets keep their own ordering rules
(`Member.fanout_event`): a gap or a replay in progress is caught up from the log by the socket,
without holding up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from typing import Any, Protocol

from channels.layers import BaseChannelLayer, get_channel_layer

from core.metrics import broadcast_lag
from workspaces import broadcast

log = logging.getLogger(__name__)


class Member(Protocol):
    async def fanout_event(self, seq: int, text: str) -> None: ...

    async def fanout_deleted(self) -> None: ...


class Fanout:
    """The sockets of one process (one event loop), by session."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.members: dict[uuid.UUID, set[Member]] = {}
        self._channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        # Joins and leaves change layer subscriptions; one at a time keeps them in order.
        self._lock = asyncio.Lock()

    async def join(self, session_id: uuid.UUID, member: Member) -> None:
        """Subscribe ``member``; it gets every event the layer delivers after this returns."""
        async with self._lock:
            if self._channel is None:
                self._channel = await self.layer.new_channel("fanout.")
                self._task = asyncio.create_task(self._run(self._channel))
            members = self.members.get(session_id)
            if members is None:
                await self.layer.group_add(broadcast.group_name(session_id), self._channel)
                members = self.members[session_id] = set()
            members.add(member)

    async def leave(self, session_id: uuid.UUID, member: Member) -> None:
        async with self._lock:
            members = self.members.get(session_id)
            if members is None or member not in members:
                return
            members.discard(member)
            if members:
                return
            del self.members[session_id]
            assert self._channel is not None
            await self.layer.group_discard(broadcast.group_name(session_id), self._channel)
            if not self.members and self._task is not None:
                # Nothing left to listen for: stop, so an idle process (or a test's event
                # loop) keeps no task waiting on the layer.
                self._task.cancel()
                self._task, self._channel = None, None

    async def _run(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("fan-out failed", extra={"type": message.get("type")})

    async def _dispatch(self, message: dict[str, Any]) -> None:
        session = message.get("session")
        if not isinstance(session, str):
            return
        members = self.members.get(uuid.UUID(hex=session))
        if not members:
            return
        kind = message.get("type")
        for member in list(members):
            try:
                if kind == "session.event":
                    await member.fanout_event(int(message["seq"]), str(message["text"]))
                elif kind == "session.deleted":
                    await member.fanout_deleted()
            except Exception:
                log.exception("delivery to a socket failed", extra={"session_id": session})
        if kind == "session.event" and "committed_at" in message:
            broadcast_lag.observe(time.time() - float(message["committed_at"]))


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout() -> Fanout:
    """This event loop's fan-out (a process serves its sockets from one loop)."""
    loop = asyncio.get_running_loop()
    found = _fanouts.get(loop)
    layer = get_channel_layer()
    if found is None or found.layer is not layer:
        assert layer is not None
        found = _fanouts[loop] = Fanout(layer)
    return found

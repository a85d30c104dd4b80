"""A socket that ends in an unexpected way is torn down like one that disconnects (issue 15).

Channels ends a consumer whose handler raises without calling ``disconnect``: before the fix,
that connection stayed in the process's watch (which kept its record alive with heartbeats)
and fan-out, and in presence for good. These tests make a service raise inside this process
(WebsocketCommunicator: a real daphne cannot be monkeypatched) and check that the socket is
closed with 1011, a bug's close, and that everything a disconnect does was done: presence
leave and lock release broadcast to the other socket, the record gone from the live count,
the socket out of the watch and the fan-out. Input errors never get here; those are
tests/reliability/test_ws_fuzz.py's.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer

from realtime import consumers
from realtime.fanout import fanout
from realtime.watch import watch
from tests.accounts.helpers import Persona
from tests.realtime.helpers import CommPeer, Sockets, call
from tests.workspaces.helpers import SessionApi
from workspaces import broadcast

PATH = "/home/alice/project/main.py"


class Boom(RuntimeError):
    """The bug a test plants in a service."""


async def two(
    sockets: Sockets, session_id: str, alice: Persona, bob: Persona
) -> tuple[CommPeer, CommPeer]:
    """Alice's socket (the one that fails), holding a lock, and Bob's, which watches."""
    doomed = await sockets.join(session_id, alice.access, "doomed")
    watcher = await sockets.join(session_id, bob.access, "watcher")
    await doomed.next("presence.join", connection_id=watcher.connection_id)
    await doomed.ok("lock.acquire", path=PATH, ttl_s=300)
    await watcher.next("lock.changed", path=PATH)
    return doomed, watcher


def live_connections(sessions: SessionApi, persona: Persona, session_id: str) -> int:
    response = sessions.listing(persona.access)
    assert response.status_code == 200, response.content
    counts = {entry["id"]: entry["live_connections"] for entry in response.json()["results"]}
    count: int = counts[session_id]
    return count


async def assert_torn_down(
    doomed: CommPeer, watcher: CommPeer, sessions: SessionApi, bob: Persona, session_id: str
) -> None:
    leave = await watcher.next("presence.leave", connection_id=doomed.connection_id)
    assert leave["display_name"]
    released = await watcher.next("lock.changed", path=PATH, holder=None)
    assert released["seq"] < leave["seq"]  # released with the leave, in one transaction
    assert await call(live_connections, sessions, bob, session_id) == 1
    # Only the watcher is left in this process's lists.
    assert len(watch().members) == 1
    assert len(fanout().members[uuid.UUID(session_id)]) == 1
    # And it goes on as if nothing happened.
    await watcher.ping()
    await watcher.ok("lock.acquire", path=PATH, ttl_s=30)
    await watcher.drain(quiet=0.1)
    watcher.assert_contiguous()


async def test_a_handler_that_raises_closes_1011_and_tears_the_socket_down(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_id = alice_session["id"]
    doomed, watcher = await two(sockets, session_id, alice, bob)

    def publish(**kwargs: Any) -> int:
        raise Boom("a bug in a service")

    monkeypatch.setattr(consumers, "session_event_publish", publish)
    await doomed.send({"type": "event.publish", "id": "e", "event": "x", "data": {}})
    assert await doomed.expect_close() == consumers.CLOSE_INTERNAL_ERROR
    assert [m for m in doomed.received if m.get("id") == "e"] == []
    await assert_torn_down(doomed, watcher, sessions, bob, session_id)


async def test_a_background_task_that_raises_closes_1011_and_tears_the_socket_down(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_id = alice_session["id"]
    doomed, watcher = await two(sockets, session_id, alice, bob)
    original = consumers.session_event_list

    def event_list(**kwargs: Any) -> Any:
        if kwargs["principal"].user_id == uuid.UUID(alice.user_id):
            raise Boom("a bug in the log read")
        return original(**kwargs)

    monkeypatch.setattr(consumers, "session_event_list", event_list)
    # An event ahead of a gap: each socket reads the gap from the log in a task of its own.
    ahead = max(doomed.seqs()) + 3
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        broadcast.group_name(uuid.UUID(session_id)),
        {"type": "session.event", "session": uuid.UUID(session_id).hex, "seq": ahead, "text": ""},
    )
    assert await doomed.expect_close() == consumers.CLOSE_INTERNAL_ERROR
    await assert_torn_down(doomed, watcher, sessions, bob, session_id)


async def test_a_cancelled_consumer_still_leaves_presence(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    """daphne cancels a consumer that outlives its connection or the server's shutdown."""
    session_id = alice_session["id"]
    doomed, watcher = await two(sockets, session_id, alice, bob)
    task = doomed.communicator.future
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_torn_down(doomed, watcher, sessions, bob, session_id)

"""The channel layer keeps a quiet socket alive: nothing in it may time out on its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.accounts.helpers import Persona
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import SessionApi, session_url


async def test_a_quiet_socket_on_redis_keeps_working(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    alice_session: dict[str, Any],
    redis_layer: str,
) -> None:
    """Longer than a blocking read of the layer (5 s) with nothing to receive, then traffic."""
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.drain(quiet=0.1)
    await asyncio.sleep(6.5)
    await peer.ping()
    response = await call(sessions.publish, alice.access, alice_session["id"], "late", {"n": 1})
    assert response.status_code == 202, response.content
    await peer.next("event", seq=response.json()["seq"])
    peer.assert_contiguous()


def test_writes_outside_an_event_loop_share_one_redis_connection(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], redis_layer: str
) -> None:
    """A WSGI worker's thread has no event loop above it. Each write's broadcast used to run on
    a new loop in a new thread (``async_to_sync``), and the Redis layer, which keeps its
    connections per loop, connected to Redis anew for every one; now they share the process's
    background loop. Every event still reaches the group, in order."""
    import redis
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.layers import get_channel_layer

    from workspaces.broadcast import group_name

    # This thread once ran work an event loop handed it, as a thread of a test run or a
    # worker may have: asgiref's note of that loop outlives it.
    async_to_sync(sync_to_async(lambda: None))()
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name(uuid.UUID(alice_session["id"])), channel)
    stats = redis.Redis.from_url(redis_layer)

    def connections() -> int:
        return int(stats.info("stats")["total_connections_received"])

    def patch(n: int) -> int:
        body = {"editor_state": {"n": n}}
        response = sessions.patch(session_url(alice_session["id"]), body, alice.access)
        assert response.status_code == 200, response.content
        return int(response.json()["version"])

    patch(0)  # the layer's first connection
    before = connections()
    for n in range(1, 11):
        patch(n)
    assert connections() - before <= 1  # (at most this test's own INFO client)

    async def received(count: int) -> list[int]:
        return [(await layer.receive(channel))["seq"] for _ in range(count)]

    seqs = async_to_sync(received)(11)
    assert seqs == sorted(seqs) and len(set(seqs)) == 11


def test_a_send_the_layer_never_finishes_is_given_up(
    monkeypatch, caplog, sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    """A channel layer that hangs (Redis unreachable, say) holds a write up for the send's
    timeout, then the write is answered anyway and the failure logged: the event is in the log
    for the sockets to catch up from."""
    from channels.layers import get_channel_layer

    import workspaces.broadcast

    layer = get_channel_layer()
    assert layer is not None

    async def hang(group: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(20)  # long enough: the send gives up after 0.2 s

    monkeypatch.setattr(layer, "group_send", hang)
    monkeypatch.setattr(workspaces.broadcast, "SEND_TIMEOUT_S", 0.2)
    body = {"editor_state": {"n": 1}}
    response = sessions.patch(session_url(alice_session["id"]), body, alice.access)
    assert response.status_code == 200, response.content
    assert [r.getMessage() for r in caplog.records if r.name == "workspaces.broadcast"] == [
        "broadcast failed"
    ]
    events = sessions.events(alice.access, alice_session["id"])
    assert events.json()["results"][-1]["event"] == "state.changed"

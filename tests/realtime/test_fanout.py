"""The process's fan-out: many sockets of one session, joins under load, gaps, teardown."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from realtime.fanout import fanout
from tests.accounts.helpers import Persona
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import SessionApi


async def test_every_socket_of_a_busy_session_gets_every_event_once_in_order(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    peers = [
        await sockets.join(session_id, (alice, bob)[i % 2].access, f"peer-{i}") for i in range(24)
    ]
    senders = peers[:4]

    async def publish(peer: Any, count: int) -> None:
        for index in range(count):
            await peer.ok("event.publish", event="tick", data={"from": peer.name, "n": index})

    async def rest(count: int) -> None:
        for index in range(count):
            response = await call(sessions.publish, bob.access, session_id, "rest", {"n": index})
            assert response.status_code == 202, response.content

    await asyncio.gather(*(publish(peer, 15) for peer in senders), rest(10))
    final = await peers[0].ok("event.publish", event="final", data=None)
    for peer in peers:
        await peer.wait_seq(final["seq"])
    for peer in peers:
        await peer.drain(quiet=0.05)
        seqs = peer.assert_contiguous()
        assert seqs[-1] == final["seq"], (peer.name, seqs[-3:])


async def test_sockets_joining_while_events_flow_miss_nothing_and_repeat_nothing(
    sockets: Sockets,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    sender = await sockets.join(session_id, alice.access, "sender")
    stop = asyncio.Event()

    async def publish() -> None:
        index = 0
        while not stop.is_set():
            await sender.ok("event.publish", event="tick", data=index)
            index += 1

    publisher = asyncio.create_task(publish())
    try:
        joiners = []
        for index in range(8):
            joiners.append(await sockets.join(session_id, bob.access, f"joiner-{index}"))
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(publisher, 20)
    final = await sender.ok("event.publish", event="final", data=None)
    for peer in joiners:
        await peer.wait_seq(final["seq"])
        await peer.drain(quiet=0.05)
        # From its welcome on, every event exactly once, in order.
        seqs = peer.assert_contiguous()
        assert seqs[-1] == final["seq"]


async def test_the_fanout_stops_listening_when_its_last_socket_leaves(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    hub = fanout()
    assert uuid.UUID(alice_session["id"]) in hub.members
    await peer.close()
    for _ in range(50):
        if not hub.members:
            break
        await asyncio.sleep(0.02)
    assert hub.members == {}
    assert hub._task is None

"""resume: a client that missed events gets exactly those, then live, or a resync."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.accounts.helpers import Persona
from tests.realtime.helpers import BROADCASTS, Peer, Sockets, call, state_fields
from tests.workspaces.helpers import SessionApi, assert_session, read_session


def check_resume(peer: Peer, last: int, ack: dict[str, Any], end: int) -> list[dict[str, Any]]:
    """The broadcasts ``peer`` got cover last+1..end exactly once, replay and live joined up.

    What came live before the replay, the replay (from last+1 up to the ack) and what came
    live after the ack are each in increasing order, and live after the ack is newer than
    everything before it. Returns the replayed messages.
    """
    ack_index = next(i for i, m in enumerate(peer.received) if m is ack)
    indexed = [(i, m) for i, m in enumerate(peer.received) if m.get("type") in BROADCASTS]
    seqs = [int(m["seq"]) for _, m in indexed]
    assert sorted(seqs) == list(range(last + 1, end + 1)), (peer.name, last, end, seqs)
    starts = [i for i, m in indexed if m["seq"] == last + 1]
    first_index = starts[0] if last < end and starts[0] < ack_index else ack_index
    before = [int(m["seq"]) for i, m in indexed if i < first_index]
    replay = [m for i, m in indexed if first_index <= i < ack_index]
    after = [int(m["seq"]) for i, m in indexed if i > ack_index]
    replayed = [int(m["seq"]) for m in replay]
    for part in (before, replayed, after):
        assert part == sorted(part), (peer.name, before, replayed, after)
    if after:
        assert after[0] > max(before + replayed, default=last), (before, replayed, after)
    assert ack["replayed"] == len(replay), (ack, replayed)
    return replay


async def missed_some(
    sockets: Sockets, sessions: SessionApi, session_id: str, alice: Persona, bob: Persona
) -> tuple[Peer, int]:
    """Alice stays; Bob leaves at seq ``last`` and misses a patch, events and a lock."""
    first = await sockets.join(session_id, alice.access, "alice")
    second = await sockets.join(session_id, bob.access, "bob")
    seen = await first.ok("event.publish", event="before", data=0)
    await second.wait_seq(seen["seq"])
    await second.drain(quiet=0.1)
    last = max([second.welcome["seq"], *second.seqs()])
    await second.close()
    await first.next("presence.leave", connection_id=second.connection_id)

    await first.ok("state.patch", base_version=first.welcome["version"], changes={"name": "m"})
    await first.ok("event.publish", event="missed", data={"n": 1})
    response = await call(sessions.publish, alice.access, session_id, "missed", {"n": 2})
    assert response.status_code == 202, response.content
    await first.ok("lock.acquire", path="/home/alice/project/x.py", ttl_s=60)
    await first.ok("lock.release", path="/home/alice/project/x.py")
    return first, last


async def test_resume_replays_exactly_what_was_missed(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    first, last = await missed_some(sockets, sessions, session_id, alice, bob)
    again = await sockets.join(session_id, bob.access, "bob-again")
    welcome_seq = again.welcome["seq"]
    assert welcome_seq >= last + 6

    ack = await again.ok("resume", last_seq=last)
    final = await first.ok("event.publish", event="after", data=None)
    await again.wait_seq(final["seq"])
    await again.drain()
    replay = check_resume(again, last, ack, final["seq"])
    await first.wait_seq(final["seq"])
    # Nothing happened between the welcome and the resume but (maybe) our own join, so the
    # replay reaches back to where the client was and up to the welcome at least.
    assert last + len(replay) >= welcome_seq
    await first.drain()
    first.assert_contiguous()
    live = first.by_seq()
    for message in again.broadcasts():
        assert state_fields(message) == state_fields(live[message["seq"]]), message
    kinds = [m["type"] for m in replay]
    assert kinds[:6] == [
        "presence.leave",
        "state.changed",
        "event",
        "event",
        "lock.changed",
        "lock.changed",
    ]


async def test_resume_joins_up_with_live_events_under_load(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    first, last = await missed_some(sockets, sessions, session_id, alice, bob)

    async def publish(count: int) -> None:
        for index in range(count):
            await first.ok("event.publish", event="tick", data=index)

    publisher = asyncio.create_task(publish(40))
    try:
        await asyncio.sleep(0.02)
        again = await sockets.join(session_id, bob.access, "bob-again")
        ack = await again.ok("resume", last_seq=last)
        await asyncio.wait_for(publisher, 20)
    finally:
        publisher.cancel()
    final = await first.ok("event.publish", event="after", data=None)
    await again.wait_seq(final["seq"], timeout=10)
    await again.drain()
    check_resume(again, last, ack, final["seq"])
    await first.wait_seq(final["seq"])
    await first.drain()
    first.assert_contiguous()
    live = first.by_seq()
    for message in again.broadcasts():
        assert state_fields(message) == state_fields(live[message["seq"]]), message


async def test_resume_with_nothing_missed(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.drain(quiet=0.1)
    current = max([peer.welcome["seq"], *peer.seqs()])
    count = len(peer.broadcasts())
    ack = await peer.ok("resume", last_seq=current)
    assert ack["replayed"] == 0
    await peer.drain()
    assert len(peer.broadcasts()) == count
    final = await peer.ok("event.publish", event="next", data=None)
    assert final["seq"] == current + 1
    await peer.next("event", seq=current + 1)
    peer.assert_contiguous()


async def test_resume_past_the_log_gets_a_resync(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    settings,
) -> None:
    settings.CODITECT_EVENT_LOG_MAX = 3
    session_id = alice_session["id"]
    first, last = await missed_some(sockets, sessions, session_id, alice, bob)
    for index in range(3):
        await first.ok("event.publish", event="more", data=index)
    lock = await first.ok("lock.acquire", path="/home/alice/project/held.py", ttl_s=60)
    again = await sockets.join(session_id, bob.access, "bob-again")
    welcome_seq = again.welcome["seq"]

    request_id = again.new_id()
    await again.send({"type": "resume", "id": request_id, "last_seq": last})
    resync = await again.next("resync")
    assert set(resync) >= {"session", "version", "seq", "presence", "locks"}, resync
    current = await call(read_session, sessions, alice, session_id)
    session = assert_session(resync["session"])
    assert session["id"] == session_id
    assert session["name"] == current["name"] == "m"
    assert resync["version"] == current["version"] == session["version"]
    assert resync["seq"] == current["seq"] >= welcome_seq
    assert {p["connection_id"] for p in resync["presence"]} == {
        first.connection_id,
        again.connection_id,
    }
    assert [(x["path"], x["holder"]["connection_id"]) for x in resync["locks"]] == [
        (lock["path"], first.connection_id)
    ]
    # No replay of the old events, and live goes on right after the resync's seq.
    final = await first.ok("event.publish", event="after", data=None)
    await again.next("event", seq=final["seq"])
    await again.drain()
    assert not [m for m in again.broadcasts() if m["seq"] <= last], again.broadcasts()
    resync_index = next(i for i, m in enumerate(again.received) if m is resync)
    later = [int(m["seq"]) for m in again.received[resync_index:] if m["type"] in BROADCASTS]
    assert later == list(range(resync["seq"] + 1, final["seq"] + 1)), later


@pytest.mark.parametrize("fields", [{}, {"last_seq": "3"}, {"last_seq": None}, {"last_seq": [1]}])
async def test_bad_resume(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], fields: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.refused("resume", "invalid", **fields)
    await peer.ping()

"""Real daphne processes and real clients: delivery, resume, two processes on Redis, and a crash.

Each test starts its own daphne processes (``servers`` kills them all at the end) on one
embedded store file; the multi-process tests share a Redis channel layer (skipped without
Redis on this machine, failed instead when ``CI`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realtime.helpers import PROTOCOL, Peer, bearer, redis_url_or_skip, state_fields, ws_path
from tests.realtime.servers import (
    Account,
    Http,
    NetPeer,
    Server,
    Servers,
    base_env,
    create_session,
    invite,
    net_open,
    net_refused,
    register,
)
from tests.realtime.test_resume import check_resume
from tests.store import shared_store

pytestmark = pytest.mark.slow

REDIS_DB_TWO_PROCESSES = 13
REDIS_DB_CRASH = 14


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return shared_store(tmp_path)


async def people(http: Http) -> tuple[Account, Account, dict[str, Any]]:
    """Alice (owner), Bob (member of her tenant) and a session of Alice's."""
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    bob = await asyncio.to_thread(invite, http, alice, "Bob", "bob@example.com")
    session = await asyncio.to_thread(create_session, http, alice)
    return alice, bob, session


async def close_quietly(peers: list[NetPeer]) -> None:
    for peer in peers:
        # The server may be gone already.
        with contextlib.suppress(Exception):
            await peer.close()


def assert_no_tracebacks(*servers: Server) -> None:
    for server in servers:
        log = server.log()
        assert "Traceback" not in log, f"daphne {server.name} logged an error:\n{log}"


def assert_same_events(one: Peer, other: Peer) -> list[int]:
    """For every seq both saw, both saw the same event; returns those seqs."""
    mine, theirs = one.by_seq(), other.by_seq()
    common = sorted(set(mine) & set(theirs))
    for seq in common:
        assert state_fields(mine[seq]) == state_fields(theirs[seq]), (mine[seq], theirs[seq])
    return common


async def test_real_clients_share_patches_and_resume_after_a_drop(
    servers: Servers, store_url: str
) -> None:
    (server,) = servers.start_all(("single", base_env(store_url)))
    http = Http(server)
    alice, bob, session = await people(http)
    session_id = session["id"]
    peers: list[NetPeer] = []
    try:
        first = await net_open(server, session_id, alice.access, "alice")
        peers.append(first)
        second = await net_open(server, session_id, bob.access, "bob")
        peers.append(second)
        await first.next("presence.join", connection_id=second.connection_id)

        version = first.welcome["version"]
        mine = await first.ok("state.patch", base_version=version, changes={"name": "by alice"})
        theirs = await second.ok(
            "state.patch", base_version=version + 1, changes={"active_files": ["/srv/b.py"]}
        )
        assert theirs["seq"] == mine["seq"] + 1
        for peer in (first, second):
            one = await peer.next("state.changed", seq=mine["seq"])
            assert one["origin"] == first.connection_id
            assert one["changes"] == {"name": "by alice"}
            two = await peer.next("state.changed", seq=theirs["seq"])
            assert two["origin"] == second.connection_id
            assert two["version"] == version + 2
            await peer.drain(quiet=0.2)
            peer.assert_contiguous()
        current = await asyncio.to_thread(
            http.expect, 200, "GET", f"/api/v5/sessions/{session_id}", None, alice.access
        )
        assert current["name"] == "by alice"
        assert current["active_files"] == ["/srv/b.py"]
        assert current["version"] == version + 2

        # Bob's network drops (no close frame); he misses a few things.
        last = max([second.welcome["seq"], *second.seqs()])
        second.connection.transport.abort()
        await first.next("presence.leave", connection_id=second.connection_id, timeout=10)
        await first.ok("state.patch", base_version=version + 2, changes={"name": "while away"})
        await first.ok("event.publish", event="build.started", data={"job": 1})
        await asyncio.to_thread(
            http.expect,
            202,
            "POST",
            f"/api/v5/sessions/{session_id}/events",
            {"event": "build.done", "data": {"job": 1}},
            alice.access,
        )
        await first.ok("lock.acquire", path="/srv/project/a.py", ttl_s=60)

        again = await net_open(server, session_id, bob.access, "bob-again")
        peers.append(again)
        ack = await again.ok("resume", last_seq=last)
        final = await first.ok("event.publish", event="after", data=None)
        await again.wait_seq(final["seq"])
        await again.drain(quiet=0.2)
        replay = check_resume(again, last, ack, final["seq"])
        assert len(replay) >= 5
        await first.drain(quiet=0.2)
        first.assert_contiguous()
        assert assert_same_events(first, again) == list(range(last + 1, final["seq"] + 1))
        logged = await asyncio.to_thread(
            http.expect,
            200,
            "GET",
            f"/api/v5/sessions/{session_id}/events?after_seq={last}",
            None,
            alice.access,
        )
        assert [e["seq"] for e in logged["results"]] == list(range(last + 1, final["seq"] + 1))
    finally:
        await close_quietly(peers)
    assert_no_tracebacks(server)


async def test_close_codes_reach_a_real_client(servers: Servers, store_url: str) -> None:
    (server,) = servers.start_all(("codes", base_env(store_url)))
    http = Http(server)
    alice, _, session = await people(http)
    charlie = await asyncio.to_thread(register, http, "Charlie", "charlie@example.org", "Globex")
    session_path = ws_path(session["id"])
    # The contract's close codes are only seen by a browser on a socket that was accepted.
    assert await net_refused(server, ws_path(str(uuid.uuid4())), bearer(alice.access)) == 4404
    assert await net_refused(server, session_path, bearer(charlie.access)) == 4404
    assert await net_refused(server, session_path, bearer("garbage")) == 4401
    assert await net_refused(server, session_path, [f"bearer.{alice.access}"]) in (None, 4403)
    # A token in the URL is never accepted: refused at the handshake.
    query = ws_path(session["id"], f"token={alice.access}")
    assert await net_refused(server, query, [PROTOCOL]) is None
    assert_no_tracebacks(server)


async def test_two_processes_on_redis_deliver_everything_in_order(
    servers: Servers, store_url: str
) -> None:
    redis_url = redis_url_or_skip(REDIS_DB_TWO_PROCESSES)
    env = base_env(store_url, redis_url)
    one, two = servers.start_all(("one", env), ("two", env))
    alice, bob, session = await people(Http(one))
    session_id = session["id"]
    peers: list[NetPeer] = []
    try:
        first = await net_open(one, session_id, alice.access, "alice@one")
        peers.append(first)
        second = await net_open(two, session_id, bob.access, "bob@two")
        peers.append(second)
        await first.next("presence.join", connection_id=second.connection_id, timeout=10)

        # Patches from each process, one after the other.
        version = first.welcome["version"]
        for index in range(6):
            peer = (first, second)[index % 2]
            ack = await peer.ok("state.patch", base_version=version, changes={"name": f"n{index}"})
            version = ack["version"]
            for other in (first, second):
                changed = await other.next("state.changed", seq=ack["seq"])
                assert changed["origin"] == peer.connection_id

        # Events from both at once, and from REST on either process.
        count = 20
        sent: list[tuple[Peer, str]] = []
        for index in range(count):
            for peer in (first, second):
                request_id = peer.new_id()
                sent.append((peer, request_id))
                await peer.send(
                    {"type": "event.publish", "id": request_id, "event": "tick", "data": index}
                )
        for server, who in ((one, alice), (two, bob)):
            await asyncio.to_thread(
                Http(server).expect,
                202,
                "POST",
                f"/api/v5/sessions/{session_id}/events",
                {"event": "rest", "data": server.name},
                who.access,
            )
        acks = [await peer.reply(request_id, timeout=15) for peer, request_id in sent]
        assert all(ack["type"] == "ack" for ack in acks), acks
        ack_seqs = sorted(ack["seq"] for ack in acks)
        assert len(set(ack_seqs)) == 2 * count

        final = await first.ok("event.publish", event="end", data=None)
        for peer in (first, second):
            await peer.wait_seq(final["seq"], timeout=15)
            await peer.drain(quiet=0.3)
            peer.assert_contiguous()
            ticks = [m["seq"] for m in peer.broadcasts("event") if m["event"] == "tick"]
            assert ticks == ack_seqs
            rests = [m["data"] for m in peer.broadcasts("event") if m["event"] == "rest"]
            assert sorted(rests) == ["one", "two"]
        common = assert_same_events(first, second)
        start = max(first.welcome["seq"], second.welcome["seq"]) + 1
        assert common == list(range(start, final["seq"] + 1))

        # Two processes racing for one lock: one wins, the other hears who.
        for index in range(5):
            path = f"/srv/project/race-{index}.py"
            ids = []
            for peer in (first, second):
                request_id = peer.new_id()
                ids.append((peer, request_id))
                await peer.send(
                    {"type": "lock.acquire", "id": request_id, "path": path, "ttl_s": 60}
                )
            replies = [(peer, await peer.reply(request_id, timeout=10)) for peer, request_id in ids]
            winners = [peer for peer, reply in replies if reply["type"] == "ack"]
            assert len(winners) == 1, replies
            for peer, reply in replies:
                if peer is not winners[0]:
                    assert reply["code"] == "lock_held", reply
                    assert reply["holder"]["connection_id"] == winners[0].connection_id
    finally:
        await close_quietly(peers)
    assert_no_tracebacks(one, two)


async def test_a_killed_process_leaves_no_ghost(servers: Servers, store_url: str) -> None:
    redis_url = redis_url_or_skip(REDIS_DB_CRASH)
    env = base_env(
        store_url, redis_url, CODITECT_WS_HEARTBEAT_S="1", CODITECT_WS_PRESENCE_TIMEOUT_S="3"
    )
    doomed, healthy = servers.start_all(("doomed", env), ("healthy", env))
    alice, bob, session = await people(Http(healthy))
    session_id = session["id"]
    path = "/srv/project/main.py"
    peers: list[NetPeer] = []
    try:
        victim = await net_open(doomed, session_id, alice.access, "alice@doomed")
        peers.append(victim)
        await victim.ok("lock.acquire", path=path, ttl_s=300)
        survivor = await net_open(healthy, session_id, bob.access, "bob@healthy")
        peers.append(survivor)
        assert victim.connection_id in {p["connection_id"] for p in survivor.welcome["presence"]}
        assert [(x["path"], x["holder"]["connection_id"]) for x in survivor.welcome["locks"]] == [
            (path, victim.connection_id)
        ]

        # Alive and heartbeating on another process: not mistaken for a ghost.
        await asyncio.sleep(4.5)
        await survivor.refused("lock.acquire", "lock_held", path=path, ttl_s=30)
        assert [m for m in survivor.broadcasts() if m["type"] == "presence.leave"] == []

        doomed.kill()
        killed_at = time.monotonic()
        leave = await survivor.next(
            "presence.leave", connection_id=victim.connection_id, timeout=10
        )
        assert leave["user_id"] == alice.user_id
        await survivor.next("lock.changed", path=path, holder=None, timeout=10)
        elapsed = time.monotonic() - killed_at
        # Presence timeout 3 s, heartbeat 1 s, and a little slack for the sweep.
        assert elapsed < 6.5, f"the ghost lingered {elapsed:.1f} s"

        fresh = await net_open(healthy, session_id, bob.access, "fresh@healthy")
        peers.append(fresh)
        present = {p["connection_id"] for p in fresh.welcome["presence"]}
        assert victim.connection_id not in present
        assert present == {survivor.connection_id, fresh.connection_id}
        assert fresh.welcome["locks"] == []
        granted = await fresh.ok("lock.acquire", path=path, ttl_s=30)
        assert granted["granted"] is True
        await survivor.drain(quiet=0.3)
        survivor.assert_contiguous()
    finally:
        await close_quietly(peers)
    assert_no_tracebacks(healthy)

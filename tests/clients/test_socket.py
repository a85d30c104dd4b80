"""The Python client's socket against a real daphne: an agent that holds a lock and streams
progress through a server restart, resume across a network drop, resync, typed socket errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from coditect_client import (
    Client,
    Event,
    LockHeld,
    LockLost,
    SessionGone,
    SessionSocket,
    SocketOptions,
    VersionConflict,
)

from tests.accounts.helpers import PASSWORD
from tests.clients.conftest import Proxy, restart
from tests.realtime.servers import Http, Servers, base_env, invite, register

pytestmark = pytest.mark.slow

# A dead connection is noticed by the next heartbeat of a live server after 3 s.
FAST_SWEEP = {"CODITECT_WS_HEARTBEAT_S": "1", "CODITECT_WS_PRESENCE_TIMEOUT_S": "3"}
QUICK = SocketOptions(backoff_base_s=0.2, backoff_max_s=1.0)


async def collect(sock: SessionSocket, until: Any, timeout: float = 30) -> list[Event]:
    """Events from the socket until ``until(events)`` holds."""
    got: list[Event] = []
    async with asyncio.timeout(timeout):
        while not until(got):
            got.append(await sock.next_event())
    return got


def assert_in_order(events: list[Event], after: int) -> None:
    """Seq rose by exactly one from ``after``: nothing missed, nothing twice."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), seqs


def released(events: list[Event], after: int) -> bool:
    """The last lock change is a release, after seq ``after``."""
    changes = [e for e in events if e.type == "lock.changed"]
    return bool(changes) and changes[-1].data["holder"] is None and changes[-1].seq > after


def progress(events: list[Event]) -> list[Any]:
    return [e.data["step"] for e in events if e.type == "event" and e.event == "progress"]


async def test_an_agent_holds_a_lock_and_streams_progress_through_a_server_restart(
    servers: Servers, store_url: str
) -> None:
    (server,) = servers.start_all(("restarted", base_env(store_url, **FAST_SWEEP)))
    http = Http(server)
    await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    charlie = await asyncio.to_thread(register, http, "Charlie", "charlie@example.org", "Globex")
    alice = Client(server.base_url, socket_options=QUICK)
    await alice.login("alice@example.com", PASSWORD)
    session = await alice.create_session(name="agent run", workspace_path="/srv/app")
    # Another tenant's agent does not get in.
    stranger = Client(server.base_url, token=charlie.access, socket_options=QUICK)
    with pytest.raises(SessionGone):
        await stranger.connect(session.id)

    steps, path = 40, "/srv/app/main.py"
    observer_client = Client(server.base_url, socket_options=QUICK)
    await observer_client.login("alice@example.com", PASSWORD)
    observer = await observer_client.connect(session.id)
    start = observer.seq
    agent = await alice.connect(session.id)
    first_connection = agent.connection_id
    published: list[int] = []

    async def run_agent() -> dict[str, Any]:
        async with agent.lock(path, ttl_s=6) as lease:
            for step in range(steps):
                # Guarded work runs only while the lease is held: after the restart, once
                # the server has swept the dead connection and the socket took it again.
                await lease.wait_held(30)
                # Blocks through the restart; exactly once even if the kill hits it in flight.
                published.append(await agent.publish("progress", {"step": step}))
                await asyncio.sleep(0.02)
            lease.check()
            return {
                "reacquired": lease.reacquired,
                "holder": observer.locks.get(path, {}).get("holder"),
                "connection": agent.connection_id,
            }

    agent_task = asyncio.create_task(run_agent())
    try:
        seen = await collect(observer, lambda got: 10 in progress(got))
        await restart(server, "daphne-restarted-2.log")
        seen += await collect(observer, lambda got: steps - 1 in progress(seen + got), 60)
        result = await asyncio.wait_for(agent_task, 60)
        # The lease is held again, by the agent's new connection, once the dead one's was
        # swept; the observer saw it change hands.
        assert result["reacquired"] >= 1
        assert result["connection"] != first_connection
        seen += await collect(observer, lambda got: released(seen + got, published[-1]))
    finally:
        if not agent_task.done():
            agent_task.cancel()
            with contextlib.suppress(BaseException):
                await agent_task
    # Every progress event exactly once, in order, and every seq from the observer's welcome on.
    assert progress(seen) == list(range(steps))
    assert_in_order(seen, start)
    assert sorted(set(published)) == published and len(published) == steps
    assert [e.seq for e in seen if e.event == "progress"] == published
    holders = [e.data["holder"] for e in seen if e.type == "lock.changed"]
    assert holders[0]["connection_id"] == first_connection
    assert result["connection"] in [h["connection_id"] for h in holders if h]
    assert holders[-1] is None  # released when the agent left the `async with`
    # The agent's own socket saw the same, and the log agrees with both.
    mine = []
    while agent.pending_events():
        mine.append(await agent.next_event())
    assert progress(mine) == list(range(steps))
    logged = [e async for e in alice.events(session.id, after_seq=start) if e.seq <= seen[-1].seq]
    assert [e.seq for e in logged] == [e.seq for e in seen]
    assert [(e.type, e.event) for e in logged] == [(e.type, e.event) for e in seen]
    assert observer.counts["resumed"] >= 1 and agent.counts["resumed"] >= 1
    for client in (alice, observer_client, stranger):
        await client.close()


async def test_resume_after_a_network_drop_and_resync_past_the_log(
    servers: Servers, store_url: str, proxies: list[Proxy]
) -> None:
    (server,) = servers.start_all(("dropped", base_env(store_url, CODITECT_EVENT_LOG_MAX="10")))
    http = Http(server)
    account = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    proxy = Proxy(server)
    proxies.append(proxy)
    await proxy.start()
    async with (
        Client(server.base_url, token=account.access) as direct,
        Client(proxy.base_url, token=account.access, socket_options=QUICK) as far,
    ):
        session = await direct.create_session(name="drops", workspace_path="/srv/app")
        sock = await far.connect(session.id)
        start = sock.seq
        await direct.publish_event(session.id, "progress", {"step": 0})
        got = await collect(sock, lambda got: 0 in progress(got))

        # A short drop: the events meanwhile come by resume, once each.
        await proxy.cut()
        for step in range(1, 4):
            await direct.publish_event(session.id, "progress", {"step": step})
        await proxy.start()
        got += await collect(sock, lambda more: 3 in progress(more))
        assert progress(got) == [0, 1, 2, 3]
        assert_in_order(got, start)
        assert sock.counts["resumed"] == 1
        # It publishes on the healed socket like before.
        seq = await sock.publish("progress", {"step": 4})
        got += await collect(sock, lambda more: 4 in progress(more))
        assert got[-1].seq == seq

        # A long drop: more events than the log keeps. A resync marker with the full state,
        # then live events again in order.
        await proxy.cut()
        for step in range(5, 25):
            await direct.publish_event(session.id, "progress", {"step": step})
        await direct.patch_session(session.id, name="renamed while away")
        await proxy.start()
        resync = await sock.next_event(30)
        while resync.type != "resync":  # the presence news of its own drop may come first
            resync = await sock.next_event(30)
        assert resync.data["session"]["name"] == "renamed while away"
        assert sock.session["name"] == "renamed while away"
        assert sock.counts["resynced"] == 1
        after = sock.seq
        await direct.publish_event(session.id, "progress", {"step": 25})
        tail = await collect(sock, lambda more: 25 in progress(more))
        assert_in_order(tail, after)


async def test_socket_requests_raise_typed_errors(servers: Servers, store_url: str) -> None:
    (server,) = servers.start_all(("typed", base_env(store_url)))
    http = Http(server)
    owner = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    member = await asyncio.to_thread(invite, http, owner, "Bob", "bob@example.com")
    async with (
        Client(server.base_url, token=owner.access) as alice,
        Client(server.base_url, token=member.access) as bob,
    ):
        session = await alice.create_session(name="typed", workspace_path="/srv/app")
        mine, theirs = await alice.connect(session.id), await bob.connect(session.id)

        ack = await mine.patch({"name": "first"})
        assert ack["version"] == session.version + 1
        with pytest.raises(VersionConflict) as stale:
            await theirs.patch({"name": "stale"}, base_version=session.version)
        assert stale.value.current_version == ack["version"]
        assert stale.value.status is None  # a socket error, not an HTTP one

        async with mine.lock("/srv/app/a.py", ttl_s=30) as lease:
            with pytest.raises(LockHeld) as held:
                async with theirs.lock("/srv/app/a.py", ttl_s=30):
                    pass
            assert held.value.holder is not None
            assert held.value.holder["connection_id"] == mine.connection_id
            lease.check()
        # Released on exit: the other one gets it now.
        async with theirs.lock("/srv/app/a.py", ttl_s=30, wait_s=5) as other:
            assert other.connection_id == theirs.connection_id

        # Deleting the session ends the sockets for good: SessionGone, no reconnect loop.
        await alice.delete_session(session.id)
        with pytest.raises(SessionGone) as gone:
            async with asyncio.timeout(10):
                async for _ in mine:
                    pass
        assert gone.value.close_code == 4404


async def test_a_lease_taken_over_by_another_connection_is_lost(
    servers: Servers, store_url: str, proxies: list[Proxy]
) -> None:
    (server,) = servers.start_all(("lost", base_env(store_url, **FAST_SWEEP)))
    http = Http(server)
    owner = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    proxy = Proxy(server)
    proxies.append(proxy)
    await proxy.start()
    options = SocketOptions(backoff_base_s=0.2, backoff_max_s=1.0, reacquire_timeout_s=20)
    async with (
        Client(server.base_url, token=owner.access) as rival_client,
        Client(proxy.base_url, token=owner.access, socket_options=options) as agent_client,
    ):
        session = await rival_client.create_session(name="lease", workspace_path="/srv/app")
        agent = await agent_client.connect(session.id)
        rival = await rival_client.connect(session.id)
        with pytest.raises(LockLost) as lost:
            async with agent.lock("/srv/app/a.py", ttl_s=30) as lease:
                await proxy.cut()
                # The rival waits until the agent's dead connection is swept, then takes it.
                async with rival.lock("/srv/app/a.py", ttl_s=30, wait_s=15):
                    await proxy.start()
                    await asyncio.wait_for(lease.lost.wait(), 20)
        assert "another connection" in lost.value.reason


async def logged_steps(client: Client, session_id: str) -> list[Any]:
    return [e.data["step"] async for e in client.events(session_id) if e.event == "progress"]


async def test_a_publish_interrupted_by_a_drop_is_applied_exactly_once(
    servers: Servers, store_url: str, proxies: list[Proxy]
) -> None:
    (server,) = servers.start_all(("once", base_env(store_url)))
    http = Http(server)
    account = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    proxy = Proxy(server)
    proxies.append(proxy)
    await proxy.start()
    async with (
        Client(server.base_url, token=account.access) as direct,
        Client(proxy.base_url, token=account.access, socket_options=QUICK) as far,
    ):
        session = await direct.create_session(name="once", workspace_path="/srv/app")
        sock = await far.connect(session.id)
        assert await sock.publish("progress", {"step": 0}) > 0

        # The publish reaches the server, which commits it, but its ack and broadcast are
        # lost with the connection: after the resume the client finds it in the replay and
        # does not send it again.
        proxy.held.add("down")
        in_flight = asyncio.create_task(sock.publish("progress", {"step": 1}))
        async with asyncio.timeout(10):
            while await logged_steps(direct, session.id) != [0, 1]:
                await asyncio.sleep(0.05)
        await proxy.cut()
        await proxy.start()
        recovered_seq = await asyncio.wait_for(in_flight, 30)
        await sock.ping()  # a duplicate, had it been sent, is in the log by now
        assert await logged_steps(direct, session.id) == [0, 1]
        assert sock.counts == sock.counts | {"recovered": 1, "republished": 0}

        # The publish never reaches the server: it is sent again on the new connection.
        proxy.held.add("up")
        lost = asyncio.create_task(sock.publish("progress", {"step": 2}))
        await asyncio.sleep(0.3)
        assert await logged_steps(direct, session.id) == [0, 1]
        await proxy.cut()
        await proxy.start()
        resent_seq = await asyncio.wait_for(lost, 30)
        assert sock.counts == sock.counts | {"recovered": 1, "republished": 1}

        assert await logged_steps(direct, session.id) == [0, 1, 2]
        logged = {
            e.data["step"]: e.seq async for e in direct.events(session.id) if e.event == "progress"
        }
        assert (logged[1], logged[2]) == (recovered_seq, resent_seq)
        got = await collect(sock, lambda got: 2 in progress(got))
        assert progress(got) == [0, 1, 2]


async def test_a_socket_outlives_its_access_tokens(servers: Servers, store_url: str) -> None:
    # Tokens live 4 s: the client refreshes them a second before expiry and re-authenticates
    # the open socket, which would otherwise be closed with 4401 at expiry. (A real server's
    # clock: the test lives through three tokens.)
    env = base_env(store_url, CODITECT_ACCESS_TOKEN_TTL_S="4", CODITECT_JWT_LEEWAY_S="0")
    (server,) = servers.start_all(("tokens", env))
    await asyncio.to_thread(register, Http(server), "Alice", "alice@example.com", "Acme")
    async with Client(server.base_url) as client:
        await client.login("alice@example.com", PASSWORD)
        session = await client.create_session(name="long", workspace_path="/srv/app")
        sock = await client.connect(session.id)
        start = sock.seq
        got: list[Event] = []
        for step in range(9):
            await client.publish_event(session.id, "progress", {"step": step})
            got += await collect(sock, lambda more, step=step: step in progress(more))
            await asyncio.sleep(1)
        assert progress(got) == list(range(9))
        assert_in_order(got, start)
        assert sock.counts["opened"] == 1, sock.counts  # never dropped
        assert sock.counts["reauthed"] >= 2, sock.counts

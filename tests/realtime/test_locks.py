"""File locks: leases that one connection holds, renews, releases, loses when it goes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.helpers import Persona
from tests.realtime.helpers import CommPeer, Sockets, rfc3339

PATH = "/home/alice/project/main.py"


async def pair(
    sockets: Sockets, session_id: str, alice: Persona, bob: Persona
) -> tuple[CommPeer, CommPeer]:
    first = await sockets.join(session_id, alice.access, "alice")
    second = await sockets.join(session_id, bob.access, "bob")
    await first.next("presence.join", connection_id=second.connection_id)
    return first, second


def holder(peer: CommPeer, persona: Persona) -> dict[str, Any]:
    return {"connection_id": peer.connection_id, "user_id": persona.user_id}


async def test_acquire_renew_release(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    now = datetime.now(UTC)
    ack = await first.ok("lock.acquire", path=PATH, ttl_s=30)
    assert ack["granted"] is True
    assert ack["path"] == PATH
    expires = rfc3339(ack["expires_at"])
    assert now + timedelta(seconds=25) <= expires <= now + timedelta(seconds=35)
    for peer in (first, second):
        changed = await peer.next("lock.changed", path=PATH)
        assert changed["holder"] == holder(first, alice)
        assert rfc3339(changed["expires_at"]) == expires

    # Held: Bob cannot take it.
    error = await second.refused("lock.acquire", "lock_held", path=PATH, ttl_s=30)
    assert error["holder"] == holder(first, alice)
    assert rfc3339(error["expires_at"]) == expires
    # The same connection acquiring again is not someone else's lock either way.
    await first.request("lock.acquire", path=PATH, ttl_s=30)

    # A joiner sees the lock in its welcome.
    third = await sockets.join(alice_session["id"], bob.access, "bob-2")
    locks = {lock["path"]: lock for lock in third.welcome["locks"]}
    assert set(locks) == {PATH}
    assert locks[PATH]["holder"] == holder(first, alice)
    rfc3339(locks[PATH]["expires_at"])

    renewed = await first.ok("lock.renew", path=PATH, ttl_s=120)
    later = rfc3339(renewed["expires_at"])
    assert later > expires
    assert later >= datetime.now(UTC) + timedelta(seconds=110)
    for peer in (first, second):
        changed = await peer.next(
            lambda m: (
                m.get("type") == "lock.changed"
                and isinstance(m.get("expires_at"), str)
                and rfc3339(m["expires_at"]) == later
            )
        )
        assert changed["holder"] == holder(first, alice)

    await first.ok("lock.release", path=PATH)
    for peer in (first, second, third):
        await peer.next("lock.changed", path=PATH, holder=None, expires_at=None)
    granted = await second.ok("lock.acquire", path=PATH, ttl_s=5)
    assert granted["granted"] is True
    await first.next("lock.changed", path=PATH, holder=holder(second, bob))
    for peer in (first, second, third):
        await peer.drain()
        peer.assert_contiguous()


async def test_paths_are_locked_separately(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    await first.ok("lock.acquire", path="/srv/a.py", ttl_s=30)
    await second.ok("lock.acquire", path="/srv/b.py", ttl_s=30)
    await second.refused("lock.acquire", "lock_held", path="/srv/a.py", ttl_s=30)
    await first.refused("lock.acquire", "lock_held", path="/srv/b.py", ttl_s=30)
    third = await sockets.join(alice_session["id"], alice.access, "alice-2")
    assert {(x["path"], x["holder"]["connection_id"]) for x in third.welcome["locks"]} == {
        ("/srv/a.py", first.connection_id),
        ("/srv/b.py", second.connection_id),
    }
    # Another connection of the same user does not hold its sibling's lock.
    await third.refused("lock.acquire", "lock_held", path="/srv/a.py", ttl_s=30)


async def test_only_the_holder_renews_or_releases(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    sibling = await sockets.join(alice_session["id"], alice.access, "alice-2")
    ack = await first.ok("lock.acquire", path=PATH, ttl_s=30)
    for other in (second, sibling):
        await other.refused("lock.renew", "lock_not_held", path=PATH, ttl_s=30)
        await other.request("lock.release", path=PATH)
        error = await other.refused("lock.acquire", "lock_held", path=PATH, ttl_s=30)
        assert error["holder"] == holder(first, alice)
        assert rfc3339(error["expires_at"]) == rfc3339(ack["expires_at"])
    # Nobody else's renew or release changed it.
    await second.drain()
    changes = second.broadcasts("lock.changed")
    assert len(changes) == 1, changes
    # Nor can anyone renew a lock nobody holds.
    await second.refused("lock.renew", "lock_not_held", path="/srv/free.py", ttl_s=30)
    await first.ok("lock.release", path=PATH)
    await first.refused("lock.renew", "lock_not_held", path=PATH, ttl_s=30)


@pytest.mark.parametrize(
    "fields",
    [
        {"path": PATH, "ttl_s": 0},
        {"path": PATH, "ttl_s": 301},
        {"path": PATH, "ttl_s": -5},
        {"path": PATH, "ttl_s": "30"},
        {"path": PATH, "ttl_s": None},
        {"ttl_s": 30},
        {"path": 5, "ttl_s": 30},
        {"path": "", "ttl_s": 30},
        {"path": ["/a"], "ttl_s": 30},
    ],
)
async def test_bad_lock_requests(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], fields: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.refused("lock.acquire", "invalid", **fields)
    await peer.drain(quiet=0.1)
    assert peer.broadcasts("lock.changed") == []
    await peer.ping()


# Issue 15, finding 8: one place, one spelling, one bound (protocol.md, "Lock paths").
LOCK_PATHS_REFUSED = {
    "relative": "srv/a.py",
    "dot": "/srv/./a.py",
    "dot-dot": "/srv/../etc/passwd",
    "double slash": "/srv//a.py",
    "leading double slash": "//srv/a.py",
    "trailing slash": "/srv/",
    "newline": "/srv/a.py\nforged: line",
    "NUL": "/srv/a\x00.py",
    "DEL": "/srv/a\x7f.py",
    "C1 control": "/srv/a\x85.py",
    "lone surrogate": "/srv/\ud800.py",
    "1,025 bytes": "/" + "x" * 1024,
    "1,025 bytes of two-byte characters": "/xx" + "é" * 511,
    "10 kB": "/" + "x" * 10_240,
}
LOCK_PATHS_ACCEPTED = ["/", "/srv/a.py", "/" + "x" * 1023, "/" + "é" * 511, "/srv/..a/b.", "/ä/€/𝄞"]


@pytest.mark.parametrize("what", sorted(LOCK_PATHS_REFUSED))
async def test_lock_paths_must_be_absolute_normalised_and_bounded(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], what: str
) -> None:
    path = LOCK_PATHS_REFUSED[what]
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    for kind in ("lock.acquire", "lock.renew", "lock.release"):
        error = await peer.refused(kind, "invalid", path=path, ttl_s=30)
        assert error["attr"] == "path", error
    await peer.drain(quiet=0.1)
    assert peer.broadcasts("lock.changed") == []
    await peer.ping()


async def test_lock_paths_at_the_bounds_are_accepted(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    for path in LOCK_PATHS_ACCEPTED:
        ack = await peer.ok("lock.acquire", path=path, ttl_s=30)
        assert ack["path"] == path
        changed = await peer.next("lock.changed", path=path)
        assert changed["holder"]["connection_id"] == peer.connection_id
        await peer.ok("lock.release", path=path)


@pytest.mark.parametrize("ttl_s", [1, 300])
async def test_ttl_bounds_are_accepted(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], ttl_s: int
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    ack = await peer.ok("lock.acquire", path=PATH, ttl_s=ttl_s)
    assert ack["granted"] is True


async def test_a_lease_that_runs_out_is_released(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    swept = await first.ok("lock.acquire", path="/srv/swept.py", ttl_s=1)
    taken = await first.ok("lock.acquire", path="/srv/taken.py", ttl_s=1)
    assert rfc3339(swept["expires_at"]) <= datetime.now(UTC) + timedelta(seconds=2)

    # Past its expiry, another connection may take it, whether or not the sweep came by.
    delay = (rfc3339(taken["expires_at"]) - datetime.now(UTC)).total_seconds() + 0.3
    await asyncio.sleep(max(delay, 0))
    granted = await second.ok("lock.acquire", path="/srv/taken.py", ttl_s=30)
    assert granted["granted"] is True

    # And within a second or two of expiry everyone hears that the other one is free.
    for peer in (first, second):
        await peer.next("lock.changed", path="/srv/swept.py", holder=None, timeout=4)
    third = await sockets.join(alice_session["id"], bob.access, "bob-2")
    assert [x["path"] for x in third.welcome["locks"]] == ["/srv/taken.py"]
    for peer in (first, second):
        await peer.drain()
        peer.assert_contiguous()


async def test_a_lease_renewed_in_time_is_kept(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    await first.ok("lock.acquire", path=PATH, ttl_s=2)
    for _ in range(3):
        await asyncio.sleep(1)
        await first.ok("lock.renew", path=PATH, ttl_s=2)
    await second.refused("lock.acquire", "lock_held", path=PATH, ttl_s=30)
    assert [m for m in second.broadcasts("lock.changed") if m["holder"] is None] == []


async def test_locks_go_with_their_connection(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    first, second = await pair(sockets, alice_session["id"], alice, bob)
    await first.ok("lock.acquire", path="/srv/one.py", ttl_s=300)
    await first.ok("lock.acquire", path="/srv/two.py", ttl_s=300)
    await first.close()
    released = set()
    for _ in range(2):
        changed = await second.next("lock.changed", holder=None)
        released.add(changed["path"])
    assert released == {"/srv/one.py", "/srv/two.py"}
    await second.next("presence.leave", connection_id=first.connection_id)
    await second.ok("lock.acquire", path="/srv/one.py", ttl_s=30)
    await second.drain()
    second.assert_contiguous()


async def test_racing_for_one_path_grants_exactly_one(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    peers = [
        await sockets.join(session_id, alice.access, "alice"),
        await sockets.join(session_id, bob.access, "bob"),
        await sockets.join(session_id, bob.access, "bob-2"),
    ]
    paths = [f"/srv/race/{index}.py" for index in range(10)]
    sent: list[tuple[CommPeer, str, str]] = []
    for path in paths:
        for peer in peers:
            request_id = peer.new_id()
            await peer.send({"type": "lock.acquire", "id": request_id, "path": path, "ttl_s": 60})
            sent.append((peer, path, request_id))
    replies = [(peer, path, await peer.reply(rid, timeout=10)) for peer, path, rid in sent]
    for path in paths:
        outcomes = [(peer, reply) for peer, p, reply in replies if p == path]
        winners = [peer for peer, reply in outcomes if reply["type"] == "ack"]
        assert len(winners) == 1, (path, [reply for _, reply in outcomes])
        (winner,) = winners
        for peer, reply in outcomes:
            if peer is not winner:
                assert reply["type"] == "error", reply
                assert reply["code"] == "lock_held", reply
                assert reply["holder"]["connection_id"] == winner.connection_id
    for peer in peers:
        await peer.drain()
        changes = [m for m in peer.broadcasts("lock.changed") if m["path"] in paths]
        assert sorted(m["path"] for m in changes) == sorted(paths)

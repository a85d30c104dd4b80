"""Large rooms: batched presence, the paged welcome, presence.list, and shared token checks.

The threshold and page are settings (CODITECT_WS_PRESENCE_BATCH_MIN, _PAGE), set low here so
a few sockets make a large room. What must hold whatever the batching: every joiner gets its
welcome, each batch is one seq (seqs rise by exactly one), a resume replays a batch as it
was, nothing is lost, and presence is right after leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from tests.accounts.helpers import AUTH, Api, Persona, login_pair
from tests.realtime.helpers import Peer, Sockets, bearer, call, ws_path
from tests.realtime.servers import (
    Http,
    NetPeer,
    Servers,
    base_env,
    create_session,
    net_open,
    register,
)
from tests.realtime.test_resume import check_resume
from tests.store import shared_store


@pytest.fixture
def large_rooms(settings: Any) -> None:
    """A room of 3 live connections is large; a welcome lists 2."""
    settings.CODITECT_WS_PRESENCE_BATCH_MIN = 3
    settings.CODITECT_WS_PRESENCE_PAGE = 2


async def everyone(peer: Peer, limit: int | None = None) -> tuple[set[str], int]:
    """The connection ids of the welcome's page and every presence.list page after it."""
    ids = {p["connection_id"] for p in peer.welcome["presence"]}
    following, count = peer.welcome["presence_next"], peer.welcome["presence_count"]
    while following is not None:
        fields: dict[str, Any] = {"after": following}
        if limit is not None:
            fields["limit"] = limit
        page = await peer.ok("presence.list", **fields)
        assert set(page) >= {"presence", "next", "count", "seq"}, page
        assert page["presence"], page
        ids |= {p["connection_id"] for p in page["presence"]}
        following, count = page["next"], page["count"]
    return ids, count


async def listed(peer: Peer, limit: int = 2) -> tuple[set[str], int]:
    """Presence now, from presence.list pages of ``limit`` from the first."""
    page = await peer.ok("presence.list", limit=limit)
    ids = {p["connection_id"] for p in page["presence"]}
    while page["next"] is not None:
        page = await peer.ok("presence.list", after=page["next"], limit=limit)
        ids |= {p["connection_id"] for p in page["presence"]}
    return ids, page["count"]


def batched(peer: Peer) -> list[tuple[str, str]]:
    """(change, connection id) of every presence broadcast ``peer`` got, in order."""
    changes = []
    for message in peer.broadcasts():
        if message["type"] == "presence.batch":
            assert message["origin"] == "", message
            assert message["count"] >= 0, message
            for entry in message["connections"]:
                assert set(entry) == {"connection_id", "user_id", "display_name", "change"}
                changes.append((entry["change"], entry["connection_id"]))
        elif message["type"] in ("presence.join", "presence.leave"):
            changes.append((message["type"].split(".")[1], message["connection_id"]))
    return changes


async def test_a_small_room_announces_each_join_and_leave(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    first = await sockets.join(alice_session["id"], alice.access, "first")
    second = await sockets.join(alice_session["id"], alice.access, "second")
    join = await first.next("presence.join", connection_id=second.connection_id)
    assert join["origin"] == second.connection_id
    assert second.welcome["presence_count"] == 2
    assert second.welcome["presence_next"] is None
    await second.close()
    await first.next("presence.leave", connection_id=second.connection_id)
    assert first.broadcasts("presence.batch") == []
    first.assert_contiguous()


async def test_a_large_room_batches_presence_and_pages_the_welcome(
    large_rooms: None, sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    first = await sockets.join(session_id, alice.access, "first")
    second = await sockets.join(session_id, bob.access, "second")
    await first.next("presence.join", connection_id=second.connection_id)
    third = await sockets.join(session_id, alice.access, "third")
    batch = await first.next("presence.batch")
    [entry] = batch["connections"]
    assert entry["connection_id"] == third.connection_id
    assert entry["user_id"] == alice.user_id and entry["change"] == "join"
    assert isinstance(entry["display_name"], str) and entry["display_name"]
    assert batch["count"] == 3
    await second.next("presence.batch", seq=batch["seq"])

    # The welcome lists a page of 2 and the count; presence.list gives the rest.
    welcome = third.welcome
    assert len(welcome["presence"]) == 2 and welcome["presence_count"] == 3
    assert isinstance(welcome["presence_next"], str)
    ids, count = await everyone(third)
    assert ids == {first.connection_id, second.connection_id, third.connection_id}
    assert count == 3
    ids, _ = await everyone(third, limit=1)
    assert len(ids) == 3

    await second.close()
    left = await first.next("presence.batch")
    assert [(c["change"], c["connection_id"]) for c in left["connections"]] == [
        ("leave", second.connection_id)
    ]
    assert left["count"] == 2
    assert left["connections"][0]["user_id"] == bob.user_id
    first.assert_contiguous()
    third.assert_contiguous()


async def test_joins_at_once_each_get_a_welcome_and_every_seq_once(
    large_rooms: None, sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    observer = await sockets.join(session_id, alice.access, "observer")
    joiners = await asyncio.gather(
        *(sockets.join(session_id, alice.access, f"joiner-{n}") for n in range(8))
    )
    ids = {peer.connection_id for peer in joiners}
    assert len(ids) == 8
    final = max(int(p.welcome["seq"]) for p in joiners)
    await observer.wait_seq(final)
    seqs = observer.assert_contiguous()
    assert seqs[-1] == final
    assert {cid for change, cid in batched(observer) if change == "join"} == ids
    for peer in joiners:
        # A joiner's welcome covers its own join: it hears only the later ones.
        if int(peer.welcome["seq"]) < final:
            await peer.wait_seq(final)
        peer.assert_contiguous()
        assert peer.connection_id not in {cid for _, cid in batched(peer)}
        assert peer.welcome["presence_count"] >= 2
    ids_seen, count = await listed(joiners[0])
    assert ids_seen == ids | {observer.connection_id} and count == 9


async def test_presence_is_right_after_leaves(
    large_rooms: None, sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    peers = [await sockets.join(session_id, alice.access, f"p{n}") for n in range(5)]
    await asyncio.gather(peers[1].close(), peers[3].close())
    gone = {peers[1].connection_id, peers[3].connection_id}
    while {cid for change, cid in batched(peers[0]) if change == "leave"} != gone:
        await peers[0].next("presence.batch")
    fresh = await sockets.join(session_id, alice.access, "fresh")
    ids, count = await everyone(fresh)
    assert ids == {peers[0].connection_id, peers[2].connection_id, peers[4].connection_id} | {
        fresh.connection_id
    }
    assert count == 4
    peers[0].assert_contiguous()


async def test_a_resume_replays_a_batch_as_it_was_sent(
    large_rooms: None, sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    stays = [await sockets.join(session_id, alice.access, f"stays-{n}") for n in range(2)]
    leaves = await sockets.join(session_id, alice.access, "leaves")
    last = int(leaves.welcome["seq"])
    await leaves.close()
    await asyncio.gather(*(sockets.join(session_id, alice.access, f"later-{n}") for n in range(3)))
    back = await sockets.join(session_id, alice.access, "back")
    end = int(back.welcome["seq"])
    ack = await back.ok("resume", last_seq=last)
    replay = check_resume(back, last, ack, end)
    await stays[0].wait_seq(end)
    live = {int(m["seq"]): m for m in stays[0].broadcasts()}
    assert replay == [live[int(m["seq"])] for m in replay]
    assert any(m["type"] == "presence.batch" for m in replay), replay


@pytest.mark.parametrize(
    ("fields", "attr"),
    [
        ({"after": 7}, "after"),
        ({"after": ""}, "after"),
        ({"after": "x" * 201}, "after"),
        ({"after": "\ud800"}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"limit": True}, "limit"),
    ],
)
async def test_presence_list_fields_are_checked(
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
    fields: dict[str, Any],
    attr: str,
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "peer")
    error = await peer.refused("presence.list", "invalid", **fields)
    assert error["attr"] == attr
    page = await peer.ok("presence.list")
    assert [p["connection_id"] for p in page["presence"]] == [peer.connection_id]
    assert page["next"] is None and page["count"] == 1


async def test_presence_list_needs_a_joined_socket(
    sockets: Sockets, alice_session: dict[str, Any]
) -> None:
    peer, accepted, _ = await sockets.open(ws_path(alice_session["id"]), ["coditect.v5"], "anon")
    assert accepted
    await peer.refused("presence.list", "not_authenticated")


async def test_sockets_sharing_a_token_join_together(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peers = await asyncio.gather(
        *(sockets.join(alice_session["id"], alice.access, f"tab-{n}") for n in range(6))
    )
    assert len({p.connection_id for p in peers}) == 6
    codes = await asyncio.gather(
        *(
            sockets.refused(ws_path(alice_session["id"]), bearer("x" + alice.access))
            for _ in range(4)
        )
    )
    assert codes == [4401] * 4


async def test_a_shared_check_never_outlives_a_revocation(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    """Only checks in flight are shared: a token revoked before a socket opens is refused,
    however many sockets opened with it just before."""
    other = await call(login_pair, api, alice)
    await asyncio.gather(
        *(sockets.join(alice_session["id"], other["access"], f"before-{n}") for n in range(3))
    )
    response = await call(api.post, AUTH + "logout", None, other["access"])
    assert response.status_code == 204, response.content
    codes = await asyncio.gather(
        *(sockets.refused(ws_path(alice_session["id"]), bearer(other["access"])) for _ in range(3))
    )
    assert codes == [4401] * 3


@pytest.mark.slow
async def test_a_large_room_on_a_real_server(tmp_path: Path) -> None:
    """Through ``python -m coditect.serve`` (its write path included): 12 sockets join at
    once, half leave at once; every socket sees each seq once, and presence ends right."""
    started = Servers(tmp_path)
    peers: list[NetPeer] = []
    try:
        env = base_env(
            shared_store(tmp_path),
            CODITECT_WS_PRESENCE_BATCH_MIN="4",
            CODITECT_WS_PRESENCE_PAGE="3",
        )
        (server,) = started.start_all(("rooms", env))
        http = Http(server)
        alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
        session_id = (await asyncio.to_thread(create_session, http, alice))["id"]
        observer = await net_open(server, session_id, alice.access, "observer")
        peers.append(observer)
        joiners = list(
            await asyncio.gather(
                *(net_open(server, session_id, alice.access, f"j{n}") for n in range(12))
            )
        )
        peers += joiners
        final = max(int(p.welcome["seq"]) for p in joiners)
        await observer.wait_seq(final, timeout=10)
        assert {cid for change, cid in batched(observer) if change == "join"} == {
            p.connection_id for p in joiners
        }
        leaving, staying = joiners[:6], joiners[6:]
        await asyncio.gather(*(p.close() for p in leaving))
        gone = {p.connection_id for p in leaving}
        while {cid for change, cid in batched(observer) if change == "leave"} != gone:
            await observer.next("presence.batch", timeout=10)
        ids, count = await listed(observer)
        assert ids == {observer.connection_id} | {p.connection_id for p in staying}
        assert count == 7
        observer.assert_contiguous()
        for peer in staying:
            await peer.wait_seq(observer.seqs()[-1], timeout=10)
            peer.assert_contiguous()
        assert "Traceback" not in server.log(), server.log()
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):
                await peer.close()
        started.stop_all()

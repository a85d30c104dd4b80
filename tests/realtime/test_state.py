"""state.patch, event.publish and REST writes reach every connection, in seq order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.accounts.helpers import Persona
from tests.asgi_app import app_client
from tests.realtime.helpers import CommPeer, Sockets, call, state_fields
from tests.workspaces.helpers import SessionApi, all_events, read_session, session_url


async def pair(
    sockets: Sockets, session_id: str, alice: Persona, bob: Persona
) -> tuple[CommPeer, CommPeer]:
    """Alice and Bob connected, each having seen everything so far."""
    first = await sockets.join(session_id, alice.access, "alice")
    second = await sockets.join(session_id, bob.access, "bob")
    await first.next("presence.join", connection_id=second.connection_id)
    return first, second


async def test_patch_is_acked_and_broadcast_to_every_connection(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    version = first.welcome["version"]
    changes = {
        "name": "renamed",
        "workspace_path": "/home/alice/other",
        "active_files": ["/home/alice/other/a.py", "/home/alice/other/b.py"],
        "editor_state": {"cursor": {"line": 1, "column": 2}, "folds": [1, 2]},
        "terminal_state": {"cwd": "/tmp", "history": ["ls"]},
    }
    ack = await first.ok("state.patch", base_version=version, changes=changes)
    assert ack["version"] == version + 1
    assert type(ack["seq"]) is int
    for peer in (first, second):
        changed = await peer.next("state.changed", seq=ack["seq"])
        assert changed["version"] == version + 1
        assert changed["changes"] == changes
        assert changed["origin"] == first.connection_id

    # Persisted before it was broadcast: the REST view and the event log have it.
    session = await call(read_session, sessions, alice, session_id)
    assert session["version"] == version + 1
    for name, value in changes.items():
        assert session[name] == value, name
    logged = {e["seq"]: e for e in await call(all_events, sessions, alice, session_id)}
    assert logged[ack["seq"]]["event"] == "state.changed"

    # Bob patches on top; the origin is his connection.
    ack2 = await second.ok(
        "state.patch", base_version=version + 1, changes={"editor_state": {"x": 1}}
    )
    assert ack2["version"] == version + 2
    assert ack2["seq"] == ack["seq"] + 1
    for peer in (first, second):
        changed = await peer.next("state.changed", seq=ack2["seq"])
        assert changed["origin"] == second.connection_id
        assert changed["changes"] == {"editor_state": {"x": 1}}
        assert changed["version"] == version + 2
        peer.assert_contiguous()


async def test_a_stale_base_version_is_a_conflict(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    version = first.welcome["version"]
    await first.ok("state.patch", base_version=version, changes={"name": "one"})
    await second.next("state.changed", version=version + 1)
    seen = len(second.broadcasts())

    for stale in (version, version - 1, version + 5):
        error = await second.refused(
            "state.patch", "version_conflict", base_version=stale, changes={"name": "two"}
        )
        assert error["current_version"] == version + 1
    await first.drain()
    await second.drain()
    assert len(second.broadcasts()) == seen
    session = await call(read_session, sessions, alice, session_id)
    assert session["name"] == "one"
    assert session["version"] == version + 1
    # Still usable.
    await second.ok("state.patch", base_version=version + 1, changes={"name": "two"})


@pytest.mark.parametrize(
    "fields",
    [
        {"changes": {"owner_id": "8d0c4f3e-5a53-4a4b-9d38-2f4f8f0e8a11"}},
        {"changes": {"version": 9}},
        {"changes": {"seq": 9}},
        {"changes": {"tenant_id": "x"}},
        {"changes": {"name": 5}},
        {"changes": {"name": None}},
        {"changes": {"workspace_path": "relative/path"}},
        {"changes": {"workspace_path": "/a/../b"}},
        {"changes": {"active_files": "/a.py"}},
        {"changes": {"active_files": [1, 2]}},
        {"changes": {"editor_state": []}},
        {"changes": {"terminal_state": "x"}},
        {"changes": {"name": "ok", "nonsense": 1}},
        {"changes": [1]},
        {"changes": "name"},
        {"changes": None},
        {"changes": {}},
        {"base_version": "1"},
        {"base_version": 1.5},
    ],
)
async def test_invalid_patches_change_nothing(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    await second.drain(quiet=0.1)
    heard = len(first.heard()), len(second.heard())
    before = await call(read_session, sessions, alice, session_id)
    message = {"base_version": before["version"], "changes": {"name": "fine"}, **fields}
    error = await first.refused("state.patch", "invalid", **message)
    # The field at fault, as in a REST problem's errors[].attr.
    wrong = next(iter(fields))
    if wrong == "changes" and isinstance(fields["changes"], dict) and fields["changes"]:
        keys = list(fields["changes"])
        culprit = keys[0] if len(keys) == 1 else next(k for k in keys if k != "name")
        assert error["attr"] == f"changes.{culprit}", error
    else:
        assert error["attr"] == wrong, error
    await first.drain()
    await second.drain()
    assert (len(first.heard()), len(second.heard())) == heard
    after = await call(read_session, sessions, alice, session_id)
    assert after["version"] == before["version"]
    assert after["name"] == before["name"]
    assert after["seq"] == before["seq"]
    await first.ping()


@pytest.mark.parametrize("via", ["wsgi", "asgi"])
async def test_rest_writes_reach_the_sockets(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
    via: str,
) -> None:
    # "asgi": through the application daphne serves, whose API lane runs the view in a pool
    # thread: its broadcast must still reach the in-memory layer on this event loop.
    if via == "asgi":
        sessions = SessionApi(app_client())
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    version = first.welcome["version"]
    response = await call(
        sessions.patch, session_url(session_id), {"name": "from rest"}, alice.access
    )
    assert response.status_code == 200, response.content
    response = await call(sessions.publish, bob.access, session_id, "build.done", {"ok": True})
    assert response.status_code == 202, response.content
    seq = response.json()["seq"]
    for peer in (first, second):
        changed = await peer.next("state.changed", version=version + 1)
        assert changed["changes"] == {"name": "from rest"}
        assert changed["origin"] == ""
        event = await peer.next("event", seq=seq)
        assert event["event"] == "build.done"
        assert event["data"] == {"ok": True}
        assert changed["seq"] == seq - 1
        peer.assert_contiguous()


@pytest.mark.parametrize("data", [{"step": 3, "of": 7}, [1, "two", None], "text", 12.5, None])
async def test_event_publish(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    data: Any,
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    ack = await second.ok("event.publish", event="agent.progress", data=data)
    assert type(ack["seq"]) is int
    for peer in (first, second):
        event = await peer.next("event", seq=ack["seq"])
        assert event["event"] == "agent.progress"
        assert event["data"] == data
        assert event["origin"] == second.connection_id
        peer.assert_contiguous()
    logged = {e["seq"]: e for e in await call(all_events, sessions, alice, session_id)}
    assert logged[ack["seq"]]["event"] == "agent.progress"
    assert logged[ack["seq"]]["data"] == data


@pytest.mark.parametrize(
    "fields",
    [
        {"event": "state.changed"},
        {"event": "state.custom"},
        {"event": "presence.join"},
        {"event": "presence.anything"},
        {"event": "lock.changed"},
        {"event": "lock.stolen"},
        {"event": ""},
        {"event": 5},
        {"event": None},
        {"event": ["a"]},
    ],
)
async def test_reserved_and_bad_event_names(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    await second.drain(quiet=0.1)
    before = await call(read_session, sessions, alice, session_id)
    error = await first.refused("event.publish", "invalid", **{"data": {}, **fields})
    assert error["attr"] == "event", error
    error = await first.refused("event.publish", "invalid", data={})  # no event at all
    assert error["attr"] == "event", error
    await second.drain()
    assert second.heard() == []
    assert (await call(read_session, sessions, alice, session_id))["seq"] == before["seq"]
    await first.ping()


async def test_seq_is_one_sequence_for_every_kind_of_event(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    version = first.welcome["version"]
    ack = await first.ok("state.patch", base_version=version, changes={"name": "a"})
    await second.ok("event.publish", event="build.started", data={"job": 1})
    await first.ok("lock.acquire", path="/home/alice/project/main.py", ttl_s=30)
    response = await call(sessions.patch, session_url(session_id), {"active_files": []}, bob.access)
    assert response.status_code == 200, response.content
    third = await sockets.join(session_id, alice.access, "alice-2")
    await call(sessions.publish, alice.access, session_id, "build.done", None)
    await first.ok("lock.release", path="/home/alice/project/main.py")
    await third.close()
    last = await second.ok("event.publish", event="the.end", data=None)

    for peer in (first, second):
        await peer.wait_seq(last["seq"])
        await peer.drain()
        peer.assert_contiguous()
    # Both saw the same events under the same numbers.
    mine, theirs = first.by_seq(), second.by_seq()
    common = sorted(set(mine) & set(theirs))
    assert common == list(range(ack["seq"], last["seq"] + 1))
    for seq in common:
        assert state_fields(mine[seq]) == state_fields(theirs[seq])
    kinds = [mine[seq]["type"] for seq in common]
    assert kinds == [
        "state.changed",
        "event",
        "lock.changed",
        "state.changed",
        "presence.join",
        "event",
        "lock.changed",
        "presence.leave",
        "event",
    ]
    session = await call(read_session, sessions, alice, session_id)
    assert session["seq"] == last["seq"]
    assert [e["seq"] for e in await call(all_events, sessions, alice, session_id)][-9:] == common


async def test_concurrent_writers_get_distinct_consecutive_seqs(
    sockets: Sockets,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    any_layer: str,
) -> None:
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)
    count = 15
    ids: dict[CommPeer, list[str]] = {first: [], second: []}
    for index in range(count):
        for peer in (first, second):
            request_id = peer.new_id()
            ids[peer].append(request_id)
            await peer.send(
                {"type": "event.publish", "id": request_id, "event": "tick", "data": index}
            )
    acks = [await peer.reply(rid, timeout=10) for peer, rids in ids.items() for rid in rids]
    assert all(ack["type"] == "ack" for ack in acks), acks
    seqs = sorted(ack["seq"] for ack in acks)
    assert seqs == list(range(seqs[0], seqs[0] + 2 * count))
    for peer in (first, second):
        await peer.wait_seq(seqs[-1], timeout=10)
        await peer.drain()
        peer.assert_contiguous()
        ticks = [m for m in peer.broadcasts("event") if m["event"] == "tick"]
        assert [m["seq"] for m in ticks] == seqs
    # Each connection's own events reach it in the order it sent them.
    for peer in (first, second):
        data = [m["data"] for m in first.broadcasts("event") if m["origin"] == peer.connection_id]
        assert data == list(range(count))


async def test_sessions_do_not_share_events(
    sockets: Sockets, sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    other = (await call(sessions.create, alice.access, name="other", workspace_path="/x")).json()
    here = await sockets.join(alice_session["id"], alice.access, "here")
    there = await sockets.join(other["id"], alice.access, "there")
    await here.ok("event.publish", event="only.here", data=1)
    await here.ok("state.patch", base_version=here.welcome["version"], changes={"name": "h"})
    await asyncio.sleep(0.2)
    await there.drain()
    assert there.heard() == []


async def test_socket_writes_take_turns_in_the_storage_pool(
    sockets: Sockets,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The consumers' service calls run in the process's storage pool holding a storage turn
    (fdb_backend/pool.py: one turn with the embedded engine): racing publishers never compute
    two at once (a commit waiting for the disk gives its turn back, so only the part before
    the call is counted), and every event still gets its own seq."""
    import threading
    import time

    from realtime import consumers

    lock = threading.Lock()
    running = [0]
    most = [0]
    publish = consumers.session_event_publish

    def counted(**kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.005)  # long enough for the other publishers to be waiting
        finally:
            with lock:
                running[0] -= 1
        return publish(**kwargs)

    monkeypatch.setattr(consumers, "session_event_publish", counted)
    session_id = alice_session["id"]
    first, second = await pair(sockets, session_id, alice, bob)

    async def publish_five(peer: CommPeer) -> list[int]:
        return [
            (await peer.ok("event.publish", event="note", data={"n": n}))["seq"] for n in range(5)
        ]

    seqs = await asyncio.gather(publish_five(first), publish_five(second))
    got = sorted(seqs[0] + seqs[1])
    assert got == list(range(got[0], got[0] + 10))  # after the presence events' seqs
    assert most[0] == 1


async def test_a_service_refusal_names_the_field_inside_changes(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    """The session service's own checks answer as the message's do: the field in ``attr``."""
    settings.CODITECT_SESSION_STATE_MAX_BYTES = 100
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    error = await peer.refused(
        "state.patch",
        "state_too_large",
        base_version=peer.welcome["version"],
        changes={"editor_state": {"big": "x" * 200}},
    )
    assert error["attr"] == "changes.editor_state", error
    await peer.ping()

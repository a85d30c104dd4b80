"""What PATCH and POST events send to the channel layer group of the session, after commit."""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from core.loops import awaited
from tests.accounts.helpers import Persona, problem
from tests.workspaces.helpers import (
    SessionApi,
    all_events,
    create_session,
    read_session,
    receive_all,
    session_url,
)


@pytest.fixture
def layer(settings) -> Any:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layer = get_channel_layer()
    assert channel_layer is not None
    return channel_layer


def listen(layer: Any, session_id: str) -> str:
    """A new channel in the group of the session; returns the channel's name."""
    group_name = importlib.import_module("workspaces.broadcast").group_name
    channel: str = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name(uuid.UUID(session_id)), channel)
    return channel


def sent_events(layer: Any, channel: str) -> list[dict[str, Any]]:
    """The events sent, as the log holds them, read back from the wire text each message
    carries (the only form the channel message has: encoded once for every socket)."""
    messages = receive_all(layer, channel)
    events = []
    for message in messages:
        assert message["type"] == "session.event", message
        # committed_at: when the commit was done, for the broadcast lag metric (issue 17).
        assert set(message) == {"type", "session", "seq", "text", "committed_at"}, message
        assert isinstance(message["committed_at"], float)
        wire = json.loads(message["text"])
        assert wire["seq"] == message["seq"]
        if wire["type"] == "event":
            data = wire["data"]
        else:  # a platform event: its data are the message's own fields
            data = {k: v for k, v in wire.items() if k not in ("type", "seq", "origin")}
        name = wire["event"] if wire["type"] == "event" else wire["type"]
        events.append({"seq": wire["seq"], "event": name, "data": data, "origin": wire["origin"]})
    return events


def test_patch_and_events_are_broadcast_in_order(
    sessions: SessionApi, alice: Persona, bob: Persona, layer: Any
) -> None:
    session_id = create_session(sessions, alice, name="live")["id"]
    channel = listen(layer, session_id)

    url = session_url(session_id)
    assert sessions.patch(url, {"name": "one"}, alice.access).status_code == 200
    assert sessions.publish(bob.access, session_id, "build.started", {"job": 7}).status_code == 202
    changes = {"editor_state": {"line": 9}, "active_files": ["/x"]}
    assert sessions.patch(url, changes, bob.access, if_match=2).status_code == 200
    assert sessions.publish(alice.access, session_id, "build.done", [1, "ok"]).status_code == 202

    events = sent_events(layer, channel)
    assert [(e["seq"], e["event"]) for e in events] == [
        (1, "state.changed"),
        (2, "build.started"),
        (3, "state.changed"),
        (4, "build.done"),
    ]
    assert events[0]["data"]["version"] == 2
    assert events[0]["data"]["changes"] == {"name": "one"}
    assert events[1]["data"] == {"job": 7}
    assert events[2]["data"]["version"] == 3
    assert events[2]["data"]["changes"] == changes
    assert events[3]["data"] == [1, "ok"]

    # What was broadcast is what the log replays.
    logged = all_events(sessions, alice, session_id)
    assert [(e["seq"], e["event"], e["data"]) for e in logged] == [
        (e["seq"], e["event"], e["data"]) for e in events
    ]


def test_refused_writes_broadcast_nothing(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, layer: Any, settings
) -> None:
    session_id = create_session(sessions, alice)["id"]
    channel = listen(layer, session_id)
    url = session_url(session_id)
    problem(sessions.patch(url, {"name": "stale"}, alice.access, if_match=3), 412)
    problem(sessions.patch(url, {"name": 5}, alice.access), 400)
    problem(sessions.patch(url, {}, alice.access), 400)
    problem(sessions.patch(url, {"name": "theirs"}, charlie.access), 404)
    problem(sessions.publish(alice.access, session_id, "bad name!", {}), 400)
    problem(sessions.publish(charlie.access, session_id, "intrusion", {}), 404)
    settings.CODITECT_SESSION_STATE_MAX_BYTES = 2000
    problem(sessions.patch(url, {"editor_state": {"t": "x" * 3000}}, bob.access), 413)
    assert sent_events(layer, channel) == []
    assert read_session(sessions, alice, session_id)["seq"] == 0


def test_each_session_has_its_own_group(
    sessions: SessionApi, alice: Persona, charlie: Persona, layer: Any
) -> None:
    mine = create_session(sessions, alice)["id"]
    other = create_session(sessions, alice)["id"]
    charlies = create_session(sessions, charlie)["id"]
    mine_channel, other_channel, charlie_channel = (
        listen(layer, mine),
        listen(layer, other),
        listen(layer, charlies),
    )
    assert sessions.publish(alice.access, mine, "a", {}).status_code == 202
    assert sessions.publish(alice.access, mine, "b", {}).status_code == 202
    assert sessions.publish(alice.access, other, "c", {}).status_code == 202
    assert sessions.publish(charlie.access, charlies, "d", {}).status_code == 202
    assert [(e["seq"], e["event"]) for e in sent_events(layer, mine_channel)] == [
        (1, "a"),
        (2, "b"),
    ]
    assert [(e["seq"], e["event"]) for e in sent_events(layer, other_channel)] == [(1, "c")]
    assert [(e["seq"], e["event"]) for e in sent_events(layer, charlie_channel)] == [(1, "d")]


def test_the_broadcast_follows_the_commit(sessions: SessionApi, alice: Persona, layer: Any) -> None:
    """By the time an event reaches the group, a reader sees it in the log and the state."""
    session_id = create_session(sessions, alice)["id"]
    channel = listen(layer, session_id)
    assert sessions.patch(session_url(session_id), {"name": "n"}, alice.access).status_code == 200
    (event,) = sent_events(layer, channel)
    assert event["seq"] == 1
    session = read_session(sessions, alice, session_id)
    assert session["seq"] == 1
    assert session["name"] == "n"
    assert [e["seq"] for e in all_events(sessions, alice, session_id)] == [1]


async def test_a_send_from_the_loops_own_thread_is_refused_not_a_deadlock() -> None:
    # The loop would wait for the thread that waits for it, until the timeout.
    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError):
        awaited(nothing, 5)()


def test_a_send_from_a_thread_the_loop_handed_work_to_runs_on_that_loop() -> None:
    # The in-memory layer's queues belong to the loop that serves the sockets.
    async def main() -> None:
        here = asyncio.get_running_loop()

        async def where() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        ran_on = await sync_to_async(awaited(where, 5), thread_sensitive=False)()
        assert ran_on is here

    asyncio.run(main())

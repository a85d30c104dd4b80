"""Roles on the socket: a viewer joins and reads but every write message is ``forbidden``, and
a role change applies to sockets already open, at their very next write (issue 16)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.accounts.helpers import TENANT, Persona, invite_and_register
from tests.realtime.helpers import CommPeer, Sockets, call
from tests.workspaces.helpers import SessionApi

PATH = "/home/alice/project/main.py"
WRITES: list[tuple[str, dict[str, Any]]] = [
    ("state.patch", {"base_version": 1, "changes": {"name": "mine now"}}),
    ("event.publish", {"event": "build", "data": {"ok": True}}),
    ("lock.acquire", {"path": PATH, "ttl_s": 30}),
    ("lock.renew", {"path": PATH, "ttl_s": 30}),
    ("lock.release", {"path": PATH}),
]


def set_role(api: SessionApi, manager: Persona, member: Persona, role: str) -> None:
    response = api.patch(TENANT + f"members/{member.user_id}/", {"role": role}, manager.access)
    assert response.status_code == 200, response.content


async def version_of(api: SessionApi, persona: Persona, session_id: str) -> int:
    response = await call(api.get, f"/api/v5/sessions/{session_id}", persona.access)
    return int(response.json()["version"])


async def test_viewer_joins_and_reads_but_every_write_is_forbidden(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    alice_session: dict[str, Any],
) -> None:
    vic = await call(invite_and_register, sessions, alice, "Vic", "vic@example.com", "viewer")
    sid = alice_session["id"]
    watcher = await sockets.join(sid, alice.access, "alice")
    viewer = await sockets.join(sid, vic.access, "vic")
    assert viewer.welcome["session"]["id"] == sid
    await watcher.next("presence.join", connection_id=viewer.connection_id)
    for kind, fields in WRITES:
        reply = await viewer.refused(kind, "forbidden", **fields)
        assert "viewer" in reply["detail"].lower(), reply
    await viewer.ping()  # still open: a refusal is an error reply, not a close
    # What others write still reaches the viewer.
    version = alice_session["version"]
    await watcher.ok("state.patch", base_version=version, changes={"name": "by alice"})
    changed = await viewer.next("state.changed")
    assert changed["changes"] == {"name": "by alice"}
    await watcher.drain()
    from_viewer = [m for m in watcher.heard() if m.get("origin") == viewer.connection_id]
    assert [m["type"] for m in from_viewer] == ["presence.join"], from_viewer
    assert not watcher.broadcasts("event")
    assert not watcher.broadcasts("lock.changed")
    assert await version_of(sessions, alice, sid) == version + 1


async def test_a_member_demoted_on_an_open_socket_writes_no_more(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    sid = alice_session["id"]
    socket = await sockets.join(sid, bob.access, "bob")
    ack = await socket.ok(
        "state.patch", base_version=alice_session["version"], changes={"name": "bob's"}
    )
    await socket.ok("lock.acquire", path=PATH, ttl_s=30)
    await call(set_role, sessions, alice, bob, "viewer")
    for kind, fields in WRITES:
        await socket.refused(kind, "forbidden", **{**fields, "base_version": ack["version"]})
    await socket.ping()
    assert await version_of(sessions, alice, sid) == ack["version"]
    # Promoted again, the same socket writes again.
    await call(set_role, sessions, alice, bob, "member")
    again = await socket.ok("state.patch", base_version=ack["version"], changes={"name": "back"})
    assert again["version"] == ack["version"] + 1


async def test_demotion_racing_an_open_socket(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    """Bob's socket patches as fast as it gets answers while Alice demotes him. Every patch
    is acked or forbidden; once one is forbidden none is acked again, and every patch sent
    after the demotion's answer is forbidden: no window where an open socket still writes
    with its old role."""
    sid = alice_session["id"]
    socket: CommPeer = await sockets.join(sid, bob.access, "bob")
    version = alice_session["version"]
    demoted = asyncio.Event()
    outcomes: list[tuple[bool, str]] = []  # (sent after the demotion answered, ack/error)

    async def demote() -> None:
        await asyncio.sleep(0.05)
        await call(set_role, sessions, alice, bob, "viewer")
        demoted.set()

    async def patch_until_refused_after_demotion() -> None:
        nonlocal version
        after = 0
        n = 0
        while after < 5:
            n += 1
            sent_after = demoted.is_set()
            reply = await socket.request(
                "state.patch", base_version=version, changes={"name": f"patch {n}"}
            )
            if reply["type"] == "ack":
                version = reply["version"]
            else:
                assert reply["code"] == "forbidden", reply
            outcomes.append((sent_after, reply["type"]))
            after += sent_after

    await asyncio.gather(demote(), patch_until_refused_after_demotion())
    kinds = [kind for _, kind in outcomes]
    assert kinds[0] == "ack", outcomes
    first_refused = kinds.index("error")
    assert set(kinds[first_refused:]) == {"error"}, outcomes
    assert all(kind == "error" for sent_after, kind in outcomes if sent_after), outcomes
    assert await version_of(sessions, alice, sid) == version

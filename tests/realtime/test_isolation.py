"""Tenants: Bob (tenant A) works in Alice's session; Charlie (tenant B) sees nothing of it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.accounts.helpers import Persona
from tests.realtime.helpers import PROTOCOL, Sockets, bearer, call, ws_path
from tests.workspaces.helpers import SessionApi, create_session, read_session


@pytest.mark.parametrize("via", ["subprotocol", "message"])
async def test_charlie_cannot_join_alices_session(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    charlie: Persona,
    alice_session: dict[str, Any],
    via: str,
) -> None:
    watcher = await sockets.join(alice_session["id"], alice.access, "alice")
    await watcher.drain(quiet=0.1)
    before = await call(read_session, sessions, alice, alice_session["id"])
    missing = str(uuid.uuid4())
    codes = []
    for session_id in (alice_session["id"], missing):
        if via == "subprotocol":
            codes.append(await sockets.refused(ws_path(session_id), bearer(charlie.access)))
        else:
            first = {"type": "auth", "token": charlie.access}
            codes.append(await sockets.refused(ws_path(session_id), [PROTOCOL], first=first))
    # Not "forbidden": exactly what a session that does not exist answers.
    assert codes == [4404, 4404]
    await watcher.drain()
    assert watcher.heard() == []
    after = await call(read_session, sessions, alice, alice_session["id"])
    assert after["seq"] == before["seq"]


async def test_bob_joins_patches_publishes_and_locks(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    owner = await sockets.join(alice_session["id"], alice.access, "alice")
    member = await sockets.join(alice_session["id"], bob.access, "bob")
    assert {p["user_id"] for p in member.welcome["presence"]} == {alice.user_id, bob.user_id}
    patched = await member.ok(
        "state.patch", base_version=member.welcome["version"], changes={"name": "Bob's edit"}
    )
    published = await member.ok("event.publish", event="build.started", data={"by": "bob"})
    locked = await member.ok("lock.acquire", path="/home/alice/project/main.py", ttl_s=30)
    assert locked["granted"] is True
    changed = await owner.next("state.changed", seq=patched["seq"])
    assert changed["origin"] == member.connection_id
    event = await owner.next("event", seq=published["seq"])
    assert event["data"] == {"by": "bob"}
    lock = await owner.next("lock.changed", path="/home/alice/project/main.py")
    assert lock["holder"] == {"connection_id": member.connection_id, "user_id": bob.user_id}
    session = await call(read_session, sessions, alice, alice_session["id"])
    assert session["name"] == "Bob's edit"
    owner.assert_contiguous()


async def test_tenant_b_sockets_never_hear_tenant_a(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    alice_session: dict[str, Any],
) -> None:
    charlies = await call(create_session, sessions, charlie, name="Globex", workspace_path="/g")
    eavesdropper = await sockets.join(charlies["id"], charlie.access, "charlie")
    owner = await sockets.join(alice_session["id"], alice.access, "alice")
    member = await sockets.join(alice_session["id"], bob.access, "bob")
    await owner.ok("state.patch", base_version=owner.welcome["version"], changes={"name": "x"})
    await owner.ok("event.publish", event="secret", data={"plan": "world domination"})
    await member.ok("lock.acquire", path="/home/alice/project/secret.py", ttl_s=30)
    response = await call(sessions.publish, alice.access, alice_session["id"], "rest", {"a": 1})
    assert response.status_code == 202
    await member.close()
    await asyncio.sleep(0.2)
    await eavesdropper.drain()
    assert eavesdropper.heard() == [], eavesdropper.heard()
    # Charlie's own session keeps its own numbering.
    # (The event may reach the socket before or after its ack: the contract orders neither.)
    before = max([eavesdropper.welcome["seq"], *eavesdropper.seqs()])
    ack = await eavesdropper.ok("event.publish", event="mine", data=None)
    assert ack["seq"] == before + 1
    await eavesdropper.next("event", seq=ack["seq"])
    eavesdropper.assert_contiguous()

"""API tokens on the socket (CONTRACT §4, §7): joining, scopes per message, and the end of a
token (revocation, lock, suspension, removal, expiry) closing its sockets within about 1 s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from accounts.services import tenant_resume, tenant_suspend, user_lock
from tests.accounts.helpers import AUTH, TENANT, Api, Persona
from tests.realtime.helpers import PROTOCOL, Sockets, bearer, call, ws_path
from tests.workspaces.helpers import SessionApi

TOKENS = AUTH + "api-tokens"
ALL_SCOPES = ["sessions:read", "sessions:write", "events:publish", "locks"]
# The watch re-checks every open socket's credential every CODITECT_WS_AUTH_CHECK_S (1 s);
# half a second more for a loaded machine.
CLOSED_WITHIN_S = 2.0


def make_token(api: Api, persona: Persona, scopes: list[str], **fields: Any) -> dict[str, Any]:
    response = api.post(TOKENS, {"name": "agent", "scopes": scopes, **fields}, persona.access)
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


async def token_of(api: Api, persona: Persona, scopes: list[str] | None = None) -> dict[str, Any]:
    return await call(make_token, api, persona, ALL_SCOPES if scopes is None else scopes)


async def test_an_api_token_joins_by_subprotocol_or_auth_message(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    token = (await token_of(api, alice, ["sessions:read"]))["token"]
    by_protocol = await sockets.join(alice_session["id"], token, "protocol")
    by_message = await sockets.join(alice_session["id"], token, "message", via="message")
    assert by_protocol.welcome["session"]["id"] == alice_session["id"]
    await by_message.ping()
    await by_protocol.next("presence.join", connection_id=by_message.connection_id)


async def test_joining_needs_sessions_read(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    token = (await token_of(api, alice, ["sessions:write", "events:publish", "locks"]))["token"]
    path = ws_path(alice_session["id"])
    for protocols, first in (
        (bearer(token), None),
        ([PROTOCOL], {"type": "auth", "token": token}),
    ):
        peer, accepted, _ = await sockets.open(path, protocols, "no-read")
        assert accepted
        if first is not None:
            await peer.send(first)
        error = await peer.next("error")
        assert error["code"] == "insufficient_scope", error
        assert await peer.expect_close() == 4403


async def test_each_message_needs_its_scope(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    reader = (await token_of(api, alice, ["sessions:read"]))["token"]
    peer = await sockets.join(alice_session["id"], reader, "reader")
    version = peer.welcome["version"]
    await peer.refused(
        "state.patch", "insufficient_scope", base_version=version, changes={"name": "x"}
    )
    await peer.refused("event.publish", "insufficient_scope", event="build.done", data={})
    await peer.refused("lock.acquire", "insufficient_scope", path="/a.py", ttl_s=30)
    await peer.refused("lock.renew", "insufficient_scope", path="/a.py", ttl_s=30)
    await peer.refused("lock.release", "insufficient_scope", path="/a.py")
    await peer.ok("resume", last_seq=0)
    await peer.ping()  # still open

    writer = (await token_of(api, alice))["token"]
    full = await sockets.join(alice_session["id"], writer, "writer")
    await full.ok("state.patch", base_version=full.welcome["version"], changes={"name": "y"})
    await full.ok("event.publish", event="build.done", data={"ok": True})
    await full.ok("lock.acquire", path="/a.py", ttl_s=30)
    await full.ok("lock.release", path="/a.py")


async def test_only_the_scope_named_is_granted(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    token = (await token_of(api, alice, ["sessions:read", "locks"]))["token"]
    peer = await sockets.join(alice_session["id"], token, "locks")
    await peer.ok("lock.acquire", path="/b.py", ttl_s=30)
    await peer.refused("event.publish", "insufficient_scope", event="build.done", data={})


async def test_another_tenants_session_is_4404(
    sockets: Sockets, api: Api, charlie: Persona, alice_session: dict[str, Any]
) -> None:
    token = (await token_of(api, charlie))["token"]
    assert await sockets.refused(ws_path(alice_session["id"]), bearer(token)) == 4404


async def test_a_revoked_or_unknown_token_cannot_join(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    created = await token_of(api, alice)
    response = await call(api.delete, f"{TOKENS}/{created['id']}", alice.access)
    assert response.status_code == 204, response.content
    path = ws_path(alice_session["id"])
    assert await sockets.refused(path, bearer(created["token"])) == 4401
    forged = created["token"][:-1] + ("x" if created["token"][-1] != "x" else "y")
    assert await sockets.refused(path, bearer(forged)) == 4401


async def test_revoking_a_token_closes_its_sockets(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    doomed_token, spared_token = await token_of(api, alice), await token_of(api, alice)
    doomed = await sockets.join(alice_session["id"], doomed_token["token"], "doomed")
    spared = await sockets.join(alice_session["id"], spared_token["token"], "spared")
    user = await sockets.join(alice_session["id"], alice.access, "user")
    response = await call(api.delete, f"{TOKENS}/{doomed_token['id']}", alice.access)
    assert response.status_code == 204, response.content
    assert await doomed.expect_close(CLOSED_WITHIN_S) == 4401
    await spared.next("presence.leave", connection_id=doomed.connection_id)
    await spared.ping()
    await user.ping()


async def test_a_tenant_admin_revoking_a_members_token_closes_its_sockets(
    sockets: Sockets, api: Api, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    bobs = await token_of(api, bob)
    member = await sockets.join(alice_session["id"], bobs["token"], "bob-agent")
    response = await call(api.delete, f"{TENANT}api-tokens/{bobs['id']}/", alice.access)
    assert response.status_code == 204, response.content
    assert await member.expect_close(CLOSED_WITHIN_S) == 4401


async def test_locking_the_user_closes_their_tokens_sockets(
    sockets: Sockets, api: Api, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    bobs = await token_of(api, bob)
    member = await sockets.join(alice_session["id"], bobs["token"], "bob-agent")
    owner = await sockets.join(alice_session["id"], (await token_of(api, alice))["token"], "a")
    await call(user_lock, tenant_id=bob.tenant_uuid, user_id=bob.user_uuid, reason="abuse")
    assert await member.expect_close(CLOSED_WITHIN_S) == 4403
    await owner.ping()


async def test_removing_the_member_closes_their_tokens_sockets(
    sockets: Sockets, api: Api, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    bobs = await token_of(api, bob)
    member = await sockets.join(alice_session["id"], bobs["token"], "bob-agent")
    response = await call(api.delete, f"{TENANT}members/{bob.user_id}/", alice.access)
    assert response.status_code == 204, response.content
    assert await member.expect_close(CLOSED_WITHIN_S) == 4401


async def test_suspending_the_tenant_closes_its_tokens_sockets(
    sockets: Sockets,
    api: Api,
    alice: Persona,
    charlie: Persona,
    sessions: SessionApi,
    alice_session: dict[str, Any],
) -> None:
    charlies = (await call(sessions.create, charlie.access, name="c", workspace_path="/c")).json()
    agent = await sockets.join(alice_session["id"], (await token_of(api, alice))["token"], "a")
    elsewhere = await sockets.join(charlies["id"], (await token_of(api, charlie))["token"], "c")
    await call(tenant_suspend, tenant_id=alice.tenant_uuid, reason="unpaid")
    try:
        assert await agent.expect_close(CLOSED_WITHIN_S) == 4403
        await elsewhere.ping()
    finally:
        await call(tenant_resume, tenant_id=alice.tenant_uuid)


async def test_an_expiring_token_closes_its_socket_when_it_lapses(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    lapse = datetime.now(UTC) + timedelta(seconds=2)
    created = await call(make_token, api, alice, ["sessions:read"], expires_at=lapse.isoformat())
    peer = await sockets.join(alice_session["id"], created["token"], "lapsing")
    assert await peer.expect_close(2 + CLOSED_WITHIN_S) == 4401
    assert datetime.now(UTC) >= lapse

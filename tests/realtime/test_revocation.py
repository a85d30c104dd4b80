"""Open sockets close when their auth session is revoked, or their workspace session deleted."""

from __future__ import annotations

import asyncio
from typing import Any

from accounts.services import tenant_resume, tenant_suspend, user_lock
from tests.accounts.helpers import AUTH, OTHER_PASSWORD, TENANT, Api, Persona, login_pair
from tests.realtime.helpers import Sockets, bearer, call, ws_path
from tests.workspaces.helpers import SessionApi, session_url

# CODITECT_WS_AUTH_CHECK_S is 1 by default: a revocation shows within about two seconds.
REVOKED_WITHIN_S = 3.5


async def test_logout_closes_that_sessions_sockets_only(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    other = await call(login_pair, api, alice)
    doomed = await sockets.join(alice_session["id"], alice.access, "doomed")
    spared = await sockets.join(alice_session["id"], other["access"], "spared")
    response = await call(api.post, AUTH + "logout", None, alice.access)
    assert response.status_code == 204, response.content
    assert await doomed.expect_close(REVOKED_WITHIN_S) == 4401
    await spared.next("presence.leave", connection_id=doomed.connection_id)
    await spared.ping()


async def test_logout_all_closes_every_socket_of_the_user(
    sockets: Sockets, api: Api, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    other = await call(login_pair, api, alice)
    first = await sockets.join(alice_session["id"], alice.access, "alice-1")
    second = await sockets.join(alice_session["id"], other["access"], "alice-2")
    bystander = await sockets.join(alice_session["id"], bob.access, "bob")
    response = await call(api.post, AUTH + "logout-all", None, other["access"])
    assert response.status_code == 204, response.content
    assert await first.expect_close(REVOKED_WITHIN_S) == 4401
    assert await second.expect_close(REVOKED_WITHIN_S) == 4401
    await bystander.next("presence.leave", connection_id=first.connection_id)
    await bystander.next("presence.leave", connection_id=second.connection_id)
    await bystander.ping()


async def test_password_change_closes_the_other_sessions_sockets(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    other = await call(login_pair, api, alice)
    doomed = await sockets.join(alice_session["id"], alice.access, "doomed")
    changer = await sockets.join(alice_session["id"], other["access"], "changer")
    body = {"current_password": alice.password, "new_password": OTHER_PASSWORD}
    response = await call(api.post, AUTH + "password", body, other["access"])
    assert response.status_code == 204, response.content
    assert await doomed.expect_close(REVOKED_WITHIN_S) == 4401
    await changer.ping()


async def test_revoking_a_device_closes_its_sockets(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    other = await call(login_pair, api, alice)
    doomed = await sockets.join(alice_session["id"], other["access"], "doomed")
    spared = await sockets.join(alice_session["id"], alice.access, "spared")
    device = await call(alice.session_id, api, other["access"])
    response = await call(api.delete, f"{AUTH}sessions/{device}", alice.access)
    assert response.status_code == 204, response.content
    assert await doomed.expect_close(REVOKED_WITHIN_S) == 4401
    await spared.ping()


async def test_locking_the_account_closes_its_sockets(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    owner = await sockets.join(alice_session["id"], alice.access, "alice")
    member = await sockets.join(alice_session["id"], bob.access, "bob")
    await call(user_lock, tenant_id=bob.tenant_uuid, user_id=bob.user_uuid, reason="abuse")
    assert await member.expect_close(REVOKED_WITHIN_S) in (4401, 4403)
    await owner.ping()


async def test_an_expired_access_token_closes_the_socket_unless_renewed(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    settings.CODITECT_ACCESS_TOKEN_TTL_S = 3
    short = await call(login_pair, api, alice)
    lapsing = await sockets.join(alice_session["id"], short["access"], "lapsing")
    renewed = await sockets.join(alice_session["id"], short["access"], "renewed")
    await asyncio.sleep(1.5)
    fresh = await call(login_pair, api, alice)
    await renewed.ok("auth", token=fresh["access"])
    # The first token is past its expiry (3 s, whole seconds) by 4.5 s at the latest.
    assert await lapsing.expect_close(timeout=3 + REVOKED_WITHIN_S) == 4401
    await renewed.ping()
    # And the renewed one goes the same way once its own token lapses.
    assert await renewed.expect_close(timeout=3 + REVOKED_WITHIN_S) == 4401


async def test_removing_a_member_closes_their_sockets(
    sockets: Sockets, api: Api, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    owner = await sockets.join(alice_session["id"], alice.access, "alice")
    member = await sockets.join(alice_session["id"], bob.access, "bob")
    response = await call(api.delete, f"{TENANT}members/{bob.user_id}/", alice.access)
    assert response.status_code == 204, response.content
    assert await member.expect_close(REVOKED_WITHIN_S) == 4401
    await owner.next("presence.leave", connection_id=member.connection_id)
    await owner.ping()


async def test_suspending_the_tenant_closes_its_sockets(
    sockets: Sockets,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    sessions: SessionApi,
    alice_session: dict[str, Any],
) -> None:
    charlies = (await call(sessions.create, charlie.access, name="c", workspace_path="/c")).json()
    first = await sockets.join(alice_session["id"], alice.access, "alice")
    second = await sockets.join(alice_session["id"], bob.access, "bob")
    elsewhere = await sockets.join(charlies["id"], charlie.access, "charlie")
    await call(tenant_suspend, tenant_id=alice.tenant_uuid, reason="unpaid")
    try:
        assert await first.expect_close(REVOKED_WITHIN_S) in (4401, 4403)
        assert await second.expect_close(REVOKED_WITHIN_S) in (4401, 4403)
        await elsewhere.ping()
    finally:
        await call(tenant_resume, tenant_id=alice.tenant_uuid)


async def test_deleting_the_session_closes_its_sockets_4404(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    other = (await call(sessions.create, alice.access, name="o", workspace_path="/o")).json()
    first = await sockets.join(alice_session["id"], alice.access, "alice")
    second = await sockets.join(alice_session["id"], bob.access, "bob")
    unrelated = await sockets.join(other["id"], bob.access, "unrelated")
    response = await call(sessions.delete, session_url(alice_session["id"]), alice.access)
    assert response.status_code == 204, response.content
    assert await first.expect_close() == 4404
    assert await second.expect_close() == 4404
    await unrelated.ping()
    # And it cannot be joined any more.
    assert await sockets.refused(ws_path(alice_session["id"]), bearer(alice.access)) == 4404

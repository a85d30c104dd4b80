"""The Python client's REST side against a real daphne: sign-in, sessions, events, typed errors."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from coditect_client import (
    AuthLost,
    BadRequest,
    Client,
    NotFound,
    ResyncRequired,
    SessionGone,
    TransportError,
    Unauthorized,
    VersionConflict,
)

from tests.accounts.helpers import PASSWORD
from tests.realtime.servers import Http, Servers, base_env, free_port, invite, register

pytestmark = pytest.mark.slow


async def test_login_and_session_crud_with_versions(servers: Servers, store_url: str) -> None:
    (server,) = servers.start_all(("rest", base_env(store_url)))
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    await asyncio.to_thread(invite, http, alice, "Bob", "bob@example.com")

    async with Client(server.base_url) as client:
        user = await client.login("alice@example.com", PASSWORD)
        assert user["id"] == alice.user_id
        assert (await client.me())["email"] == "alice@example.com"

        created = await client.create_session(
            name="agent run", workspace_path="/srv/app", editor_state={"cursor": 1}
        )
        assert created.owner_id == alice.user_id
        assert created.editor_state == {"cursor": 1}
        got = await client.get_session(created.id)
        assert (got.id, got.version, got.name) == (created.id, created.version, "agent run")

        patched = await client.patch_session(
            created.id, if_match=got.version, active_files=["/srv/app/a.py"]
        )
        assert patched.version == got.version + 1
        assert patched.active_files == ["/srv/app/a.py"]
        # A stale If-Match: 412, typed, with the version now.
        with pytest.raises(VersionConflict) as stale:
            await client.patch_session(created.id, if_match=got.version, name="late")
        assert stale.value.status == 412
        assert stale.value.code == "version_conflict"
        assert stale.value.current_version == patched.version
        assert stale.value.request_id
        with pytest.raises(VersionConflict):
            await client.delete_session(created.id, if_match=got.version)
        assert (await client.get_session(created.id)).name == "agent run"

        child = await client.fork_session(created.id, name="attempt 2")
        assert child.parent_session_id == created.id
        assert child.active_files == ["/srv/app/a.py"]
        assert [s.id for s in await client.related_sessions(created.id)] == [child.id]

        # Cursor paging walks every session exactly once, newest activity first.
        more = [
            await client.create_session(name=f"s{i}", workspace_path="/srv/other") for i in range(5)
        ]
        listed = [s.id async for s in client.list_sessions(page_size=2)]
        assert sorted(listed) == sorted([created.id, child.id, *[s.id for s in more]])
        assert listed[0] == more[-1].id
        mine_in_path = [s.id async for s in client.list_sessions(workspace_path="/srv/other")]
        assert sorted(mine_in_path) == sorted(s.id for s in more)

        await client.delete_session(child.id, if_match=child.version)
        with pytest.raises(NotFound) as gone:
            await client.get_session(child.id)
        assert gone.value.status == 404

    # Bob, another member, signs in with his own password; an access token works as given.
    async with Client(server.base_url) as bob:
        await bob.login("bob@example.com", PASSWORD)
        assert (await bob.get_session(created.id)).id == created.id
    async with Client(server.base_url, token=alice.access) as given:
        assert (await given.get_session(created.id)).id == created.id


async def test_typed_errors_and_another_tenant(servers: Servers, store_url: str) -> None:
    (server,) = servers.start_all(("errors", base_env(store_url)))
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    charlie = await asyncio.to_thread(register, http, "Charlie", "charlie@example.org", "Globex")

    async with Client(server.base_url, token=alice.access) as client:
        session = await client.create_session(name="private", workspace_path="/srv/acme")
        with pytest.raises(BadRequest) as invalid:
            await client.create_session(name="x", workspace_path="relative/path")
        assert invalid.value.status == 400
        assert [e["attr"] for e in invalid.value.errors] == ["workspace_path"]
        with pytest.raises(NotFound):
            await client.get_session(str(uuid.uuid4()))

    # Another tenant's session is a 404 everywhere, never a 403, and its socket a 4404.
    async with Client(server.base_url, token=charlie.access) as other:
        with pytest.raises(NotFound) as hidden:
            await other.get_session(session.id)
        assert hidden.value.code == "not_found"
        with pytest.raises(NotFound):
            await other.patch_session(session.id, name="mine now")
        with pytest.raises(NotFound):
            await other.delete_session(session.id)
        with pytest.raises(NotFound):
            await other.publish_event(session.id, "progress", {"step": 1})
        with pytest.raises(NotFound):
            await other.events_page(session.id)
        with pytest.raises(SessionGone) as refused:
            await other.connect(session.id)
        assert refused.value.close_code == 4404
        assert [s.id async for s in other.list_sessions()] == []

    async with Client(server.base_url) as nobody:
        with pytest.raises(Unauthorized) as wrong:
            await nobody.login("alice@example.com", "not the password at all")
        assert (wrong.value.status, wrong.value.code) == (401, "invalid_credentials")
        with pytest.raises(Unauthorized):
            await nobody.get_session(session.id)  # no token at all
    async with Client(server.base_url, token="garbage") as forged:
        with pytest.raises(Unauthorized) as bad:
            await forged.get_session(session.id)
        assert bad.value.status == 401
        # The socket closes with 4401; with no refresh token the client gives up at once.
        with pytest.raises(AuthLost) as lost:
            await forged.connect(session.id)
        assert lost.value.close_code == 4401
    # Nothing listens: a transport error, not a problem.
    async with Client(f"http://127.0.0.1:{free_port()}") as down:
        with pytest.raises(TransportError):
            await down.login("alice@example.com", PASSWORD)


async def test_an_expired_access_token_is_refreshed_once_and_retried(
    servers: Servers, store_url: str
) -> None:
    # Three seconds: expiries are whole seconds, so a token lives between two and three; with
    # one second the refreshed token could expire before the retry reached the server.
    env = base_env(store_url, CODITECT_ACCESS_TOKEN_TTL_S="3", CODITECT_JWT_LEEWAY_S="0")
    (server,) = servers.start_all(("expiry", env))
    http = Http(server)
    await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    async with Client(server.base_url) as signed_in:
        await signed_in.login("alice@example.com", PASSWORD)
        pair = (signed_in._access, signed_in._refresh)
    assert pair[0] and pair[1]
    # Handed a pair without its lifetime, the client cannot refresh ahead of time: the
    # server's 401 token_expired makes it refresh and retry. (A real server's clock: the
    # token lives three seconds at most, so this test waits it out.)
    async with Client(server.base_url, token=pair[0], refresh_token=pair[1]) as client:
        await asyncio.sleep(3.1)
        session = await client.create_session(name="after expiry", workspace_path="/srv/app")
        assert client._access != pair[0]
        assert (await client.get_session(session.id)).name == "after expiry"
    # Without a refresh token the expiry is the caller's to handle.
    async with Client(server.base_url, token=pair[0]) as stuck:
        with pytest.raises(Unauthorized) as expired:
            await stuck.get_session(session.id)
        assert expired.value.code == "token_expired"


async def test_event_log_pages_and_a_410_resync(servers: Servers, store_url: str) -> None:
    (server,) = servers.start_all(("events", base_env(store_url, CODITECT_EVENT_LOG_MAX="8")))
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    async with Client(server.base_url, token=alice.access) as client:
        session = await client.create_session(name="log", workspace_path="/srv/app")
        seqs = [await client.publish_event(session.id, "progress", {"step": i}) for i in range(6)]
        assert seqs == list(range(seqs[0], seqs[0] + 6))

        page, latest = await client.events_page(session.id, after_seq=seqs[0], limit=2)
        assert [e.seq for e in page] == seqs[1:3]
        assert latest == seqs[-1]
        walked = [e async for e in client.events(session.id, after_seq=seqs[0] - 1, page_size=4)]
        assert [e.seq for e in walked] == seqs
        assert [(e.type, e.event, e.data) for e in walked] == [
            ("event", "progress", {"step": i}) for i in range(6)
        ]
        assert all(e.origin == "" for e in walked)  # published over REST

        # Past the log's reach (8 events kept): 410, typed.
        for i in range(6, 12):
            await client.publish_event(session.id, "progress", {"step": i})
        with pytest.raises(ResyncRequired) as resync:
            await client.events_page(session.id, after_seq=0)
        assert (resync.value.status, resync.value.code) == (410, "resync_required")
        with pytest.raises(ResyncRequired):
            [e async for e in client.events(session.id)]
        kept = [e async for e in client.events(session.id, after_seq=seqs[-1] + 1)]
        assert [e.data["step"] for e in kept] == list(range(7, 12))

"""Joining a session: every way to authenticate, the welcome, presence, origins, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from channels.testing import WebsocketCommunicator

from coditect.asgi import application
from tests.accounts.helpers import AUTH, Api, Persona, login_pair
from tests.realtime.helpers import PROTOCOL, CommPeer, Sockets, bearer, call, rfc3339, ws_path
from tests.workspaces.helpers import SessionApi, assert_session, read_session

# What the welcome's session must share with the REST representation read just before.
STABLE_FIELDS = (
    "id",
    "tenant_id",
    "owner_id",
    "name",
    "workspace_path",
    "active_files",
    "editor_state",
    "terminal_state",
    "parent_session_id",
    "related_session_ids",
    "created_at",
    "version",
)


def presence_of(welcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = welcome["presence"]
    assert isinstance(entries, list), welcome
    by_connection = {entry["connection_id"]: entry for entry in entries}
    assert len(by_connection) == len(entries), entries
    return by_connection


def assert_presence_entry(entry: dict[str, Any], persona: Persona) -> None:
    assert set(entry) >= {"connection_id", "user_id", "display_name", "connected_at"}, entry
    assert entry["user_id"] == persona.user_id
    assert entry["display_name"] == persona.name
    assert rfc3339(entry["connected_at"]) <= datetime.now(UTC) + timedelta(seconds=5)


@pytest.mark.parametrize("via", ["subprotocol", "message"])
async def test_welcome(
    sockets: Sockets, sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], via: str
) -> None:
    before = await call(read_session, sessions, alice, alice_session["id"])
    peer = await sockets.join(alice_session["id"], alice.access, "alice", via=via)
    welcome = peer.welcome
    assert set(welcome) >= {"connection_id", "session", "version", "seq", "presence", "locks"}
    assert isinstance(welcome["connection_id"], str)
    assert welcome["connection_id"]
    session = assert_session(welcome["session"])
    for name in STABLE_FIELDS:
        assert session[name] == before[name], name
    assert type(welcome["version"]) is int
    assert welcome["version"] == session["version"] == before["version"]
    assert type(welcome["seq"]) is int
    assert welcome["seq"] >= before["seq"]
    presence = presence_of(welcome)
    assert list(presence) == [peer.connection_id]
    assert_presence_entry(presence[peer.connection_id], alice)
    assert welcome["locks"] == []
    # Usable at once.
    await peer.ping()
    peer.assert_contiguous()


async def test_presence_join_and_leave(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    first = await sockets.join(session_id, alice.access, "alice")
    second = await sockets.join(session_id, bob.access, "bob")
    assert second.connection_id != first.connection_id

    join = await first.next("presence.join", connection_id=second.connection_id)
    assert join["user_id"] == bob.user_id
    assert join["display_name"] == "Bob"
    assert type(join["seq"]) is int

    presence = presence_of(second.welcome)
    assert set(presence) == {first.connection_id, second.connection_id}
    assert_presence_entry(presence[first.connection_id], alice)
    assert_presence_entry(presence[second.connection_id], bob)
    # The joiner's welcome is from just before or just after its own join.
    assert second.welcome["seq"] in (join["seq"] - 1, join["seq"])

    # The same user twice is two entries.
    third = await sockets.join(session_id, alice.access, "alice-2")
    assert set(presence_of(third.welcome)) == {
        first.connection_id,
        second.connection_id,
        third.connection_id,
    }
    await first.next("presence.join", connection_id=third.connection_id)
    await second.next("presence.join", connection_id=third.connection_id)

    await second.close()
    leave = await first.next("presence.leave", connection_id=second.connection_id)
    assert leave["user_id"] == bob.user_id
    assert leave["display_name"] == "Bob"
    assert leave["seq"] > join["seq"]
    await third.next("presence.leave", connection_id=second.connection_id)

    fourth = await sockets.join(session_id, bob.access, "bob-2")
    assert set(presence_of(fourth.welcome)) == {
        first.connection_id,
        third.connection_id,
        fourth.connection_id,
    }
    await first.next("presence.join", connection_id=fourth.connection_id)
    for peer in (first, third):
        await peer.drain()
        peer.assert_contiguous()


async def test_auth_must_come_in_time(sockets: Sockets, alice_session: dict[str, Any]) -> None:
    peer, accepted, protocol = await sockets.open(
        ws_path(alice_session["id"]), [PROTOCOL], "silent"
    )
    assert accepted
    assert protocol == PROTOCOL
    assert await peer.expect_close(timeout=3) == 4408
    assert peer.received == []


@pytest.mark.parametrize("parameter", ["token", "access_token"])
@pytest.mark.parametrize("with_bearer", [False, True])
async def test_tokens_in_the_query_string_are_refused(
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
    parameter: str,
    with_bearer: bool,
) -> None:
    protocols = bearer(alice.access) if with_bearer else [PROTOCOL]
    path = ws_path(alice_session["id"], f"{parameter}={alice.access}")
    _, accepted, code = await sockets.open(path, protocols, "query")
    assert not accepted, "a socket with a token in its URL was accepted"
    assert code == 4401


@pytest.mark.parametrize(
    "session_id", ["8d0c4f3e-5a53-4a4b-9d38-2f4f8f0e8a11", "not-a-uuid", "12345", "0" * 40]
)
@pytest.mark.parametrize("via", ["subprotocol", "message"])
async def test_unknown_session(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], session_id: str, via: str
) -> None:
    if via == "subprotocol":
        code = await sockets.refused(ws_path(session_id), bearer(alice.access))
    else:
        first = {"type": "auth", "token": alice.access}
        code = await sockets.refused(ws_path(session_id), [PROTOCOL], first=first)
    assert code == 4404


@pytest.fixture(params=["garbage", "tampered", "refresh_token", "expired", "revoked"])
def bad_token(request: pytest.FixtureRequest, api: Api, alice: Persona) -> Iterator[str]:
    kind = request.param
    if kind == "garbage":
        yield "garbage"
    elif kind == "tampered":
        header, payload, signature = alice.access.split(".")
        flipped = ("B" if signature[5] == "A" else "A").join((signature[:5], signature[6:]))
        yield f"{header}.{payload}.{flipped}"
    elif kind == "refresh_token":
        yield alice.refresh
    elif kind == "expired":
        with time_machine.travel(datetime.now(UTC) - timedelta(hours=2), tick=True):
            old = login_pair(api, alice)["access"]
        yield old
    else:
        pair = login_pair(api, alice)
        assert api.post(AUTH + "logout", token=pair["access"]).status_code == 204
        yield pair["access"]


@pytest.mark.parametrize("via", ["subprotocol", "message"])
async def test_bad_tokens_are_refused(
    sockets: Sockets, alice_session: dict[str, Any], bad_token: str, via: str
) -> None:
    path = ws_path(alice_session["id"])
    if via == "subprotocol":
        code = await sockets.refused(path, bearer(bad_token))
    else:
        code = await sockets.refused(path, [PROTOCOL], first={"type": "auth", "token": bad_token})
    assert code == 4401


@pytest.mark.parametrize("offered", [["bearer"], [], ["coditect.v4", "bearer"]])
async def test_without_the_protocol_is_forbidden(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], offered: list[str]
) -> None:
    protocols = [f"bearer.{alice.access}" if name == "bearer" else name for name in offered]
    assert await sockets.refused(ws_path(alice_session["id"]), protocols) == 4403


async def test_welcome_is_the_first_message_and_only_once(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    assert peer.received[0]["type"] == "welcome"
    await peer.ping()
    await peer.drain()
    assert [m["type"] for m in peer.received].count("welcome") == 1


# --- handshakes of non-browser clients (CONTRACT §4) --------------------------------------


async def open_with(
    sockets: Sockets, path: str, protocols: list[str], headers: list[tuple[bytes, bytes]]
) -> tuple[CommPeer, bool, Any]:
    """A connection attempt with exactly these headers: (peer, accepted, subprotocol or code)."""
    communicator = WebsocketCommunicator(application, path, headers=headers, subprotocols=protocols)
    peer = CommPeer(communicator, "custom")
    sockets.peers.append(peer)
    accepted, detail = await communicator.connect(timeout=5)
    if not accepted:
        peer.close_code = int(detail)
    return peer, accepted, detail


def authorization(token: str, scheme: str = "Bearer") -> tuple[bytes, bytes]:
    return (b"authorization", f"{scheme} {token}".encode())


HOST = (b"host", b"localhost")


@pytest.mark.parametrize("origin", [None, "http://localhost", "http://localhost:8000"])
async def test_the_authorization_header_authenticates_with_or_without_origin(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], origin: str | None
) -> None:
    headers = [HOST, authorization(alice.access)]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    peer, accepted, protocol = await open_with(
        sockets, ws_path(alice_session["id"]), [PROTOCOL], headers
    )
    assert accepted
    assert protocol == PROTOCOL
    peer.welcome = await peer.next("welcome")
    assert peer.welcome["session"]["id"] == alice_session["id"]
    await peer.ping()


async def test_without_origin_the_subprotocol_token_and_auth_message_work_too(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    path = ws_path(alice_session["id"])
    peer, accepted, _ = await open_with(sockets, path, bearer(alice.access), [HOST])
    assert accepted
    await peer.next("welcome")
    later, accepted, _ = await open_with(sockets, path, [PROTOCOL], [HOST])
    assert accepted
    await later.send({"type": "auth", "token": alice.access})
    await later.next("welcome")


async def test_the_authorization_header_of_another_tenant_is_refused(
    sockets: Sockets, charlie: Persona, alice_session: dict[str, Any]
) -> None:
    headers = [HOST, authorization(charlie.access)]
    peer, accepted, _ = await open_with(sockets, ws_path(alice_session["id"]), [PROTOCOL], headers)
    assert accepted
    assert await peer.expect_close() == 4404
    assert peer.received == []


@pytest.mark.parametrize(
    "header",
    [
        "bad-token",  # a token that is no token
        "basic",  # another scheme
        "empty",  # "Bearer" and nothing
        "two-tokens",  # the header and a subprotocol naming different tokens
        "two-headers",  # two Authorization headers
    ],
)
async def test_unusable_authorization_headers_close_4401(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any], header: str
) -> None:
    protocols = [PROTOCOL]
    headers = [HOST]
    if header == "bad-token":
        headers.append(authorization("garbage"))
    elif header == "basic":
        headers.append(authorization("YWxpY2U6c2VjcmV0", scheme="Basic"))
    elif header == "empty":
        headers.append((b"authorization", b"Bearer "))
    elif header == "two-tokens":
        headers.append(authorization(alice.access))
        protocols = bearer(bob.access)
    else:
        headers += [authorization(alice.access), authorization(bob.access)]
    peer, accepted, _ = await open_with(sockets, ws_path(alice_session["id"]), protocols, headers)
    assert accepted
    assert await peer.expect_close() == 4401
    assert peer.received == []


async def test_the_same_token_in_the_header_and_the_subprotocol_is_one_token(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    headers = [HOST, authorization(alice.access)]
    peer, accepted, _ = await open_with(
        sockets, ws_path(alice_session["id"]), bearer(alice.access), headers
    )
    assert accepted
    await peer.next("welcome")


async def test_the_authorization_header_still_needs_the_protocol(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    headers = [HOST, authorization(alice.access)]
    peer, accepted, _ = await open_with(sockets, ws_path(alice_session["id"]), [], headers)
    assert accepted
    assert await peer.expect_close() == 4403


async def test_a_token_in_the_query_string_is_refused_with_the_header_too(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    path = ws_path(alice_session["id"], f"token={alice.access}")
    _, accepted, code = await open_with(
        sockets, path, [PROTOCOL], [HOST, authorization(alice.access)]
    )
    assert not accepted
    assert code == 4401


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://evil.example:80",
        "null",  # sandboxed frames, file: pages
        "http://[::1",  # unparseable
        "https://ide.example.com:8443",  # an allowed CORS origin on another port
        "http://ide.example.com",  # and with another scheme
    ],
)
async def test_a_foreign_origin_is_refused_at_the_handshake(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings, origin: str
) -> None:
    settings.CODITECT_CORS_ORIGINS = ["https://ide.example.com"]
    headers = [HOST, (b"origin", origin.encode()), authorization(alice.access)]
    peer, accepted, _ = await open_with(
        sockets, ws_path(alice_session["id"]), bearer(alice.access), headers
    )
    assert not accepted, f"a socket from {origin} was accepted"
    assert peer.received == []


async def test_two_origin_headers_are_refused(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    headers = [HOST, (b"origin", b"http://localhost"), (b"origin", b"https://evil.example")]
    _, accepted, _ = await open_with(
        sockets, ws_path(alice_session["id"]), bearer(alice.access), headers
    )
    assert not accepted


async def test_an_origin_of_coditect_cors_origins_is_accepted(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    settings.CODITECT_CORS_ORIGINS = ["https://ide.example.com"]
    headers = [HOST, (b"origin", b"https://ide.example.com")]
    peer, accepted, _ = await open_with(
        sockets, ws_path(alice_session["id"]), bearer(alice.access), headers
    )
    assert accepted
    await peer.next("welcome")


async def test_a_wildcard_allowed_host_does_not_let_every_origin_in(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    headers = [HOST, (b"origin", b"https://evil.example")]
    _, accepted, _ = await open_with(
        sockets, ws_path(alice_session["id"]), bearer(alice.access), headers
    )
    assert not accepted

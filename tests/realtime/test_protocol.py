"""ping, re-authentication, malformed input, and the size, rate and idle limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.accounts.helpers import Api, Persona, login_pair
from tests.realtime.helpers import ERROR_CODES, Sockets, call


async def test_ping_pong(sockets: Sockets, alice: Persona, alice_session: dict[str, Any]) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    pong = await peer.ping()
    assert pong["type"] == "pong"
    await peer.send({"type": "ping"})
    bare = await peer.next("pong")
    assert bare.get("id") is None, bare
    await peer.send({"type": "ping", "id": 7})
    assert (await peer.next("pong"))["id"] == 7


async def test_reauthenticate_as_the_same_user(
    sockets: Sockets, api: Api, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.ok("auth", token=alice.access)
    fresh = await call(login_pair, api, alice)
    await peer.ok("auth", token=fresh["access"])
    ack = await peer.ok("state.patch", base_version=peer.welcome["version"], changes={"name": "n"})
    assert ack["version"] == peer.welcome["version"] + 1
    await peer.ping()


@pytest.mark.parametrize("whose", ["bob", "charlie", "garbage", "refresh"])
async def test_reauthenticate_never_switches_users(
    sockets: Sockets,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    alice_session: dict[str, Any],
    whose: str,
) -> None:
    token = {
        "bob": bob.access,
        "charlie": charlie.access,
        "garbage": "garbage",
        "refresh": alice.refresh,
    }[whose]
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    request_id = peer.new_id()
    await peer.send({"type": "auth", "id": request_id, "token": token})
    closed = None
    try:
        reply = await peer.reply(request_id)
    except AssertionError:
        closed = peer.close_code
        if closed is None:
            raise
    if closed is not None:
        assert closed == 4401
    else:
        assert reply["type"] == "error", reply
        assert reply["code"] == "invalid_token", reply
        await peer.ping()
    # Whatever happened, nobody but Alice is on Alice's connection.
    observer = await sockets.join(alice_session["id"], alice.access, "observer")
    users = {p["connection_id"]: p["user_id"] for p in observer.welcome["presence"]}
    if closed is None:
        assert users[peer.connection_id] == alice.user_id
    assert set(users.values()) == {alice.user_id}


FRAMES: list[tuple[str, Any]] = [
    ("text", "{"),
    ("text", "not json at all"),
    ("text", "[1, 2]"),
    ("text", '"ping"'),
    ("text", "42"),
    ("text", "null"),
    ("text", '{"type": "ping"'),
    ("bytes", b"\x00\xff\x10"),
    ("bytes", b'{"type": "ping", "id": "b"}'),
    ("json", {"no_type": 1}),
    ("json", {"type": 5, "id": "t"}),
    ("json", {"type": None, "id": "t"}),
    ("json", {"type": "nope", "id": "u"}),
    ("json", {"type": "welcome", "id": "w"}),
    ("json", {"type": "state.changed", "id": "s"}),
    ("json", {"type": "state.patch", "id": "p", "base_version": "x", "changes": {}}),
    ("json", {"type": "event.publish", "id": "e", "event": "ok", "data": {}, "extra": 1}),
]


@pytest.mark.parametrize(("kind", "frame"), FRAMES)
async def test_malformed_input_gets_an_error_and_the_socket_lives(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], kind: str, frame: Any
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    if kind == "text":
        await peer.send_text(frame)
    elif kind == "bytes":
        await peer.send_bytes(frame)
    else:
        await peer.send(frame)
    if kind == "json" and frame.get("type") == "event.publish":
        # Unknown extra fields may be ignored; if so it is simply published.
        reply = await peer.next(lambda m: m.get("type") in ("ack", "error"), id="e")
        if reply["type"] == "ack":
            await peer.ping()
            return
    else:
        reply = await peer.next("error")
    assert reply["type"] == "error"
    assert reply["code"] in ERROR_CODES, reply
    assert isinstance(reply["detail"], str)
    assert reply["detail"]
    if kind == "json" and "id" in frame:
        assert reply.get("id") == frame["id"], reply
    await peer.ping()
    await peer.drain(quiet=0.1)
    assert peer.heard() == []


async def test_unknown_type_is_unknown_type(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    reply = await peer.refused("file.delete", ERROR_CODES, path="/etc/passwd")
    assert reply["code"] in {"unknown_type", "invalid_message"}, reply


@pytest.mark.parametrize("kind", ["text", "bytes"])
async def test_a_message_too_large_closes_4413(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings, kind: str
) -> None:
    settings.CODITECT_WS_MAX_MESSAGE_BYTES = 2048
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.send({"type": "ping", "id": "small", "pad": "x" * 1500})
    await peer.next("pong", id="small")
    big = json.dumps({"type": "event.publish", "id": "big", "event": "e", "data": "x" * 3000})
    if kind == "text":
        await peer.send_text(big)
    else:
        await peer.send_bytes(big.encode())
    assert await peer.expect_close() == 4413
    assert not [m for m in peer.received if m.get("id") == "big" and m["type"] == "ack"]


async def test_the_default_size_limit_is_one_mebibyte(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> None:
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    head = '{"type": "ping", "id": "fits", "pad": "'
    fits = head + "x" * (1024 * 1024 - len(head) - 2 - 1000) + '"}'
    await peer.send_text(fits)
    await peer.next("pong", id="fits")
    over = head + "x" * (1024 * 1024 - len(head)) + '"}'
    await peer.send_text(over)
    assert await peer.expect_close() == 4413


async def test_too_many_messages_close_4429(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    settings.CODITECT_WS_RATE_PER_S = 5
    settings.CODITECT_WS_RATE_BURST = 10
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    # A burst within the limit is fine.
    for index in range(8):
        await peer.send({"type": "ping", "id": f"ok-{index}"})
    for index in range(8):
        await peer.next("pong", id=f"ok-{index}")
    for index in range(40):
        await peer.send({"type": "ping", "id": f"flood-{index}"})
    assert await peer.expect_close() == 4429
    pongs = [m for m in peer.received if str(m.get("id", "")).startswith("flood-")]
    assert len(pongs) < 40


async def test_an_idle_socket_closes_4408(
    sockets: Sockets, alice: Persona, alice_session: dict[str, Any], settings
) -> None:
    settings.CODITECT_WS_IDLE_TIMEOUT_S = 1
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    # Pings keep it alive well past the timeout...
    for _ in range(6):
        await asyncio.sleep(0.35)
        await peer.ping()
    # ...and silence ends it.
    assert await peer.expect_close(timeout=4) == 4408

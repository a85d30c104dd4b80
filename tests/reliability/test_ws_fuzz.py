"""WebSocket fuzzing (issue 8): whatever a client sends, it gets an ``error`` or one of the
contract's close codes (CONTRACT §4, docs/protocol.md), and the session's other sockets never
notice.

Every test joins two sockets to one workspace session: ``fuzzer`` (Alice), which gets the
malformed frames, binary frames, huge frames, unknown types, wrong field types (hand-written and
Hypothesis-generated) and floods, and ``watcher`` (Bob, a member of Alice's tenant), which
must keep answering pings and receive every event, in order, as if nothing happened. Every
message the server sends must be strict JSON (RFC 8259: no NaN or Infinity), which a browser's
``JSON.parse`` requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from tests.accounts.helpers import Persona
from tests.realtime.helpers import (
    ERROR_CODES,
    PROTOCOL,
    CommPeer,
    Sockets,
    call,
    ws_path,
)
from tests.realtime.servers import (
    Account,
    Http,
    NetPeer,
    Server,
    Servers,
    base_env,
    create_session,
    invite,
    net_open,
    register,
)
from tests.store import shared_store
from tests.workspaces.helpers import SessionApi, all_events

pytestmark = pytest.mark.slow

# Close codes of CONTRACT §4.
CLOSE_CODES = frozenset({4401, 4403, 4404, 4408, 4413, 4429})
# Errors a well-formed but refused message may get (protocol.md, "Messages").
REFUSALS = ERROR_CODES | {
    "not_authenticated",
    "version_conflict",
    "lock_held",
    "lock_not_held",
}
LIMIT = 1024 * 1024  # CODITECT_WS_MAX_MESSAGE_BYTES, default


def assert_strict_json(value: Any, where: str) -> None:
    """No NaN or Infinity anywhere: JSON.parse in a browser refuses them."""
    if isinstance(value, float):
        assert math.isfinite(value), f"{where}: the server sent {value!r}, which is not JSON"
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_strict_json(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_strict_json(item, f"{where}[{index}]")


@dataclass
class Pair:
    fuzzer: CommPeer
    watcher: CommPeer
    session_id: str
    sockets: Sockets

    async def watcher_still_works(self) -> None:
        """The watcher answers a ping and hears an event published after the fuzzing."""
        await self.watcher.ping()
        ack = await self.watcher.ok("event.publish", event="watcher.alive", data={"ok": True})
        event = await self.watcher.next("event", seq=ack["seq"])
        assert event["data"] == {"ok": True}

    def check(self) -> None:
        """Everything came as strict JSON, the watcher heard every event in order, and a
        socket that was closed got one of the contract's close codes."""
        for peer in (self.fuzzer, self.watcher):
            for index, message in enumerate(peer.received):
                assert_strict_json(message, f"{peer.name}[{index}]")
            assert peer.close_code is None or peer.close_code in CLOSE_CODES, peer.close_code
        assert self.watcher.close_code is None
        self.watcher.assert_contiguous()


@pytest.fixture
async def pair(
    sockets: Sockets, alice: Persona, bob: Persona, alice_session: dict[str, Any], settings
) -> AsyncIterator[Pair]:
    # Most tests send far more than 50 messages a second (each frame and a ping); the flood
    # test puts the default limits back.
    settings.CODITECT_WS_RATE_BURST = 100_000
    settings.CODITECT_WS_RATE_PER_S = 100_000
    session_id = alice_session["id"]
    watcher = await sockets.join(session_id, bob.access, "watcher")
    fuzzer = await sockets.join(session_id, alice.access, "fuzzer")
    await watcher.next("presence.join", connection_id=fuzzer.connection_id)
    yield Pair(fuzzer, watcher, session_id, sockets)


def _valid_id(value: Any) -> bool:
    """An id the server echoes (protocol.md): other ids are refused, not echoed."""
    if isinstance(value, str):
        return len(value) <= 200 and _encodable(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def reply_to(peer: CommPeer, send: Any) -> dict[str, Any]:
    """Send a frame, then a ping; the one reply (ack, error or pong) that came before the pong."""
    await send
    marker = peer.new_id()
    await peer.send({"type": "ping", "id": marker})
    await peer.next("pong", id=marker, take=False)
    replies = [
        m
        for m in peer.pending()
        if m.get("type") in ("ack", "error", "pong") and m.get("id") != marker
    ]
    peer._taken.update(range(len(peer.received)))  # what came so far is accounted for
    assert len(replies) == 1, replies
    return replies[0]


# --- hand-written frames ------------------------------------------------------------------------

TEXT_FRAMES = [
    "",
    " ",
    "{",
    "}",
    "nope",
    "\x00",
    '{"type": "ping"',
    '{"type": "ping",}',
    "{'type': 'ping'}",
    '{"type": "ping"} trailing',
    "[]",
    '[{"type": "ping"}]',
    "1",
    '"ping"',
    "null",
    "true",
    '{"type": "\\ud800"}',
]
BINARY_FRAMES = [b"", b"\x00\xff\xfe", b'{"type": "ping", "id": "binary"}', bytes(range(256))]
INVALID = {"invalid"}


def msg(kind: Any, msg_id: Any = None, **fields: Any) -> dict[str, Any]:
    message = {"type": kind, **fields}
    if msg_id is not None:
        message["id"] = msg_id
    return message


def patch(msg_id: str, base: Any = 1, **changes: Any) -> dict[str, Any]:
    return msg("state.patch", msg_id, base_version=base, changes=changes)


# (message, acceptable error codes)
JSON_FRAMES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"unknown_type"}),
    ({"id": "no-type"}, {"unknown_type"}),
    *(
        (msg(kind, f"t{index}"), {"unknown_type"})
        for index, kind in enumerate(
            [
                None,
                7,
                ["ping"],
                "",
                "PING",
                "ping ",
                "welcome",
                "ack",
                "state.changed",
                "presence.join",
                "file.delete",
                "__class__",
                "on_ping",
                "\ud800",
            ]
        )
    ),
    (msg("ping", {"nested": 1}), INVALID),
    (msg("ping", [1]), INVALID),
    (msg("ping", 1.5), INVALID),
    (msg("resume", "r1"), INVALID),
    (msg("resume", "r2", last_seq=-1), INVALID),
    (msg("resume", "r3", last_seq="0"), INVALID),
    (msg("resume", "r4", last_seq=1.0), INVALID),
    (msg("resume", "r5", last_seq=True), INVALID),
    (msg("resume", "r6", last_seq=None), INVALID),
    (msg("state.patch", "p1"), INVALID),
    (patch("p2", "1", name="x"), INVALID),
    (patch("p3", True, name="x"), INVALID),
    (msg("state.patch", "p4", base_version=1, changes=[]), INVALID),
    (patch("p5"), INVALID),
    (patch("p6", name=5), INVALID),
    (patch("p7", id="x"), INVALID),
    (patch("p8", version=9), INVALID),
    (patch("p9", owner_id="x"), INVALID),
    (patch("p10", workspace_path="rel"), INVALID),
    (patch("p11", workspace_path="/a/../b"), INVALID),
    (patch("p12", editor_state=[]), INVALID),
    (patch("p13", active_files="x"), INVALID),
    (patch("p14", editor_state={"n": 2**70}), INVALID),
    (patch("p15", 2**80, name="x"), {"invalid", "version_conflict"}),
    (patch("p16", -1, name="x"), {"invalid", "version_conflict"}),
    (msg("event.publish", "e1"), INVALID),
    (msg("event.publish", "e2", event=5), INVALID),
    (msg("event.publish", "e3", event=""), INVALID),
    (msg("event.publish", "e4", event="a b"), INVALID),
    (msg("event.publish", "e5", event="x" * 101), INVALID),
    (msg("event.publish", "e6", event="state.changed", data={}), INVALID),
    (msg("event.publish", "e7", event="presence.join", data={}), INVALID),
    (msg("event.publish", "e8", event="lock.changed", data={}), INVALID),
    (msg("event.publish", "e9", event="ok", data={"n": 2**64}), INVALID),
    (
        msg("event.publish", "e10", event="ok", data="x" * (65 * 1024)),
        {"event_too_large"},
    ),  # as REST answers it: 413
    (msg("event.publish", "e11", event="ok", data="\ud800"), INVALID),
    (msg("lock.acquire", "l1"), INVALID),
    (msg("lock.acquire", "l2", path=5, ttl_s=10), INVALID),
    (msg("lock.acquire", "l3", path="", ttl_s=10), INVALID),
    (msg("lock.acquire", "l4", path="/a", ttl_s="10"), INVALID),
    (msg("lock.acquire", "l5", path="/a", ttl_s=0), INVALID),
    (msg("lock.acquire", "l6", path="/a", ttl_s=301), INVALID),
    (msg("lock.acquire", "l7", path="/a", ttl_s=True), INVALID),
    (msg("lock.acquire", "l8", path="/a", ttl_s=1.5), INVALID),
    (msg("lock.acquire", "l9", path="x" * 1025, ttl_s=10), INVALID),
    (msg("lock.renew", "l10", path="/never/held", ttl_s=10), {"lock_not_held"}),
    (msg("lock.renew", "l11", path=None, ttl_s=10), INVALID),
    (msg("lock.release", "l12", path="/never/held"), {"lock_not_held"}),
    (msg("lock.release", "l13", path=["/a"]), INVALID),
    (msg("auth", "a1"), INVALID),
    (msg("auth", "a2", token=""), INVALID),
    (msg("auth", "a3", token=5), INVALID),
    # Issue 15: every field checked, lone surrogates and sizes included.
    (msg("ping", True), INVALID),
    (msg("ping", 2**53), INVALID),
    (msg("ping", "x" * 201), INVALID),
    (msg("ping", "\ud800"), INVALID),
    (msg("auth", "a4", token="\ud800"), INVALID),
    (msg("auth", "a5", token="x" * 8193), INVALID),
    (msg("resume", "r7", last_seq=2**63), INVALID),
    (msg("event.publish", "e12", event="\ud800", data={}), INVALID),
    (msg("event.publish", "e13", event="ok", data={"\ud800": 1}), INVALID),
    (msg("lock.acquire", "l14", path="/a", ttl_s=2**64), INVALID),
    *(
        (msg(kind, f"{kind}-{index}", path=path, ttl_s=10), INVALID)
        for kind in ("lock.acquire", "lock.renew", "lock.release")
        for index, path in enumerate(
            [
                "\ud800",
                "/a/\udfff",
                "/" + "x" * 10_240,
                "/" + "é" * 600,  # 600 characters, 1,201 bytes
                "relative",
                "/a/../b",
                "/a/./b",
                "/a//b",
                "//a",
                "/a/",
                "/a\nb",
                "/a\x00b",
                "/a\x7fb",
                "/a\x85b",
            ]
        )
    ),
]


async def test_malformed_frames_each_get_an_error_and_the_socket_lives(pair: Pair) -> None:
    fuzzer = pair.fuzzer
    heard = len(pair.watcher.heard())
    for frame in TEXT_FRAMES:
        reply = await reply_to(fuzzer, fuzzer.send_text(frame))
        assert reply["type"] == "error", (frame, reply)
        assert reply["code"] in {"invalid_message", "unknown_type"}, (frame, reply)
        assert reply["detail"], (frame, reply)
    await pair.watcher.ping()
    for data in BINARY_FRAMES:
        reply = await reply_to(fuzzer, fuzzer.send_bytes(data))
        assert reply["type"] == "error", (data, reply)
        assert reply["code"] == "invalid_message", (data, reply)
    await pair.watcher.ping()
    for message, codes in JSON_FRAMES:
        reply = await reply_to(fuzzer, fuzzer.send(message))
        assert reply["type"] == "error", (message, reply)
        assert reply["code"] in codes, (message, reply)
        assert isinstance(reply["detail"], str), (message, reply)
        assert reply["detail"], (message, reply)
        if _valid_id(message.get("id")):
            assert reply["id"] == message["id"], (message, reply)
        else:
            assert reply["id"] is None, (message, reply)  # a wrong id is not echoed
    # Nothing of it reached the log or the other socket.
    await pair.watcher.drain(quiet=0.1)
    assert pair.watcher.heard()[heard:] == []
    await pair.watcher_still_works()
    await fuzzer.ping()
    pair.check()


async def test_a_bad_token_in_auth_closes_4401_and_only_that_socket(pair: Pair) -> None:
    await pair.fuzzer.send({"type": "auth", "id": "bad", "token": "not-a-token"})
    assert await pair.fuzzer.expect_close() == 4401
    leave = await pair.watcher.next("presence.leave", connection_id=pair.fuzzer.connection_id)
    assert leave["user_id"] == pair.fuzzer.welcome["session"]["owner_id"]
    await pair.watcher_still_works()
    pair.check()


async def test_garbage_before_auth_leaks_nothing_and_auth_still_works(
    pair: Pair, alice: Persona, settings
) -> None:
    path = ws_path(pair.session_id)
    settings.CODITECT_WS_AUTH_TIMEOUT_S = 5  # time enough for the garbage, whatever the load
    # Garbage, then a good auth message: the socket gets in.
    late, accepted, _ = await pair.sockets.open(path, [PROTOCOL], "late")
    assert accepted
    for frame in ["{", "[]", '{"type": "nope"}', '{"type": "ping", "id": 1.5}']:
        await late.send_text(frame)
        reply = await late.next("error")
        assert reply["code"] in ERROR_CODES, reply
    await late.send_bytes(b"\x00")
    assert (await late.next("error"))["code"] == "invalid_message"
    before_auth: list[dict[str, Any]] = [
        {"type": "ping", "id": "p"},
        {"type": "resume", "id": "r", "last_seq": 0},
        {"type": "state.patch", "id": "s", "base_version": 1, "changes": {"name": "x"}},
        {"type": "event.publish", "id": "e", "event": "x", "data": {}},
        {"type": "lock.acquire", "id": "l", "path": "/a", "ttl_s": 10},
    ]
    for message in before_auth:
        await late.send(message)
        reply = await late.next("error", id=message["id"])
        assert reply["code"] == "not_authenticated", reply
    assert not [m for m in late.received if m["type"] not in ("error",)], late.received
    await late.send({"type": "auth", "token": alice.access})
    late.welcome = await late.next("welcome")
    await late.ping()
    # Garbage only: closed at the auth timeout, having learnt nothing.
    settings.CODITECT_WS_AUTH_TIMEOUT_S = 0.5
    mute, accepted, _ = await pair.sockets.open(path, [PROTOCOL], "mute")
    assert accepted
    await mute.send_text("not json")
    await mute.next("error")
    assert await mute.expect_close() == 4408
    assert [m["type"] for m in mute.received] == ["error"]
    await pair.watcher_still_works()
    pair.check()


# --- generated messages ---------------------------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_TYPES = [
    "ping",
    "resume",
    "state.patch",
    "event.publish",
    "lock.acquire",
    "lock.renew",
    "lock.release",
]
_FIELDS = ["id", "last_seq", "base_version", "changes", "event", "data", "path", "ttl_s", "token"]
_changes = st.dictionaries(
    st.sampled_from(
        ["name", "workspace_path", "active_files", "editor_state", "terminal_state", "x"]
    ),
    _json,
    max_size=3,
)


@st.composite
def client_messages(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly the protocol's own types with fields of any shape; sometimes anything at all."""
    kind = draw(st.sampled_from(_TYPES) | _json)
    message: dict[str, Any] = {"type": kind}
    fields = draw(st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=5))
    message.update(fields)
    if draw(st.booleans()):
        message["changes"] = draw(_changes)
    if draw(st.booleans()):
        message["id"] = draw(st.text(max_size=10) | st.integers())
    message.pop("token", None)  # a bad token closes the socket (4401): tested above
    return message


@given(message=client_messages())
@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_generated_messages_get_one_reply_each(pair: Pair, message: dict[str, Any]) -> None:
    fuzzer = pair.fuzzer
    reply = await reply_to(fuzzer, fuzzer.send(message))
    assert reply["type"] in ("ack", "error", "pong"), (message, reply)
    if reply["type"] == "error":
        assert reply["code"] in REFUSALS, (message, reply)
        assert isinstance(reply["detail"], str), (message, reply)
        assert reply["detail"], (message, reply)
    elif message.get("type") == "ping":
        assert reply["type"] == "pong", (message, reply)
    if _valid_id(message.get("id")) and reply["type"] != "pong":
        assert reply["id"] == message["id"], (message, reply)
    if fuzzer.received and len(fuzzer.received) % 40 == 0:
        await pair.watcher.ping()
    pair.check()


# --- huge frames and floods -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "bytes"])
async def test_huge_frames_close_4413_and_only_that_socket(pair: Pair, kind: str) -> None:
    fuzzer = pair.fuzzer
    head = '{"type": "event.publish", "id": "huge", "event": "huge", "data": "'
    fits = head + "x" * (LIMIT - len(head) - 2) + '"}'
    assert len(fits.encode()) == LIMIT
    # At the limit: read and refused (its data is over 64 KiB), not closed.
    reply = await reply_to(fuzzer, fuzzer.send_text(fits))
    assert (reply["type"], reply["code"]) == ("error", "event_too_large"), reply
    over = head + "é" * ((LIMIT - len(head)) // 2) + '"}'  # fewer characters than bytes
    assert len(over) < LIMIT < len(over.encode())
    if kind == "text":
        await fuzzer.send_text(over)
    else:
        await fuzzer.send_bytes(over.encode())
    assert await fuzzer.expect_close() == 4413
    await pair.watcher.next("presence.leave", connection_id=fuzzer.connection_id)
    await pair.watcher_still_works()
    assert [e["event"] for e in pair.watcher.broadcasts("event")] == ["watcher.alive"]
    pair.check()


async def test_a_flood_closes_4429_and_only_that_socket(pair: Pair, settings) -> None:
    settings.CODITECT_WS_RATE_PER_S = 50  # the defaults (CONTRACT §4)
    settings.CODITECT_WS_RATE_BURST = 100
    fuzzer = pair.fuzzer
    # The default burst (100) passes whole ...
    for index in range(80):
        await fuzzer.send(
            {"type": "event.publish", "id": f"b{index}", "event": "burst", "data": index}
        )
    acks = [await fuzzer.next("ack", id=f"b{index}") for index in range(80)]
    seqs = [ack["seq"] for ack in acks]
    assert seqs == list(range(seqs[0], seqs[0] + 80)), seqs
    for seq in seqs:
        await pair.watcher.next("event", seq=seq)
    # ... a flood does not.
    for index in range(400):
        await fuzzer.send({"type": "ping", "id": f"f{index}"})
    assert await fuzzer.expect_close(timeout=10) == 4429
    pongs = [m for m in fuzzer.received if str(m.get("id", "")).startswith("f")]
    assert len(pongs) < 400
    await pair.watcher.next("presence.leave", connection_id=fuzzer.connection_id)
    await pair.watcher_still_works()
    pair.check()


# --- what the fuzzing found -----------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_are_refused_not_broadcast(
    pair: Pair, sessions: SessionApi, alice: Persona, number: str
) -> None:
    text = '{"type": "event.publish", "id": "nan", "event": "n", "data": {"v": NUMBER}}'
    text = text.replace("NUMBER", number)
    reply = await reply_to(pair.fuzzer, pair.fuzzer.send_text(text))
    events = await call(all_events, sessions, alice, pair.session_id)
    await pair.watcher_still_works()
    pair.check()  # the watcher must not have been sent NaN or Infinity
    assert reply["type"] == "error", (reply, events)


async def test_deeply_nested_json_is_an_error_not_a_crash(pair: Pair) -> None:
    depth = 100_000  # 200 KB, far below the size limit
    reply = await reply_to(pair.fuzzer, pair.fuzzer.send_text("[" * depth + "]" * depth))
    assert (reply["type"], reply["code"]) == ("error", "invalid_message"), reply
    await pair.watcher_still_works()
    pair.check()


# --- against a real daphne: no 1011, no ghost (issue 15) ------------------------------------
#
# A handler that raised ended the consumer: daphne closed 1011 and never told it of the
# disconnect, so the connection stayed in the process's watch, heartbeating, and counted in
# presence and live_connections for good. Here every frame goes over TCP to a daphne process,
# and after each socket closes the session's live connections must drop back at once (well
# within the 30 s presence timeout that would hide a record left behind).


@dataclass
class Live:
    server: Server
    http: Http
    owner: Account
    member: Account
    session_id: str
    watcher: NetPeer

    def live_connections(self) -> int:
        listing = self.http.expect(200, "GET", "/api/v5/sessions", None, self.owner.access)
        counts = {entry["id"]: entry["live_connections"] for entry in listing["results"]}
        count: int = counts[self.session_id]
        return count

    async def settles_at(self, expected: int, timeout: float = 5.0) -> int:
        """The live connection count once it is ``expected`` (or as it is at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            count = await asyncio.to_thread(self.live_connections)
            if count == expected or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.1)

    async def open(self, name: str, signed_in: bool = True) -> NetPeer:
        if signed_in:
            return await net_open(self.server, self.session_id, self.owner.access, name)
        connection = await connect(
            self.server.ws_url(ws_path(self.session_id)),
            subprotocols=[Subprotocol(PROTOCOL)],
            origin=Origin(self.server.base_url),
            open_timeout=10,
            close_timeout=5,
        )
        return NetPeer(connection, name)

    def assert_no_tracebacks(self) -> None:
        log = self.server.log()
        assert "Traceback" not in log, f"daphne logged an error:\n{log}"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """A daphne with Alice's session and Bob's socket on it, which watches presence."""
    servers = Servers(tmp_path)
    try:
        env = base_env(
            shared_store(tmp_path),
            CODITECT_WS_RATE_PER_S="100000",
            CODITECT_WS_RATE_BURST="100000",
        )
        (server,) = servers.start_all(("fuzz", env))
        http = Http(server)
        owner = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
        member = await asyncio.to_thread(invite, http, owner, "Bob", "bob@example.com")
        session = await asyncio.to_thread(create_session, http, owner)
        watcher = await net_open(server, session["id"], member.access, "watcher")
        try:
            yield Live(server, http, owner, member, session["id"], watcher)
        finally:
            with contextlib.suppress(Exception):
                await watcher.close()
    finally:
        servers.stop_all()


async def outcome(peer: NetPeer, text: str) -> list[dict[str, Any]] | int:
    """Send a frame, then a ping: the replies (ack, error, welcome) that came before the ping's
    (a pong, or not_authenticated before sign-in), or the close code if the socket closed."""
    try:
        await peer.send_text(text)
        marker = peer.new_id()
        await peer.send({"type": "ping", "id": marker})
    except ConnectionClosed:
        return await peer.expect_close()
    try:
        await peer.next(None, id=marker, take=False, timeout=10)
    except AssertionError:
        if peer.close_code is None:
            raise
        return peer.close_code
    replies = [
        m
        for m in peer.pending()
        if m.get("type") in ("ack", "error", "pong", "welcome") and m.get("id") != marker
    ]
    peer._taken.update(range(len(peer.received)))
    return replies


BAD_LOCK_PATHS = {
    "a lone surrogate": '"\\ud800"',
    "10 kB": json.dumps("/" + "x" * 10_240),
}


async def assert_gone(live: Live, peer: NetPeer) -> None:
    """The socket closed; presence heard it leave and the live count is the watcher alone."""
    with contextlib.suppress(Exception):
        await peer.close()
    if peer.welcome:
        await live.watcher.next("presence.leave", connection_id=peer.connection_id, timeout=10)
    assert await live.settles_at(1) == 1


async def test_a_lone_surrogate_token_before_sign_in_gets_an_error(live: Live) -> None:
    peer = await live.open("before-auth", signed_in=False)
    got = await outcome(peer, '{"type": "auth", "id": "a", "token": "\\ud800"}')
    # Still open and still able to sign in.
    welcome = await outcome(peer, json.dumps({"type": "auth", "token": live.owner.access}))
    if isinstance(welcome, list) and welcome and welcome[0]["type"] == "welcome":
        peer.welcome = welcome[0]
    await assert_gone(live, peer)
    assert isinstance(got, list), f"closed with {got}"
    assert [(m["type"], m["code"], m["attr"]) for m in got] == [("error", "invalid", "token")]
    assert peer.welcome, welcome
    live.assert_no_tracebacks()


@pytest.mark.parametrize("kind", ["lock.acquire", "lock.release"])
@pytest.mark.parametrize("what", sorted(BAD_LOCK_PATHS))
async def test_a_bad_lock_path_gets_an_error_and_leaves_no_ghost(
    live: Live, kind: str, what: str
) -> None:
    peer = await live.open("locker")
    path = BAD_LOCK_PATHS[what]
    text = f'{{"type": "{kind}", "id": "l", "path": {path}, "ttl_s": 30}}'
    got = await outcome(peer, text)
    await peer.close()
    await live.watcher.next("presence.leave", connection_id=peer.connection_id, timeout=10)
    # Before the fix: closed 1011, and the crashed socket counted on (and on).
    count = await live.settles_at(1)
    replies = got if isinstance(got, int) else [(m["type"], m["code"], m["attr"]) for m in got]
    assert (replies, count) == ([("error", "invalid", "path")], 1)
    live.assert_no_tracebacks()


async def test_ten_crashes_leave_no_ghosts(live: Live) -> None:
    """The finding's own numbers: ten sockets that each sent a bad lock path, then went."""
    peers = [await live.open(f"locker-{index}") for index in range(10)]
    assert await live.settles_at(11) == 11
    for index, peer in enumerate(peers):
        path = BAD_LOCK_PATHS["a lone surrogate" if index % 2 else "10 kB"]
        await outcome(peer, f'{{"type": "lock.acquire", "id": 1, "path": {path}}}')
    for peer in peers:
        await peer.close()
    assert await live.settles_at(1) == 1
    live.assert_no_tracebacks()


# Values that broke something once or are at a bound: surrogates as JSON escapes (json.dumps
# writes "\ud800" for them), strings past every limit, numbers past 2^53 and 2^64, nesting.
_EDGES: st.SearchStrategy[Any] = st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "a\ud800b",
        "/\ud800",
        "x" * 10_240,
        "/" + "x" * 10_240,
        "/" + "é" * 600,
        "/" + "x" * 1023,
        "/" + "x" * 1024,
        "/a/../b",
        "/a/./b",
        "/a//b",
        "/a/",
        "//a",
        "relative",
        "/a\nb",
        "/a\x00b",
        "/a\x85b",
        "",
        "/",
        2**53,
        -(2**53),
        2**64,
        2**63,
        -1,
        0,
        1e300,
        True,
        None,
        [[[[[[[[[[[]]]]]]]]]]],
        {"\ud800": 1},
        {"a": {"b": {"c": ["\ud800"]}}},
    ]
)
# Text with lone surrogates, control characters and slashes mixed in.
_ODD_TEXT = st.text(st.characters(categories=["Cs", "Cc", "Ll"], include_characters="/."))
_VALUE = _EDGES | _json | _ODD_TEXT
VALID_TOKEN = "<the owner's token>"  # replaced by the real one when sent
# Each type's own fields, with values that are sometimes right and often anything but.
_OWN_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "auth": {"token": st.just(VALID_TOKEN) | st.just("not-a-token") | _VALUE},
    "ping": {},
    "resume": {"last_seq": st.integers(0, 5) | _VALUE},
    "state.patch": {
        "base_version": st.integers(1, 3) | _VALUE,
        "changes": _changes | _VALUE,
    },
    "event.publish": {"event": st.just("fuzz.event") | _VALUE, "data": _VALUE},
    "lock.acquire": {"path": st.just("/srv/a.py") | _VALUE, "ttl_s": st.integers(1, 300) | _VALUE},
    "lock.renew": {"path": st.just("/srv/a.py") | _VALUE, "ttl_s": st.integers(1, 300) | _VALUE},
    "lock.release": {"path": st.just("/srv/a.py") | _VALUE},
}


@st.composite
def any_message(draw: st.DrawFn) -> dict[str, Any]:
    """A protocol type (or now and then any value as type) with each of its own fields
    present or not, each of any value, an id of any value, sometimes other fields."""
    kind = (
        draw(_VALUE) if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(sorted(_OWN_FIELDS)))
    )
    message: dict[str, Any] = {"type": kind}
    for name, values in _OWN_FIELDS.get(kind, {}).items() if isinstance(kind, str) else ():
        if draw(st.integers(0, 4)):  # mostly present
            message[name] = draw(values)
    if draw(st.booleans()):
        message["id"] = draw(st.integers(0, 99) | _VALUE)
    message.update(draw(st.dictionaries(st.sampled_from(_FIELDS), _VALUE, max_size=1)))
    return message


@given(
    signed_in=st.integers(0, 3).map(bool), messages=st.lists(any_message(), min_size=1, max_size=5)
)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_generated_messages_over_tcp_never_1011_and_leave_no_ghost(
    live: Live, signed_in: bool, messages: list[dict[str, Any]]
) -> None:
    peer = await live.open("fuzzer", signed_in=signed_in)
    for message in messages:
        text = json.dumps(message).replace(json.dumps(VALID_TOKEN), json.dumps(live.owner.access))
        got = await outcome(peer, text)
        if isinstance(got, int):
            # A well-formed token that is not one closes 4401; nothing else closes.
            assert got in CLOSE_CODES, (message, got)
            break
        assert len(got) == 1, (message, got)
        reply = got[0]
        for field in reply:
            assert_strict_json(reply[field], f"{reply['type']}.{field}")
        if reply["type"] == "welcome":
            assert message["type"] == "auth", (message, reply)
            peer.welcome = reply
        elif reply["type"] == "error":
            assert reply["code"] in REFUSALS, (message, reply)
            assert isinstance(reply["detail"], str) and reply["detail"], (message, reply)
    await assert_gone(live, peer)
    live.assert_no_tracebacks()

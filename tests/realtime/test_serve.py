"""What ``python -m coditect.serve`` (``make start``) gives real clients over TCP (CONTRACT §4, §8):
handshakes without ``Origin`` and with ``Authorization``, the 403 of a foreign origin, 4413 with
a closing handshake for any message over the limit up to 16 MiB and more, a limit that can be
raised, and ``permessage-deflate``. Plain ``daphne coditect.asgi:application`` keeps serving.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from coditect.serve import take_migrate
from tests.realtime.helpers import PROTOCOL, ws_path
from tests.realtime.servers import Account, Http, Server, Servers, base_env, register
from tests.store import shared_store

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return shared_store(tmp_path)


class Counting(ClientConnection):
    """A client connection that counts the bytes that reach it over TCP."""

    received_bytes = 0

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        super().data_received(data)


async def open_socket(
    server: Server,
    session_id: str,
    token: str,
    *,
    origin: str | None = None,
    compression: str | None = "deflate",
) -> Counting:
    """A socket authenticated by its Authorization header, after its welcome."""
    connection = await connect(
        server.ws_url(ws_path(session_id)),
        subprotocols=[Subprotocol(PROTOCOL)],
        additional_headers={"Authorization": f"Bearer {token}"},
        origin=None if origin is None else Origin(origin),
        compression=compression,
        max_size=None,
        open_timeout=10,
        close_timeout=10,
        create_connection=Counting,
    )
    assert isinstance(connection, Counting)
    welcome = json.loads(await asyncio.wait_for(connection.recv(), 10))
    assert welcome["type"] == "welcome", welcome
    assert welcome["session"]["id"] == session_id
    return connection


async def close_code_after(connection: ClientConnection, text: str) -> tuple[int, bool]:
    """(the server's close code, whether the closing handshake completed) after sending."""
    try:
        await connection.send(text)
        reply = await reply_to(connection, "big")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"dropped without a close frame: {closed}"
        return closed.rcvd.code, closed.sent is not None
    raise AssertionError(f"answered instead of closed: {str(reply)[:200]}")


async def reply_to(connection: ClientConnection, msg_id: str) -> dict[str, Any]:
    """The server's answer to message ``msg_id``, past any broadcasts."""
    while True:
        message = json.loads(await asyncio.wait_for(connection.recv(), 30))
        if message.get("id") == msg_id:
            assert isinstance(message, dict)
            return message


def ping_of(size: int) -> str:
    """A ping message of ``size`` bytes, padded with text that compresses very well."""
    head = '{"type":"ping","id":"big","pad":"'
    return head + "x" * (size - len(head) - 2) + '"}'


async def setup(http: Http, state_bytes: int = 0) -> tuple[Account, Account, dict[str, Any]]:
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    charlie = await asyncio.to_thread(register, http, "Charlie", "charlie@example.org", "Globex")
    body: dict[str, Any] = {"name": "shared", "workspace_path": "/srv/project"}
    if state_bytes:
        # An editor state like a real one: many files' cursors and folds, repetitive JSON.
        files = {
            f"/srv/project/src/module_{n}.py": {"cursor": {"line": n, "column": n % 80}}
            for n in range(state_bytes // 60)
        }
        body["editor_state"] = {"files": files}
    session = await asyncio.to_thread(
        http.expect, 201, "POST", "/api/v5/sessions", body, alice.access
    )
    return alice, charlie, session


def assert_no_tracebacks(server: Server) -> None:
    log = server.log()
    assert "Traceback" not in log, f"{server.name} logged an error:\n{log}"


async def test_a_non_browser_client_connects_and_a_foreign_origin_is_refused(
    servers: Servers, store_url: str
) -> None:
    (server,) = servers.start_all(("serve", base_env(store_url)))
    http = Http(server)
    alice, charlie, session = await setup(http)

    # No Origin, the token in the Authorization header: in.
    socket = await open_socket(server, session["id"], alice.access)
    await socket.send(json.dumps({"type": "ping", "id": "p"}))
    assert (await reply_to(socket, "p"))["type"] == "pong"
    await socket.close()

    # An agent's API token (CONTRACT §7) in the header, no Origin: in, within its scopes.
    made = await asyncio.to_thread(
        http.expect,
        201,
        "POST",
        "/api/v5/auth/api-tokens",
        {"name": "agent", "scopes": ["sessions:read", "events:publish"]},
        alice.access,
    )
    assert made["token"].startswith("cdt_")
    socket = await open_socket(server, session["id"], made["token"])
    await socket.send(json.dumps({"type": "event.publish", "id": "e", "event": "build", "data": 1}))
    assert (await reply_to(socket, "e"))["type"] == "ack"
    await socket.send(json.dumps({"type": "lock.acquire", "id": "l", "path": "/a.py"}))
    assert (await reply_to(socket, "l"))["code"] == "insufficient_scope"
    await socket.close()

    # A user of another tenant with the header: accepted, then 4404 like any other way in.
    connection = await connect(
        server.ws_url(ws_path(session["id"])),
        subprotocols=[Subprotocol(PROTOCOL)],
        additional_headers={"Authorization": f"Bearer {charlie.access}"},
        open_timeout=10,
    )
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(connection.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

    # A page of another site: an HTTP 403 at the handshake, with the reason.
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(server, session["id"], alice.access, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    assert refused.value.response.reason_phrase == "Origin not allowed"
    # The server's own pages may.
    socket = await open_socket(server, session["id"], alice.access, origin=server.base_url)
    await socket.close()
    assert_no_tracebacks(server)


async def test_messages_over_the_limit_close_4413_with_a_closing_handshake(
    servers: Servers, store_url: str
) -> None:
    (server,) = servers.start_all(("limit", base_env(store_url)))
    alice, _, session = await setup(Http(server))
    for size, compression in [
        (MiB + 1, None),
        (2 * MiB, None),
        (16 * MiB, None),
        (2 * MiB, "deflate"),  # a few kB on the wire, over the limit once inflated
        (16 * MiB, "deflate"),
    ]:
        socket = await open_socket(server, session["id"], alice.access, compression=compression)
        code, clean = await close_code_after(socket, ping_of(size))
        assert (code, clean) == (4413, True), (size, compression, code, clean)
    # Just under the limit is served, and the server is none the worse.
    socket = await open_socket(server, session["id"], alice.access)
    await socket.send(ping_of(MiB - 64))
    assert (await reply_to(socket, "big"))["type"] == "pong"
    await socket.close()
    assert_no_tracebacks(server)


async def test_the_limit_is_a_setting_and_compression_can_be_turned_off(
    servers: Servers, store_url: str
) -> None:
    env = base_env(
        store_url, CODITECT_WS_MAX_MESSAGE_BYTES=str(4 * MiB), CODITECT_WS_COMPRESSION="0"
    )
    (server,) = servers.start_all(("raised", env))
    alice, _, session = await setup(Http(server))
    socket = await open_socket(server, session["id"], alice.access)
    assert socket.response is not None
    assert "Sec-WebSocket-Extensions" not in socket.response.headers
    await socket.send(ping_of(2 * MiB))
    assert (await reply_to(socket, "big"))["type"] == "pong"
    code, clean = await close_code_after(socket, ping_of(16 * MiB))
    assert (code, clean) == (4413, True)
    assert_no_tracebacks(server)


async def test_permessage_deflate_is_negotiated_when_offered(
    servers: Servers, store_url: str
) -> None:
    (server,) = servers.start_all(("deflate", base_env(store_url)))
    alice, _, session = await setup(Http(server), state_bytes=200_000)

    compressed = await open_socket(server, session["id"], alice.access, compression="deflate")
    assert compressed.response is not None
    extensions = compressed.response.headers.get("Sec-WebSocket-Extensions", "")
    assert extensions.startswith("permessage-deflate"), extensions
    plain = await open_socket(server, session["id"], alice.access, compression=None)
    assert plain.response is not None
    assert "Sec-WebSocket-Extensions" not in plain.response.headers

    # The same welcome (a 200 kB state) costs a fraction of the bytes compressed.
    assert plain.received_bytes > 200_000
    assert compressed.received_bytes < plain.received_bytes / 4, (
        compressed.received_bytes,
        plain.received_bytes,
    )
    # And a compressed socket works both ways.
    await compressed.send(json.dumps({"type": "ping", "id": "c", "pad": "y" * 50_000}))
    assert await reply_to(compressed, "c") == {"type": "pong", "id": "c"}
    for socket in (compressed, plain):
        await socket.close()
    assert_no_tracebacks(server)


async def test_plain_daphne_still_serves_non_browser_clients(
    servers: Servers, store_url: str
) -> None:
    server = servers.start("plain", base_env(store_url), plain_daphne=True)
    server.wait_ready()
    alice, _, session = await setup(Http(server))
    socket = await open_socket(server, session["id"], alice.access)
    assert socket.response is not None
    # What it lacks (docs/operations.md): no compression, daphne's own 1 MiB limit.
    assert "Sec-WebSocket-Extensions" not in socket.response.headers
    await socket.close()
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(server, session["id"], alice.access, origin="https://evil.example")
    assert refused.value.response.status_code == 403


def test_a_post_body_is_the_applications_to_parse_not_twisteds(
    servers: Servers, store_url: str
) -> None:
    """twisted parsed a POST body declared as a form before daphne passed it on: a
    ``multipart/form-data`` body it could not parse got its bare 400 and a dropped connection.
    The API answers it with a problem, on a connection that goes on."""
    server = servers.start("formless", base_env(store_url))
    server.wait_ready()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for content_type, body in (
        ("multipart/form-data; boundary=x", b"not a multipart body"),
        ("application/x-www-form-urlencoded", b"email=a%40example.com&password=x"),
    ):
        connection.request(
            "POST", "/api/v5/auth/login", body=body, headers={"Content-Type": content_type}
        )
        response = connection.getresponse()
        problem = json.loads(response.read())
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert (response.status, problem["status"]) == (415, 415), problem
    connection.close()


def test_migrate_runs_in_the_server_before_it_listens(servers: Servers, tmp_path: Path) -> None:
    """``--migrate=STAMP`` (what ``make start`` passes when a migration changed): the staff
    tables exist once the server answers, and the stamp is touched; daphne never sees it."""
    staff, stamp = tmp_path / "staff.sqlite3", tmp_path / "var" / ".migrated"
    env = base_env(shared_store(tmp_path), DATABASE_URL=f"sqlite:///{staff}")
    server = servers.start("migrating", env, (f"--migrate={stamp}", "-v", "1"))
    server.wait_ready()
    assert stamp.exists()
    with sqlite3.connect(staff) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"django_migrations", "auth_user", "django_admin_log"} <= tables
    assert "--migrate" not in server.log()


def test_take_migrate_leaves_daphnes_arguments() -> None:
    assert take_migrate(["-v", "0", "--migrate", "-p", "9000"]) == (
        ["-v", "0", "-p", "9000"], True, None,
    )  # fmt: skip
    assert take_migrate(["--migrate=var/.migrated"]) == ([], True, Path("var/.migrated"))
    assert take_migrate(["--access-log", "x"]) == (["--access-log", "x"], False, None)

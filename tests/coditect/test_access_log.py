"""Access and socket lifecycle lines, with the ids the clients saw, on a real daphne.

Each run reads the daphne process's own output: one access line per request carrying the
``X-Request-ID`` the client got (and the problem body's ``request_id``), Django's own lines
for the request with the same id, and a socket's connect, auth and close lines with its
connection id and close code; in text and in JSON lines (``CODITECT_LOG_FORMAT=json``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, Client

from accounts.authentication import BearerAuthentication
from core.request_id import current_request_id
from tests.coditect.test_settings import manage, shown
from tests.realtime.helpers import bearer, ws_path
from tests.realtime.servers import (
    Http,
    Server,
    Servers,
    base_env,
    create_session,
    net_open,
    net_refused,
    register,
)
from tests.store import shared_store

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def call(
    server: Server, method: str, path: str, token: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    """(status, the X-Request-ID answered, the JSON body or None)."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.base_url + path, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answered, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answered, raw = error.code, error.headers, error.read()
    body = json.loads(raw) if raw and answered["Content-Type"].endswith("json") else None
    return status, answered["X-Request-ID"], body


async def traffic(server: Server) -> dict[str, Any]:
    """Requests and sockets whose lines the tests look for; what the clients saw."""
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    session = await asyncio.to_thread(create_session, http, alice)
    seen = {
        "me": await asyncio.to_thread(call, server, "GET", "/api/v5/auth/me", alice.access),
        "anonymous": await asyncio.to_thread(call, server, "GET", "/api/v5/auth/me"),
        "detail": await asyncio.to_thread(
            call, server, "GET", f"/api/v5/sessions/{session['id']}/", alice.access
        ),
        # A proxy's id is kept (core/request_id.py).
        "proxied": await asyncio.to_thread(
            call, server, "GET", "/healthz", "", {"X-Request-ID": "edge-4711"}
        ),
    }
    peer = await net_open(server, session["id"], alice.access, "alice")
    await peer.ping()
    await peer.close()
    refused = await net_refused(server, ws_path(session["id"]), bearer("not-a-token"))
    assert refused == 4401
    await asyncio.sleep(0.3)  # the server's close lines come after the client's close
    return {"alice": alice, "session": session, "seen": seen, "connection": peer.connection_id}


# daphne's own access log (daphne/access.py): `127.0.0.1:5432 - - [07/Dec/2026:13:09:40]
# "GET /healthz" 200 16`, and WSCONNECTING/WSCONNECT/WSDISCONNECT/WSREJECT for sockets.
DAPHNE_LINE = re.compile(r'\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\] "[A-Z]+ /')


def start(servers: Servers, tmp_path: Path, log_format: str, args: tuple[str, ...] = ()) -> Server:
    env = base_env(
        shared_store(tmp_path),
        CODITECT_LOG_FORMAT=log_format,
        # Access lines are INFO and written whatever DJANGO_LOG_LEVEL says (WARNING here).
    )
    server = servers.start("logs", env, args)
    server.wait_ready()
    return server


async def test_text_lines_carry_the_request_and_connection_ids(
    servers: Servers, tmp_path: Path
) -> None:
    server = start(servers, tmp_path, "text")
    run = await traffic(server)
    servers.stop_all()
    lines = server.log_path.read_text().splitlines()
    # Exactly one access line per request, ours: python -m coditect.serve (what `make start`
    # runs) turns daphne's off, which at its default verbosity printed one more per request
    # and four per socket.
    assert [line for line in lines if DAPHNE_LINE.match(line)] == []
    access = [line for line in lines if " coditect.access " in line]
    line_format = re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO coditect\.access \[([^\]]+)\] "
        r"(\S+) (\S+) (\d{3}) [\d.]+ms tenant=(\S+) user=(\S+) token=(\S+)"
    )
    parsed = {}
    for line in access:
        match = line_format.fullmatch(line)
        assert match is not None, line
        assert match[1] not in parsed, f"two access lines for request {match[1]}"
        parsed[match[1]] = match.groups()[1:]
    alice, seen = run["alice"], run["seen"]
    status, request_id, body = seen["me"]
    assert parsed[request_id] == (
        "GET", "/api/v5/auth/me", "200", alice.tenant_id, alice.user_id, "-",
    )  # fmt: skip
    status, request_id, body = seen["anonymous"]
    assert status == 401 and body["request_id"] == request_id
    assert parsed[request_id] == ("GET", "/api/v5/auth/me", "401", "-", "-", "-")
    # The line of the problem statement, now with time, level and the request id.
    assert [line for line in lines if f"[{request_id}] Unauthorized: /api/v5/auth/me" in line]
    status, request_id, _ = seen["detail"]
    route = "/api/v5/sessions/<str:session_id>"
    assert parsed[request_id][:3] == ("GET", route, "200")
    assert seen["proxied"][1] == "edge-4711"
    assert parsed["edge-4711"][:3] == ("GET", "/healthz", "200")
    # One line per request: the ones above, register, create, and the health polls.
    routes = [fields[1] for fields in parsed.values()]
    assert routes.count("/api/v5/auth/register") == 1
    assert routes.count("/api/v5/sessions") == 1
    assert routes.count("/api/v5/auth/me") == 2

    # Socket lines: connect, auth, close with the code, tagged with the connection id.
    tag = f"[ws:{run['connection']}]"
    mine = [line.split(tag, 1)[1].strip() for line in lines if tag in line]
    assert mine[0].startswith("socket connect /ws/sessions/")
    assert mine[1] == f"socket auth tenant={alice.tenant_id} user={alice.user_id} token=-"
    assert mine[-1] == "socket close code=1000"
    closes = [line for line in lines if "coditect.sockets" in line and "socket close" in line]
    assert [line for line in closes if line.endswith("socket close code=4401")]


async def test_json_lines(servers: Servers, tmp_path: Path) -> None:
    # daphne's access log where it is asked for by name, and only there.
    daphne_log = tmp_path / "daphne-access.log"
    server = start(servers, tmp_path, "json", ("--access-log", str(daphne_log)))
    run = await traffic(server)
    servers.stop_all()
    records = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:  # never one of ours, nor daphne's access lines: the console mail
            assert "coditect." not in line and "django.request" not in line, line
            assert not DAPHNE_LINE.match(line), line
    daphne_lines = daphne_log.read_text().splitlines()
    assert all(DAPHNE_LINE.match(line) for line in daphne_lines), daphne_lines
    assert [line for line in daphne_lines if '"GET /api/v5/auth/me" 401' in line]
    assert [line for line in daphne_lines if '"WSCONNECT /ws/sessions/' in line]
    for record in records:
        assert {"time", "level", "name", "message", "request_id", "connection_id"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    access = {r["request_id"]: r for r in records if r["name"] == "coditect.access"}
    assert len(access) == len([r for r in records if r["name"] == "coditect.access"])
    alice, seen = run["alice"], run["seen"]
    me = access[seen["me"][1]]
    assert me["level"] == "INFO"
    assert (me["method"], me["route"], me["status"]) == ("GET", "/api/v5/auth/me", 200)
    assert (me["tenant_id"], me["user_id"], me["token_id"]) == (
        alice.tenant_id, alice.user_id, None,
    )  # fmt: skip
    assert isinstance(me["duration_ms"], float)
    anonymous = seen["anonymous"][1]
    assert access[anonymous]["status"] == 401
    warnings = [r for r in records if r["name"] == "django.request"]
    assert [r for r in warnings if r["request_id"] == anonymous and r["level"] == "WARNING"]

    sockets = [
        r for r in records if r["name"] == "coditect.sockets"
        and r["connection_id"] == run["connection"]
    ]  # fmt: skip
    assert [r["message"].split(" ")[1] for r in sockets] == ["connect", "auth", "close"]
    assert sockets[1]["user_id"] == alice.user_id
    assert sockets[2]["close_code"] == "1000"
    assert all(r["request_id"] == "-" for r in sockets)


async def test_the_request_id_reaches_the_lean_pool_thread(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A lean view runs in a pool thread (coditect/lean.py): the id is in its context too."""
    settings.ALLOWED_HOSTS = ["testserver"]
    inside: list[tuple[str | None, int]] = []

    def authenticate(self: Any, request: Any) -> None:
        inside.append((current_request_id.get(), threading.get_ident()))

    monkeypatch.setattr(BearerAuthentication, "authenticate", authenticate)
    response = await AsyncClient().get("/api/v5/auth/me")
    assert response.status_code == 401
    ((request_id, thread),) = inside
    assert thread != threading.get_ident()
    assert request_id == response["X-Request-ID"]


def test_an_unknown_log_format_refuses_to_start() -> None:
    memory = {"CODITECT_STORAGE_URL": "memory:"}
    assert shown("settings.CODITECT_LOG_FORMAT", **memory) == "'text'"
    assert shown("settings.CODITECT_LOG_FORMAT", **memory, CODITECT_LOG_FORMAT="JSON") == "'json'"
    result = manage("check", **memory, CODITECT_LOG_FORMAT="logfmt")
    assert result.returncode != 0
    assert "CODITECT_LOG_FORMAT is text or json; got 'logfmt'" in result.stderr


def test_a_wsgi_thread_drops_the_id_when_the_response_is_finished(settings: Any) -> None:
    """A WSGI thread serves one request after another in one context: between them its
    lines must not carry the last request's id."""
    settings.ALLOWED_HOSTS = ["testserver"]
    seen: list[str | None] = []

    def authenticate(self: Any, request: Any) -> None:
        seen.append(current_request_id.get())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BearerAuthentication, "authenticate", authenticate)
        response = Client().get("/api/v5/auth/me")
    assert seen == [response["X-Request-ID"]]
    assert current_request_id.get() is None

"""Forwarded headers are believed only from CODITECT_TRUSTED_PROXIES (issue 15, finding 4).

A client that reaches daphne directly used to pick its own address with ``X-Forwarded-For``
(``daphne --proxy-headers`` trusts anyone): per-address throttles were bypassed and device
lists and the auth log showed what it wrote. Requests here go through ``coditect.asgi``'s
application with the ASGI scope's ``client`` set to the TCP peer, which is what daphne hands
it, and once through real daphne processes; the WSGI entry point is called with an environ.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator

from coditect import proxies
from coditect.asgi import application
from coditect.proxies import TrustedProxies, trusted_proxies_wsgi
from tests.accounts.conftest import accounts_environment, alice, api
from tests.accounts.helpers import AUTH, PASSWORD, Persona
from tests.realtime.servers import Http, Servers, base_env, register
from tests.store import shared_store

__all__ = ["accounts_environment", "alice", "api"]

CLIENT = "198.51.100.7"  # the TCP peer: a client, or a proxy
PROXY = "10.0.0.1"
SPOOFED = "203.0.113.9"


async def send(
    method: str,
    path: str,
    *,
    peer: str,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    """(status, JSON body) of one request through the ASGI application from ``peer``."""
    raw = [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in headers)]
    if token is not None:
        raw.append((b"authorization", f"Bearer {token}".encode()))
    data = b"" if body is None else json.dumps(body).encode()
    if body is not None:
        raw.append((b"content-type", b"application/json"))
        raw.append((b"content-length", str(len(data)).encode()))
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query.encode(),
        "headers": raw,
        "client": [peer, 40000],
        "server": ["127.0.0.1", 8000],
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": data})
    start = await communicator.receive_output(10)
    content = b""
    while True:
        chunk = await communicator.receive_output(10)
        content += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    await communicator.wait(5)
    return start["status"], (json.loads(content) if content else None)


async def login_ip(persona: Persona, *, peer: str, headers: list[tuple[str, str]]) -> str:
    """Sign ``persona`` in from ``peer`` with ``headers``; the ip the device list shows."""
    body = {"email": persona.email, "password": PASSWORD}
    status, pair = await send("POST", AUTH + "login", peer=peer, headers=headers, body=body)
    assert status == 200, pair
    status, listed = await send("GET", AUTH + "sessions", peer=CLIENT, token=pair["access"])
    assert status == 200, listed
    current = [item for item in listed["results"] if item["current"]]
    assert len(current) == 1, listed
    return str(current[0]["ip"])


SPOOFS = [
    [("X-Forwarded-For", SPOOFED)],
    [("X-Forwarded-For", f"{SPOOFED}, 192.0.2.1")],
    [("X-Real-IP", SPOOFED)],
    [("X-Forwarded-For", SPOOFED), ("X-Forwarded-For", "192.0.2.1"), ("X-Real-IP", SPOOFED)],
]


@pytest.mark.parametrize("headers", SPOOFS)
async def test_an_untrusted_peer_cannot_choose_its_address(
    settings: Any, alice: Persona, headers: list[tuple[str, str]]
) -> None:
    settings.CODITECT_TRUSTED_PROXIES = []  # the default
    assert await login_ip(alice, peer=CLIENT, headers=headers) == CLIENT
    # A peer that is not among the trusted proxies is the client, whatever else is trusted.
    settings.CODITECT_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert await login_ip(alice, peer=CLIENT, headers=headers) == CLIENT


@pytest.mark.parametrize(
    ("peer", "trusted", "headers", "client"),
    [
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", SPOOFED)], SPOOFED),
        # The client wrote the left part; the proxy appended the address it saw.
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", f"6.6.6.6, {SPOOFED}")], SPOOFED),
        # Two proxies of ours: the rightmost hop that is not one of them.
        (PROXY, ["10.0.0.0/8"], [("X-Forwarded-For", f"6.6.6.6, {SPOOFED}, 10.2.3.4")], SPOOFED),
        (PROXY, ["10.0.0.0/8"], [("X-Forwarded-For", "10.9.9.9, 10.2.3.4")], "10.9.9.9"),
        (
            PROXY,
            [PROXY + "/32"],
            [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", SPOOFED)],
            SPOOFED,
        ),
        (PROXY, [PROXY + "/32"], [("X-Real-IP", SPOOFED)], SPOOFED),
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", "[2001:db8::7]:443")], "2001:db8::7"),
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", f"{SPOOFED}:5555")], SPOOFED),
        # daphne on a dual-stack socket reports an IPv4 peer as IPv4-mapped IPv6.
        ("::ffff:10.0.0.1", ["10.0.0.0/8"], [("X-Forwarded-For", SPOOFED)], SPOOFED),
        ("::1", ["::1/128"], [("X-Forwarded-For", SPOOFED)], SPOOFED),
        # What the proxy wrote is not an address: the proxy is the client we know.
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", "unknown")], PROXY),
        (PROXY, [PROXY + "/32"], [("X-Forwarded-For", f"{SPOOFED}, junk")], PROXY),
    ],
)
async def test_a_trusted_proxy_says_who_the_client_is(
    settings: Any,
    alice: Persona,
    peer: str,
    trusted: list[str],
    headers: list[tuple[str, str]],
    client: str,
) -> None:
    settings.CODITECT_TRUSTED_PROXIES = trusted
    assert await login_ip(alice, peer=peer, headers=headers) == client


@pytest.fixture
def small_address_limit(settings: Any, time_machine: Any) -> None:
    """Three logins a minute per address, the clock still a few seconds into a minute."""
    start = datetime.now(UTC).replace(second=5, microsecond=0) + timedelta(minutes=1)
    time_machine.move_to(start, tick=False)
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 3
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 1000


async def failed_logins(peer: str, spoofs: list[str]) -> list[int]:
    statuses = []
    for n, spoof in enumerate(spoofs):
        body = {"email": f"nobody{n}@example.com", "password": "wrong-password-1"}
        headers = [("X-Forwarded-For", spoof), ("X-Real-IP", spoof)]
        status, _ = await send("POST", AUTH + "login", peer=peer, headers=headers, body=body)
        statuses.append(status)
    return statuses


async def test_the_per_address_throttle_holds_against_spoofed_headers(
    settings: Any, small_address_limit: None
) -> None:
    settings.CODITECT_TRUSTED_PROXIES = []
    spoofs = [f"203.0.113.{n}" for n in range(1, 6)]
    assert await failed_logins(CLIENT, spoofs) == [401, 401, 401, 429, 429]
    # Another peer is counted on its own.
    assert await failed_logins("198.51.100.8", spoofs[:1]) == [401]


async def test_behind_a_trusted_proxy_each_client_is_counted_on_its_own(
    settings: Any, small_address_limit: None
) -> None:
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    # Five clients behind one proxy: none of them reaches three.
    assert await failed_logins(PROXY, [f"203.0.113.{n}" for n in range(1, 6)]) == [401] * 5
    # One client behind it is throttled as itself.
    assert await failed_logins(PROXY, [SPOOFED] * 4) == [401, 401, 401, 429]


# --- the scope and environ the application sees -----------------------------------------------


async def seen_scope(scope: dict[str, Any]) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    await TrustedProxies(app)(scope, None, None)  # type: ignore[arg-type]
    return seen[0]


FORWARDING = [
    (b"x-forwarded-for", SPOOFED.encode()),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"evil.example"),
    (b"x-forwarded-port", b"443"),
    (b"x-real-ip", SPOOFED.encode()),
]


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_an_untrusted_peers_forwarding_headers_are_removed(settings: Any, kind: str) -> None:
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    scheme = "http" if kind == "http" else "ws"
    headers = [(b"host", b"testserver"), *FORWARDING, (b"user-agent", b"x")]
    scope = {"type": kind, "scheme": scheme, "client": [CLIENT, 1], "headers": headers}
    seen = await seen_scope(scope)
    assert seen["client"] == [CLIENT, 1]
    assert seen["scheme"] == scheme
    assert seen["headers"] == [(b"host", b"testserver"), (b"user-agent", b"x")]


@pytest.mark.parametrize(("kind", "secure"), [("http", "https"), ("websocket", "wss")])
async def test_a_trusted_proxy_sets_the_client_and_scheme_of_http_and_websocket(
    settings: Any, kind: str, secure: str
) -> None:
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    scope = {"type": kind, "scheme": "http", "client": [PROXY, 1], "headers": FORWARDING}
    seen = await seen_scope(scope)
    assert seen["client"][0] == SPOOFED
    assert seen["scheme"] == secure
    # Only the last X-Forwarded-Proto counts (the nearest proxy's), and only http or https.
    for values, expected in ([b"https, http", "http"], [b"gopher", "http"], [b"HTTPS", "https"]):
        headers = [(b"x-forwarded-proto", values)]
        plain = {"type": "http", "scheme": "http", "client": [PROXY, 1], "headers": headers}
        assert (await seen_scope(plain))["scheme"] == expected


async def test_a_kept_answer_does_not_outlive_a_change_of_the_trusted_proxies(
    settings: Any,
) -> None:
    """Answers are kept per headers and trusted networks: the same request from a proxy no
    longer trusted is not believed."""
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    scope = {"type": "http", "scheme": "http", "client": [PROXY, 1], "headers": FORWARDING}
    for _ in range(2):  # the second answer is the kept one
        assert (await seen_scope(scope))["client"][0] == SPOOFED
    settings.CODITECT_TRUSTED_PROXIES = []
    seen = await seen_scope(scope)
    assert seen["client"] == [PROXY, 1]
    assert seen["scheme"] == "http"


def test_long_forwarding_headers_are_worked_out_but_not_kept() -> None:
    """A client can vary its X-Forwarded-For at will: long ones never fill the memo."""
    networks = proxies._networks((PROXY,))
    hops = ", ".join(f"192.0.2.{i % 250}" for i in range(200))
    kept = proxies._believed_memo.cache_info().currsize
    told = proxies.forwarded_client(
        peer=PROXY, forwarded_for=[hops], real_ip=None, proto=None, networks=networks
    )
    assert told == ("192.0.2.199", None)
    assert proxies._believed_memo.cache_info().currsize == kept
    short = proxies.forwarded_client(
        peer=PROXY, forwarded_for=["192.0.2.7"], real_ip=None, proto="https", networks=networks
    )
    assert short == ("192.0.2.7", "https")


async def test_scopes_without_forwarding_headers_pass_unchanged(settings: Any) -> None:
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    scope = {"type": "http", "client": [PROXY, 1], "headers": [(b"host", b"h")]}
    assert await seen_scope(scope) is scope
    lifespan = {"type": "lifespan"}
    assert await seen_scope(lifespan) is lifespan


def seen_environ(environ: dict[str, Any]) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ)
        return []

    trusted_proxies_wsgi(app)(environ, lambda *_: None)
    return seen[0]


def test_the_wsgi_entry_point_believes_only_trusted_proxies(settings: Any) -> None:
    settings.CODITECT_TRUSTED_PROXIES = [PROXY]
    forwarded = {
        "HTTP_X_FORWARDED_FOR": f"6.6.6.6, {SPOOFED}",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_REAL_IP": "6.6.6.6",
    }
    untrusted = seen_environ({"REMOTE_ADDR": CLIENT, "wsgi.url_scheme": "http", **forwarded})
    assert untrusted["REMOTE_ADDR"] == CLIENT
    assert untrusted["wsgi.url_scheme"] == "http"
    assert not set(forwarded) & set(untrusted)
    trusted = seen_environ({"REMOTE_ADDR": PROXY, "wsgi.url_scheme": "http", **forwarded})
    assert trusted["REMOTE_ADDR"] == SPOOFED
    assert trusted["wsgi.url_scheme"] == "https"
    real_ip = seen_environ({"REMOTE_ADDR": PROXY, "HTTP_X_REAL_IP": SPOOFED})
    assert real_ip["REMOTE_ADDR"] == SPOOFED


def test_the_wsgi_application_records_the_real_peer(
    settings: Any, alice: Persona, db: None
) -> None:
    """coditect.wsgi's application end to end: the device list shows the peer."""
    from io import BytesIO

    from coditect.wsgi import application as wsgi_application

    settings.CODITECT_TRUSTED_PROXIES = []
    body = json.dumps({"email": alice.email, "password": PASSWORD}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": AUTH + "login",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": CLIENT,
        "HTTP_X_FORWARDED_FOR": SPOOFED,
        "wsgi.input": BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": BytesIO(),
    }
    statuses: list[str] = []
    chunks = wsgi_application(environ, lambda status, headers, *_: statuses.append(status))
    pair = json.loads(b"".join(chunks))
    assert statuses == ["200 OK"], pair
    listed = json.loads(
        b"".join(
            wsgi_application(
                {
                    **environ,
                    "REQUEST_METHOD": "GET",
                    "PATH_INFO": AUTH + "sessions",
                    "CONTENT_LENGTH": "0",
                    "wsgi.input": BytesIO(),
                    "HTTP_AUTHORIZATION": f"Bearer {pair['access']}",
                },
                lambda *_: None,
            )
        )
    )
    assert [item["ip"] for item in listed["results"] if item["current"]] == [CLIENT]


# --- real daphne processes ---------------------------------------------------------------------


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def device_ip(server: Any, access: str, forwarded_for: str) -> str:
    request = urllib.request.Request(
        server.base_url + AUTH + "sessions",
        headers={"Authorization": f"Bearer {access}", "X-Forwarded-For": forwarded_for},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        listed = json.loads(response.read())
    (ip,) = [item["ip"] for item in listed["results"] if item["current"]]
    return str(ip)


def login_through(server: Any, email: str, forwarded_for: str) -> str:
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        server.base_url + AUTH + "login",
        data=body,
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return str(json.loads(response.read())["access"])


async def test_daphne_records_the_peer_unless_it_is_a_trusted_proxy(
    servers: Servers, tmp_path: Path
) -> None:
    store = shared_store(tmp_path)
    untrusted = servers.start("untrusted", base_env(store))
    trusted = servers.start("trusted", base_env(store, CODITECT_TRUSTED_PROXIES="127.0.0.1"))
    await asyncio.gather(
        asyncio.to_thread(untrusted.wait_ready), asyncio.to_thread(trusted.wait_ready)
    )
    await asyncio.to_thread(register, Http(untrusted), "Eve", "eve@example.com", "Evil")

    # Straight to daphne: the header is the client's own word.
    access = await asyncio.to_thread(login_through, untrusted, "eve@example.com", SPOOFED)
    assert await asyncio.to_thread(device_ip, untrusted, access, SPOOFED) == "127.0.0.1"
    # Through a proxy on loopback that daphne is told to trust: the proxy's word.
    access = await asyncio.to_thread(login_through, trusted, "eve@example.com", SPOOFED)
    assert await asyncio.to_thread(device_ip, trusted, access, SPOOFED) == SPOOFED

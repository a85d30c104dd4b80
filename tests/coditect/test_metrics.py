"""``GET /metrics`` after a scripted session of REST and socket traffic on a real daphne.

The daphne process is this test's own, so every count in its exposition comes from the script
below and is asserted exactly; the exposition is parsed with prometheus_client's own parser.
The storage conflict counters are checked in this process with a conflict made on purpose, and
the address check with the Django test client.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import fdb_backend
from tests.accounts.helpers import PASSWORD
from tests.coditect.test_settings import manage, shown
from tests.realtime.servers import (
    Http,
    Servers,
    base_env,
    create_session,
    net_open,
    register,
)
from tests.store import shared_store

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def scrape(base_url: str) -> tuple[set[str], Samples]:
    """The families and every sample of ``/metrics``, parsed as Prometheus parses them."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    families, samples = set(), {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_metrics_after_a_scripted_session(servers: Servers, tmp_path: Path) -> None:
    env = base_env(
        shared_store(tmp_path),
        # Logins per email: the third attempt is throttled.
        CODITECT_THROTTLE_SCALE="1",
        CODITECT_THROTTLE_LOGIN_PER_EMAIL="2",
        # A socket may send 3 messages, then none (0.01 per second): the 4th closes it 4429.
        CODITECT_WS_RATE_BURST="3",
        CODITECT_WS_RATE_PER_S="0.01",
    )
    (server,) = servers.start_all(("metrics", env))
    http = Http(server)
    _, before = scrape(server.base_url)

    # --- REST ---------------------------------------------------------------------------
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    login = {"email": "alice@example.com", "password": "wrong" + PASSWORD}
    await asyncio.to_thread(http.expect, 401, "POST", "/api/v5/auth/login", login)
    login["password"] = PASSWORD
    await asyncio.to_thread(http.expect, 200, "POST", "/api/v5/auth/login/", login)
    await asyncio.to_thread(http.expect, 429, "POST", "/api/v5/auth/login", login)
    await asyncio.to_thread(http.expect, 200, "GET", "/api/v5/auth/me", None, alice.access)
    await asyncio.to_thread(http.expect, 200, "GET", "/api/v5/auth/me/", None, alice.access)
    await asyncio.to_thread(http.expect, 401, "GET", "/api/v5/auth/me")
    session = await asyncio.to_thread(create_session, http, alice)
    detail = f"/api/v5/sessions/{session['id']}"
    await asyncio.to_thread(http.expect, 200, "GET", detail, None, alice.access)
    missing = f"/api/v5/sessions/{uuid.uuid4()}"
    await asyncio.to_thread(http.expect, 404, "GET", missing, None, alice.access)
    page = server.base_url + "/no/such/page/" + uuid.uuid4().hex
    assert await asyncio.to_thread(status_of, page) == 404

    # --- a socket: welcome, a ping, a live event from REST, a close by the client -------
    peer = await net_open(server, session["id"], alice.access, "alice")
    await peer.ping()
    events = f"{detail}/events"
    body = {"event": "build.done", "data": {"ok": True}}
    await asyncio.to_thread(http.expect, 202, "POST", events, body, alice.access)
    await peer.next("event", event="build.done")
    _, open_now = scrape(server.base_url)
    assert value(open_now, "coditect_websocket_open") == 1
    await peer.close()
    # Its leave must be fanned out before the next socket joins, or it reaches that socket
    # and adds a broadcast-lag observation (the count below was 4 about one run in two).
    await wait_closed(server.base_url, closes=1)

    # --- a second socket over its rate: closed 4429 ---------------------------------------
    flood = await net_open(server, session["id"], alice.access, "flood")
    for _ in range(4):
        await flood.send({"type": "ping", "id": flood.new_id()})
    assert await flood.expect_close(10) == 4429

    await wait_closed(server.base_url)
    families, after = scrape(server.base_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert {
        "coditect_http_requests",
        "coditect_http_request_duration_seconds",
        "coditect_websocket_open",
        "coditect_websocket_messages",
        "coditect_websocket_closes",
        "coditect_broadcast_lag_seconds",
        "coditect_storage_transaction_seconds",
        "coditect_storage_conflicts",
        "coditect_storage_retries",
        "coditect_throttle_hits",
        "coditect_logins",
        "coditect_argon2_queue_wait_seconds",
    } <= families

    # Requests by route template (one label for both slash spellings) and status.
    requests = "coditect_http_requests_total"
    assert delta(requests, method="POST", route="/api/v5/auth/register", status="201") == 1
    assert delta(requests, method="POST", route="/api/v5/auth/login", status="401") == 1
    assert delta(requests, method="POST", route="/api/v5/auth/login", status="200") == 1
    assert delta(requests, method="POST", route="/api/v5/auth/login", status="429") == 1
    assert delta(requests, method="GET", route="/api/v5/auth/me", status="200") == 2
    assert delta(requests, method="GET", route="/api/v5/auth/me", status="401") == 1
    assert delta(requests, method="POST", route="/api/v5/sessions", status="201") == 1
    route = "/api/v5/sessions/<str:session_id>"
    assert delta(requests, method="GET", route=route, status="200") == 1
    assert delta(requests, method="GET", route=route, status="404") == 1
    assert delta(requests, method="POST", route=route + "/events", status="202") == 1
    assert delta(requests, method="GET", route="unmatched", status="404") == 1
    # No path reaches a label: neither the session's id nor the unknown page.
    assert not [key for key in after if session["id"] in str(key) or "/no/such" in str(key)]
    seconds = "coditect_http_request_duration_seconds_count"
    assert delta(seconds, method="GET", route="/api/v5/auth/me", status="200") == 2
    bucket = "coditect_http_request_duration_seconds_bucket"
    assert delta(bucket, method="GET", route="/api/v5/auth/me", status="200", le="+Inf") == 2

    # Sockets: none open now; messages in and out by type; closes by code.
    assert value(after, "coditect_websocket_open") == 0
    messages = "coditect_websocket_messages_total"
    assert delta(messages, direction="out", type="welcome") == 2
    assert delta(messages, direction="in", type="ping") == 4  # 1 + the flood's 3 in its burst
    assert delta(messages, direction="out", type="pong") == 4
    assert delta(messages, direction="out", type="live") == 1
    closes = "coditect_websocket_closes_total"
    assert delta(closes, code="1000") == 1
    assert delta(closes, code="4429") == 1

    # Lags observed for events that reached a socket of this process through the fan-out:
    # each socket's own presence.join (2), and the REST event. The leaves found no socket.
    assert delta("coditect_broadcast_lag_seconds_count") == 3

    # Throttles and rate limits: the third login (over its email's limit, not its address's)
    # and the socket's message rate; nothing else was refused.
    hits = "coditect_throttle_hits_total"
    assert delta(hits, kind="throttle", scope="login_email") == 1
    assert delta(hits, kind="rate_limit", scope="ws_rate") == 1
    assert total(after, hits) - total(before, hits) == 2

    # Logins: one wrong password, one success, one throttled.
    logins = "coditect_logins_total"
    assert delta(logins, method="password", outcome="invalid_credentials") == 1
    assert delta(logins, method="password", outcome="success") == 1
    assert delta(logins, method="password", outcome="throttled") == 1

    # Argon2: registration hashed, both logins with a password checked one.
    assert delta("coditect_argon2_queue_wait_seconds_count") == 3
    # Storage: every request above ran transactions.
    assert delta("coditect_storage_transaction_seconds_count") >= 12


async def wait_closed(base_url: str, closes: int = 2) -> None:
    """Until the server has torn ``closes`` sockets down (the close reached the client first)."""
    for _ in range(100):
        _, samples = await asyncio.to_thread(scrape, base_url)
        if total(samples, "coditect_websocket_closes_total") >= closes:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sockets were not torn down")


def test_a_conflict_is_counted_with_its_retry() -> None:
    """A transaction whose read is overwritten before its commit fails 1020 and is retried."""
    db = fdb_backend.open_database("memory:")
    key = b"metrics-conflict"
    attempts: list[int] = []

    @fdb_backend.transactional
    def bump(tr: Any) -> None:
        assert tr[key] in (None, b"theirs")
        if not attempts:  # a concurrent writer commits between our read and our commit
            other = db.create_transaction()
            other[key] = b"theirs"
            other.commit().wait()
        attempts.append(1)
        tr[key] = b"ours"

    def read(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    conflicts = read("coditect_storage_conflicts_total")
    retries = read("coditect_storage_retries_total", code="1020")
    committed = read("coditect_storage_transaction_seconds_count")
    bump(db)
    assert len(attempts) == 2
    assert read("coditect_storage_conflicts_total") == conflicts + 1
    assert read("coditect_storage_retries_total", code="1020") == retries + 1
    # One transaction (its two attempts) is one latency sample.
    assert read("coditect_storage_transaction_seconds_count") == committed + 1


def test_metrics_refused_outside_the_allowed_addresses(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics/", REMOTE_ADDR="::1").status_code == 200
    for address in ("203.0.113.9", "10.0.0.1", "2001:db8::1", ""):
        response = client.get("/metrics", REMOTE_ADDR=address)
        assert response.status_code == 404, address
        assert b"coditect_" not in response.content
    # A header naming an allowed address changes nothing: only REMOTE_ADDR counts here
    # (coditect/proxies.py rewrites it for trusted proxies alone).
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert response.status_code == 404
    settings.CODITECT_METRICS_ALLOW = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_metrics_output_is_prometheus_text(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["testserver"]
    response = Client().get("/metrics")
    families = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {"coditect_http_requests", "coditect_storage_conflicts"} <= families


def test_the_grafana_dashboard_queries_families_the_server_exposes() -> None:
    """docs/deploy/grafana-dashboard.json is valid JSON, and each panel's queries name
    families of this server (a renamed metric would leave a panel empty)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text())
    exposed = {family.name for family in REGISTRY.collect()}
    titles = []
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = re.findall(r"coditect_[a-z0-9_]+", target["expr"])
            assert names, target
            for name in names:
                family = re.sub(r"_(total|bucket|count|sum)$", "", name)
                assert family in exposed, (panel["title"], name)
    for needed in ("Requests", "latency", "Errors", "Open sockets", "Broadcast lag"):
        assert [title for title in titles if needed in title], needed
    for needed in ("Storage transaction", "conflicts", "Logins"):
        assert [title for title in titles if needed in title], needed


def test_the_allowed_addresses_are_read_from_the_environment() -> None:
    memory = {"CODITECT_STORAGE_URL": "memory:"}
    assert shown("settings.CODITECT_METRICS_ALLOW", **memory) == repr(["127.0.0.1/32", "::1/128"])
    assert shown(
        "settings.CODITECT_METRICS_ALLOW", **memory, CODITECT_METRICS_ALLOW="10.0.0.0/8, 192.0.2.7"
    ) == repr(["10.0.0.0/8", "192.0.2.7/32"])
    result = manage("check", **memory, CODITECT_METRICS_ALLOW="prometheus.internal")
    assert result.returncode != 0
    assert "CODITECT_METRICS_ALLOW must list IP addresses" in result.stderr


async def test_multiprocess_mode_sums_every_process(servers: Servers, tmp_path: Path) -> None:
    """Two processes writing to one PROMETHEUS_MULTIPROC_DIR, as gunicorn's workers do: a
    scrape of either shows the requests and open sockets of both."""
    values = tmp_path / "prometheus"
    values.mkdir()
    env = base_env(shared_store(tmp_path), PROMETHEUS_MULTIPROC_DIR=str(values))
    first, second = servers.start_all(("first", env), ("second", env))
    alice = await asyncio.to_thread(register, Http(first), "Alice", "alice@example.com", "Acme")
    session = await asyncio.to_thread(create_session, Http(second), alice)
    for server, times in ((first, 2), (second, 3)):
        for _ in range(times):
            await asyncio.to_thread(Http(server).expect, 401, "GET", "/api/v5/auth/me")
    peers = [
        await net_open(server, session["id"], alice.access, server.name)
        for server in (first, second)
    ]
    for server in (first, second):
        _, samples = await asyncio.to_thread(scrape, server.base_url)
        me = {"method": "GET", "route": "/api/v5/auth/me", "status": "401"}
        assert value(samples, "coditect_http_requests_total", **me) == 5
        assert value(samples, "coditect_http_request_duration_seconds_count", **me) == 5
        assert value(samples, "coditect_websocket_open") == 2
    for peer in peers:
        await peer.close()

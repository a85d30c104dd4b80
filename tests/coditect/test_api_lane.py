"""The API lane (coditect/api_lane.py): API requests under daphne through the sync handler in
one thread hop, lean ones on the storage pool holding a turn throughout."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from coditect.api_lane import THREADS, ApiLane
from coditect.asgi import application
from fdb_backend.pool import api_threads, storage_turns
from tests.coditect import urls
from tests.coditect.rest_servers import serving
from tests.realtime.servers import Http, Server, base_env, register
from tests.store import shared_store

pytestmark = pytest.mark.urls("tests.coditect.urls")

WAIT_S = 5


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "client": ["127.0.0.1", 40000],
        "headers": [(b"host", b"testserver"), *(headers or [])],
    }


async def _answer(
    communicator: ApplicationCommunicator,
) -> tuple[int, dict[str, str], list[dict[str, Any]]]:
    start = await communicator.receive_output(WAIT_S)
    parts = []
    while True:
        part = await communicator.receive_output(WAIT_S)
        parts.append(part)
        if not part.get("more_body"):
            break
    await communicator.wait(WAIT_S)
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, parts


async def _parts(
    method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], list[dict[str, Any]]]:
    """One request whose body comes whole; the answer's body messages as they came."""
    scope = _scope(method, path.partition("?")[0], headers)
    scope["query_string"] = path.partition("?")[2].encode("latin1")
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    return await _answer(communicator)


async def _request(method: str, path: str, *bodies: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request whose body comes in ``bodies`` messages, as a client may send it."""
    length = str(sum(map(len, bodies))).encode()
    scope = _scope(
        method, path, [(b"content-type", b"application/json"), (b"content-length", length)]
    )
    communicator = ApplicationCommunicator(application, scope)
    chunks = list(bodies) or [b""]
    for index, chunk in enumerate(chunks):
        more = index < len(chunks) - 1
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": more})
    status, headers, parts = await _answer(communicator)
    return status, headers, b"".join(part.get("body", b"") for part in parts)


@pytest.fixture
def where() -> Iterator[dict[str, Any]]:
    urls.WHERE.clear()
    request_started.connect(urls.note_where)
    yield urls.WHERE
    request_started.disconnect(urls.note_where)


async def test_a_body_in_several_messages_is_read_whole() -> None:
    body = json.dumps({"items": list(range(2000))}).encode()
    status, _, content = await _request(
        "POST", "/api/test/echo", body[:10], body[10:5000], body[5000:]
    )
    assert status == 200, content
    assert json.loads(content) == {"echo": {"items": list(range(2000))}}


async def test_a_client_gone_before_its_body_is_whole_gets_no_answer(where: dict[str, Any]) -> None:
    communicator = ApplicationCommunicator(application, _scope("POST", "/api/test/echo"))
    await communicator.send_input({"type": "http.request", "body": b"{", "more_body": True})
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(WAIT_S)
    assert await communicator.receive_nothing()
    assert where == {}  # no request was started


async def test_a_lean_request_holds_a_storage_turn_from_its_start(where: dict[str, Any]) -> None:
    status, _, content = await _request("GET", "/api/test/where")
    assert status == 200, content
    # On the storage pool, and the process's one turn (embedded engine) already held when
    # Django's request_started fires: the middleware runs in the turn too, not beside it.
    assert where["thread"].startswith("api_"), where
    assert where["turn_free"] is False


async def test_other_api_requests_run_beside_the_storage_pool(where: dict[str, Any]) -> None:
    status, _, content = await _request("POST", "/api/test/where", b"{}")
    assert status == 200, content
    assert where["thread"].startswith("api-request_"), where
    assert where["turn_free"] is True


async def test_a_streamed_answer_is_sent_in_parts() -> None:
    status, headers, parts = await _parts("GET", "/api/test/stream")
    assert status == 200
    assert headers["content-type"] == "text/csv"
    assert [part["body"] for part in parts] == [b"one,", b"two,", b"three", b""]
    assert [part.get("more_body", False) for part in parts] == [True, True, True, False]


async def test_a_crash_in_the_lane_is_a_problem_not_a_dropped_request() -> None:
    status, headers, content = await _request("GET", "/api/test/raise/crash")
    assert status == 500
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(content)["code"] == "server_error"


async def test_pages_go_to_djangos_asgi_handler() -> None:
    status, headers, _ = await _parts("GET", "/admin/login/")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"


# What Django's ASGI handler answered on API paths, the lane answers too.


async def _call(
    method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    status, answer, parts = await _parts(method, path, headers, body)
    return status, answer, b"".join(part.get("body", b"") for part in parts)


@pytest.fixture
def finished() -> Iterator[list[object]]:
    calls: list[object] = []

    def note(**kwargs: Any) -> None:
        calls.append(kwargs.get("sender"))

    request_finished.connect(note)
    yield calls
    request_finished.disconnect(note)


async def test_a_query_string_not_in_utf8_is_a_400_and_the_request_finishes(
    finished: list[object],
) -> None:
    # ASGIRequest cannot decode it: Django's handler answers 400 and closes that answer, which
    # sends request_finished (the request id is cleared, old DB connections are closed).
    status, answer, content = await _call("GET", "/api/test/where?q=%ff\xff")
    assert status == 400
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["code"] == "bad_request"
    assert len(finished) == 1


async def test_a_header_parameter_in_an_unknown_encoding_is_a_400_problem() -> None:
    # Django's request parsing raises ValueError for it; uncaught, the server answered its
    # own 500 page and logged a traceback, for any client that sent such a header.
    content_type = b"application/json; charset*=no-such-codec''x"
    headers = [(b"content-type", content_type), (b"content-length", b"2")]
    status, answer, content = await _call("POST", "/api/test/echo", headers, b"{}")
    assert status == 400
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["code"] == "bad_request"


async def test_a_preflight_on_an_api_path_is_answered_by_cors(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    headers = [
        (b"origin", b"https://ide.example.com"),
        (b"access-control-request-method", b"GET"),
    ]
    status, answer, _ = await _call("OPTIONS", "/api/test/where", headers)
    assert status == 200
    assert answer["access-control-allow-origin"] == "https://ide.example.com"


async def test_a_method_the_route_does_not_serve_is_a_405_problem() -> None:
    status, answer, content = await _call("DELETE", "/api/test/where")
    assert status == 405
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["status"] == 405


async def test_an_unknown_api_route_is_a_404_problem_counted_as_unmatched() -> None:
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    before = REGISTRY.get_sample_value("coditect_http_requests_total", labels) or 0.0
    status, answer, content = await _call("GET", "/api/no/such/route")
    assert status == 404
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["status"] == 404
    assert REGISTRY.get_sample_value("coditect_http_requests_total", labels) == before + 1


async def test_lane_requests_are_counted_and_logged_by_route_template(
    caplog: pytest.LogCaptureFixture,
) -> None:
    labels = {"method": "GET", "route": "/api/test/raise/<str:kind>", "status": "404"}
    before = REGISTRY.get_sample_value("coditect_http_requests_total", labels) or 0.0
    with caplog.at_level(logging.INFO, logger="coditect.access"):
        status, answer, _ = await _call(
            "GET", "/api/test/raise/not_found", [(b"x-request-id", b"trace-42")]
        )
    assert status == 404
    assert answer["x-request-id"] == "trace-42"
    assert REGISTRY.get_sample_value("coditect_http_requests_total", labels) == before + 1
    [line] = [r for r in caplog.records if r.name == "coditect.access"]
    assert line.getMessage().startswith("GET /api/test/raise/<str:kind> 404 ")


async def test_a_host_not_served_is_a_400_problem() -> None:
    scope = _scope("GET", "/api/test/where")
    scope["headers"] = [(b"host", b"evil.example")]
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    status, answer, parts = await _answer(communicator)
    assert status == 400
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(parts[0]["body"])["code"] == "bad_request"


async def test_a_declared_body_over_the_limit_is_a_413_problem(settings: Any) -> None:
    settings.CODITECT_MAX_BODY_BYTES = 10
    length = [(b"content-length", b"11"), (b"content-type", b"application/json")]
    status, answer, content = await _call("POST", "/api/test/echo", length, b'{"a": "bcd"}'[:11])
    assert status == 413
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["code"] == "body_too_large"


async def test_head_is_answered_as_get_is() -> None:
    # The body goes to the server as Django's ASGI handler sent it; daphne (Twisted) leaves
    # it out of a HEAD answer.
    status, answer, _ = await _call("HEAD", "/api/test/where")
    assert status == 200
    assert answer["content-type"] == "application/json"


def _free_turns() -> int:
    """How many storage turns are free now (taken and given back to count them)."""
    turns = storage_turns()
    taken = 0
    while turns.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        turns.release()
    return taken


async def test_a_commit_gives_the_whole_requests_turn_back_once() -> None:
    # The lane's turn is given back by the commit's waiting(); neither the lean middleware's
    # turn within it nor the lane's may give it back a second time (one turn too many after).
    free = _free_turns()
    for _ in range(3):
        status, _, content = await _call("GET", "/api/test/commit")
        assert status == 200, content
    assert _free_turns() == free == api_threads()


JSON_2 = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def test_many_requests_at_once_all_get_their_answer() -> None:
    # More lean requests than the storage pool has threads, beside requests on the other pool.
    calls = [
        *(_call("GET", "/api/test/commit") for _ in range(12)),
        *(_call("GET", "/api/test/where") for _ in range(12)),
        *(_call("POST", "/api/test/echo", JSON_2, b"{}") for _ in range(12)),
    ]
    answers = await asyncio.wait_for(asyncio.gather(*calls), WAIT_S)
    assert [status for status, _, _ in answers] == [200] * len(calls)
    assert _free_turns() == api_threads()


@pytest.fixture
def held() -> Iterator[dict[str, threading.Event]]:
    for event in urls.HELD.values():
        event.clear()
    yield urls.HELD
    urls.HELD["go"].set()


async def test_a_client_gone_while_its_request_runs_leaves_no_turn_taken(
    held: dict[str, threading.Event], finished: list[object]
) -> None:
    communicator = ApplicationCommunicator(application, _scope("GET", "/api/test/held"))
    await communicator.send_input({"type": "http.request", "body": b""})
    assert await asyncio.to_thread(held["started"].wait, WAIT_S)
    await communicator.send_input({"type": "http.disconnect"})
    held["go"].set()
    # The answer is sent (daphne drops it for a closed connection) and the app ends.
    status, _, _ = await _answer(communicator)
    assert status == 200
    assert len(finished) == 1
    assert _free_turns() == api_threads()


async def test_a_request_cancelled_by_the_server_still_gives_its_turn_back(
    held: dict[str, threading.Event],
) -> None:
    # Daphne cancels an application that outlives its client by application_close_timeout;
    # the thread cannot be stopped, but when its view returns, the turn is free again.
    communicator = ApplicationCommunicator(application, _scope("GET", "/api/test/held"))
    await communicator.send_input({"type": "http.request", "body": b""})
    assert await asyncio.to_thread(held["started"].wait, WAIT_S)
    communicator.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.future
    assert _free_turns() == 0
    held["go"].set()
    for _ in range(100):
        if _free_turns() == api_threads():
            break
        await asyncio.sleep(0.02)
    assert _free_turns() == api_threads()


@pytest.mark.slow
@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_a_real_server_answers_one_connection_after_another_through_the_lane(
    tmp_path: Path, server_kind: str
) -> None:
    # On one kept-alive connection: a HEAD answer without its body (or the next answer would
    # not parse), a body in several messages, a declared body over the limit left unread.
    env = base_env(shared_store(tmp_path), CODITECT_MAX_BODY_BYTES="30000")
    with serving(server_kind, tmp_path, env) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

        def problem(method: str, body: bytes | None = None, length: int | None = None) -> Any:
            headers = {"Content-Type": "application/json"}
            if length is not None:
                headers["Content-Length"] = str(length)
            connection.request(method, "/api/v5/auth/login", body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert response.headers["X-Request-ID"]
            return response.status, json.loads(content) if content else None

        assert problem("HEAD") == (405, None)
        status, body = problem("GET")
        assert (status, body["status"]) == (405, 405)
        login = json.dumps({"email": "nobody@example.com", "password": "p" * 20_000}).encode()
        status, body = problem("POST", login)  # in several messages (daphne: 8 KiB each)
        assert status in (400, 401) and body["status"] == status, body
        status, body = problem("POST", b"{" + b" " * 30_000 + b"}", 30_002)
        assert (status, body["code"]) == (413, "body_too_large")
        assert problem("GET")[0] == 405  # the connection goes on past the unread body
        connection.close()


def _raw_create(server: Server, token: str, name: str) -> socket.socket:
    """A connection that sent a create, whole, and has not read its answer."""
    body = json.dumps({"name": name, "workspace_path": "/srv/" + name}).encode()
    head = (
        f"POST /api/v5/sessions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    connection.sendall(head.encode() + body)
    return connection


def _status_of(connection: socket.socket) -> int:
    with connection, connection.makefile("rb") as answer:
        return int(answer.readline().split()[1])


def _not_run(server: Server) -> float:
    """``coditect_http_requests`` of creates not run (499) in the server's ``/metrics``."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    labels = {"method": "POST", "route": "/api/v5/sessions", "status": "499"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "coditect_http_requests_total" and sample.labels == labels:
                return sample.value
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_a_request_whose_client_left_while_it_waited_is_not_run(
    tmp_path: Path, server_kind: str
) -> None:
    # An overloaded process: its one storage turn held (by a view the test lets go), two
    # creates wait for it; the client of one of them times out and closes its connection.
    # That create is not made when the turn comes; the other one is.
    env = base_env(
        shared_store(tmp_path),
        DJANGO_SETTINGS_MODULE="tests.coditect.server_settings",
        CODITECT_API_THREADS="1",
    )
    with serving(server_kind, tmp_path, env) as server:
        http = Http(server)
        account = register(http, "Alice", "alice@example.com")
        holder = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        holder.sendall(b"GET /api/test/held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        http.expect(200, "GET", "/test/held/started")  # it holds the turn now
        left = _raw_create(server, account.access, "left")
        stayed = _raw_create(server, account.access, "stayed")
        # A page answered after both creates were read (they came first, each in one read)
        # and queued for the turn, on the lane; then the client of one goes away.
        http.expect(200, "GET", "/test/held/started")
        left.close()
        # The close reaches the event loop before this page, which goes through Django's
        # handler and a thread of its own before it lets the held view go.
        http.expect(200, "GET", "/test/held/go")
        assert _status_of(holder) == 200
        assert _status_of(stayed) == 201, server.log()
        listed = http.expect(200, "GET", "/api/v5/sessions", token=account.access)
        assert [session["name"] for session in listed["results"]] == ["stayed"]
        assert _not_run(server) == 1  # counted (and logged) as 499, client closed request


async def test_the_time_a_lean_request_waits_for_its_turn_is_in_its_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As under Django's ASGI handler (the view waited for the pool inside the middleware) and
    # under WSGI (the lean middleware waits for the turn): a process whose requests queue for
    # storage shows it in its latency histogram and access lines, not only in its clients'.
    labels = {"method": "GET", "route": "/api/test/where", "status": "200"}
    name = "coditect_http_request_duration_seconds_sum"
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    turns = storage_turns()
    taken = [turns.acquire(blocking=False) for _ in range(api_threads())]
    assert all(taken)
    with caplog.at_level(logging.INFO, logger="coditect.access"):
        answer = asyncio.ensure_future(_call("GET", "/api/test/where"))
        await asyncio.sleep(0.3)
        for _ in taken:
            turns.release()
        status, _, _ = await answer
    assert status == 200
    assert (REGISTRY.get_sample_value(name, labels) or 0.0) - before >= 0.3
    [line] = [r for r in caplog.records if r.name == "coditect.access"]
    assert line.__dict__["duration_ms"] >= 300


def _crash(**kwargs: Any) -> None:
    raise RuntimeError("a request_started receiver crashed")


@pytest.mark.parametrize("path", ["/api/test/where", "/api/test/echo"])  # lean, other
async def test_a_crash_outside_the_middleware_is_a_500_problem_at_once(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Outside get_response nothing turned it into a problem: the exception left the
    # application, and daphne answered its HTML page at its next check, up to a second later.
    request_started.connect(_crash)
    try:
        with caplog.at_level(logging.ERROR, logger="django.request"):
            status, answer, content = await _call("GET", path)
    finally:
        request_started.disconnect(_crash)
    assert status == 500
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(content)["code"] == "server_error"
    assert any(r.exc_info and "receiver crashed" in str(r.exc_info[1]) for r in caplog.records)
    assert _free_turns() == api_threads()


async def test_each_cookie_is_a_set_cookie_header_of_its_own() -> None:
    communicator = ApplicationCommunicator(application, _scope("GET", "/api/test/cookies"))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(WAIT_S)
    await communicator.receive_output(WAIT_S)
    cookies = [value for name, value in start["headers"] if name.lower() == b"set-cookie"]
    assert cookies == [b"first=1; Path=/api/", b"second=2; HttpOnly; Path=/"]


async def test_other_scopes_go_on_to_the_app_it_wraps() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: dict[str, Any]) -> None:
        return None

    lane = ApiLane(inner)
    await lane({"type": "lifespan"}, receive, send)
    await lane({"type": "websocket", "path": "/api/v5/x"}, receive, send)
    assert seen == ["lifespan", "websocket"]


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    settings: Any,
) -> None:
    # The middleware refuses it on its declared length: reading it first only spooled up to
    # the client's whole upload to disk (uvicorn has no limit of its own), and kept a client
    # that waits for "100 Continue" waiting for its answer.
    settings.CODITECT_MAX_BODY_BYTES = 10
    headers = [(b"content-length", b"11"), (b"content-type", b"application/json")]
    communicator = ApplicationCommunicator(application, _scope("POST", "/api/test/echo", headers))
    status, answer, parts = await _answer(communicator)  # no body sent at all
    assert status == 413
    assert answer["content-type"].startswith("application/problem+json")
    assert json.loads(parts[0]["body"])["code"] == "body_too_large"


async def _fill_the_other_pool(held: dict[str, threading.Event]) -> list[Any]:
    """Every thread of the pool of requests that are not lean busy in a held view; their
    communicators, to read the answers once the test lets them go."""
    scope = _scope("POST", "/api/test/held", JSON_2)
    blocked = [ApplicationCommunicator(application, scope) for _ in range(THREADS)]
    for communicator in blocked:
        await communicator.send_input({"type": "http.request", "body": b"{}"})
    assert await asyncio.to_thread(held["started"].wait, WAIT_S)
    return blocked


async def test_other_requests_that_fill_their_pool_hold_up_no_lean_request(
    held: dict[str, threading.Event],
) -> None:
    # Logins waiting for a hash (here: views waiting for the test) take the other pool's
    # threads, never the storage pool's; a ninth waits for one of them.
    blocked = await _fill_the_other_pool(held)
    status, _, _ = await asyncio.wait_for(_call("GET", "/api/test/where"), WAIT_S)
    assert status == 200
    ninth = asyncio.ensure_future(_call("POST", "/api/test/echo", JSON_2, b"{}"))
    await asyncio.sleep(0.2)
    assert not ninth.done()
    held["go"].set()
    assert (await asyncio.wait_for(ninth, WAIT_S))[0] == 200
    for communicator in blocked:
        assert (await _answer(communicator))[0] == 200


async def test_a_request_whose_client_left_before_a_thread_took_it_is_not_run(
    held: dict[str, threading.Event],
    finished: list[object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every thread of the other pool busy: a ninth request waits for one, and its client
    # leaves meanwhile. When a thread takes it, it is not run (no request_started, no view),
    # only counted and logged as 499; the one whose client stayed is run.
    blocked = await _fill_the_other_pool(held)
    gone = ApplicationCommunicator(application, _scope("POST", "/api/test/where", JSON_2))
    await gone.send_input({"type": "http.request", "body": b"{}"})
    await gone.send_input({"type": "http.disconnect"})
    # One turn of the loop: the lane's task, woken by the message, hears the disconnect.
    await asyncio.sleep(0)
    labels = {"method": "POST", "route": "/api/test/where", "status": "499"}
    before = REGISTRY.get_sample_value("coditect_http_requests_total", labels) or 0.0
    with caplog.at_level(logging.INFO, logger="coditect.access"):
        held["go"].set()
        for communicator in blocked:
            assert (await _answer(communicator))[0] == 200
        await gone.wait(WAIT_S)  # ended without an answer: nobody to send it to
        assert gone.output_queue.empty()
    assert len(finished) == THREADS  # the held ones: the other was never started
    assert REGISTRY.get_sample_value("coditect_http_requests_total", labels) == before + 1
    [line] = [r for r in caplog.records if r.__dict__.get("status") == 499]
    assert (line.__dict__["method"], line.__dict__["route"]) == ("POST", "/api/test/where")
    # The same request with its client still there is run.
    assert (await _call("POST", "/api/test/where", JSON_2, b"{}"))[0] == 200
    assert len(finished) == THREADS + 1


async def test_answers_carry_their_length_except_where_none_is_allowed() -> None:
    # A length lets the server send the answer whole rather than chunked; a 204 has none.
    status, headers, content = await _request("POST", "/api/test/echo", b'{"a": 1}')
    assert status == 200
    assert headers["content-length"] == str(len(content))
    status, headers, content = await _request("GET", "/api/test/raise/crash")
    assert status == 500
    assert headers["content-length"] == str(len(content))
    status, headers, _ = await _request("GET", "/api/test/no-content")
    assert status == 204
    assert "content-length" not in headers

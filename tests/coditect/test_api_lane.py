"""The API lane (coditect/api_lane.py): API requests under daphne through the sync handler in
one thread hop, lean ones on the storage pool holding a turn throughout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started

from coditect.asgi import application
from tests.coditect import urls

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
    communicator = ApplicationCommunicator(application, _scope("GET", "/api/test/stream"))
    await communicator.send_input({"type": "http.request", "body": b""})
    status, headers, parts = await _answer(communicator)
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
    communicator = ApplicationCommunicator(application, _scope("GET", "/admin/login/"))
    await communicator.send_input({"type": "http.request", "body": b""})
    status, headers, _ = await _answer(communicator)
    assert status == 200
    assert headers["x-frame-options"] == "DENY"


# What Django's ASGI handler answered on API paths, the lane answers too.


async def _call(
    method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    scope = _scope(method, path.partition("?")[0], headers)
    scope["query_string"] = path.partition("?")[2].encode("latin1")
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    status, answer, parts = await _answer(communicator)
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
    status, _, _ = await _call("GET", "/api/test/where?q=%ff\xff")
    assert status == 400
    assert len(finished) == 1

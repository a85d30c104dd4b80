"""Request bodies sent with ``Transfer-Encoding: chunked`` (no Content-Length) on the API.

Many HTTP clients send a body that way when given a stream or a generator. Without its
length Django and DRF took such a body for none: a create answered 400 about missing fields,
a PATCH did nothing. Under every server that runs the API (uvicorn and daphne through the
API lane, gunicorn through Django's WSGI handler) it must be read as the same body with a
Content-Length, and CODITECT_MAX_BODY_BYTES must hold for it too.
"""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator
from django.test import Client

from coditect.asgi import application
from tests.coditect.rest_servers import serving
from tests.realtime.servers import Http, Server, base_env, register
from tests.store import shared_store

LIMIT = 30_000
WAIT_S = 5


# --- in the process: the WSGI request of Django's test client, the lane's ASGI request ------


def _post_chunked(client: Client, body: bytes, wsgi_input: io.BytesIO | None) -> Any:
    """A POST whose environ is a chunked one's: no CONTENT_LENGTH, and, when ``wsgi_input``
    is given, the decoded body there with ``wsgi.input_terminated`` as gunicorn sets it."""
    environ: dict[str, Any] = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    if wsgi_input is not None:
        environ |= {"wsgi.input": wsgi_input, "wsgi.input_terminated": True}
    return client.post("/api/test/echo", body, content_type="application/json", **environ)


@pytest.mark.urls("tests.coditect.urls")
def test_a_wsgi_server_that_ends_the_input_gives_the_chunked_body(client: Client) -> None:
    # As gunicorn hands it: the chunks decoded in wsgi.input, which ends with the body.
    body = b'{"items": [1, 2]}'
    response = _post_chunked(client, body, io.BytesIO(body))
    assert response.status_code == 200, response.content
    assert response.json() == {"echo": {"items": [1, 2]}}


@pytest.mark.urls("tests.coditect.urls")
def test_a_chunked_body_over_the_limit_under_wsgi_is_a_413(client: Client, settings: Any) -> None:
    settings.CODITECT_MAX_BODY_BYTES = 10
    body = b'{"a": "bcdefgh"}'
    wsgi_input = io.BytesIO(body)
    response = _post_chunked(client, body, wsgi_input)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert wsgi_input.tell() == 11  # read no further than one byte past the limit


@pytest.mark.urls("tests.coditect.urls")
def test_a_wsgi_server_that_cannot_end_the_input_answers_411(client: Client) -> None:
    # Without wsgi.input_terminated the input may not be read past a Content-Length there is
    # not: rather than a request taken for bodiless, the client is told to send one.
    body = b'{"items": [1, 2]}'
    response = _post_chunked(client, body, None)
    assert response.status_code == 411
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "length_required"


def _lane_scope() -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/api/test/echo",
        "query_string": b"",
        "client": ["127.0.0.1", 40000],
        "headers": [(b"host", b"testserver"), *headers],
    }


async def _lane_answer(communicator: ApplicationCommunicator) -> tuple[int, dict[str, Any]]:
    start = await communicator.receive_output(WAIT_S)
    part = await communicator.receive_output(WAIT_S)
    return start["status"], json.loads(part["body"])


@pytest.mark.urls("tests.coditect.urls")
async def test_the_lane_gives_a_chunked_body_its_length() -> None:
    communicator = ApplicationCommunicator(application, _lane_scope())
    for part in (b'{"items"', b": [1, ", b"2]}"):
        await communicator.send_input({"type": "http.request", "body": part, "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b""})
    assert await _lane_answer(communicator) == (200, {"echo": {"items": [1, 2]}})
    await communicator.wait(WAIT_S)


@pytest.mark.urls("tests.coditect.urls")
async def test_the_lane_reads_a_chunked_body_no_further_than_past_the_limit(settings: Any) -> None:
    settings.CODITECT_MAX_BODY_BYTES = 10
    communicator = ApplicationCommunicator(application, _lane_scope())
    # The body goes on (more_body) but is never whole: the answer comes on the 11th byte.
    for part in (b'{"a": ', b'"bcdef', b'gh"'):
        await communicator.send_input({"type": "http.request", "body": part, "more_body": True})
    status, problem = await _lane_answer(communicator)
    assert (status, problem["code"]) == (413, "body_too_large")
    await communicator.wait(WAIT_S)


# --- real servers ----------------------------------------------------------------------


@pytest.fixture(params=["uvicorn", "daphne", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env = base_env(shared_store(tmp_path), CODITECT_MAX_BODY_BYTES=str(LIMIT))
    with serving(request.param, tmp_path, env) as started:
        yield started


def _chunked(
    server: Server, method: str, path: str, parts: list[bytes], token: str
) -> tuple[int, dict[str, str], Any]:
    """One request whose body goes in ``parts`` chunks, with no Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        # An iterable body and no length: http.client sends it chunked, a chunk per part.
        connection.request(method, path, body=iter(parts), headers=headers)
        response = connection.getresponse()
        raw = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(raw) if raw else None
    finally:
        connection.close()


def _split(body: bytes, size: int = 7) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.slow
def test_a_chunked_create_and_patch_are_read_like_bodies_with_a_length(server: Server) -> None:
    account = register(Http(server), "Alice", "alice@example.com")
    fields = {"name": "chunked", "workspace_path": "/srv/chunked"}
    status, _, created = _chunked(
        server, "POST", "/api/v5/sessions", _split(json.dumps(fields).encode()), account.access
    )
    assert status == 201, (created, server.log())
    assert {name: created[name] for name in fields} == fields
    url = f"/api/v5/sessions/{created['id']}"
    status, _, patched = _chunked(
        server, "PATCH", url, _split(b'{"name": "renamed"}'), account.access
    )
    assert (status, patched["name"]) == (200, "renamed"), (patched, server.log())
    answer = Http(server).expect(200, "GET", url, token=account.access)
    assert answer["name"] == "renamed"


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_a_413_problem(server: Server) -> None:
    account = register(Http(server), "Alice", "alice@example.com")
    body = json.dumps({"name": "x" * LIMIT, "workspace_path": "/srv/big"}).encode()
    status, headers, problem = _chunked(
        server, "POST", "/api/v5/sessions", _split(body, 4096), account.access
    )
    assert headers["content-type"].startswith("application/problem+json"), problem
    assert (status, problem["code"]) == (413, "body_too_large"), (problem, server.log())
    # Nothing was made of it.
    listed = Http(server).expect(200, "GET", "/api/v5/sessions", token=account.access)
    assert listed["results"] == []

"""API request bodies with neither Content-Length nor Transfer-Encoding, under ASGI.

An ASGI server speaking HTTP/2 (hypercorn, daphne with h2) hands the application a request
body in ``http.request`` messages, one per DATA frame, with neither header: HTTP/2 frames its
own messages. Django and DRF took such a body for none (a create answered 400, a PATCH changed
nothing); it must be read as the same body with a Content-Length, within
CODITECT_MAX_BODY_BYTES (coditect/middleware.py ``reject_large_body``).
"""

from __future__ import annotations

import json
from typing import Any

from channels.testing import ApplicationCommunicator

from coditect.asgi import application
from tests.accounts.conftest import accounts_environment, alice, api
from tests.accounts.helpers import Persona
from tests.workspaces.conftest import sessions
from tests.workspaces.helpers import SessionApi, create_session

__all__ = ["accounts_environment", "alice", "api", "sessions"]

WAIT_S = 10


def _scope(method: str, path: str, token: str) -> dict[str, Any]:
    # As an HTTP/2 server gives it: no content-length, no transfer-encoding.
    return {
        "type": "http",
        "http_version": "2",
        "method": method,
        "path": path,
        "query_string": b"",
        "client": ["127.0.0.1", 40000],
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
    }


async def _send(
    method: str, path: str, token: str, frames: list[bytes], *, ended: bool = True
) -> tuple[int, Any]:
    """One request whose body comes in ``frames``, one message each (the last one ends the
    body unless ``ended`` is False: then it never ends)."""
    communicator = ApplicationCommunicator(application, _scope(method, path, token))
    for index, frame in enumerate(frames):
        more = not ended or index < len(frames) - 1
        await communicator.send_input({"type": "http.request", "body": frame, "more_body": more})
    start = await communicator.receive_output(WAIT_S)
    part = await communicator.receive_output(WAIT_S)
    await communicator.wait(WAIT_S)
    return start["status"], json.loads(part["body"]) if part["body"] else None


def _frames(body: Any, size: int = 9) -> list[bytes]:
    raw = json.dumps(body).encode()
    return [raw[i : i + size] for i in range(0, len(raw), size)]


async def test_a_create_without_a_length_is_read_whole(alice: Persona) -> None:
    fields = {"name": "over h2", "workspace_path": "/srv/h2"}
    status, created = await _send("POST", "/api/v5/sessions", alice.access, _frames(fields))
    assert status == 201, created
    assert {name: created[name] for name in fields} == fields


async def test_a_patch_without_a_length_changes_the_session(
    alice: Persona, sessions: SessionApi
) -> None:
    created = create_session(sessions, alice, name="before", workspace_path="/srv/h2")
    url = f"/api/v5/sessions/{created['id']}"
    status, patched = await _send("PATCH", url, alice.access, _frames({"name": "renamed"}))
    assert (status, patched["name"]) == (200, "renamed"), patched
    status, read = await _send("GET", url, alice.access, [b""])
    assert (status, read["name"], read["version"]) == (200, "renamed", 2)


async def test_a_body_without_a_length_over_the_limit_is_a_413(
    alice: Persona, settings: Any
) -> None:
    settings.CODITECT_MAX_BODY_BYTES = 40
    fields = {"name": "x" * 40, "workspace_path": "/srv/big"}
    status, problem = await _send("POST", "/api/v5/sessions", alice.access, _frames(fields))
    assert (status, problem["code"]) == (413, "body_too_large")
    # The lane reads it no further than one byte past the limit: a body that never ends
    # is answered all the same, and nothing is made of it.
    status, problem = await _send(
        "POST", "/api/v5/sessions", alice.access, _frames(fields), ended=False
    )
    assert (status, problem["code"]) == (413, "body_too_large")
    settings.CODITECT_MAX_BODY_BYTES = 2_000_000
    status, listed = await _send("GET", "/api/v5/sessions", alice.access, [b""])
    assert (status, listed["results"]) == (200, [])

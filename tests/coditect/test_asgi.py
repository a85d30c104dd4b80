"""The ASGI application as daphne runs it: HTTP through the async middleware, WebSocket guarded."""

import json

from channels.testing import ApplicationCommunicator, WebsocketCommunicator

from coditect.asgi import _websocket_routes, application


async def http(method: str, path: str, body: bytes = b"", headers=()):
    """(status, headers, body) of one request; the body may come in several chunks."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(5)
    content = b""
    while True:
        chunk = await communicator.receive_output(5)
        content += chunk.get("body", b"")
        if not chunk.get("more_body"):
            break
    await communicator.wait(5)
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


async def test_http_goes_to_django():
    status, headers, body = await http("GET", "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert len(headers["x-request-id"]) == 32


async def test_api_errors_are_problems_on_the_async_path():
    status, headers, body = await http("POST", "/api/v5/none", b"{", [(b"x-request-id", b"r-1")])
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["request_id"] == "r-1"


async def test_admin_static_files_are_served():
    status, headers, body = await http("GET", "/static/admin/css/base.css")
    assert status == 200
    assert headers["content-type"].startswith("text/css")
    assert body


async def test_websocket_from_another_site_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/sessions/x/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_websocket_to_an_unknown_path_is_refused_not_crashed():
    # The routes without the origin check in front, which would refuse first.
    communicator = WebsocketCommunicator(_websocket_routes(), "/ws/nothing/")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait(5)

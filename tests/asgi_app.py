"""Django's test client interface, each request sent through ``coditect.asgi.application``:
the ASGI app daphne serves, API lane (coditect/api_lane.py) and all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from asgiref.sync import async_to_sync
from channels.testing import ApplicationCommunicator
from django.http import HttpResponse
from django.test import AsyncClient, Client

from coditect.asgi import application

WAIT_S = 10


class _Answer(HttpResponse):
    asgi_request: Any  # what AsyncClient reads back from the response it is handed


class _ApplicationHandler:
    """What AsyncClient calls with its scope: the application, as daphne would call it."""

    async def __call__(self, scope: dict[str, Any]) -> HttpResponse:
        body_file = scope.pop("_body_file", None)
        body = body_file.read() if body_file is not None else b""
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": body})
        start = await communicator.receive_output(WAIT_S)
        content = b""
        while True:
            part = await communicator.receive_output(WAIT_S)
            content += part.get("body", b"")
            if not part.get("more_body"):
                break
        await communicator.wait(WAIT_S)
        response = _Answer(content, status=start["status"])
        del response["Content-Type"]
        for name, value in start["headers"]:
            if name.lower() == b"set-cookie":
                response.cookies.load(value.decode("latin1"))
            else:
                response.headers[name.decode("latin1")] = value.decode("latin1")
        response.asgi_request = SimpleNamespace(urlconf=None)
        return response


class AppClient:
    """Django's sync test client interface over the ASGI application."""

    def __init__(self) -> None:
        self._client = AsyncClient()
        # The stubs type the handler as Django's class; AsyncClient only calls it with a scope
        # and reads the response's status, headers, content and asgi_request.
        self._client.handler = _ApplicationHandler()  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **extra: Any) -> Any:
            # The sync client takes headers as WSGI environ keys (HTTP_AUTHORIZATION=...);
            # AsyncClient wants them as headers.
            headers = dict(extra.pop("headers", None) or {})
            for key in [key for key in extra if key.startswith("HTTP_")]:
                headers[key[5:].replace("_", "-")] = extra.pop(key)
            return async_to_sync(method)(*args, headers=headers, **extra)

        return call


def app_client() -> Client:
    """An ``AppClient`` where the test helpers take Django's ``Client``: it answers the same
    calls with the same arguments, without being one."""
    return cast(Client, AppClient())

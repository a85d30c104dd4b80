"""One id per request, taken from a proxy's X-Request-ID or made here, echoed to the client.

Clients quote it when they report a problem; problem+json bodies carry it too. It is also in a
context variable while the request is handled, so every log line written meanwhile carries it
(coditect/logging_setup.py); a WebSocket's lines carry its connection id the same way.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from django.http import HttpRequest
from django.http.response import HttpResponseBase

HEADER = "X-Request-ID"
_META_KEY = "core.request_id"
# What proxies and tracing tools send (UUIDs, hex, AWS trace ids); anything else, for instance
# an attempt to smuggle text into our logs, is replaced.
_SANE = re.compile(r"[A-Za-z0-9._:+=/@-]{1,128}")

# Under ASGI each request and each socket runs in its own task, whose context the pool threads
# it uses inherit (sync_to_async copies it); under WSGI request_finished clears it.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
current_connection_id: ContextVar[str | None] = ContextVar("connection_id", default=None)


def request_id_of(request: HttpRequest) -> str:
    """The request's id; made on first use for requests that bypassed the middleware."""
    request_id = request.META.get(_META_KEY)
    if request_id is None:
        request_id = request.META[_META_KEY] = uuid.uuid4().hex
        current_request_id.set(request_id)
    return str(request_id)


def assign_request_id(request: HttpRequest) -> None:
    # From META, not request.headers: that builds a dict of every header on first use.
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    request_id = incoming if _SANE.fullmatch(incoming) else uuid.uuid4().hex
    request.META[_META_KEY] = request_id
    current_request_id.set(request_id)


def echo_request_id(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response[HEADER] = request_id_of(request)
    return response

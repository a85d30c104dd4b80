"""Which WebSocket handshakes may come in, by their ``Origin`` header (CONTRACT §4).

Browsers send every site's cookies, and a page's scripts can offer any token, on a
cross-site WebSocket, and a browser always sends ``Origin``: so a handshake that carries
one must come from a host in ALLOWED_HOSTS or from an origin in CODITECT_CORS_ORIGINS (the
IDE front end may be served from another origin than the API). A handshake without
``Origin`` does not come from a browser page (agents, CLIs, CI jobs): it is let through, and
still has to authenticate like any other.

A refusal is ``websocket.close`` before ``websocket.accept``, which daphne turns into an
HTTP 403. Plain daphne sends it with the reason phrase "Access denied"; our serving entry
point (coditect/serve.py) passes the close's ``reason`` on as the reason phrase. Neither
can send a body: daphne does not implement ASGI's WebSocket denial response extension.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import ParseResult, urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings

ORIGIN_REFUSED = "Origin not allowed"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def allowed_origins() -> list[str]:
    """Host patterns (any scheme and port) and exact origins that may open a socket."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # what Django itself accepts then
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return [*hosts, *settings.CODITECT_CORS_ORIGINS]


class SocketOriginCheck:
    """The socket application behind the check; settings are read on every handshake."""

    def __init__(self, application: App) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origins = [value for name, value in scope.get("headers", ()) if name == b"origin"]
        if not origins:
            await self.application(scope, receive, send)
            return
        if len(origins) == 1 and _allowed(origins[0]):
            await self.application(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": ORIGIN_REFUSED})


def _allowed(raw: bytes) -> bool:
    # Channels' matching: a pattern without a scheme is a host (a leading dot takes its
    # subdomains) on any scheme and port; one with a scheme must match scheme, host and port.
    # A "*" host matches no origin here (channels' validator lets everything in for it): it
    # would turn the check off, the only defence against another site's page opening a
    # socket with the visitor's token.
    matcher = OriginValidator(None, [])
    try:
        parsed: ParseResult = urlparse(raw.decode("ascii"))
        return any(matcher.match_allowed_origin(parsed, pattern) for pattern in allowed_origins())
    except (UnicodeDecodeError, ValueError):  # not ASCII, a bad port, a broken IPv6 literal
        return False

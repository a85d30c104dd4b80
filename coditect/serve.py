"""Serving with the platform's WebSocket options: ``python -m coditect.serve`` (CONTRACT §8).

It is daphne, command line and all (``python -m coditect.serve --help``), with three
differences taken from settings rather than flags:

- the message limit is CODITECT_WS_MAX_MESSAGE_BYTES at the protocol level, and a message
  over it is closed with 4413 as soon as its frame header announces the size (or, for a
  compressed one, as soon as inflating it passes the limit): nothing past the limit is
  buffered, and the client gets a closing handshake, not daphne's dropped connection
  (autobahn's 1009 with ``failByDrop``);
- ``permessage-deflate`` is accepted when the client offers it (CODITECT_WS_COMPRESSION);
- a handshake refused with a ``reason`` (coditect/origins.py) gets it as the 403's reason
  phrase instead of "Access denied".

Without ``-b``/``-p``/``-u``/``--fd``/``-e`` it listens on ``$HOST:$PORT`` (default
127.0.0.1:8000); it always serves ``coditect.asgi:application``. Plain
``daphne coditect.asgi:application`` keeps working without these (docs/operations.md).
"""

from __future__ import annotations

import os
import sys
import zlib
from typing import Any

from autobahn.websocket.compress import (
    PerMessageDeflate,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings

APPLICATION = "coditect.asgi:application"
# Options of daphne's command line that choose where to listen.
_BINDINGS = ("-b", "--bind", "-p", "--port", "-u", "--unix-socket", "--fd", "-e", "--endpoint")


def accept_deflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """Accept the client's first ``permessage-deflate`` offer with its own parameters."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def refuse_compression(offers: list[Any]) -> None:
    return None


def _reason_phrase(reason: Any) -> str:
    """An HTTP reason phrase: printable ASCII only, so a reason cannot split the response."""
    if not isinstance(reason, str):
        return ""
    return "".join(c for c in reason if " " <= c <= "~")[:100].strip()


class SocketProtocol(WebSocketProtocol):
    def onOpen(self) -> None:
        # autobahn deflates at zlib's default level (6), creating the compressor at the first
        # message when the context is taken over from message to message (the usual case):
        # made here first, it has CODITECT_WS_COMPRESSION_LEVEL instead. Every broadcast is
        # compressed once per socket, so the level is the fan-out's largest CPU cost.
        pmce = self._perMessageCompress
        if isinstance(pmce, PerMessageDeflate) and not pmce.server_no_context_takeover:
            pmce._compressor = zlib.compressobj(
                settings.CODITECT_WS_COMPRESSION_LEVEL,
                zlib.DEFLATED,
                -pmce.server_max_window_bits,
                pmce.mem_level,
            )
        super().onOpen()

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        # autobahn's hook for a message over maxMessagePayloadSize: called from the frame
        # header (the announced length, before any payload is read) or while inflating. It
        # fails the connection with 1009; the contract's code is 4413, and with failByDrop
        # off _fail_connection sends it in a close frame and waits for the client's reply.
        from realtime.consumers import CLOSE_TOO_LARGE

        self._fail_connection(CLOSE_TOO_LARGE, "message too large")

    def handle_reply(self, message: dict[str, Any]) -> None:
        reason = _reason_phrase(message.get("reason"))
        if (
            message.get("type") == "websocket.close"
            and self.state == self.STATE_CONNECTING
            and reason
            and hasattr(self, "handshake_deferred")
        ):
            self.reject_with(reason)
            return
        super().handle_reply(message)

    def reject_with(self, reason: str) -> None:
        """daphne's serverReject, with the application's reason as the 403's reason phrase."""
        from autobahn.websocket.types import ConnectionDeny

        self.handshake_deferred.errback(ConnectionDeny(code=403, reason=reason))
        del self.handshake_deferred
        self.server.protocol_disconnected(self)
        client = "{}:{}".format(*self.client_addr) if self.client_addr else None
        details = {"path": self.request.path, "client": client}
        self.server.log_action("websocket", "rejected", details)


class PlatformServer(Server):
    """daphne's Server with the message limit from settings and our WebSocket protocol."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        limit = settings.CODITECT_WS_MAX_MESSAGE_BYTES
        kwargs["websocket_max_message_size"] = limit
        kwargs["websocket_max_frame_size"] = limit
        super().__init__(*args, **kwargs)

    # daphne builds its WebSocket factory inside run() and sets its size limits there; the
    # factory is configured here, the moment it is assigned, before anything listens.
    @property
    def ws_factory(self) -> Any:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        factory.protocol = SocketProtocol
        factory.setProtocolOptions(
            failByDrop=False,
            perMessageCompressionAccept=(
                accept_deflate if settings.CODITECT_WS_COMPRESSION else refuse_compression
            ),
        )
        self._ws_factory = factory


class PlatformCommandLine(CommandLineInterface):
    description = "Coditect: daphne with the platform's WebSocket options"
    server_class = PlatformServer


def arguments(argv: list[str], environ: dict[str, str]) -> list[str]:
    """daphne's arguments: ``$HOST``/``$PORT`` unless a binding is given, then our app."""
    args = list(argv)
    if not any(arg.split("=", 1)[0] in _BINDINGS for arg in args):
        host, port = environ.get("HOST") or "127.0.0.1", environ.get("PORT") or "8000"
        args = ["-b", host, "-p", port, *args]
    return [*args, APPLICATION]


def open_storage() -> None:
    """Open the store before listening, so a missing FoundationDB client stops start-up with
    one line and a non-zero status instead of a traceback at the first request."""
    import django

    import fdb_backend
    from fdb_backend.engines.cluster import ClientLibraryMissing

    django.setup()
    try:
        fdb_backend.get_database()
    except ClientLibraryMissing as error:
        sys.exit(f"coditect.serve: {error}")


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    open_storage()
    PlatformCommandLine().run(arguments(sys.argv[1:] if argv is None else argv, dict(os.environ)))


if __name__ == "__main__":
    main()

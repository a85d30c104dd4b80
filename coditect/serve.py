"""Serving with the platform's WebSocket options: ``python -m coditect.serve`` (CONTRACT §8).

It is daphne, command line and all (``python -m coditect.serve --help``), with these
differences (the first three taken from settings rather than flags):

- the message limit is CODITECT_WS_MAX_MESSAGE_BYTES at the protocol level, and a message
  over it is closed with 4413 as soon as its frame header announces the size (or, for a
  compressed one, as soon as inflating it passes the limit): nothing past the limit is
  buffered, and the client gets a closing handshake, not daphne's dropped connection
  (autobahn's 1009 with ``failByDrop``);
- ``permessage-deflate`` is accepted when the client offers it (CODITECT_WS_COMPRESSION), with
  ``server_no_context_takeover``, so that a broadcast is deflated once for every socket
  (``SharedDeflate``), and messages under CODITECT_WS_COMPRESSION_MIN_BYTES go uncompressed;
- a handshake refused with a ``reason`` (coditect/origins.py) gets it as the 403's reason
  phrase instead of "Access denied";
- daphne's own access log (an NCSA line per request and per socket event on stdout, its default
  at verbosity 1) is off unless ``--access-log`` is given: the platform writes one access line
  per request and per socket event itself, with the request or connection id
  (coditect/middleware.py, realtime/consumers.py), and two lines per request would be one too
  many for whoever counts them;
- a message to a socket with nothing queued is sent at once (``write_through``), not queued
  for the reactor's next turn, and autobahn's debug lines no longer format their arguments
  (colours, a pretty-printed dump of each connection's options) when nothing logs them: a
  broadcast to 1,000 sockets is 1,000 such sends (docs/protocol.md, "Large rooms");
- twisted no longer parses the body of a POST as a form before daphne hands it to the
  application (``FormlessRequest``): Django parses bodies itself, twisted's parse of the
  ``Content-Type`` alone (through the ``email`` package) was about 3% of a create's CPU, and a
  body declared ``multipart/form-data`` that twisted could not parse got its bare 400 and a
  dropped connection instead of the API's problem.

Without ``-b``/``-p``/``-u``/``--fd``/``-e`` it listens on ``$HOST:$PORT`` (default
127.0.0.1:8000); it always serves ``coditect.asgi:application``. One option is its own, not
daphne's: ``--migrate`` runs ``migrate`` (the staff tables) in this process before listening,
and ``--migrate=STAMP`` then touches the file STAMP (``make start`` passes ``var/.migrated``
when a migration changed since). Plain
``daphne coditect.asgi:application`` keeps working without these (docs/operations.md).
"""

from __future__ import annotations

import os
import pprint
import sys
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.compress import (
    PerMessageDeflate,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import tcp


class _Formatted:
    """``pprint.pformat(value)`` when, and only if, it is formatted: autobahn pretty-prints
    every connection's options for a debug line that is almost never logged."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(pprint.pformat(self.value), spec)

    def __str__(self) -> str:
        return pprint.pformat(self.value)


autobahn_protocol.pformat = _Formatted  # type: ignore[assignment]  # lazy stand-in, same use

APPLICATION = "coditect.asgi:application"
# Options of daphne's command line that choose where to listen.
_BINDINGS = ("-b", "--bind", "-p", "--port", "-u", "--unix-socket", "--fd", "-e", "--endpoint")


class NoContextTakeoverAccept(PerMessageDeflateOfferAccept):
    """An acceptance that announces ``server_no_context_takeover`` whether or not it was asked.

    autobahn compresses without context takeover when ``no_context_takeover`` is set, but only
    writes the parameter into the response when the client requested it; RFC 7692 §7.1.1.1 lets
    the server include it in any case, and the client must then expect every message to be
    deflated on its own (which a context-keeping inflater decodes anyway).
    """

    def get_extension_string(self) -> str:
        extension: str = super().get_extension_string()
        if not self.offer.request_no_context_takeover:
            extension += "; server_no_context_takeover"
        return extension


def accept_deflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """Accept the client's first ``permessage-deflate`` offer, without server context takeover.

    Every other parameter is the client's (its window bits in both directions, its choice of
    context takeover for what it sends). Without context takeover, what the server sends
    deflates to bytes that depend only on the message and (level, window bits, memory level),
    so one broadcast to many sockets is deflated once (``SharedDeflate``).
    """
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return NoContextTakeoverAccept(offer, no_context_takeover=True)
    return None


def refuse_compression(offers: list[Any]) -> None:
    return None


def _reason_phrase(reason: Any) -> str:
    """An HTTP reason phrase: printable ASCII only, so a reason cannot split the response."""
    if not isinstance(reason, str):
        return ""
    return "".join(c for c in reason if " " <= c <= "~")[:100].strip()


def deflate(payload: bytes, level: int, window_bits: int, mem_level: int) -> bytes:
    """``payload`` as one permessage-deflate message without context takeover (RFC 7692 §7.2.1).

    A fresh raw deflate stream, ended by a sync flush whose final empty block
    (``00 00 ff ff``) is removed: what autobahn's compressor sends when it has no context.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


class DeflateCache:
    """The deflated bytes of recent messages, shared by the sockets of one process.

    Keyed by the message's bytes (daphne encodes the text once per socket, so equal messages
    are equal bytes, never the same object) and the parameters that decide the output. Least
    recently used entries go first, past ``max_entries`` entries or ``max_bytes`` bytes (message
    plus deflated bytes); a message too large for a quarter of that is deflated, not kept.
    ``deflates`` and ``hits`` count what it did, for tests and benchmarks.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[bytes, int, int, int], bytes] = OrderedDict()
        self.bytes = 0
        self.deflates = 0
        self.hits = 0
        # daphne sends from the reactor thread only; the lock keeps the bookkeeping exact if
        # another thread ever sends too, and is never held while deflating.
        self._lock = threading.Lock()

    def deflate(self, payload: bytes, level: int, window_bits: int, mem_level: int) -> bytes:
        key = (payload, level, window_bits, mem_level)
        with self._lock:
            cached = self.entries.get(key)
            if cached is not None:
                self.entries.move_to_end(key)
                self.hits += 1
                return cached
            self.deflates += 1
        compressed = deflate(payload, level, window_bits, mem_level)
        size = len(payload) + len(compressed)
        if size > self.max_bytes // 4:
            return compressed
        with self._lock:
            if key not in self.entries:
                self.entries[key] = compressed
                self.bytes += size
            while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
                (old, *_), old_compressed = self.entries.popitem(last=False)
                self.bytes -= len(old) + len(old_compressed)
        return compressed


# A broadcast is sent to its sockets within milliseconds of itself, so a few hundred recent
# messages cover many sessions broadcasting at once; the bytes bound caps the memory (at about
# what 30 sockets each kept as a deflate context when contexts were taken over).
DEFLATED = DeflateCache(max_entries=256, max_bytes=8 * 1024 * 1024)


class SharedDeflate(PerMessageDeflate):
    """permessage-deflate whose messages to the client go through ``DEFLATED``.

    Only for the server side of a connection negotiated without server context takeover
    (``accept_deflate``): autobahn's own class would make a compressor per message for that,
    at zlib's default level 6. Here the message is collected (autobahn's ``sendMessage`` gives
    it whole; its streaming API would send it all in the last frame) and deflated at
    CODITECT_WS_COMPRESSION_LEVEL by the cache, so no compressor outlives a message and the
    first socket to send a broadcast deflates it for the others. What the client sends is
    inflated as autobahn does.
    """

    cache: ClassVar[DeflateCache] = DEFLATED

    def __init__(self, negotiated: PerMessageDeflate, level: int) -> None:
        assert negotiated._is_server and negotiated.server_no_context_takeover
        super().__init__(
            negotiated._is_server,
            negotiated.server_no_context_takeover,
            negotiated.client_no_context_takeover,
            negotiated.server_max_window_bits,
            negotiated.client_max_window_bits,
            negotiated.mem_level,
            negotiated.max_message_size,
        )
        self.level = level
        self._outgoing: list[bytes] = []

    def start_compress_message(self) -> None:
        self._outgoing = []

    def compress_message_data(self, data: bytes) -> bytes:
        self._outgoing.append(data)
        return b""

    def end_compress_message(self) -> bytes:
        payload = b"".join(self._outgoing)
        self._outgoing = []
        return self.cache.deflate(payload, self.level, self.server_max_window_bits, self.mem_level)


def write_through(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once when nothing is queued before it.

    Twisted's write only queues and registers the socket for writing; the reactor sends on
    its next turn and unregisters it again: two epoll changes and a turn per message, for
    every socket a broadcast reaches. A plain TCP (or Unix) connection with nothing waiting
    sends here instead, and only what the kernel does not take is queued as before (so a
    registered producer is paused as before: only a growing queue pauses it); anything else
    (TLS, a connection closing, an error) goes through ``write``, which handles it.
    """
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:  # would block, or lost: write queues it and doWrite finds out
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


class SocketProtocol(WebSocketProtocol):
    # Messages shorter than this go uncompressed (RSV1 off): set from settings with the factory.
    compression_min_bytes = 0
    # autobahn's attributes, untyped there (the first two replaced in onOpen).
    _perMessageCompress: Any
    websocket_extensions_in_use: list[Any]
    send_queue: Any
    trafficStats: Any
    logOctets: bool

    def onOpen(self) -> None:
        # The handshake made autobahn's PerMessageDeflate from our acceptance; nothing has been
        # sent or inflated with it yet (the connection was not open), so it is replaced here by
        # one with the same parameters that deflates through the shared cache.
        pmce = self._perMessageCompress
        if type(pmce) is PerMessageDeflate and pmce.server_no_context_takeover:
            shared = SharedDeflate(pmce, settings.CODITECT_WS_COMPRESSION_LEVEL)
            self._perMessageCompress = shared
            self.websocket_extensions_in_use = [
                shared if extension is pmce else extension
                for extension in self.websocket_extensions_in_use
            ]
        super().onOpen()

    def sendMessage(
        self,
        payload: bytes,
        isBinary: bool = False,
        fragmentSize: int | None = None,
        sync: bool = False,
        doNotCompress: bool = False,
    ) -> None:
        # An ack or a pong is a few dozen bytes that deflate does not shrink (docs/protocol.md,
        # "Compression"); RFC 7692 lets any message go uncompressed.
        if len(payload) < self.compression_min_bytes:
            doNotCompress = True
        super().sendMessage(payload, isBinary, fragmentSize, sync, doNotCompress)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # autobahn's, without its debug line (whose arguments it formats with click's colours
        # for every frame, logged or not) and writing through (``write_through``).
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
            return
        write_through(self.transport, data)
        if self.state == self.STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        elif self.state in (self.STATE_CONNECTING, self.STATE_PROXY_CONNECTING):
            self.trafficStats.preopenOutgoingOctetsWireLevel += len(data)
        if self.logOctets:
            self.logTxOctets(data, False)

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
        if message.get("type") == "websocket.send" and self.state in (
            self.STATE_CLOSING,
            self.STATE_CLOSED,
        ):
            # The client left between the fan-out's look and this send (autobahn would raise
            # Disconnected): nothing can reach it, and its disconnect runs the teardown.
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


class FormlessRequest(WebRequest):
    """daphne's request, without twisted's parse of a POST body as a form (its ``args``,
    which daphne never reads: the application gets the body as it came)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


class FormlessHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, whose connections make ``FormlessRequest``s."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = FormlessRequest
        return protocol


class PlatformServer(Server):
    """daphne's Server with the message limit from settings and our WebSocket protocol."""

    # daphne's access log (its ``action_logger``), kept or dropped (``QuietServer``).
    daphne_access_log: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not self.daphne_access_log:
            kwargs["action_logger"] = None
        limit = settings.CODITECT_WS_MAX_MESSAGE_BYTES
        kwargs["websocket_max_message_size"] = limit
        kwargs["websocket_max_frame_size"] = limit
        super().__init__(*args, **kwargs)

    # daphne builds its HTTP factory inside run(): ours takes its place as it is assigned.
    @property
    def http_factory(self) -> Any:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: Any) -> None:
        self._http_factory = FormlessHTTPFactory(self) if type(factory) is HTTPFactory else factory

    # daphne builds its WebSocket factory inside run() and sets its size limits there; the
    # factory is configured here, the moment it is assigned, before anything listens.
    @property
    def ws_factory(self) -> Any:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        SocketProtocol.compression_min_bytes = settings.CODITECT_WS_COMPRESSION_MIN_BYTES
        factory.protocol = SocketProtocol
        factory.setProtocolOptions(
            failByDrop=False,
            perMessageCompressionAccept=(
                accept_deflate if settings.CODITECT_WS_COMPRESSION else refuse_compression
            ),
        )
        self._ws_factory = factory


class QuietServer(PlatformServer):
    """PlatformServer without daphne's access log: the platform's lines are the access log."""

    daphne_access_log = False


class PlatformCommandLine(CommandLineInterface):
    description = "Coditect: daphne with the platform's WebSocket options"
    server_class = PlatformServer

    def run(self, args: list[str]) -> None:
        # daphne's access log goes to stdout whenever the verbosity is 1 or more (the default)
        # and no --access-log is given; ours (coditect.access, coditect.sockets) already has a
        # line per request, so daphne's is kept only when asked for by name.
        if self.parser.parse_args(args).access_log is None:
            self.server_class = QuietServer
        super().run(args)


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


def take_migrate(argv: list[str]) -> tuple[list[str], bool, Path | None]:
    """daphne's arguments without ours: whether ``--migrate`` was given, and its stamp."""
    rest, migrate, stamp = [], False, None
    for arg in argv:
        if arg == "--migrate":
            migrate = True
        elif arg.startswith("--migrate="):
            migrate, stamp = True, Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, migrate, stamp


def migrate_staff_tables(*, stamp: Path | None) -> None:
    """``manage.py migrate`` in this process (Django is set up already), then the stamp."""
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", interactive=False, verbosity=0)
    connections.close_all()  # the server's threads open their own
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    args, migrate, stamp = take_migrate(list(sys.argv[1:] if argv is None else argv))
    open_storage()
    if migrate:
        migrate_staff_tables(stamp=stamp)
    PlatformCommandLine().run(arguments(args, dict(os.environ)))


if __name__ == "__main__":
    main()

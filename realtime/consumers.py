"""The WebSocket of a workspace session (CONTRACT §4): parse, call a service, send.

Ordering: every event carries its session ``seq``. The consumer remembers the last seq it
sent and never sends one twice or out of order: an event that arrives ahead of a gap (two
processes, a slow layer) makes it read the missing ones from the log first, and while it reads
the log (welcome, resume, a gap) live events only note how far it must read.

Live events reach the socket through the process's fan-out (realtime/fanout.py), not through a
channel-layer group member per socket.

Input never crashes a socket: every field of every message is checked (realtime/protocol.py,
and the services' own checks) and answered with ``error``. A bug that raises anyway closes
the socket with 1011, and the socket is torn down as on any disconnect (presence leave, its
locks released, out of the watch and the fan-out): Channels ends a consumer whose handler
raised without ever calling ``disconnect``, so that one would otherwise stay in the process's
lists and keep its connection record alive, a ghost in presence, for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.services import Client, Principal
from core.errors import ServiceError
from core.metrics import open_sockets, socket_closes, socket_message, throttle_hits
from core.request_id import current_connection_id
from fdb_backend.pool import in_pool
from realtime import services
from realtime.fanout import fanout
from realtime.presence import rooms
from realtime.protocol import (
    JOIN_SCOPE,
    MESSAGE_SCOPES,
    PROTOCOL,
    ProtocolError,
    auth_token_check,
    message_fields,
    parse_message,
    wire_event,
)
from realtime.watch import watch
from workspaces.errors import WorkspaceError
from workspaces.presenters import session_json
from workspaces.services import (
    session_event_list,
    session_event_publish,
    session_update,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# One line per socket's connect, auth and close (docs/operations.md, "Metrics and logs").
lifecycle = logging.getLogger("coditect.sockets")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TIMEOUT = 4408
CLOSE_TOO_LARGE = 4413
CLOSE_RATE_LIMITED = 4429
# A bug of the server's, never the client's input (CONTRACT §4).
CLOSE_INTERNAL_ERROR = 1011


class SessionConsumer(AsyncWebsocketConsumer):
    # No channel of its own: live events come from the process's fan-out.
    channel_layer_alias = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set before anything can fail, so teardown finds every field whatever happened.
        self.principal: Principal | None = None
        self.token_expires_at = 0.0
        self.connection_id = uuid.uuid4().hex
        self.last_sent = 0
        # The seq of the last full state sent (welcome, resync): events up to it reached the
        # client only as state, so a resume replays them; later ones were sent live.
        self.state_seq = 0
        self.joined = False
        # A connection record may exist (its join was queued): teardown removes it.
        self.recorded = False
        self.torn_down = False
        self.tasks: set[asyncio.Task[None]] = set()  # running ones only: see _background
        self.last_message = time.monotonic()
        self.tokens = float(settings.CODITECT_WS_RATE_BURST)
        self.tokens_at = time.monotonic()
        self.closing = False
        self.subscribed = False
        # While the log is read (welcome, resume, a gap), live events only raise `behind`.
        self.catching_up = False
        self.behind = 0
        self.log_lock = asyncio.Lock()
        self.close_code: int | None = None  # the first close, ours or the client's

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # This connection's task (and the pool threads it uses) log with its id.
        current_connection_id.set(self.connection_id)
        open_sockets.inc()
        lifecycle.info("socket connect %s", scope.get("path", ""))
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ends (a disconnect, a handler's exception, cancellation by
            # daphne), the socket leaves presence and the process's lists. Shielded: a
            # cancelled consumer must still finish removing its connection record.
            try:
                await asyncio.shield(self.teardown())
            finally:
                open_sockets.dec()
                code = "none" if self.close_code is None else str(self.close_code)
                socket_closes.labels(code).inc()
                lifecycle.info("socket close code=%s", code, extra={"close_code": code})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first closes the Django ORM's stale connections, through a
        # thread, for every message; the socket never touches the ORM (storage is
        # fdb_backend), so its handlers run here directly: no thread hop per message.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except (StopConsumer, asyncio.CancelledError):
            raise
        except Exception:
            # Client input is answered in receive() and never gets here: this is a bug.
            log.exception(
                "socket handler failed",
                extra={"connection_id": self.connection_id, "type": message.get("type")},
            )
            await self.close(CLOSE_INTERNAL_ERROR)
            raise StopConsumer from None  # __call__ tears down

    async def connect(self) -> None:
        offered = list(self.scope.get("subprotocols") or [])
        if PROTOCOL not in offered:
            await self.accept()
            await self.close(CLOSE_FORBIDDEN)
            return
        query = self.scope.get("query_string", b"").decode("latin-1")
        if "token=" in query:  # tokens leak into logs from URLs: refuse the handshake itself
            await self.close(CLOSE_UNAUTHENTICATED)
            return
        await self.accept(subprotocol=PROTOCOL)
        try:
            self.session_id = uuid.UUID(str(self.scope["url_route"]["kwargs"]["session_id"]))
        except ValueError:
            await self.close(CLOSE_NOT_FOUND)
            return
        token = self.handshake_token(offered)
        if token is None:
            await self.close(CLOSE_UNAUTHENTICATED)
            return
        if token:
            try:
                token = auth_token_check(token)
            except ProtocolError:
                await self.close(CLOSE_UNAUTHENTICATED)
                return
            await self.join(token)
        else:
            self._background(self.auth_deadline())

    def handshake_token(self, offered: list[str]) -> str | None:
        """The token of the opening handshake: a ``bearer.`` subprotocol (browsers, which
        cannot set headers on a WebSocket) or ``Authorization: Bearer`` (every other client);
        "" for none, None when what came cannot be used (two different tokens, another scheme).
        """
        tokens = {p[len("bearer.") :] for p in offered if p.startswith("bearer.")}
        for name, value in self.scope.get("headers", ()):
            if name != b"authorization":
                continue
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                return None
            tokens.add(credentials.strip())
        if len(tokens) > 1:
            return None
        return tokens.pop() if tokens else ""

    # --- lifecycle -------------------------------------------------------------------

    async def auth_deadline(self) -> None:
        await asyncio.sleep(settings.CODITECT_WS_AUTH_TIMEOUT_S)
        if not self.joined:
            await self.close(CLOSE_TIMEOUT)

    async def authenticate(self, token: str) -> Principal | None:
        peer = self.scope.get("client") or ("",)
        client = Client(ip=str(peer[0] or "")[:64])
        try:
            # Sockets opening with one token at once share its check (realtime/presence.py).
            principal = await rooms().authenticate(token=token, client=client)
        except AccountError as error:
            await self.answer(error)
            return None
        # None: an API token without expiry, which only revocation (the watch) ends.
        expires = principal.expires_at
        self.token_expires_at = expires.timestamp() if expires is not None else math.inf
        return principal

    async def join(self, token: str) -> None:
        principal = await self.authenticate(token)
        if principal is None:
            return
        if not await self.may_join(principal):
            return
        self.principal = principal
        # Subscribed before the welcome's snapshot is read, so no event falls between them.
        self.catching_up = True
        await fanout().join(self.session_id, self)
        self.subscribed = True
        self.recorded = True
        try:
            # Written with the other joins and leaves queued meanwhile (realtime/presence.py).
            joined = await rooms().join(
                principal=principal, session_id=self.session_id, connection_id=self.connection_id
            )
        except (WorkspaceError, AccountError) as error:
            self.recorded = False  # a 404 or a user erased meanwhile: nothing was written
            await self.answer(error)
            return
        self.joined = True
        self.last_sent = self.state_seq = joined.welcome.seq
        lifecycle.info(
            "socket auth tenant=%s user=%s token=%s",
            principal.tenant_id, principal.user_id, principal.api_token_id or "-",
            extra={
                "tenant_id": str(principal.tenant_id),
                "user_id": str(principal.user_id),
                "token_id": None if principal.api_token_id is None else str(principal.api_token_id),
            },
        )  # fmt: skip
        if not self.closing:
            socket_message("out", "welcome").inc()
            # Encoded once for every socket of its batch.
            await self.send(text_data=joined.welcome_text(self.connection_id))
        self.catching_up = False
        if self.behind > self.last_sent:
            await self.read_log()
        watch().add(self)

    async def may_join(self, principal: Principal) -> bool:
        """An API token joins only with sessions:read: else an error and close 4403."""
        if JOIN_SCOPE in principal.scopes:
            return True
        await self.reply_error(None, "insufficient_scope", f"Joining needs {JOIN_SCOPE}.")
        await self.close(CLOSE_FORBIDDEN)
        return False

    def allowed(self, scope: str) -> bool:
        return self.principal is not None and scope in self.principal.scopes

    # --- closed by the process's watch (realtime/watch.py) ----------------------------

    async def close_for(self, error: AccountError) -> None:
        await self.answer(error)

    async def close_idle(self) -> None:
        await self.close(CLOSE_TIMEOUT)

    async def close_expired(self) -> None:
        await self.close(CLOSE_UNAUTHENTICATED)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        if self.close_code is None and isinstance(code, int) and not isinstance(code, bool):
            self.close_code = code
        await super().close(code=code)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the socket's messages, cancelled at disconnect; a finished task
        leaves the set, so a long-lived socket does not collect them."""
        task = asyncio.ensure_future(self._guarded(work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """A background task that fails leaves the socket in an unknown state (a gap half
        read): close it with 1011; daphne's disconnect then tears it down."""
        try:
            await work
        except Exception:
            log.exception("socket task failed", extra={"connection_id": self.connection_id})
            await self.close(CLOSE_INTERNAL_ERROR)

    async def disconnect(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        await self.teardown()

    async def teardown(self) -> None:
        """Stop the socket's tasks, leave the watch and the fan-out, and remove the connection
        record with its locks (announcing both). Runs once, however the socket ended."""
        if self.torn_down:
            return
        self.torn_down = True
        self.closing = True  # nothing more is sent, whatever still arrives
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        watch().discard(self)
        if self.subscribed:
            self.subscribed = False
            try:
                await fanout().leave(self.session_id, self)
            except Exception:
                log.exception("fan-out leave failed", extra={"connection_id": self.connection_id})
        self.joined = False
        if not self.recorded or self.principal is None:
            return
        self.recorded = False
        try:
            await rooms().leave(
                tenant_id=self.tenant_id,
                session_id=self.session_id,
                connection_id=self.connection_id,
            )
        except Exception:
            log.exception("connection cleanup failed", extra={"connection_id": self.connection_id})

    @property
    def tenant_id(self) -> uuid.UUID:
        assert self.principal is not None
        return self.principal.tenant_id

    async def _session_call(self, service: Callable[..., T], **args: Any) -> T:
        """A service of this socket's session, run in the storage pool as its principal."""
        assert self.principal is not None
        done: T = await in_pool(service)(
            db=fdb_backend.get_database(),
            principal=self.principal,
            session_id=self.session_id,
            **args,
        )
        return done

    # --- sending ---------------------------------------------------------------------

    async def reply_ack(self, message: dict[str, Any], **fields: Any) -> None:
        """The answer to a client's message that succeeded: its id and what it produced."""
        await self.send_json({"type": "ack", "id": message["id"], **fields})

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closing:
            socket_message("out", str(content.get("type"))).inc()
            await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def answer(
        self, error: ServiceError, *, msg_id: Any = None, kind: str | None = None
    ) -> None:
        """The socket's one translation of a service's error (core/errors.py): a credential
        refused (on joining, re-authenticating or by the watch) closes 4403 when forbidden,
        else 4401; a session not found (or gone) closes 4404; any other refusal of message
        ``msg_id`` of type ``kind`` is an ``error`` reply with the error's context beside
        (``current_version``, a lock's ``holder`` and ``expires_at``), the socket open."""
        if isinstance(error, AccountError):
            await self.close(CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHENTICATED)
            return
        if error.status == 404:
            await self.close(CLOSE_NOT_FOUND)
            return
        attr = error.attr
        if attr is not None and kind == "state.patch":
            attr = f"changes.{attr}"  # the session field, inside the message's changes
        await self.reply_error(msg_id, error.code, error.detail, attr=attr, **error.context)

    async def reply_error(
        self, msg_id: Any, code: str, detail: str, *, attr: str | None = None, **extra: Any
    ) -> None:
        """``error``; ``attr`` names the field at fault, as in a REST problem's errors."""
        reply = {"type": "error", "id": msg_id, "code": code, "detail": detail, **extra}
        if attr is not None:
            reply["attr"] = attr
        await self.send_json(reply)

    async def fanout_event(self, seq: int, text: str) -> None:
        """A live event from the fan-out: sent now if it is the next one, else read from the log."""
        if self.closing:
            return
        if self.catching_up or not self.joined:
            self.behind = max(self.behind, seq)
            return
        if seq <= self.last_sent:
            return
        if seq == self.last_sent + 1:
            self.last_sent = seq
            socket_message("out", "live").inc()
            await self.send(text_data=text)
            return
        # Ahead of a gap (two processes, a slow layer): fill it from the log in a task of this
        # socket's own, so the fan-out goes on to the other sockets.
        self.behind = max(self.behind, seq)
        self.catching_up = True
        self._background(self.read_log())

    async def fanout_deleted(self) -> None:
        # Nothing left to clean up: the session took its records along.
        self.joined = self.recorded = False
        await self.close(CLOSE_NOT_FOUND)

    async def read_log(self) -> None:
        """Send logged events after ``last_sent``, up to the log's end and then up to the
        newest live event that came meanwhile (a gap, or events held back during a read)."""
        async with self.log_lock:
            self.catching_up = True
            try:
                await self.replay(upto=None)
                await self.catch_up()
            finally:
                self.catching_up = False

    async def catch_up(self) -> None:
        """Send from the log the live events that came while it was being read."""
        while self.behind > self.last_sent and not self.closing:
            if not await self.replay(upto=self.behind):
                break  # the log ends before `behind`: nothing more to send

    async def replay(self, *, upto: int | None, after: int | None = None) -> int:
        """Send logged events after ``after`` (default ``last_sent``, which then moves along)
        up to ``upto`` (default the log's end); a resync instead if the log is short.
        Returns how many were sent."""
        assert self.principal is not None
        live = after is None
        cursor = self.last_sent if after is None else after
        sent = 0
        while upto is None or cursor < upto:
            limit = 200 if upto is None else min(200, upto - cursor)
            try:
                page = await self._session_call(session_event_list, after_seq=cursor, limit=limit)
            except WorkspaceError as error:
                if error.code == "resync_required":
                    await self.resync()
                    return sent
                raise
            for item in page.events:
                cursor = int(item["seq"])
                if live:
                    self.last_sent = cursor
                await self.send_json(wire_event(item))
                sent += 1
            if not page.events or cursor >= page.latest_seq:
                break
        return sent

    async def resync(self) -> None:
        assert self.principal is not None
        snapshot = await self._session_call(services.session_snapshot)
        self.last_sent = self.state_seq = snapshot.seq
        await self.send_json(
            {
                "type": "resync",
                "session": session_json(snapshot.session, self.principal),
                "version": snapshot.session.version,
                "seq": snapshot.seq,
                "presence": snapshot.presence,
                "presence_count": snapshot.presence_count,
                "presence_next": snapshot.presence_next,
                "locks": snapshot.locks,
            }
        )

    # --- from the client -------------------------------------------------------------

    def within_rate(self) -> bool:
        now = time.monotonic()
        rate, burst = settings.CODITECT_WS_RATE_PER_S, settings.CODITECT_WS_RATE_BURST
        self.tokens = min(burst, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return  # frames that were in flight when we closed
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.CODITECT_WS_MAX_MESSAGE_BYTES:
            await self.close(CLOSE_TOO_LARGE)
            return
        if not self.within_rate():
            throttle_hits.labels("rate_limit", "ws_rate").inc()
            await self.close(CLOSE_RATE_LIMITED)
            return
        self.last_message = time.monotonic()
        msg_id, kind = None, None
        try:
            message = parse_message(text_data)
            msg_id, kind = message.get("id"), message["type"]
            socket_message("in", kind).inc()
            if kind != "auth" and not self.joined:
                await self.reply_error(msg_id, "not_authenticated", "Send auth first.")
                return
            needed = MESSAGE_SCOPES.get(kind)
            if needed is not None and not self.allowed(needed):
                await self.reply_error(msg_id, "insufficient_scope", f"{kind} needs {needed}.")
                return
            message = message_fields(message)
            await self.handle(message)
        except ProtocolError as error:
            if kind is None:  # not even a message of a known type
                socket_message("in", "invalid").inc()
            await self.reply_error(error.msg_id, error.code, error.detail, attr=error.attr)
        except ServiceError as error:
            await self.answer(error, msg_id=msg_id, kind=kind)

    async def handle(self, message: dict[str, Any]) -> None:
        """Run the handler of a checked message (see realtime.protocol.message_fields)."""
        kind = message["type"]
        if kind == "auth":
            await self.on_auth(message)
        elif kind == "ping":
            await self.send_json({"type": "pong", "id": message["id"]})
        elif kind == "resume":
            await self.on_resume(message)
        elif kind == "presence.list":
            await self.on_presence_list(message)
        elif kind == "state.patch":
            await self.on_state_patch(message)
        elif kind == "event.publish":
            await self.on_event_publish(message)
        elif kind in ("lock.acquire", "lock.renew"):
            await self.on_lock_acquire(message, renew=kind == "lock.renew")
        else:
            assert kind == "lock.release", kind
            await self.on_lock_release(message)

    async def on_auth(self, message: dict[str, Any]) -> None:
        token: str = message["token"]
        if not self.joined:
            await self.join(token)
            return
        previous = self.principal
        principal = await self.authenticate(token)
        if principal is None:
            return
        assert previous is not None
        if principal.user_id != previous.user_id or principal.tenant_id != previous.tenant_id:
            await self.close(CLOSE_UNAUTHENTICATED)  # a socket never changes hands
            return
        if not await self.may_join(principal):
            return
        self.principal = principal
        await self.reply_ack(message)

    async def on_resume(self, message: dict[str, Any]) -> None:
        last_seq: int = message["last_seq"]
        # Events after state_seq were sent on this socket as they came; the client missed
        # those from last_seq up to the state it was given.
        # Live events wait meanwhile, so the replay comes whole, then the ack, then them.
        async with self.log_lock:
            self.catching_up = True
            try:
                replayed = 0
                if last_seq < self.state_seq:
                    replayed = await self.replay(after=last_seq, upto=self.state_seq)
                await self.reply_ack(message, replayed=replayed)
                await self.catch_up()
            finally:
                self.catching_up = False

    async def on_presence_list(self, message: dict[str, Any]) -> None:
        page = await self._session_call(
            services.presence_list, after=message["after"], limit=message["limit"]
        )
        await self.reply_ack(
            message, presence=page.presence, next=page.next, count=page.count, seq=page.seq
        )

    async def on_state_patch(self, message: dict[str, Any]) -> None:
        patched = await self._session_call(
            session_update,
            changes=message["changes"],
            expected_version=message["base_version"],
            origin=self.connection_id,
            related=False,  # the ack carries only the version and the seq
        )
        await self.reply_ack(message, version=patched.version, seq=patched.head.seq)

    async def on_event_publish(self, message: dict[str, Any]) -> None:
        seq = await self._session_call(
            session_event_publish,
            event=message["event"],
            data=message["data"],
            origin=self.connection_id,
        )
        await self.reply_ack(message, seq=seq)

    async def on_lock_acquire(self, message: dict[str, Any], renew: bool = False) -> None:
        path, ttl = message["path"], message["ttl_s"]
        lock = await self._session_call(
            services.lock_acquire,
            connection_id=self.connection_id,
            path=path,
            ttl_s=ttl,
            renew=renew,
        )
        self._background(self.expire_later(ttl))
        expires_at = services.lock_json(lock)["expires_at"]
        await self.reply_ack(message, granted=True, path=path, expires_at=expires_at)

    async def on_lock_release(self, message: dict[str, Any]) -> None:
        path = message["path"]
        await self._session_call(services.lock_release, connection_id=self.connection_id, path=path)
        await self.reply_ack(message, path=path)

    async def expire_later(self, ttl_s: int) -> None:
        """Sweep soon after our lease ends, so its release is broadcast promptly."""
        await asyncio.sleep(ttl_s + 0.2)
        try:
            await in_pool(services.connection_heartbeat)(
                db=fdb_backend.get_database(),
                tenant_id=self.tenant_id,
                session_id=self.session_id,
                connection_id=self.connection_id,
            )
        except Exception:
            # Not the socket's fault nor its state: the next heartbeat sweeps the lease.
            log.exception("lock sweep failed", extra={"connection_id": self.connection_id})

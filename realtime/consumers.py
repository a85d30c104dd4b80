"""The WebSocket of a workspace session (CONTRACT §4): parse, call a service, send.

Ordering: every event carries its session ``seq``. The consumer remembers the last seq it
sent and never sends one twice or out of order: an event that arrives ahead of a gap (two
processes, a slow layer) makes it read the missing ones from the log first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import jwt
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import ValidationError

import fdb_backend
from accounts.errors import AccountError
from accounts.services import Principal, principal_authenticate, principal_check
from realtime import services
from realtime.protocol import (
    PROTOCOL,
    ProtocolError,
    parse_message,
    wire_event,
)
from workspaces import broadcast
from workspaces.api import EVENT_DATA_MAX_BYTES, session_json
from workspaces.errors import WorkspaceError
from workspaces.serializers import SessionPatchIn, event_name_check, storable_json
from workspaces.services import (
    session_event_list,
    session_event_publish,
    session_update,
)

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TIMEOUT = 4408
CLOSE_TOO_LARGE = 4413
CLOSE_RATE_LIMITED = 4429


def _sync(fn: Any) -> Any:
    return database_sync_to_async(fn, thread_sensitive=False)


class SessionConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.principal: Principal | None = None
        self.token_expires_at = 0.0
        self.connection_id = uuid.uuid4().hex
        self.last_sent = 0
        self.joined = False
        self.tasks: list[asyncio.Task[None]] = []
        self.last_message = time.monotonic()
        self.tokens = float(settings.CODITECT_WS_RATE_BURST)
        self.tokens_at = time.monotonic()
        self.closing = False
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
        bearer = [p[len("bearer.") :] for p in offered if p.startswith("bearer.")]
        if bearer:
            await self.join(bearer[0])
        else:
            self.tasks.append(asyncio.ensure_future(self.auth_deadline()))

    # --- lifecycle -------------------------------------------------------------------

    async def auth_deadline(self) -> None:
        await asyncio.sleep(settings.CODITECT_WS_AUTH_TIMEOUT_S)
        if not self.joined:
            await self.close(CLOSE_TIMEOUT)

    async def authenticate(self, token: str) -> Principal | None:
        db = fdb_backend.get_database()
        try:
            principal: Principal = await _sync(principal_authenticate)(db=db, token=token)
        except AccountError as error:
            await self.close(CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHENTICATED)
            return None
        # Verified above; only its expiry is needed here.
        claims = jwt.decode(token, options={"verify_signature": False})
        self.token_expires_at = float(claims.get("exp", 0))
        return principal

    async def join(self, token: str) -> None:
        principal = await self.authenticate(token)
        if principal is None:
            return
        self.principal = principal
        await self.channel_layer.group_add(broadcast.group_name(self.session_id), self.channel_name)
        try:
            welcome = await _sync(services.connection_open)(
                db=fdb_backend.get_database(),
                principal=principal,
                session_id=self.session_id,
                connection_id=self.connection_id,
            )
        except WorkspaceError:
            await self.close(CLOSE_NOT_FOUND)
            return
        self.joined = True
        self.last_sent = welcome.seq
        await self.send_json(
            {
                "type": "welcome",
                "connection_id": self.connection_id,
                "session": session_json(welcome.session, principal),
                "version": welcome.session.version,
                "seq": welcome.seq,
                "presence": welcome.presence,
                "locks": welcome.locks,
            }
        )
        self.tasks += [
            asyncio.ensure_future(self.heartbeat()),
            asyncio.ensure_future(self.watch_auth()),
            asyncio.ensure_future(self.watch_idle()),
        ]

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.CODITECT_WS_HEARTBEAT_S)
            try:
                await _sync(services.connection_heartbeat)(
                    db=fdb_backend.get_database(),
                    tenant_id=self.tenant_id,
                    session_id=self.session_id,
                    connection_id=self.connection_id,
                )
            except Exception:
                log.exception("heartbeat failed", extra={"connection_id": self.connection_id})

    async def watch_auth(self) -> None:
        while True:
            await asyncio.sleep(settings.CODITECT_WS_AUTH_CHECK_S)
            if time.time() >= self.token_expires_at:
                await self.close(CLOSE_UNAUTHENTICATED)
                return
            try:
                await _sync(principal_check)(
                    db=fdb_backend.get_database(), principal=self.principal
                )
            except AccountError as error:
                await self.close(CLOSE_FORBIDDEN if error.status == 403 else CLOSE_UNAUTHENTICATED)
                return

    async def watch_idle(self) -> None:
        idle = settings.CODITECT_WS_IDLE_TIMEOUT_S
        while True:
            await asyncio.sleep(min(1.0, idle / 2))
            if time.monotonic() - self.last_message > idle:
                await self.close(CLOSE_TIMEOUT)
                return

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        await super().close(code=code)

    async def disconnect(self, code: int) -> None:
        for task in self.tasks:
            task.cancel()
        if not getattr(self, "joined", False):
            return
        self.joined = False
        await self.channel_layer.group_discard(
            broadcast.group_name(self.session_id), self.channel_name
        )
        try:
            await _sync(services.connection_close)(
                db=fdb_backend.get_database(),
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

    # --- sending ---------------------------------------------------------------------

    async def send_json(self, content: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def reply_error(self, msg_id: Any, code: str, detail: str, **extra: Any) -> None:
        await self.send_json(
            {"type": "error", "id": msg_id, "code": code, "detail": detail, **extra}
        )

    async def deliver(self, event: dict[str, Any], text: str | None = None) -> None:
        """Send one logged event in seq order: drop repeats, fill gaps from the log."""
        seq = int(event["seq"])
        if seq <= self.last_sent:
            return
        if seq > self.last_sent + 1:
            await self.replay(self.last_sent, upto=seq - 1)
            if self.last_sent >= seq:
                return
        if self.closing:
            return
        if text is None:
            text = json.dumps(wire_event(event), separators=(",", ":"))
        await self.send(text_data=text)
        self.last_sent = seq

    async def replay(self, after: int, upto: int | None = None) -> int:
        """Send logged events after ``after`` (to ``upto``); a resync if the log is short."""
        assert self.principal is not None
        sent = 0
        while upto is None or self.last_sent < upto:
            limit = 200 if upto is None else min(200, upto - self.last_sent)
            try:
                page = await _sync(session_event_list)(
                    db=fdb_backend.get_database(),
                    principal=self.principal,
                    session_id=self.session_id,
                    after_seq=self.last_sent,
                    limit=limit,
                )
            except WorkspaceError as error:
                if error.code == "resync_required":
                    await self.resync()
                    return sent
                raise
            for item in page.events:
                await self.send_json(wire_event(item))
                self.last_sent = int(item["seq"])
                sent += 1
            if not page.events or self.last_sent >= page.latest_seq:
                break
        return sent

    async def resync(self) -> None:
        assert self.principal is not None
        snapshot = await _sync(services.session_snapshot)(
            db=fdb_backend.get_database(), principal=self.principal, session_id=self.session_id
        )
        self.last_sent = snapshot.seq
        await self.send_json(
            {
                "type": "resync",
                "session": session_json(snapshot.session, self.principal),
                "version": snapshot.session.version,
                "seq": snapshot.seq,
                "presence": snapshot.presence,
                "locks": snapshot.locks,
            }
        )

    # --- from the channel layer ------------------------------------------------------

    async def session_event(self, message: dict[str, Any]) -> None:
        if self.joined:
            await self.deliver(message["event"], message.get("text"))

    async def session_deleted(self, message: dict[str, Any]) -> None:
        self.joined = False  # nothing left to clean up: the session took its records along
        await self.close(CLOSE_NOT_FOUND)

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
            await self.close(CLOSE_RATE_LIMITED)
            return
        self.last_message = time.monotonic()
        try:
            message = parse_message(text_data)
        except ProtocolError as error:
            await self.reply_error(error.msg_id, error.code, error.detail)
            return
        kind, msg_id = message["type"], message.get("id")
        if kind == "auth":
            await self.on_auth(message)
            return
        if not self.joined:
            await self.reply_error(msg_id, "not_authenticated", "Send auth first.")
            return
        handler = getattr(self, "on_" + kind.replace(".", "_"))
        try:
            await handler(message)
        except ProtocolError as error:
            await self.reply_error(msg_id, error.code, error.detail)
        except WorkspaceError as error:
            if error.status == 404:
                await self.close(CLOSE_NOT_FOUND)
                return
            await self.reply_error(msg_id, error.code, error.detail, **error.context)
        except services.LockError as error:
            extra = {}
            if error.lock is not None:
                extra = {k: v for k, v in services.lock_json(error.lock).items() if k != "path"}
            await self.reply_error(msg_id, error.code, error.detail, **extra)

    async def on_auth(self, message: dict[str, Any]) -> None:
        token = message.get("token")
        if not isinstance(token, str) or not token:
            await self.reply_error(message.get("id"), "invalid", "auth needs a token.")
            return
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
        self.principal = principal
        await self.send_json({"type": "ack", "id": message.get("id")})

    async def on_ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", "id": message.get("id")})

    async def on_resume(self, message: dict[str, Any]) -> None:
        last_seq = message.get("last_seq")
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise ProtocolError(
                "invalid", "last_seq must be a non-negative integer.", message.get("id")
            )
        # Rewind: events after last_seq are sent again from the log, then live ones follow.
        self.last_sent = last_seq
        replayed = await self.replay(last_seq)
        await self.send_json({"type": "ack", "id": message.get("id"), "replayed": replayed})

    async def on_state_patch(self, message: dict[str, Any]) -> None:
        assert self.principal is not None
        base = message.get("base_version")
        changes = message.get("changes")
        if not isinstance(base, int) or isinstance(base, bool) or not isinstance(changes, dict):
            raise ProtocolError(
                "invalid", "state.patch needs base_version and changes.", message.get("id")
            )
        serializer = SessionPatchIn(data=changes)
        if not changes or not serializer.is_valid():
            raise ProtocolError(
                "invalid", "changes are not valid session fields.", message.get("id")
            )
        view = await _sync(session_update)(
            db=fdb_backend.get_database(),
            principal=self.principal,
            session_id=self.session_id,
            changes=dict(serializer.validated_data),
            expected_version=base,
            origin=self.connection_id,
        )
        await self.send_json(
            {"type": "ack", "id": message.get("id"), "version": view.version, "seq": view.head.seq}
        )

    async def on_event_publish(self, message: dict[str, Any]) -> None:
        assert self.principal is not None
        name, data = message.get("event"), message.get("data")
        try:
            if not isinstance(name, str):
                raise ValidationError("event must be a string.")
            event_name_check(name)
            storable_json(data)
        except ValidationError:
            raise ProtocolError(
                "invalid", "event or data is not valid.", message.get("id")
            ) from None
        if len(json.dumps(data, separators=(",", ":")).encode()) > EVENT_DATA_MAX_BYTES:
            raise ProtocolError("invalid", "Event data is larger than 64 KiB.", message.get("id"))
        seq = await _sync(session_event_publish)(
            db=fdb_backend.get_database(),
            principal=self.principal,
            session_id=self.session_id,
            event=name,
            data=data,
            origin=self.connection_id,
        )
        await self.send_json({"type": "ack", "id": message.get("id"), "seq": seq})

    async def on_lock_acquire(self, message: dict[str, Any], renew: bool = False) -> None:
        assert self.principal is not None
        path, ttl = message.get("path"), message.get("ttl_s", 30)
        if not isinstance(path, str) or not path or len(path) > 1024:
            raise ProtocolError("invalid", "path must be a non-empty string.", message.get("id"))
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 300:
            raise ProtocolError(
                "invalid", "ttl_s must be an integer from 1 to 300.", message.get("id")
            )
        lock = await _sync(services.lock_acquire)(
            db=fdb_backend.get_database(),
            principal=self.principal,
            session_id=self.session_id,
            connection_id=self.connection_id,
            path=path,
            ttl_s=ttl,
            renew=renew,
        )
        self.tasks.append(asyncio.ensure_future(self.expire_later(ttl)))
        await self.send_json(
            {
                "type": "ack",
                "id": message.get("id"),
                "granted": True,
                "path": path,
                "expires_at": services.lock_json(lock)["expires_at"],
            }
        )

    async def on_lock_renew(self, message: dict[str, Any]) -> None:
        await self.on_lock_acquire(message, renew=True)

    async def on_lock_release(self, message: dict[str, Any]) -> None:
        assert self.principal is not None
        path = message.get("path")
        if not isinstance(path, str) or not path:
            raise ProtocolError("invalid", "path must be a non-empty string.", message.get("id"))
        await _sync(services.lock_release)(
            db=fdb_backend.get_database(),
            principal=self.principal,
            session_id=self.session_id,
            connection_id=self.connection_id,
            path=path,
        )
        await self.send_json({"type": "ack", "id": message.get("id"), "path": path})

    async def expire_later(self, ttl_s: int) -> None:
        """Sweep soon after our lease ends, so its release is broadcast promptly."""
        await asyncio.sleep(ttl_s + 0.2)
        await _sync(services.connection_heartbeat)(
            db=fdb_backend.get_database(),
            tenant_id=self.tenant_id,
            session_id=self.session_id,
            connection_id=self.connection_id,
        )

"""The session socket (``/ws/sessions/{id}/``, CONTRACT §4, docs/protocol.md) for agents.

``SessionSocket`` mirrors the platform's JavaScript client (realtime/static/realtime/client.js):

* Every broadcast is delivered exactly once and in seq order: a repeat (``seq`` <= the last
  one delivered) is dropped; one ahead of a gap is held until the missing ones come. A gap on
  an open socket is answered by ``resume {last_seq}``; a gap that a resume does not fill makes
  it connect anew. ``resync`` (the log no longer reaches back) replaces the state and is
  delivered as an ``Event`` of type ``resync``.
* Any close but 4403 and 4404 (and 4401 without a fresh token) reconnects after a random wait
  up to ``min(backoff_max_s, backoff_base_s * 2**attempt)`` (full jitter). On the new
  socket's ``welcome`` it keeps its own state (as of ``seq``) and sends ``resume``; live
  events that overtake the replay are held until it has been applied.
* ``ping`` every ``ping_every_s`` (the server closes sockets idle for 60 s); no message at all
  within ``pong_timeout_s`` after one drops the connection, which then reconnects. A token
  that is about to expire is refreshed and sent as ``auth`` on the open socket.
* ``publish`` is exactly-once across drops: a publish whose connection dropped before its ack
  is looked for, after the resume, among the replayed events of that connection (same name
  and data, seq not acknowledged to another publish). Found: it resolves with that seq;
  not found: it is sent again on the new connection. Other requests raise ``Disconnected``.
* Leases: ``async with sock.lock(path, ttl_s=60) as lease`` renews at ``ttl_s / 3`` and
  releases on exit. A lease belongs to a connection, so after a reconnect the socket takes it
  again at once. Until the server notices that the old connection is dead (its presence
  timeout, 30 s by default) the lease still names that connection: the socket retries while
  the holder is one of its own past connections, up to ``reacquire_timeout_s``. If another
  connection took it meanwhile, or the time runs out, the lease is lost: ``lease.lost`` is
  set, ``lease.check()`` raises ``LockLost`` and so does leaving the ``async with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin, Subprotocol

from coditect_client.errors import (
    AuthLost,
    CoditectError,
    Disconnected,
    LockHeld,
    LockLost,
    LockNotHeld,
    ProblemError,
    RequestTimeout,
    SessionGone,
    SocketError,
    SocketForbidden,
    TransportError,
    Unauthorized,
)
from coditect_client.models import BROADCASTS, Event

if TYPE_CHECKING:
    from coditect_client.client import Client

PROTOCOL = "coditect.v5"
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
ABNORMAL = 1006
# Own published events remembered to settle publishes whose ack a drop swallowed.
OWN_EVENTS_KEPT = 1000


class ClosedOnExit:
    """``async with`` ends in ``close()``, whatever ended the block (the client and its
    sockets)."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass
class SocketOptions:
    """Timings of a socket; the defaults suit the platform's defaults."""

    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    ping_every_s: float = 20.0  # the server closes a socket idle for 60 s
    pong_timeout_s: float = 10.0
    request_timeout_s: float = 15.0
    open_timeout_s: float = 30.0  # the first welcome, retries included
    handshake_timeout_s: float = 10.0
    publish_timeout_s: float = 120.0  # a publish waits through reconnects (exactly once)
    reacquire_timeout_s: float = 60.0
    max_message_bytes: int = 32 * 1024 * 1024  # a welcome carries the whole state


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    message: dict[str, Any]
    connection_id: str = ""


@dataclass
class Lease:
    """A lock this socket holds (see ``SessionSocket.lock``)."""

    path: str
    ttl_s: int
    expires_at: str | None = None
    connection_id: str = ""
    renewals: int = 0
    acquired_seq: int = 0  # the seq of the broadcast of this socket's latest acquisition
    reacquired: int = 0
    error: LockLost | None = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _held: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def held(self) -> bool:
        """Held on the socket's current connection now (False while being re-acquired)."""
        return self._held.is_set() and self.error is None

    def check(self) -> None:
        """Raise LockLost if the lease is gone (it may still be being re-acquired: ``held``)."""
        if self.error is not None:
            raise self.error

    async def wait_held(self, timeout: float | None = None) -> None:
        """Return once the lease is held (at once, unless a reconnect is re-acquiring it).
        LockLost if it is lost instead; TimeoutError after ``timeout``.

        Work that must only run under the lock calls this before each step.
        """
        async with asyncio.timeout(timeout):
            while not self.held:
                self.check()
                held, lost = (
                    asyncio.ensure_future(self._held.wait()),
                    asyncio.ensure_future(self.lost.wait()),
                )
                try:
                    await asyncio.wait({held, lost}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    held.cancel()
                    lost.cancel()
            self.check()


class _End:
    """The queue's last item: iteration stops (or raises the socket's fatal error)."""


_END = _End()


class SessionSocket(ClosedOnExit):
    """A self-healing socket on one workspace session (see the module's doc)."""

    def __init__(self, client: Client, session_id: str, options: SocketOptions) -> None:
        self.client = client
        self.session_id = session_id
        self.options = options
        # The session as of `seq`, the last broadcast delivered.
        self.session: dict[str, Any] = {}
        self.version = 0
        self.seq = 0
        self.presence: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, dict[str, Any]] = {}
        self.connection_id = ""
        # How the connection went: welcomes, resumes, resyncs, gaps seen, repeats dropped, and
        # publishes a drop interrupted that were found in the replay / sent again.
        self.counts = dict.fromkeys(
            (
                "opened",
                "resumed",
                "resynced",
                "reauthed",
                "gaps",
                "repeats",
                "recovered",
                "republished",
            ),
            0,
        )
        self._synced = False
        self._ahead: dict[int, dict[str, Any]] = {}
        self._gap_resumed = False
        self._resume_id: str | None = None
        self._resync_seen = False
        self._ws: ClientConnection | None = None
        self._socket_token: str | None = None
        self._auth_ids: set[str] = set()
        self._last_received = 0.0
        self._ready = asyncio.Event()  # open, welcomed, resumed: requests may go out
        self._first = asyncio.Event()  # the first welcome came (or the socket failed)
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._unsettled: list[_Pending] = []
        self._my_connections: set[str] = set()
        self._claimed: set[int] = set()
        self._own_events: OrderedDict[int, Event] = OrderedDict()
        self._queue: asyncio.Queue[Event | _End] = asyncio.Queue()
        self._leases: dict[str, Lease] = {}
        self._lease_tasks: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._fatal: CoditectError | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> SessionSocket:
        """Connect (retrying) until the first ``welcome``. SessionGone, SocketForbidden,
        AuthLost at once; TransportError when nothing answers within ``open_timeout_s``."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"socket {self.session_id}")
        try:
            await asyncio.wait_for(self._first.wait(), self.options.open_timeout_s)
        except TimeoutError:
            await self.close()
            raise TransportError(f"no welcome on {self.client.ws_url(self.session_id)}") from None
        if self._fatal is not None:
            raise self._fatal
        return self

    async def __aenter__(self) -> SessionSocket:
        return await self.open()

    async def close(self) -> None:
        """Release the leases, close the socket for good (no reconnect)."""
        if self._closed:
            return
        for path in list(self._leases):
            with contextlib.suppress(CoditectError, TimeoutError):
                await asyncio.wait_for(self._release(path), 2)
        self._closed = True
        for task in self._lease_tasks.values():
            task.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(1000), 5)
        self._fail_all(Disconnected("the socket was closed"))
        self._queue.put_nowait(_END)
        self._first.set()
        self.client._forget(self)

    @property
    def is_open(self) -> bool:
        return self._ready.is_set() and not self._closed and self._fatal is None

    # --- events ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # for the next reader too
            if self._fatal is not None:
                raise self._fatal
            raise StopAsyncIteration
        return item

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next broadcast (TimeoutError after ``timeout``; StopAsyncIteration once closed)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def pending_events(self) -> int:
        return self._queue.qsize()

    # --- requests -------------------------------------------------------------------------

    async def request(
        self, message: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a client message (an ``id`` is added) and return its ``ack``.

        Waits for the socket to be (re)connected first. ProblemError subclasses for an
        ``error`` answer (VersionConflict, LockHeld, Forbidden...); Disconnected when the
        connection drops before the answer; RequestTimeout.
        """
        ack, _ = await self._request(message, timeout)
        return ack

    async def _request(
        self, message: dict[str, Any], timeout: float | None = None
    ) -> tuple[dict[str, Any], str]:
        timeout = self.options.request_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        await self._wait_ready(timeout)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending = _Pending(future, dict(message))
        await self._send_pending(pending)
        try:
            ack = await asyncio.wait_for(
                asyncio.shield(future), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            self._forget_pending(pending)
            raise RequestTimeout(f"no answer to {message.get('type')}") from None
        except asyncio.CancelledError:
            self._forget_pending(pending)  # a cancelled publish is not sent again
            raise
        return ack, pending.connection_id

    async def patch(
        self, changes: dict[str, Any], base_version: int | None = None
    ) -> dict[str, Any]:
        """``state.patch`` on the version this socket knows; ack ``{version, seq}``.
        VersionConflict (``current_version``) when the session moved on."""
        version = self.version if base_version is None else base_version
        return await self.request(
            {"type": "state.patch", "base_version": version, "changes": changes}
        )

    async def publish(self, event: str, data: Any = None, timeout: float | None = None) -> int:
        """``event.publish``; returns its seq. Exactly once across drops (module doc): waits
        through a reconnect rather than raising Disconnected."""
        timeout = self.options.publish_timeout_s if timeout is None else timeout
        ack = await self.request({"type": "event.publish", "event": event, "data": data}, timeout)
        return int(ack["seq"])

    async def ping(self) -> None:
        """A round trip: returns once the server answered (its ``pong``)."""
        await self.request({"type": "ping"})

    # --- leases ---------------------------------------------------------------------------

    def lock(self, path: str, ttl_s: int = 60, wait_s: float = 0.0) -> _LockContext:
        """``async with sock.lock(path, ttl_s=60) as lease:`` holds a renewed lease.

        LockHeld (with ``holder``) when another connection holds it and ``wait_s`` (retries
        every half second) runs out. See the module's doc for drops and LockLost.
        """
        if not 1 <= ttl_s <= 300:
            raise ValueError("ttl_s must be 1..300 seconds")
        return _LockContext(self, path, ttl_s, wait_s)

    async def acquire(self, path: str, ttl_s: int = 60, wait_s: float = 0.0) -> Lease:
        """Take a lease and keep renewing it until ``release`` (or ``close``)."""
        if path in self._leases:
            raise ValueError(f"this socket holds {path} already")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                ack, connection_id = await self._request(
                    {"type": "lock.acquire", "path": path, "ttl_s": ttl_s}
                )
                break
            except LockHeld:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)
        lease = Lease(path, ttl_s, ack.get("expires_at"), connection_id)
        if connection_id == self.connection_id:
            lease._held.set()
        else:
            lease._wake.set()  # granted to a connection that dropped since: take it again
        self._leases[path] = lease
        self._lease_tasks[path] = asyncio.create_task(self._keep(lease), name=f"lease {path}")
        return lease

    async def release(self, path: str) -> None:
        """Stop renewing and release; LockLost if the lease had been lost meanwhile."""
        lease = self._leases.get(path)
        await self._release(path)
        if lease is not None:
            lease.check()

    async def _release(self, path: str) -> None:
        lease = self._leases.pop(path, None)
        task = self._lease_tasks.pop(path, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if lease is None or lease.error is not None or self._closed:
            return
        with contextlib.suppress(LockNotHeld, Disconnected, RequestTimeout):
            await self.request({"type": "lock.release", "path": path})

    async def _keep(self, lease: Lease) -> None:
        try:
            await self._renew_loop(lease)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._lose(lease, f"renewal failed: {error!r}")

    async def _renew_loop(self, lease: Lease) -> None:
        """Renew at ttl/3; after a reconnect, take the lease again on the new connection."""
        interval = max(0.2, lease.ttl_s / 3)
        while lease.error is None and not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lease._wake.wait(), interval)
            lease._wake.clear()
            if lease.connection_id != self.connection_id:
                await self._reacquire(lease)
                continue
            try:
                ack, _ = await self._request(
                    {"type": "lock.renew", "path": lease.path, "ttl_s": lease.ttl_s}
                )
                lease.expires_at = ack.get("expires_at")
                lease.renewals += 1
            except LockNotHeld:
                # Expired before this renewal (a stall): take it again if nobody else did.
                lease._held.clear()
                lease.connection_id = ""
                lease._wake.set()
            except (Disconnected, RequestTimeout):
                continue  # the reconnect's welcome wakes this loop
            except ProblemError as error:
                self._lose(lease, f"renewal refused: {error.code}")

    async def _reacquire(self, lease: Lease) -> None:
        deadline = time.monotonic() + self.options.reacquire_timeout_s
        while lease.error is None and not self._closed:
            try:
                ack, connection_id = await self._request(
                    {"type": "lock.acquire", "path": lease.path, "ttl_s": lease.ttl_s}
                )
            except LockHeld as held:
                holder = held.holder or {}
                if holder.get("connection_id") not in self._my_connections:
                    self._lose(lease, "another connection holds it")
                    return
                # Still ours on a dead connection: the server frees it once that connection
                # misses its presence timeout.
                if time.monotonic() >= deadline:
                    self._lose(lease, "not re-acquired in time")
                    return
                await asyncio.sleep(0.5)
                continue
            except (Disconnected, RequestTimeout):
                continue
            except ProblemError as error:
                self._lose(lease, f"re-acquire refused: {error.code}")
                return
            lease.connection_id = connection_id
            lease.expires_at = ack.get("expires_at")
            lease.reacquired += 1
            if connection_id == self.connection_id:
                lease._held.set()
            return

    def _lose(self, lease: Lease, reason: str) -> None:
        if lease.error is None:
            lease.error = LockLost(lease.path, reason)
            lease.lost.set()

    # --- connection -----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug here must not leave callers waiting forever on a socket that is gone.
            self._die(SocketError(f"the socket failed: {error!r}"))

    async def _connect_loop(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                token = await self.client.access_token()
            except Unauthorized as error:
                self._die(AuthLost(f"signed out: {error.code}", CLOSE_UNAUTHENTICATED))
                return
            except TransportError:
                await self._backoff(attempt)
                attempt += 1
                continue
            try:
                ws = await connect(
                    self.client.ws_url(self.session_id),
                    subprotocols=[Subprotocol(PROTOCOL), Subprotocol(f"bearer.{token}")],
                    origin=Origin(self.client.origin) if self.client.origin else None,
                    open_timeout=self.options.handshake_timeout_s,
                    close_timeout=5,
                    ping_interval=None,  # the protocol's own ping keeps the socket alive
                    max_size=self.options.max_message_bytes,
                )
            except InvalidStatus as error:
                status = error.response.status_code
                if status == 403:
                    self._die(SocketForbidden(f"handshake refused with {status}"))
                    return
                if status == 404:
                    self._die(SessionGone(f"handshake refused with {status}"))
                    return
                await self._backoff(attempt)
                attempt += 1
                continue
            except (OSError, TimeoutError, InvalidHandshake):
                await self._backoff(attempt)
                attempt += 1
                continue
            self._socket_token = token
            welcomed_before = self.counts["opened"]
            code = await self._serve(ws)
            if self.counts["opened"] > welcomed_before:
                attempt = 0
            if self._closed:
                return
            if code == CLOSE_NOT_FOUND:
                self._die(SessionGone("the session does not exist or was deleted", code))
                return
            if code == CLOSE_FORBIDDEN:
                self._die(SocketForbidden("the server refused this socket", code))
                return
            if code == CLOSE_UNAUTHENTICATED:
                # Expired or revoked: a refresh tells which.
                try:
                    await self.client.refresh()
                except Unauthorized as error:
                    self._die(AuthLost(f"signed out: {error.code}", code))
                    return
                except TransportError:
                    pass
                else:
                    continue  # at once, with the new token
            await self._backoff(attempt)
            attempt += 1

    async def _backoff(self, attempt: int) -> None:
        # Full jitter: agents that lost one server together do not come back in one wave.
        bound = min(self.options.backoff_max_s, self.options.backoff_base_s * 2**attempt)
        await asyncio.sleep(max(0.1, random.uniform(0, bound)))  # noqa: S311 - backoff jitter

    async def _serve(self, ws: ClientConnection) -> int:
        """Read one connection until it closes; its close code."""
        self._ws = ws
        self._last_received = time.monotonic()
        keeper = asyncio.create_task(self._keepalive(ws), name="socket keepalive")
        try:
            while True:
                try:
                    raw = await ws.recv()
                except ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd is not None else ABNORMAL
                self._last_received = time.monotonic()
                if isinstance(raw, str):
                    await self._receive(ws, raw)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
            self._ws = None
            self._disconnected()

    def _disconnected(self) -> None:
        self._ready.clear()
        for lease in self._leases.values():
            lease._held.clear()  # a lease belongs to a connection
        self._resume_id = None
        for key, pending in list(self._pending.items()):
            del self._pending[key]
            if pending.message.get("type") == "event.publish" and pending.connection_id:
                self._unsettled.append(pending)  # settled after the resume
            elif not pending.future.done():
                pending.future.set_exception(Disconnected("the connection dropped; retrying"))

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Ping while idle; drop a connection that answers nothing; re-auth before expiry."""
        options = self.options
        next_ping = time.monotonic() + options.ping_every_s
        ping_sent: float | None = None
        while True:
            now = time.monotonic()
            wake = [next_ping]
            due = self.client.refresh_due_in()
            if due is not None:
                # At least a second apart: a refresh that keeps failing must not spin.
                wake.append(now + max(1.0, due))
            if ping_sent is not None:
                wake.append(ping_sent + options.pong_timeout_s)
            await asyncio.sleep(max(0.0, min(wake) - now))
            now = time.monotonic()
            if ping_sent is not None:
                if self._last_received >= ping_sent:
                    ping_sent = None  # anything at all proves the connection alive
                elif now >= ping_sent + options.pong_timeout_s:
                    # Dead without a close (a lost network): drop it now, then reconnect.
                    ws.transport.abort()
                    return
            due = self.client.refresh_due_in()
            if due is not None and due <= 0:
                token = await self._fresh_token()
                if token is not None and token != self._socket_token:
                    self._socket_token = token
                    auth_id = self._new_id()
                    self._auth_ids.add(auth_id)
                    await self._send_raw(ws, {"type": "auth", "token": token, "id": auth_id})
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + options.ping_every_s
                if ping_sent is None:
                    ping_sent = time.monotonic()
                await self._send_raw(ws, {"type": "ping", "id": self._new_id()})

    async def _fresh_token(self) -> str | None:
        try:
            return await self.client.access_token()
        except CoditectError:
            return None  # the close that follows decides

    # --- receiving ------------------------------------------------------------------------

    async def _receive(self, ws: ClientConnection, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return
        kind = message["type"]
        if kind == "welcome":
            await self._on_welcome(ws, message)
        elif kind == "resync":
            self._on_resync(message)
        elif kind in ("ack", "error", "pong"):
            await self._on_reply(ws, message)
        elif kind in BROADCASTS:
            await self._on_broadcast(ws, message)

    async def _on_welcome(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        self.connection_id = str(message.get("connection_id", ""))
        self._my_connections.add(self.connection_id)
        self._gap_resumed = False
        self._resync_seen = False
        self.counts["opened"] += 1
        if not self._synced:
            self._adopt(message)
            self._synced = True
            self._ready.set()
            self._first.set()
            return
        # Back after a drop: the events between our seq and the welcome's are what an agent
        # must see, so ask for them and apply them to our state as of `seq`.
        await self._resume(ws)

    async def _resume(self, ws: ClientConnection) -> None:
        self.counts["resumed"] += 1
        self._resume_id = self._new_id()
        await self._send_raw(ws, {"type": "resume", "last_seq": self.seq, "id": self._resume_id})

    def _on_resync(self, message: dict[str, Any]) -> None:
        self._adopt(message)
        self.counts["resynced"] += 1
        self._resync_seen = True
        self._queue.put_nowait(Event.from_message(message))
        self._drain_ahead()

    def _adopt(self, message: dict[str, Any]) -> None:
        self.session = dict(message.get("session") or {})
        self.version = int(message.get("version", 0))
        self.seq = int(message.get("seq", 0))
        self.presence = {p["connection_id"]: p for p in message.get("presence") or []}
        self.locks = {lock["path"]: lock for lock in message.get("locks") or []}

    async def _on_reply(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        reply_id = message.get("id")
        if isinstance(reply_id, str) and reply_id in self._auth_ids:
            self._auth_ids.discard(reply_id)
            if message["type"] == "ack":
                self.counts["reauthed"] += 1
            return
        if reply_id is not None and reply_id == self._resume_id:
            self._resume_id = None
            if message["type"] == "error" or self._ahead:
                await self._fill_gap(ws)  # the replay did not reach the events held back
                return
            self._gap_resumed = False
            await self._caught_up(ws)
            return
        pending = self._pending.pop(str(reply_id), None) if reply_id is not None else None
        if pending is None or pending.future.done():
            return
        if message["type"] in ("ack", "pong"):
            if pending.message.get("type") == "event.publish" and "seq" in message:
                self._claimed.add(int(message["seq"]))
                self._own_events.pop(int(message["seq"]), None)
            pending.future.set_result(message)
        else:
            pending.future.set_exception(ProblemError.from_problem(None, message))

    async def _caught_up(self, ws: ClientConnection) -> None:
        """After a reconnect's resume: settle publishes, then let requests and leases go."""
        unsettled, self._unsettled = self._unsettled, []
        for pending in unsettled:
            if pending.future.done():
                continue
            found = self._find_own(pending)
            if found is not None:
                self._claimed.add(found.seq)
                self._own_events.pop(found.seq, None)
                self.counts["recovered"] += 1
                pending.future.set_result({"type": "ack", "seq": found.seq, "recovered": True})
            elif self._resync_seen:
                # The log did not reach back: whether it was applied cannot be told.
                pending.future.set_exception(Disconnected("dropped, and the log was resynced"))
            else:
                self.counts["republished"] += 1
                await self._send_pending(pending, ws)
        self._ready.set()
        for lease in self._leases.values():
            lease._wake.set()

    def _find_own(self, pending: _Pending) -> Event | None:
        event, data = pending.message.get("event"), pending.message.get("data")
        for seq, own in self._own_events.items():
            if (
                own.origin == pending.connection_id
                and own.event == event
                and own.data == data
                and seq not in self._claimed
            ):
                return own
        return None

    async def _on_broadcast(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        if not self._synced:
            return
        seq = message.get("seq")
        if not isinstance(seq, int):
            return
        if seq <= self.seq:
            self.counts["repeats"] += 1  # the seam of a resume
            return
        if seq > self.seq + 1:
            # Ahead of a gap: held until the missing ones come. Right after a reconnect they
            # are in the replay on its way; otherwise ask for them.
            self._ahead[seq] = message
            if self._resume_id is None:
                self.counts["gaps"] += 1
                await self._fill_gap(ws)
            return
        self._apply(message)
        self._drain_ahead()

    def _drain_ahead(self) -> None:
        while (following := self._ahead.pop(self.seq + 1, None)) is not None:
            self._apply(following)
        for seq in [seq for seq in self._ahead if seq <= self.seq]:
            del self._ahead[seq]

    async def _fill_gap(self, ws: ClientConnection) -> None:
        """A resume first; if that does not fill the gap, a new connection (whose resume
        replays everything after ``seq``)."""
        if self._resume_id is not None:
            return
        if self._gap_resumed:
            ws.transport.abort()
            return
        self._gap_resumed = True
        await self._resume(ws)

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "state.changed":
            changes = message.get("changes") or {}
            self.version = int(message.get("version", self.version))
            self.session = {**self.session, **changes, "version": self.version}
        elif kind == "presence.join":
            connection_id = str(message.get("connection_id"))
            self.presence[connection_id] = {
                key: message.get(key) for key in ("connection_id", "user_id", "display_name")
            }
        elif kind == "presence.leave":
            self.presence.pop(str(message.get("connection_id")), None)
        elif kind == "presence.batch":  # a large room's joins and leaves, in order
            for entry in message.get("connections") or []:
                connection_id = str(entry.get("connection_id"))
                if entry.get("change") == "join":
                    self.presence[connection_id] = {
                        key: entry.get(key) for key in ("connection_id", "user_id", "display_name")
                    }
                else:
                    self.presence.pop(connection_id, None)
        elif kind == "lock.changed":
            path, holder = str(message.get("path")), message.get("holder")
            if holder:
                self.locks[path] = {
                    "path": path,
                    "holder": holder,
                    "expires_at": message.get("expires_at"),
                }
                lease = self._leases.get(path)
                if lease is not None:
                    if holder.get("connection_id") in self._my_connections:
                        lease.acquired_seq = int(message["seq"])
                    elif lease.acquired_seq:
                        # Only news after our own acquisition: older ones may come after its ack.
                        self._lose(lease, "another connection took it")
            else:
                self.locks.pop(path, None)
        self.seq = int(message["seq"])
        event = Event.from_message(message)
        if kind == "event" and event.origin in self._my_connections:
            self._own_events[event.seq] = event
            while len(self._own_events) > OWN_EVENTS_KEPT:
                self._own_events.popitem(last=False)
        self._queue.put_nowait(event)

    # --- plumbing -------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"py-{next(self._ids)}"

    async def _wait_ready(self, timeout: float) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise Disconnected("the socket is closed")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise RequestTimeout("the socket did not reconnect in time") from None
        if self._fatal is not None:
            raise self._fatal

    async def _send_pending(self, pending: _Pending, ws: ClientConnection | None = None) -> None:
        ws = ws or self._ws
        request_id = self._new_id()
        pending.message["id"] = request_id
        pending.connection_id = self.connection_id
        self._pending[request_id] = pending
        if ws is None or not await self._send_raw(ws, pending.message):
            self._pending.pop(request_id, None)
            if pending.message.get("type") == "event.publish":
                self._unsettled.append(pending)
            elif not pending.future.done():
                pending.future.set_exception(Disconnected("the connection dropped; retrying"))

    def _forget_pending(self, pending: _Pending) -> None:
        for key, value in list(self._pending.items()):
            if value is pending:
                del self._pending[key]
        if pending in self._unsettled:
            self._unsettled.remove(pending)

    async def _send_raw(self, ws: ClientConnection, message: dict[str, Any]) -> bool:
        try:
            await ws.send(json.dumps(message))
        except ConnectionClosed:
            return False
        return True

    def _fail_all(self, error: CoditectError) -> None:
        for pending in [*self._pending.values(), *self._unsettled]:
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
        self._unsettled.clear()

    def _die(self, error: SocketError) -> None:
        self._fatal = error
        self._fail_all(error)
        for lease in self._leases.values():
            self._lose(lease, str(error))
        self._queue.put_nowait(_END)
        self._first.set()
        self._ready.set()  # waiters wake and see the error


class _LockContext:
    def __init__(self, sock: SessionSocket, path: str, ttl_s: int, wait_s: float) -> None:
        self.sock = sock
        self.path = path
        self.ttl_s = ttl_s
        self.wait_s = wait_s

    async def __aenter__(self) -> Lease:
        return await self.sock.acquire(self.path, self.ttl_s, self.wait_s)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lease = self.sock._leases.get(self.path)
        await self.sock._release(self.path)
        if lease is not None and error is None:
            lease.check()

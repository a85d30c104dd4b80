"""Helpers of the realtime tests: a WebSocket peer that keeps every message, and checks.

A ``Peer`` records every message it receives, in order. ``next`` waits for the first message
not yet taken that matches, so a test can wait for an ack while broadcasts keep arriving;
``broadcasts`` and ``assert_contiguous`` look at everything that came, taken or not.
``CommPeer`` speaks to the ASGI application in this process (channels' WebsocketCommunicator);
``tests.realtime.servers.NetPeer`` speaks to a real daphne over TCP with ``websockets``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from coditect.asgi import application

PROTOCOL = "coditect.v5"
BROADCASTS = frozenset(
    {"state.changed", "presence.join", "presence.leave", "presence.batch", "lock.changed", "event"}
)
ERROR_CODES = frozenset({"invalid_message", "unknown_type", "invalid"})
HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
WAIT_S = 5.0
# A socket closed without a close frame (the application just ended).
ABNORMAL = 1006


def ws_path(session_id: str, query: str = "") -> str:
    return f"/ws/sessions/{session_id}/" + (f"?{query}" if query else "")


def bearer(token: str) -> list[str]:
    return [PROTOCOL, f"bearer.{token}"]


def rfc3339(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


class SocketClosed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


Match = Callable[[dict[str, Any]], bool]


def matcher(kind: str | Match | None, fields: dict[str, Any]) -> Match:
    def match(message: dict[str, Any]) -> bool:
        if callable(kind):
            if not kind(message):
                return False
        elif kind is not None and message.get("type") != kind:
            return False
        return all(key in message and message[key] == value for key, value in fields.items())

    return match


class Peer:
    """One WebSocket connection as a client sees it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.welcome: dict[str, Any] = {}
        self._taken: set[int] = set()
        self._ids = itertools.count(1)

    # --- transport (subclasses) -------------------------------------------------------

    async def _read(self, timeout: float) -> dict[str, Any] | int:
        """The next message, or the close code once the socket is closed; TimeoutError."""
        raise NotImplementedError

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def send_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # --- receiving --------------------------------------------------------------------

    @property
    def connection_id(self) -> str:
        connection_id = self.welcome["connection_id"]
        assert isinstance(connection_id, str)
        return connection_id

    async def _pull(self, deadline: float) -> None:
        """Read one more message into ``received``; SocketClosed, or TimeoutError at deadline."""
        if self.close_code is not None:
            raise SocketClosed(self.close_code)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError
        item = await self._read(remaining)
        if isinstance(item, int):
            self.close_code = item
            raise SocketClosed(item)
        self.received.append(item)

    def pending(self) -> list[dict[str, Any]]:
        return [m for i, m in enumerate(self.received) if i not in self._taken]

    async def next(
        self,
        kind: str | Match | None = None,
        timeout: float = WAIT_S,
        take: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """The first message not taken yet that has this type (or passes this test) and fields."""
        match = matcher(kind, fields)
        deadline = asyncio.get_running_loop().time() + timeout
        what = f"{kind if isinstance(kind, str) else 'message'} {fields or ''}".strip()
        start = 0
        while True:
            for index in range(start, len(self.received)):
                if index not in self._taken and match(self.received[index]):
                    if take:
                        self._taken.add(index)
                    return self.received[index]
            start = len(self.received)
            try:
                await self._pull(deadline)
            except TimeoutError:
                raise AssertionError(
                    f"{self.name}: no {what} within {timeout} s; not taken: {self.pending()}"
                ) from None
            except SocketClosed as closed:
                raise AssertionError(
                    f"{self.name}: closed with {closed.code} while waiting for {what}; "
                    f"not taken: {self.pending()}"
                ) from None

    async def expect_close(self, timeout: float = WAIT_S) -> int:
        """The close code of the socket, which must close within ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self._pull(deadline)
            except SocketClosed as closed:
                return closed.code
            except TimeoutError:
                raise AssertionError(
                    f"{self.name}: still open after {timeout} s; not taken: {self.pending()}"
                ) from None

    async def drain(self, quiet: float = 0.2, limit: float = WAIT_S) -> None:
        """Receive until nothing comes for ``quiet`` seconds (at most ``limit`` in all)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        while loop.time() < end:
            try:
                await self._pull(min(end, loop.time() + quiet))
            except TimeoutError:
                return
        raise AssertionError(f"{self.name}: messages kept coming for {limit} s")

    async def wait_seq(self, seq: int, timeout: float = WAIT_S) -> None:
        """Wait until a broadcast with this seq (or a later one) has arrived."""
        await self.next(
            lambda m: m.get("type") in BROADCASTS and int(m.get("seq", -1)) >= seq,
            timeout=timeout,
            take=False,
        )

    # --- sending ----------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        await self.send_text(json.dumps(message))

    def new_id(self) -> str:
        return f"{self.name}-{next(self._ids)}"

    async def request(self, kind: str, timeout: float = WAIT_S, **fields: Any) -> dict[str, Any]:
        """Send a message with a fresh id; its ack or error."""
        request_id = self.new_id()
        await self.send({"type": kind, "id": request_id, **fields})
        return await self.reply(request_id, timeout)

    async def reply(self, request_id: str, timeout: float = WAIT_S) -> dict[str, Any]:
        reply = await self.next(
            lambda m: m.get("type") in ("ack", "error") and m.get("id") == request_id,
            timeout=timeout,
        )
        if reply["type"] == "error":
            assert isinstance(reply.get("code"), str), reply
            assert isinstance(reply.get("detail"), str), reply
            assert reply["detail"], reply
        return reply

    async def ok(self, kind: str, timeout: float = WAIT_S, **fields: Any) -> dict[str, Any]:
        reply = await self.request(kind, timeout, **fields)
        assert reply["type"] == "ack", (self.name, kind, fields, reply)
        return reply

    async def refused(
        self,
        kind: str,
        code: str | set[str] | frozenset[str],
        timeout: float = WAIT_S,
        **fields: Any,
    ) -> dict[str, Any]:
        reply = await self.request(kind, timeout, **fields)
        assert reply["type"] == "error", (self.name, kind, fields, reply)
        codes = {code} if isinstance(code, str) else code
        assert reply["code"] in codes, (self.name, kind, fields, reply)
        return reply

    async def ping(self, timeout: float = WAIT_S) -> dict[str, Any]:
        """A ping answered by its pong: the socket is open and usable."""
        request_id = self.new_id()
        await self.send({"type": "ping", "id": request_id})
        return await self.next("pong", timeout=timeout, id=request_id)

    # --- checks -----------------------------------------------------------------------

    def broadcasts(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every broadcast received so far (of this type), in the order it came."""
        return [
            m
            for m in self.received
            if m.get("type") in BROADCASTS and (kind is None or m.get("type") == kind)
        ]

    def heard(self) -> list[dict[str, Any]]:
        """Every broadcast but the news of this connection's own join (which it may get)."""
        return [
            m
            for m in self.broadcasts()
            if not (m["type"] == "presence.join" and m.get("connection_id") == self.connection_id)
        ]

    def seqs(self) -> list[int]:
        return [int(m["seq"]) for m in self.broadcasts()]

    def assert_contiguous(self, start: int | None = None) -> list[int]:
        """Broadcasts came as start+1, start+2, ... (start: the welcome's seq): no gap, no dup."""
        first = int(self.welcome["seq"]) if start is None else start
        seqs = self.seqs()
        assert seqs == list(range(first + 1, first + 1 + len(seqs))), (self.name, first, seqs)
        return seqs

    def by_seq(self) -> dict[int, dict[str, Any]]:
        return {int(m["seq"]): m for m in self.broadcasts()}


class CommPeer(Peer):
    """A connection to the ASGI application of this process."""

    def __init__(self, communicator: WebsocketCommunicator, name: str) -> None:
        super().__init__(name)
        self.communicator = communicator

    async def _read(self, timeout: float) -> dict[str, Any] | int:
        communicator = self.communicator
        task = communicator.future
        get = asyncio.ensure_future(communicator.output_queue.get())
        done, _ = await asyncio.wait(
            {get, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if get not in done:
            get.cancel()
            if task not in done:
                raise TimeoutError
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
            return ABNORMAL
        output = get.result()
        if output["type"] == "websocket.close":
            code = int(output.get("code", 1000))
            # What daphne does once the close frame is out: tell the application.
            if not task.done():
                await communicator.send_input({"type": "websocket.disconnect", "code": code})
            return code
        assert output["type"] == "websocket.send", output
        assert "text" in output, f"{self.name}: a binary frame from the server: {output}"
        message = json.loads(output["text"])
        assert isinstance(message, dict), message
        assert isinstance(message.get("type"), str), message
        return message

    async def send_text(self, text: str) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_input({"type": "websocket.receive", "bytes": data})

    async def close(self) -> None:
        """Disconnect like a browser tab that goes away, and let the consumer finish."""
        task = self.communicator.future
        if not task.done():
            await self.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.communicator.wait(2)


class Sockets:
    """Opens connections to the in-process application; closes them all at the end."""

    def __init__(self) -> None:
        self.peers: list[CommPeer] = []

    async def open(self, path: str, protocols: list[str], name: str) -> tuple[CommPeer, bool, Any]:
        """A connection attempt: (peer, accepted, subprotocol or close code)."""
        communicator = WebsocketCommunicator(
            application, path, headers=HEADERS, subprotocols=protocols
        )
        peer = CommPeer(communicator, name)
        self.peers.append(peer)
        accepted, detail = await communicator.connect(timeout=WAIT_S)
        if not accepted:
            peer.close_code = int(detail)
        return peer, accepted, detail

    async def join(
        self, session_id: str, token: str, name: str, via: str = "subprotocol"
    ) -> CommPeer:
        """An authenticated connection that got its welcome (token as subprotocol or message)."""
        protocols = bearer(token) if via == "subprotocol" else [PROTOCOL]
        peer, accepted, detail = await self.open(ws_path(session_id), protocols, name)
        assert accepted, f"{name}: refused with {detail}"
        assert detail == PROTOCOL, f"{name}: accepted with subprotocol {detail!r}"
        if via == "message":
            await peer.send({"type": "auth", "token": token})
        peer.welcome = await peer.next("welcome")
        return peer

    async def refused(
        self,
        path: str,
        protocols: list[str],
        first: dict[str, Any] | None = None,
        timeout: float = WAIT_S,
    ) -> int:
        """The close code of a connection that must not get in (no welcome before the close)."""
        peer, accepted, detail = await self.open(path, protocols, "refused")
        if not accepted:
            return int(detail)
        if first is not None:
            await peer.send(first)
        code = await peer.expect_close(timeout)
        assert not [m for m in peer.received if m.get("type") == "welcome"], peer.received
        return code

    async def close_all(self) -> None:
        for peer in self.peers:
            await peer.close()


async def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a sync call (the REST client, a service) outside the event loop's thread."""
    return await sync_to_async(function)(*args, **kwargs)


def redis_url_or_skip(db: int) -> str:
    """A flushed Redis database on this machine; skipped without Redis, but failed under CI."""
    import redis

    url = f"redis://127.0.0.1:6379/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        client.ping()
        client.flushdb()
        client.close()
    except redis.RedisError as error:
        reason = f"Redis is not reachable at {url}: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: Redis is required)")
        pytest.skip(reason)
    return url


def state_fields(message: dict[str, Any]) -> tuple[Any, ...]:
    """What must be the same in a broadcast live and replayed."""
    kind = message["type"]
    if kind == "state.changed":
        return (kind, message["seq"], message["version"], message["changes"], message["origin"])
    if kind == "event":
        return (kind, message["seq"], message["event"], message["data"], message.get("origin"))
    if kind in ("presence.join", "presence.leave"):
        return (kind, message["seq"], message["connection_id"], message["user_id"])
    if kind == "presence.batch":
        return (kind, message["seq"], message["connections"], message["count"])
    if kind == "lock.changed":
        return (kind, message["seq"], message["path"], message["holder"])
    raise AssertionError(f"not a broadcast: {message}")

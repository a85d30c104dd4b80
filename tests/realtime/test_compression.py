"""permessage-deflate under ``python -m coditect.serve`` with real clients over TCP (issue 14):
the server negotiates ``server_no_context_takeover`` and deflates a broadcast once for all the
sockets that share its parameters; what every client receives is byte for byte what zlib makes
of the message on its own and inflates to the text a plain client gets; clients with other
window bits get their own correct frames; short replies go uncompressed; the cache is bounded.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.typing import Subprotocol

from coditect.serve import DeflateCache
from tests.realtime.helpers import PROTOCOL, ws_path
from tests.realtime.servers import (
    ROOT,
    Account,
    Http,
    Server,
    Servers,
    base_env,
    create_session,
    register,
)
from tests.store import shared_store

pytestmark = pytest.mark.slow

LEVEL = 1  # CODITECT_WS_COMPRESSION_LEVEL's default
MEM_LEVEL = 8  # autobahn's, not negotiated
SYNC_TAIL = b"\x00\x00\xff\xff"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


class CountingServer(Server):
    """``python -m coditect.serve`` that logs each message it deflates (deflate_counting.py)."""

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        module = "tests.realtime.deflate_counting"
        command = [sys.executable, "-m", module, "-b", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def deflated(self) -> list[dict[str, Any]]:
        path = Path(self.env["DEFLATE_LOG"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def start_counting(servers: Servers, tmp_path: Path, **extra: str) -> CountingServer:
    env = base_env(shared_store(tmp_path), **extra)
    env["DEFLATE_LOG"] = str(tmp_path / "deflated.jsonl")
    server = CountingServer("counting", tmp_path / "daphne-counting.log", env)
    servers.started.append(server)  # stopped with the others
    server.start()
    server.wait_ready()
    return server


class Recording(ClientConnection):
    """A client connection that keeps every byte the server sent, as it came over TCP."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw = bytearray()
        self.texts: list[str] = []  # every message recv() gave, in order

    def data_received(self, data: bytes) -> None:
        self.raw += data
        super().data_received(data)

    def frames(self) -> list[tuple[bool, str]]:
        """The text frames received so far: (RSV1 set, the payload as sent, inflated if set)."""
        data = bytes(self.raw[self.raw.index(b"\r\n\r\n") + 4 :])
        frames, i = [], 0
        while i + 2 <= len(data):
            b0, b1 = data[i], data[i + 1]
            i += 2
            length = b1 & 0x7F
            if length >= 126:
                width = 2 if length == 126 else 8
                length = int.from_bytes(data[i : i + width], "big")
                i += width
            assert b0 & 0x80 and not b1 & 0x80, "a fragmented or masked frame from the server"
            payload = data[i : i + length]
            i += length
            if b0 & 0x0F == 1:  # text
                rsv1 = bool(b0 & 0x40)
                text = inflate(payload, 15) if rsv1 else payload
                frames.append((rsv1, text.decode()))
        return frames

    def payload_of(self, marker: str) -> tuple[bool, bytes]:
        """(RSV1, the payload bytes on the wire) of the one frame whose text holds ``marker``."""
        data = bytes(self.raw[self.raw.index(b"\r\n\r\n") + 4 :])
        found, i = [], 0
        while i + 2 <= len(data):
            b0, b1 = data[i], data[i + 1]
            i += 2
            length = b1 & 0x7F
            if length >= 126:
                width = 2 if length == 126 else 8
                length = int.from_bytes(data[i : i + width], "big")
                i += width
            payload = data[i : i + length]
            i += length
            rsv1 = bool(b0 & 0x40)
            text = inflate(payload, 15) if rsv1 else payload
            if marker.encode() in text:
                found.append((rsv1, payload))
        assert len(found) == 1, (marker, len(found))
        return found[0]

    async def until(self, wanted: str, timeout: float = 30) -> None:
        """Read messages (kept in ``texts``) until one holds ``wanted``."""
        while not any(wanted in text for text in self.texts):
            message = await asyncio.wait_for(self.recv(), timeout)
            assert isinstance(message, str)
            self.texts.append(message)


def inflate(payload: bytes, window_bits: int) -> bytes:
    """What a client makes of one message compressed without context (RFC 7692 §7.2.2)."""
    inflater = zlib.decompressobj(-window_bits)
    text = inflater.decompress(payload + SYNC_TAIL)
    assert not inflater.unconsumed_tail and not inflater.unused_data
    return text


def zlib_deflate(text: bytes, window_bits: int) -> bytes:
    """The message as zlib alone deflates it: a fresh raw stream, sync flush, tail removed."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -window_bits, MEM_LEVEL)
    data = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(SYNC_TAIL)
    return data[: -len(SYNC_TAIL)]


async def open_recording(
    server: Server, session_id: str, account: Account, extensions: Any = "deflate"
) -> Recording:
    """A socket after its welcome; ``extensions``: "deflate", None, or a deflate factory."""
    options: dict[str, Any] = {"compression": None}
    if extensions == "deflate":
        options["compression"] = "deflate"
    elif extensions is not None:
        options["extensions"] = [extensions]
    connection = await connect(
        server.ws_url(ws_path(session_id)),
        subprotocols=[Subprotocol(PROTOCOL)],
        additional_headers={"Authorization": f"Bearer {account.access}"},
        max_size=None,
        open_timeout=10,
        close_timeout=10,
        create_connection=Recording,
        **options,
    )
    assert isinstance(connection, Recording)
    await connection.until('"type":"welcome"', 10)
    return connection


def editor_state(size: int, marker: str, seed: int) -> dict[str, Any]:
    """About ``size`` bytes of editor state (varied, so that deflate has work to do)."""
    rng = random.Random(seed)
    files: dict[str, Any] = {}
    while len(json.dumps(files)) < size:
        line = rng.randrange(1, 4000)
        files[f"/srv/project/src/pkg_{rng.randrange(40)}/m_{rng.randrange(10**6)}.py"] = {
            "cursor": {"line": line, "column": rng.randrange(120)},
            "folds": sorted(rng.sample(range(1, 4000), 3)),
        }
    return {"marker": marker, "files": files}


async def patch(sender: Recording, n: int, version: int, state: dict[str, Any]) -> int:
    """Send a state.patch from ``sender``; the session's version after its ack."""
    message = {"type": "state.patch", "id": f"p{n}", "base_version": version}
    message["changes"] = {"editor_state": state}
    await sender.send(json.dumps(message))
    await sender.until(f'"id":"p{n}"')
    ack = json.loads(next(t for t in sender.texts if f'"id":"p{n}"' in t))
    assert ack["type"] == "ack", ack
    next_version: int = ack["version"]
    return next_version


def welcome_version(connection: Recording) -> int:
    welcome = json.loads(next(t for t in connection.texts if '"type":"welcome"' in t))
    version: int = welcome["version"]
    return version


async def test_a_broadcast_is_deflated_once_and_every_client_inflates_it(
    servers: Servers, tmp_path: Path
) -> None:
    server = start_counting(servers, tmp_path)
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    session = await asyncio.to_thread(create_session, http, alice)
    compressed = [await open_recording(server, session["id"], alice) for _ in range(20)]
    plain = await open_recording(server, session["id"], alice, extensions=None)

    # The server announces that it keeps no context, though the client did not ask.
    for connection in (*compressed, plain):
        assert connection.response is not None
    extensions = compressed[0].response.headers["Sec-WebSocket-Extensions"]  # type: ignore[union-attr]
    assert extensions.startswith("permessage-deflate"), extensions
    assert extensions.count("server_no_context_takeover") == 1, extensions
    assert "Sec-WebSocket-Extensions" not in plain.response.headers  # type: ignore[union-attr]

    version = welcome_version(compressed[0])
    markers = [f"broadcast-{n}-of-three" for n in range(3)]
    for n, marker in enumerate(markers):
        version = await patch(compressed[0], n, version, editor_state(5_000, marker, n))
    for connection in (*compressed, plain):
        for marker in markers:
            await connection.until(marker)

    for marker in markers:
        # Deflated once for the 20 sockets (log of the server's deflate calls), not 20 times.
        deflated = [d for d in server.deflated() if marker in d["text"]]
        assert len(deflated) == 1, (marker, len(deflated))
        assert (deflated[0]["level"], deflated[0]["window_bits"]) == (LEVEL, 15)
        # The plain client gets the text itself, RSV1 off.
        rsv1, text = plain.payload_of(marker)
        assert not rsv1 and marker.encode() in text
        # Every compressed client gets the same bytes: zlib's own deflate of that text, with
        # no context, which inflates back to it.
        for connection in compressed:
            rsv1, payload = connection.payload_of(marker)
            assert rsv1, "a 5 kB broadcast sent uncompressed"
            assert payload == zlib_deflate(text, 15)
            assert inflate(payload, 15) == text
    # What recv() gave each client is what the plain client got.
    changed = [t for t in plain.texts if '"type":"state.changed"' in t]
    assert len(changed) == 3
    for connection in compressed:
        assert [t for t in connection.texts if '"type":"state.changed"' in t] == changed

    # A short reply (the acks of the patches, a pong) goes uncompressed on a compressed socket;
    # the welcome (about 700 bytes) went compressed.
    await compressed[0].send(json.dumps({"type": "ping", "id": "short"}))
    await compressed[0].until('"id":"short"')
    frames = compressed[0].frames()
    short = [(rsv1, t) for rsv1, t in frames if '"type":"ack"' in t or '"type":"pong"' in t]
    assert len(short) == 4 and not any(rsv1 for rsv1, _ in short), short
    assert [rsv1 for rsv1, t in frames if '"type":"welcome"' in t] == [True]
    assert [t for _, t in frames] == compressed[0].texts

    for connection in (*compressed, plain):
        await connection.close()
    assert "Traceback" not in server.log(), server.log()


async def test_clients_with_other_window_bits_get_their_own_correct_frames(
    servers: Servers, tmp_path: Path
) -> None:
    server = start_counting(servers, tmp_path)
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    session = await asyncio.to_thread(create_session, http, alice)
    offers: list[tuple[Any, int]] = [
        ("deflate", 15),
        (ClientPerMessageDeflateFactory(), 15),
        (ClientPerMessageDeflateFactory(server_max_window_bits=10), 10),
        (ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=9), 10),
        (ClientPerMessageDeflateFactory(server_max_window_bits=12), 12),
        (ClientPerMessageDeflateFactory(server_no_context_takeover=True), 15),
        (ClientPerMessageDeflateFactory(client_no_context_takeover=True), 15),
    ]
    sockets = [await open_recording(server, session["id"], alice, offer) for offer, _ in offers]
    for connection in sockets:
        assert connection.response is not None
        extensions = connection.response.headers["Sec-WebSocket-Extensions"]
        assert extensions.count("server_no_context_takeover") == 1, extensions

    version = welcome_version(sockets[0])
    marker = "broadcast-for-every-window"
    await patch(sockets[0], 0, version, editor_state(20_000, marker, 7))
    payloads: dict[int, set[bytes]] = {}
    text = b""
    for connection, (_, window_bits) in zip(sockets, offers, strict=True):
        await connection.until(marker)
        rsv1, payload = connection.payload_of(marker)
        assert rsv1
        text = inflate(payload, window_bits)
        assert marker.encode() in text
        assert payload == zlib_deflate(text, window_bits), window_bits
        payloads.setdefault(window_bits, set()).add(payload)
    # One deflate per set of parameters, each shared by its sockets; the windows give
    # different bytes, so a cache that ignored them would have sent a client bytes that refer
    # further back than its window (which zlib_deflate above would have caught).
    assert {bits: len(p) for bits, p in payloads.items()} == {15: 1, 10: 1, 12: 1}
    assert len(set.union(*payloads.values())) == 3
    deflated = [d["window_bits"] for d in server.deflated() if marker in d["text"]]
    assert sorted(deflated) == [10, 12, 15]

    # Every client's compressed messages still reach the server (its own window, its own
    # choice of context takeover): two in a row each, so a second one relies on the first's.
    for i, connection in enumerate(sockets):
        for n in range(2):
            ping = {"type": "ping", "id": f"c{i}-{n}", "pad": "y" * 20_000 + str(n)}
            await connection.send(json.dumps(ping))
            await connection.until(f'"id":"c{i}-{n}"')
        await connection.close()
    assert "Traceback" not in server.log(), server.log()


async def test_the_minimum_size_is_a_setting(servers: Servers, tmp_path: Path) -> None:
    server = start_counting(servers, tmp_path, CODITECT_WS_COMPRESSION_MIN_BYTES="0")
    http = Http(server)
    alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
    session = await asyncio.to_thread(create_session, http, alice)
    connection = await open_recording(server, session["id"], alice)
    await connection.send(json.dumps({"type": "ping", "id": "tiny"}))
    await connection.until('"id":"tiny"')
    # At 0 even a 22-byte pong is deflated (and still inflates right).
    pongs = [(rsv1, t) for rsv1, t in connection.frames() if '"type":"pong"' in t]
    assert pongs == [(True, '{"type":"pong","id":"tiny"}')]
    await connection.close()


def test_the_cache_is_bounded_by_entries_and_bytes() -> None:
    rng = random.Random(1)

    def message(size: int) -> bytes:
        return bytes(rng.randrange(97, 123) for _ in range(size))

    cache = DeflateCache(max_entries=4, max_bytes=40_000)
    messages = [message(2_000) for _ in range(6)]
    for payload in messages:
        assert cache.deflate(payload, LEVEL, 15, MEM_LEVEL) == zlib_deflate(payload, 15)
    assert len(cache.entries) == 4 and cache.deflates == 6 and cache.hits == 0
    # The least recently used went first: the first two are deflated again, the last are hits.
    cache.deflate(messages[5], LEVEL, 15, MEM_LEVEL)
    assert cache.hits == 1
    cache.deflate(messages[0], LEVEL, 15, MEM_LEVEL)
    assert cache.deflates == 7
    # Other parameters are another entry, with their own bytes.
    assert cache.deflate(messages[5], LEVEL, 9, MEM_LEVEL) == zlib_deflate(messages[5], 9)
    assert cache.deflates == 8
    assert cache.bytes == sum(len(k[0]) + len(v) for k, v in cache.entries.items())

    # By bytes: 5,000-byte messages take about 8,000 with their deflated bytes.
    cache = DeflateCache(max_entries=100, max_bytes=40_000)
    for _ in range(10):
        cache.deflate(message(5_000), LEVEL, 15, MEM_LEVEL)
        assert cache.bytes <= 40_000
    assert 4 <= len(cache.entries) <= 5 and cache.bytes > 40_000 - 9_000
    assert cache.bytes == sum(len(k[0]) + len(v) for k, v in cache.entries.items())
    # A message over a quarter of the bytes is deflated and not kept.
    big = message(20_000)
    kept = list(cache.entries)
    assert cache.deflate(big, LEVEL, 15, MEM_LEVEL) == zlib_deflate(big, 15)
    assert list(cache.entries) == kept

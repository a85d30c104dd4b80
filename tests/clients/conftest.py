"""Fixtures of the Python client's tests: real daphne processes and a TCP proxy to cut.

Every test drives ``coditect_client`` (clients/python) against daphne processes started by
tests/realtime/servers.py on free ports, each test with its own embedded store file.
``Proxy`` stands between a client and a server so a test can drop the network under a
client (every connection cut, new ones refused) and bring it back, on the same address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.realtime.servers import Server, Servers, free_port
from tests.store import shared_store


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return shared_store(tmp_path)


async def restart(server: Server, log_name: str) -> None:
    """SIGKILL the server and start it again on the same port, with the same store."""
    server.kill()
    server.stop()  # closes the log file
    server.log_path = server.log_path.with_name(log_name)
    server.start()
    await asyncio.to_thread(server.wait_ready)


class Proxy:
    """A TCP forwarder from a free port to a server; ``cut`` drops the network under it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port = free_port()
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        # Directions whose bytes are swallowed: "up" (client to server), "down" (back).
        self.held: set[str] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Every open connection reset, and no new ones until ``start``."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        self.held.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer, "up"),
            self._pump(up_reader, writer, "down"),
            return_exceptions=True,
        )
        self._pipes -= {writer, up_writer}

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        try:
            while data := await reader.read(65536):
                if direction in self.held:
                    continue  # lost on the way, like a network that went dark
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()  # after what was written (``cut`` resets instead)


@pytest.fixture
async def proxies() -> AsyncIterator[list[Proxy]]:
    made: list[Proxy] = []
    try:
        yield made
    finally:
        for proxy in made:
            await proxy.cut()

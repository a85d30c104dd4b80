"""The channel layer keeps a quiet socket alive: nothing in it may time out on its own."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.accounts.helpers import Persona
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import SessionApi


async def test_a_quiet_socket_on_redis_keeps_working(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    alice_session: dict[str, Any],
    redis_layer: str,
) -> None:
    """Longer than a blocking read of the layer (5 s) with nothing to receive, then traffic."""
    peer = await sockets.join(alice_session["id"], alice.access, "alice")
    await peer.drain(quiet=0.1)
    await asyncio.sleep(6.5)
    await peer.ping()
    response = await call(sessions.publish, alice.access, alice_session["id"], "late", {"n": 1})
    assert response.status_code == 202, response.content
    await peer.next("event", seq=response.json()["seq"])
    peer.assert_contiguous()

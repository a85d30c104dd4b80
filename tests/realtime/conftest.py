"""Realtime fixtures: the accounts personas (imported, not redefined), sockets, the channel layer.

Every test gets a fresh memory store (``accounts_environment`` is autouse), a fresh in-memory
channel layer, hosts that the origin check accepts, and a short auth timeout. ``sockets`` opens
WebSocket connections to ``coditect.asgi.application`` in this process and closes them all at
the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from coditect.channel_layers import channel_layers_config
from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie
from tests.accounts.helpers import Persona
from tests.realtime.helpers import Sockets, redis_url_or_skip
from tests.workspaces.helpers import SessionApi, create_session

__all__ = [
    "accounts_environment",
    "alice",
    "alice_session",
    "any_layer",
    "api",
    "bob",
    "charlie",
    "realtime_environment",
    "redis_layer",
    "sessions",
    "sockets",
]

# Redis databases of the test suite: flushed before use, one per kind of test.
REDIS_DB_IN_PROCESS = 12


@pytest.fixture(autouse=True)
def realtime_environment(settings, accounts_environment: None) -> Iterator[None]:
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    settings.CODITECT_WS_AUTH_TIMEOUT_S = 0.5
    # A new layer per test: the in-memory layer's queues belong to one event loop.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    yield


@pytest.fixture(params=["memory", "redis"])
def any_layer(request: pytest.FixtureRequest, settings, realtime_environment: None) -> str:
    """Runs the test once on the in-memory channel layer and once on Redis."""
    if request.param == "redis":
        use_redis(settings)
    return str(request.param)


@pytest.fixture
def redis_layer(settings, realtime_environment: None) -> str:
    """The Redis channel layer, configured as settings.py does from REDIS_URL."""
    return use_redis(settings)


def use_redis(settings: Any) -> str:
    url = redis_url_or_skip(REDIS_DB_IN_PROCESS)
    settings.CHANNEL_LAYERS = channel_layers_config(url)
    return url


@pytest.fixture
def sessions() -> SessionApi:
    return SessionApi()


@pytest.fixture
def alice_session(sessions: SessionApi, alice: Persona) -> dict[str, Any]:
    """A workspace session of Alice's, with some state in it."""
    return create_session(
        sessions,
        alice,
        name="Alice's workspace",
        workspace_path="/home/alice/project",
        active_files=["/home/alice/project/main.py"],
        editor_state={"cursor": {"line": 3, "column": 7}},
        terminal_state={"cwd": "/home/alice/project"},
    )


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    opened = Sockets()
    try:
        yield opened
    finally:
        await opened.close_all()

"""The dashboard's live connection count: ``live_connections`` on each entry of the list.

Counted as presence counts connections: open sockets, and not those of a server that stopped
beating; never another tenant's.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

import realtime.services
from tests.accounts.helpers import Persona
from tests.realtime.conftest import realtime_environment, sockets
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import SESSION_FIELDS, SessionApi, create_session

__all__ = ["realtime_environment", "sockets"]


def live_counts(api: SessionApi, persona: Persona, **params: Any) -> dict[str, int]:
    response = api.listing(persona.access, **params)
    assert response.status_code == 200, response.content
    return {entry["id"]: entry["live_connections"] for entry in response.json()["results"]}


@pytest.fixture
def api_sessions() -> SessionApi:
    return SessionApi()


@pytest.mark.parametrize("scan_max", [100, 1], ids=["tenant-read", "per-session-reads"])
async def test_the_list_counts_open_sockets_per_session(
    monkeypatch: pytest.MonkeyPatch,
    sockets: Sockets,
    api_sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    scan_max: int,
) -> None:
    # Few connections are counted from one read of the tenant's; many, per listed session.
    monkeypatch.setattr(realtime.services, "COUNT_SCAN_MAX", scan_max)
    busy = await call(create_session, api_sessions, alice, name="busy")
    quiet = await call(create_session, api_sessions, alice, name="quiet")
    other = await call(create_session, api_sessions, charlie, name="elsewhere")
    assert await call(live_counts, api_sessions, alice) == {busy["id"]: 0, quiet["id"]: 0}

    first = await sockets.join(busy["id"], alice.access, "alice")
    await sockets.join(busy["id"], bob.access, "bob")
    await sockets.join(other["id"], charlie.access, "charlie")
    assert await call(live_counts, api_sessions, alice) == {busy["id"]: 2, quiet["id"]: 0}
    assert await call(live_counts, api_sessions, bob, owner="me") == {}
    assert await call(live_counts, api_sessions, charlie) == {other["id"]: 1}

    await first.close()
    assert await call(live_counts, api_sessions, alice) == {busy["id"]: 1, quiet["id"]: 0}


async def test_sockets_of_a_server_that_stopped_beating_do_not_count(
    settings, sockets: Sockets, api_sessions: SessionApi, alice: Persona
) -> None:
    session = await call(create_session, api_sessions, alice)
    await sockets.join(session["id"], alice.access, "alice")
    assert await call(live_counts, api_sessions, alice) == {session["id"]: 1}
    later = datetime.now(UTC) + timedelta(seconds=settings.CODITECT_WS_PRESENCE_TIMEOUT_S + 1)
    with time_machine.travel(later, tick=False):
        # Alice's access token has expired by then too: ask with one from a new sign-in.
        login = await call(api_sessions.login, alice.email, alice.password)
        fresh = dataclasses.replace(alice, access=login.json()["access"])
        assert await call(live_counts, api_sessions, fresh) == {session["id"]: 0}


def test_the_field_is_in_the_openapi_schema(client) -> None:
    schema = json.loads(client.get("/api/v5/schema/", {"format": "json"}).content)
    components = schema["components"]["schemas"]
    listed = components["WorkspaceSessionListed"]
    session = set(components["WorkspaceSession"]["properties"])
    assert session >= SESSION_FIELDS
    assert set(listed["properties"]) == session | {"live_connections"}
    assert "live_connections" in listed["required"]
    # The related list's entries are the session itself, fully described.
    related = components["WorkspaceSessionList"]["properties"]["results"]["items"]["$ref"]
    assert related.endswith("/WorkspaceSession")
    operation = schema["paths"]["/api/v5/sessions"]["get"]
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page.endswith("/WorkspaceSessionPage")

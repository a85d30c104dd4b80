"""Socket writes past the tenant's bytes quota: an ``error`` ``quota_exceeded``, nothing
written, the socket stays open; presence is counted but never refused."""

from __future__ import annotations

from typing import Any

import fdb_backend
from accounts.services.quotas import quota_override_set
from operations.usage import usage_recount
from tests.accounts.helpers import Persona
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import SessionApi, all_events, read_session


def _usage(sessions: SessionApi, persona: Persona) -> dict[str, int]:
    found: dict[str, int] = sessions.get("/api/v5/tenant/", persona.access).json()["usage"]
    return found


async def test_patch_and_publish_past_the_quota_are_refused_and_the_socket_stays(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    alice_session: dict[str, Any],
) -> None:
    session_id = alice_session["id"]
    peer = await sockets.join(session_id, alice.access, "alice")
    used = (await call(_usage, sessions, alice))["bytes"]
    db = fdb_backend.get_database()
    await call(
        quota_override_set, db=db, tenant_id=alice.tenant_uuid, overrides={"bytes": used + 400}
    )
    version = peer.welcome["version"]
    # A small change fits.
    ack = await peer.ok("state.patch", base_version=version, changes={"name": "small"})
    before = await call(read_session, sessions, alice, session_id)
    logged = await call(all_events, sessions, alice, session_id)
    error = await peer.refused(
        "state.patch",
        "quota_exceeded",
        base_version=ack["version"],
        changes={"editor_state": {"text": "x" * 1000}},
    )
    assert error["quota"] == "bytes"
    await peer.refused("event.publish", "quota_exceeded", event="log", data={"t": "y" * 1000})
    await peer.ping()  # still open
    assert await call(read_session, sessions, alice, session_id) == before
    assert await call(all_events, sessions, alice, session_id) == logged
    # Someone joining is recorded even at the limit (a presence event is never refused).
    other = await sockets.join(session_id, bob.access, "bob")
    await peer.next("presence.join", connection_id=other.connection_id)
    counted = usage_recount(db=db, tenant_id=alice.tenant_uuid)
    assert await call(_usage, sessions, alice) == counted.used
    assert counted.head_event_bytes == counted.event_bytes

"""A person's export and erasure (CONTRACT §2 "Your data", issue 16 part 3).

Bob (an admin of Alice's tenant) leaves every kind of trace a person can: sign-ins from his
own address and browser, an API token used from another address, an invitation, a workspace
session of his with state and events, a socket on Alice's session holding a lock. The tests
read the tenant's whole keyspace, raw keys and values, to find what names him.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fdb
import pytest
from django.core.management import CommandError, call_command

import fdb_backend
from accounts.errors import AccountError
from accounts.records import auth_sessions, users
from accounts.services import bearer_authenticate
from fdb_backend import keyspace
from realtime.services import connection_new, connections_change
from tests.accounts.helpers import (
    AUTH,
    TENANT,
    Api,
    Persona,
    invite_and_register,
    login_pair,
    problem,
)
from tests.accounts.recovery import code_at, enroll, step_start
from tests.operations.helpers import run
from tests.realtime.helpers import CommPeer, Sockets, bearer, call, ws_path
from tests.workspaces.helpers import SessionApi, create_session, session_url
from workspaces.services import session_create

BOB_IP = "203.0.113.77"
BOB_AGENT = "BobBrowser/7.1 (erasure test)"
TOKEN_IP = "198.51.100.23"
TOKEN_AGENT = "bob-agent/2.0"
REVOKED_WITHIN_S = 3.5
# Spaces of the tenant where a person's id may stay after their erasure: the audit log.
AUDIT_SPACES = frozenset(
    {"auth_events", "auth_events_by_user", "auth_events_by_type", "auth_events_by_user_type"}
)


@dataclass
class Traces:
    bob: Persona
    access: str  # his sign-in from BOB_IP
    api_token: str
    session_id: str  # his own workspace session
    socket: CommPeer  # his socket on Alice's session
    own_socket: CommPeer  # his socket on his own session
    bystander: CommPeer  # Alice on her session


async def leave_traces(
    api: Api, sessions: SessionApi, sockets: Sockets, alice: Persona, alice_session: dict[str, Any]
) -> Traces:
    bob = await call(invite_and_register, api, alice, "Bob", "bob@example.com", role="admin")
    device = await call(login_pair, api, bob, REMOTE_ADDR=BOB_IP, HTTP_USER_AGENT=BOB_AGENT)
    access = device["access"]
    made = await call(
        api.post, AUTH + "api-tokens", {"name": "ci", "scopes": ["sessions:read"]}, access
    )
    assert made.status_code == 201, made.content
    token = made.json()["token"]
    used = await call(
        api.get, "/api/v5/sessions", token, REMOTE_ADDR=TOKEN_IP, HTTP_USER_AGENT=TOKEN_AGENT
    )
    assert used.status_code == 200, used.content
    invited = await call(api.invite, access, "dana@example.com")
    assert invited.status_code == 201, invited.content
    own = await call(
        create_session,
        sessions,
        bob,
        name="Bob's notes",
        workspace_path="/home/bob/notes",
        editor_state={"draft": "bob's private draft"},
    )
    published = await call(
        api.post, session_url(own["id"], "events"), {"event": "build", "data": {"ok": 1}}, access
    )
    assert published.status_code == 202, published.content
    bystander = await sockets.join(alice_session["id"], alice.access, "alice")
    socket = await sockets.join(alice_session["id"], access, "bob")
    own_socket = await sockets.join(own["id"], access, "bob-own")
    await socket.ok("lock.acquire", path="/home/alice/project/main.py", ttl_s=60)
    await bystander.next("lock.changed", path="/home/alice/project/main.py")
    return Traces(bob, access, token, own["id"], socket, own_socket, bystander)


def tenant_rows(tenant_id: uuid.UUID) -> list[tuple[str, bytes, bytes]]:
    """Every key of the tenant with its value, and the name of the space it is in."""
    r = keyspace.tenant(tenant_id).range()
    rows = []
    for kv in fdb_backend.get_database().get_range(*r):
        key, value = bytes(kv.key), bytes(kv.value)
        # ("cdt", "t", tenant_id, space, ...)
        rows.append((str(fdb.tuple.unpack(key)[3]), key, value))
    return rows


def naming(rows: list[tuple[str, bytes, bytes]], *needles: bytes) -> dict[str, int]:
    """How many rows of each space contain any of ``needles`` in key or value."""
    found: dict[str, int] = {}
    for space, key, value in rows:
        if any(n in key or n in value for n in needles):
            found[space] = found.get(space, 0) + 1
    return found


def id_forms(user_id: str) -> tuple[bytes, ...]:
    uid = uuid.UUID(user_id)
    return (uid.bytes, str(uid).encode(), uid.hex.encode())


# Which part of the export shows each kind of record that names a person.
EXPORTED_IN = {
    "users": "user",
    "auth_sessions": "auth_sessions",
    "auth_sessions_by_user": "auth_sessions",
    "api_tokens": "api_tokens",
    "api_tokens_by_user": "api_tokens",
    "invitations": "invitations_sent",
    "auth_events": "auth_events",
    "auth_events_by_user": "auth_events",
    "auth_events_by_user_type": "auth_events",
    "workspace_sessions": "workspace_sessions",
    "workspace_sessions_by_user": "workspace_sessions",
    "recent_sessions": "workspace_sessions",
    "sessions_by_owner_workspace": "workspace_sessions",
    "events": "presence.events_naming_you",
    "connections": "presence.connections",
    "locks": "presence.locks",
}


def section(exported: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        exported = exported[part]
    return exported


async def test_the_export_holds_every_kind_of_record_that_names_the_person(
    api: Api,
    sessions: SessionApi,
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
) -> None:
    traces = await leave_traces(api, sessions, sockets, alice, alice_session)
    bob = traces.bob
    kinds = naming(tenant_rows(bob.tenant_uuid), *id_forms(bob.user_id))
    assert set(kinds) >= {"users", "auth_sessions", "api_tokens", "invitations", "auth_events"}
    assert set(kinds) >= {"workspace_sessions", "events", "connections", "locks"}
    unexported = sorted(set(kinds) - set(EXPORTED_IN))
    assert not unexported, f"records naming the person that the export does not show: {unexported}"
    response = await call(api.get, AUTH + "me/export", traces.access)
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"].startswith("attachment")
    exported = response.json()
    for kind in kinds:
        assert section(exported, EXPORTED_IN[kind]), (kind, EXPORTED_IN[kind])
    assert exported["user"]["email"] == bob.email
    assert exported["tenant"] == {
        "id": bob.tenant_id,
        "name": "Acme",
        "slug": exported["tenant"]["slug"],
        "role": "admin",
    }
    assert {s["ip"] for s in exported["auth_sessions"]} >= {BOB_IP}
    assert {s["user_agent"] for s in exported["auth_sessions"]} >= {BOB_AGENT}
    assert {"member_joined", "login", "api_token_created"} <= {
        e["type"] for e in exported["auth_events"]
    }
    (token,) = exported["api_tokens"]
    assert token["addresses"] == [TOKEN_IP]
    assert [i["email"] for i in exported["invitations_sent"]] == ["dana@example.com"]
    (own,) = exported["workspace_sessions"]
    assert own["editor_state"] == {"draft": "bob's private draft"}
    assert "build" in [e["event"] for e in own["events"]]
    assert len(exported["presence"]["connections"]) == 2
    (lock,) = exported["presence"]["locks"]
    assert lock["session_id"] == alice_session["id"]
    # Never a secret: no password hash, token digest, TOTP secret or one-time token.
    text = response.content.decode()
    for secret in ("password_hash", "digest", "totp_secret", "token_hash", "argon2"):
        assert secret not in text, secret
    assert traces.api_token not in text


async def test_erasure_leaves_no_trace_outside_the_audit_log(
    api: Api,
    sessions: SessionApi,
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
) -> None:
    traces = await leave_traces(api, sessions, sockets, alice, alice_session)
    bob = traces.bob
    before = naming(tenant_rows(bob.tenant_uuid), BOB_IP.encode(), BOB_AGENT.encode())
    assert before.get("auth_events") and before.get("auth_sessions"), before

    response = await call(api.delete, AUTH + "me", traces.access, data={"password": bob.password},
                          content_type="application/json")  # fmt: skip
    assert response.status_code == 204, response.content

    # Every credential stops at once; his sockets close (his own session's: deleted).
    for token in (traces.access, bob.access):
        problem(await call(api.me, token), 401, "session_revoked")
    problem(await call(api.get, "/api/v5/sessions", traces.api_token), 401, "invalid_token")
    assert await traces.socket.expect_close(REVOKED_WITHIN_S) in (4401, 4404)
    assert await traces.own_socket.expect_close(REVOKED_WITHIN_S) in (4401, 4404)
    # Alice saw him leave and his lock go, without being told who he was.
    left = await traces.bystander.next("presence.leave", connection_id=traces.socket.connection_id)
    assert left["user_id"] is None and left["display_name"] == ""
    await traces.bystander.ping()

    rows = tenant_rows(bob.tenant_uuid)
    names = naming(rows, *id_forms(bob.user_id))
    outside = {space: n for space, n in names.items() if space not in AUDIT_SPACES}
    assert not outside, f"the erased person's id is still in {outside}"
    assert names.get("auth_events"), "his auth events stay for the tenant's audit"
    clients = naming(rows, BOB_IP.encode(), BOB_AGENT.encode(), TOKEN_IP.encode(),
                     TOKEN_AGENT.encode())  # fmt: skip
    assert not clients, f"his addresses or user agent are still in {clients}"
    assert b"bob's private draft" not in b"".join(value for _, _, value in rows)
    # Nothing orphaned, the usage counters agree with a recount, and he is gone from the
    # member list and the login index.
    assert run("storage", "check", "--json").json()["problems"] == []
    tenant = (await call(api.get, TENANT, alice.access)).json()
    assert tenant["usage"]["sessions"] == 1  # Alice's
    assert tenant["usage"]["api_tokens"] == 0
    members = await call(api.get, TENANT + "members/", alice.access)
    assert bob.user_id not in [m["id"] for m in members.json()["results"]]
    problem(await call(api.login, bob.email, bob.password), 401, "invalid_credentials")
    # Alice's session is intact, and her log still reaches back without a gap.
    read = await call(sessions.read, alice.access, alice_session["id"])
    assert read.status_code == 200, read.content


async def test_a_manager_removing_a_member_erases_them_the_same_way(
    api: Api,
    sessions: SessionApi,
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
) -> None:
    traces = await leave_traces(api, sessions, sockets, alice, alice_session)
    bob = traces.bob
    removed = await call(api.delete, f"{TENANT}members/{bob.user_id}/", alice.access)
    assert removed.status_code == 204, removed.content
    assert await traces.socket.expect_close(REVOKED_WITHIN_S) in (4401, 4404)
    problem(await call(sessions.read, alice.access, traces.session_id), 404, "not_found")
    rows = tenant_rows(bob.tenant_uuid)
    names = naming(rows, *id_forms(bob.user_id))
    assert not {space for space in names if space not in AUDIT_SPACES}, names
    assert not naming(rows, BOB_IP.encode(), BOB_AGENT.encode(), TOKEN_IP.encode())
    assert run("storage", "check", "--json").json()["problems"] == []


def test_the_last_owner_cannot_erase_themselves(api: Api, alice: Persona, bob: Persona) -> None:
    problem(api.delete(AUTH + "me", alice.access, data={"password": alice.password},
                       content_type="application/json"), 409, "last_owner")  # fmt: skip
    assert api.me(alice.access).status_code == 200


def test_a_wrong_password_erases_nothing(api: Api, bob: Persona) -> None:
    body = problem(api.delete(AUTH + "me", bob.access, data={"password": "not his password"},
                              content_type="application/json"), 400, "wrong_password")  # fmt: skip
    assert body["errors"][0]["attr"] == "password"
    assert api.me(bob.access).status_code == 200


def test_with_a_second_factor_erasure_needs_a_code(
    api: Api, alice: Persona, bob: Persona, time_machine: Any
) -> None:
    moment = step_start(datetime.now(UTC))
    time_machine.move_to(moment, tick=False)
    secret, _ = enroll(api, bob, moment)
    later = moment + timedelta(seconds=30)
    time_machine.move_to(later, tick=False)

    def erase(body: dict[str, Any]) -> Any:
        return api.delete(AUTH + "me", bob.access, data=body, content_type="application/json")

    problem(erase({"password": bob.password}), 400, "mfa_code_required")
    problem(erase({"password": bob.password, "code": "000000"}), 400, "invalid_mfa_code")
    assert api.me(bob.access).status_code == 200
    assert erase({"password": bob.password, "code": code_at(secret, later)}).status_code == 204
    problem(api.me(bob.access), 401, "session_revoked")


def test_an_api_token_can_neither_export_nor_erase(api: Api, bob: Persona) -> None:
    made = api.post(AUTH + "api-tokens", {"name": "ci", "scopes": ["sessions:read",
                    "sessions:write", "events:publish", "locks"]}, bob.access)  # fmt: skip
    token = made.json()["token"]
    problem(api.get(AUTH + "me/export", token), 403, "insufficient_scope")
    problem(api.delete(AUTH + "me", token, data={"password": bob.password},
                       content_type="application/json"), 403, "insufficient_scope")  # fmt: skip
    assert api.me(bob.access).status_code == 200


def test_an_export_shows_nothing_of_another_tenant(
    api: Api, sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    create_session(sessions, alice, name="alice-secret", workspace_path="/a")
    create_session(sessions, charlie, name="charlie-own", workspace_path="/c")
    exported = api.get(AUTH + "me/export", charlie.access)
    assert exported.status_code == 200, exported.content
    text = exported.content.decode()
    for foreign in (alice.user_id, bob.user_id, alice.tenant_id, "alice-secret", alice.email):
        assert foreign not in text, foreign
    assert [s["name"] for s in exported.json()["workspace_sessions"]] == ["charlie-own"]
    # Charlie's erasure of himself is refused (last owner); removing Bob is a 404 for him.
    problem(api.delete(f"{TENANT}members/{bob.user_id}/", charlie.access), 404, "not_found")
    assert api.me(bob.access).status_code == 200


async def test_a_socket_of_an_erased_person_takes_no_lock(
    api: Api,
    sessions: SessionApi,
    sockets: Sockets,
    alice: Persona,
    alice_session: dict[str, Any],
    settings: Any,
) -> None:
    """Between the erasure and the watch closing the socket, the socket is still open: a
    lock it asks for then would name the person again, after the scrub. The lock reads its
    writer's user record in its transaction (accounts/services/roles.py): none, so the
    socket is closed 4401 at once instead."""
    settings.CODITECT_WS_AUTH_CHECK_S = 60  # the watch will not close it during the test
    bob = await call(invite_and_register, api, alice, "Bob", "bob@example.com")
    socket = await sockets.join(alice_session["id"], bob.access, "bob")
    erased = await call(api.delete, AUTH + "me", bob.access, data={"password": bob.password},
                        content_type="application/json")  # fmt: skip
    assert erased.status_code == 204, erased.content
    await socket.send({"type": "lock.acquire", "id": "late", "path": "/x.py", "ttl_s": 30})
    assert await socket.expect_close() == 4401
    names = naming(tenant_rows(bob.tenant_uuid), *id_forms(bob.user_id))
    assert not {space for space in names if space not in AUDIT_SPACES}, names
    # And a socket that authenticated before cannot register once he is gone.
    assert await sockets.refused(ws_path(alice_session["id"]), bearer(bob.access)) == 4401


@fdb_backend.transactional
def first_step_only(tr: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """What the first transaction of an erasure removes (the user and their credentials),
    without the steps after it."""
    signed_in = auth_sessions(tenant_id)
    for found in signed_in.list_by_index(tr, "auth_sessions_by_user", (user_id,)).records:
        signed_in.delete(tr, found.id)
    users(tenant_id).delete(tr, user_id)


def test_a_request_authenticated_before_the_erasure_leaves_nothing_for_long(
    api: Api, sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    """A request that authenticated just before the erasure and writes just after: a socket
    cannot register (connections_change reads the user in its transaction), nor can it create
    a workspace session (every write reads its writer's user record in its transaction,
    accounts/services/roles.py). A session left by an erasure that stopped after its first
    transaction is an orphan that storage check reports and --repair deletes."""
    bob = invite_and_register(api, alice, "Bob", "bob@example.com")
    db = fdb_backend.get_database()
    stale = bearer_authenticate(db=db, token=bob.access)
    erased = api.delete(AUTH + "me", bob.access, data={"password": bob.password},
                        content_type="application/json")  # fmt: skip
    assert erased.status_code == 204, erased.content
    session_id, connection_id = uuid.UUID(alice_session["id"]), uuid.uuid4().hex
    opening = connection_new(principal=stale, session_id=session_id, connection_id=connection_id)
    changed = connections_change(
        db=db, tenant_id=stale.tenant_id, session_id=session_id, changes=[opening]
    )
    assert changed.refused == {connection_id}
    assert changed.welcome is not None and changed.welcome.presence == []
    with pytest.raises(AccountError) as refused:
        session_create(db=db, principal=stale, name="late", workspace_path="/late")
    assert refused.value.code == "session_revoked"
    # An erasure stopped after its first transaction: the user gone, their session not yet.
    carol = invite_and_register(api, alice, "Carol", "carol@example.com")
    late = session_create(
        db=db, principal=bearer_authenticate(db=db, token=carol.access), name="late",
        workspace_path="/late",
    )  # fmt: skip
    first_step_only(db, carol.tenant_uuid, carol.user_uuid)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("storage", "check", "--json", stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue())
    assert [(p["kind"], p["what"], p["key"]) for p in report["problems"]] == [
        ("orphan", "workspace session of a missing user", str(late.head.id))
    ]
    assert run("storage", "check", "--repair", "--json").json()["repaired"] == 1
    assert run("storage", "check", "--json").json()["problems"] == []
    names = naming(tenant_rows(bob.tenant_uuid), *id_forms(bob.user_id))
    assert not {space for space in names if space not in AUDIT_SPACES}, names

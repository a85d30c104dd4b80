"""API tokens over REST (CONTRACT §7): lifecycle, storage, scopes on every operation, events."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import fdb_backend
from accounts import selectors
from accounts.services import api_token_revoke_by_staff, tenant_suspend, user_lock, user_unlock
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    TENANT,
    Api,
    Persona,
    login_pair,
    problem,
    rfc3339,
)
from tests.workspaces.helpers import SessionApi, create_session, session_url

TOKENS = AUTH + "api-tokens"
TENANT_TOKENS = TENANT + "api-tokens/"
ALL_SCOPES = ["sessions:read", "sessions:write", "events:publish", "locks"]
SHAPE = re.compile(r"cdt_[0-9a-f]{64}[0-9A-Za-z]{43}")
TOKEN_FIELDS = {"id", "user_id", "name", "scopes", "created_at", "expires_at", "last_used_at"}


def make_token(
    api: Api, persona: Persona, scopes: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"name": "ci", "scopes": ALL_SCOPES if scopes is None else scopes, **fields}
    response = api.post(TOKENS, body, persona.access)
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


def listed(api: Api, path: str, token: str) -> list[dict[str, Any]]:
    response = api.get(path, token)
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def event_types(persona: Persona) -> list[str]:
    return [e.type for e in selectors.auth_event_list(tenant_id=persona.tenant_uuid, limit=500)]


# --- lifecycle -------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_listed_without_its_secret(api: Api, alice: Persona) -> None:
    response = api.post(TOKENS, {"name": "agent", "scopes": ["sessions:read"]}, alice.access)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    created = response.json()
    assert created.keys() == TOKEN_FIELDS | {"token"}
    assert SHAPE.fullmatch(created["token"]), created["token"]
    assert created["scopes"] == ["sessions:read"]
    assert created["user_id"] == alice.user_id
    assert created["expires_at"] is None
    assert created["last_used_at"] is None
    rfc3339(created["created_at"])
    for path in (TOKENS, TOKENS + "/"):
        (entry,) = listed(api, path, alice.access)
        assert entry == {k: v for k, v in created.items() if k != "token"}
    assert created["token"] not in api.get(TOKENS, alice.access).content.decode()


def test_a_token_acts_as_its_user(api: Api, alice: Persona) -> None:
    token = make_token(api, alice, ["sessions:read"])["token"]
    me = api.me(token)
    assert me.status_code == 200, me.content
    assert me.json()["id"] == alice.user_id
    assert api.get("/api/v5/sessions", token).status_code == 200


def test_revoking_stops_the_token_on_the_next_request(api: Api, alice: Persona) -> None:
    created = make_token(api, alice)
    assert api.me(created["token"]).status_code == 200
    assert api.delete(f"{TOKENS}/{created['id']}", alice.access).status_code == 204
    body = problem(api.me(created["token"]), 401, "invalid_token")
    assert body["status"] == 401
    assert "Bearer" in api.me(created["token"])["WWW-Authenticate"]
    assert listed(api, TOKENS, alice.access) == []
    # Gone: a second delete (with the other spelling) is a 404.
    problem(api.delete(f"{TOKENS}/{created['id']}/", alice.access), 404, "not_found")


def test_a_revoked_token_is_401_on_every_route(api: Api, alice: Persona) -> None:
    created = make_token(api, alice)
    assert api.delete(f"{TOKENS}/{created['id']}", alice.access).status_code == 204
    token, some_id = created["token"], str(uuid.uuid4())
    for response in (
        api.get(TOKENS, token),
        api.post(TOKENS, {"name": "x", "scopes": []}, token),
        api.delete(f"{TOKENS}/{some_id}", token),
        api.get(TENANT_TOKENS, token),
        api.delete(f"{TENANT_TOKENS}{some_id}/", token),
        api.get("/api/v5/sessions", token),
        api.me(token),
    ):
        problem(response, 401, "invalid_token")


def test_the_store_holds_only_a_digest(api: Api, alice: Persona) -> None:
    token = make_token(api, alice)["token"]
    secret = token[-43:]
    stored = b"".join(
        kv.key + kv.value
        for batch in storage.walk(fdb_backend.get_database(), keyspace.GLOBAL.range())
        for kv in batch
    )
    assert token.encode() not in stored
    assert secret.encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored


def test_the_secret_is_compared_in_constant_time(
    api: Api, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accounts.services import api_tokens

    token = make_token(api, alice)["token"]
    compared: list[tuple[str, str]] = []
    real = api_tokens.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_tokens.hmac, "compare_digest", spy)
    assert api.me(token).status_code == 200
    assert compared == [(hashlib.sha256(token.encode()).hexdigest(),) * 2]
    # Same tenant and token id, another secret: refused.
    forged = token[:-43] + ("A" * 43 if not token.endswith("A" * 43) else "B" * 43)
    problem(api.me(forged), 401, "invalid_token")
    assert len(compared) == 2


@pytest.mark.parametrize(
    "token",
    [
        "cdt_",
        "cdt_" + "0" * 107,
        "cdt_" + "g" * 64 + "a" * 43,
        "cdt_" + uuid.uuid4().hex + uuid.uuid4().hex + "a" * 42 + "-",
        "cdt_" + uuid.uuid4().hex + uuid.uuid4().hex + "a" * 43,  # no such tenant
    ],
)
def test_malformed_and_unknown_tokens_are_401(api: Api, alice: Persona, token: str) -> None:
    problem(api.me(token), 401, "invalid_token")


def test_expiry_is_enforced(api: Api, alice: Persona, time_machine: Any) -> None:
    time_machine.move_to(datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(hours=1)
    created = make_token(api, alice, expires_at=later.isoformat())
    assert rfc3339(created["expires_at"]) == later
    assert api.me(created["token"]).status_code == 200
    time_machine.shift(timedelta(hours=1, seconds=1))
    problem(api.me(created["token"]), 401, "token_expired")
    # Still listed (so its owner sees it lapsed) until revoked or purged.
    access = login_pair(api, alice)["access"]
    assert [t["id"] for t in listed(api, TOKENS, access)] == [created["id"]]


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"name": "x", "scopes": ["sessions:admin"]}, "scopes"),
        ({"name": "x", "scopes": "sessions:read"}, "scopes"),
        ({"name": "", "scopes": []}, "name"),
        ({"name": "   ", "scopes": []}, "name"),
        ({"name": "x" * 101, "scopes": []}, "name"),
        ({"scopes": []}, "name"),
        ({"name": "x"}, "scopes"),
        ({"name": "x", "scopes": [], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": [], "expires_at": "soon"}, "expires_at"),
        ({"name": "x", "scopes": [], "admin": True}, "admin"),
    ],
)
def test_bad_bodies_are_400(api: Api, alice: Persona, body: dict[str, Any], attr: str) -> None:
    found = problem(api.post(TOKENS, body, alice.access), 400)
    assert attr in {str(e["attr"]).split(".")[0] for e in found["errors"]}, found


def test_routes_need_a_signed_in_caller(api: Api, alice: Persona) -> None:
    for response in (
        api.get(TOKENS),
        api.post(TOKENS, {"name": "x", "scopes": []}),
        api.delete(f"{TOKENS}/{uuid.uuid4()}"),
        api.get(TENANT_TOKENS),
        api.delete(f"{TENANT_TOKENS}{uuid.uuid4()}/"),
    ):
        problem(response, 401)


# --- whose tokens ------------------------------------------------------------------------------


def test_another_users_or_tenants_token_is_404(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    alices = make_token(api, alice)
    for persona in (bob, charlie):
        problem(api.delete(f"{TOKENS}/{alices['id']}", persona.access), 404, "not_found")
        assert listed(api, TOKENS, persona.access) == []
    problem(api.delete(f"{TENANT_TOKENS}{alices['id']}/", charlie.access), 404, "not_found")
    assert listed(api, TENANT_TOKENS, charlie.access) == []
    problem(api.delete(f"{TOKENS}/not-a-uuid", alice.access), 404, "not_found")
    assert api.me(alices["token"]).status_code == 200


def test_tenant_managers_list_and_revoke_every_token(
    api: Api, alice: Persona, bob: Persona
) -> None:
    alices, bobs = make_token(api, alice), make_token(api, bob)
    for path in (TENANT_TOKENS, TENANT_TOKENS.rstrip("/")):
        found = {t["id"]: t["user_id"] for t in listed(api, path, alice.access)}
        assert found == {alices["id"]: alice.user_id, bobs["id"]: bob.user_id}
    assert api.delete(f"{TENANT_TOKENS}{bobs['id']}", alice.access).status_code == 204
    problem(api.me(bobs["token"]), 401, "invalid_token")
    assert api.me(alices["token"]).status_code == 200


def test_members_cannot_list_or_revoke_the_tenants_tokens(
    api: Api, alice: Persona, bob: Persona
) -> None:
    alices = make_token(api, alice)
    problem(api.get(TENANT_TOKENS, bob.access), 403, "forbidden")
    problem(api.delete(f"{TENANT_TOKENS}{alices['id']}/", bob.access), 403, "forbidden")
    assert api.me(alices["token"]).status_code == 200


# --- what ends a token ---------------------------------------------------------------------------


def test_locking_the_user_or_suspending_the_tenant_refuses_the_token(
    api: Api, alice: Persona, bob: Persona
) -> None:
    bobs = make_token(api, bob)["token"]
    user_lock(tenant_id=bob.tenant_uuid, user_id=bob.user_uuid, reason="abuse")
    problem(api.me(bobs), 403, "account_locked")
    user_unlock(tenant_id=bob.tenant_uuid, user_id=bob.user_uuid)
    assert api.me(bobs).status_code == 200
    tenant_suspend(tenant_id=alice.tenant_uuid, reason="unpaid")
    problem(api.me(bobs), 403, "tenant_suspended")


def test_removing_a_member_revokes_their_tokens(api: Api, alice: Persona, bob: Persona) -> None:
    bobs = make_token(api, bob)
    assert api.delete(f"{TENANT}members/{bob.user_id}/", alice.access).status_code == 204
    problem(api.me(bobs["token"]), 401, "invalid_token")
    assert listed(api, TENANT_TOKENS, alice.access) == []


def test_support_staff_revoke_a_token(api: Api, alice: Persona) -> None:
    created = make_token(api, alice)
    api_token_revoke_by_staff(
        db=fdb_backend.get_database(),
        tenant_id=alice.tenant_uuid,
        token_id=uuid.UUID(created["id"]),
        reason="leaked in a public repository",
    )
    problem(api.me(created["token"]), 401, "invalid_token")
    (revoked,) = [
        e
        for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)
        if e.type == "api_token_revoked"
    ]
    assert revoked.data["reason"] == "leaked in a public repository"
    assert revoked.data["revoked_by"] == "staff"


# --- what an API token may never do ---------------------------------------------------------------


def test_an_api_token_never_manages_accounts(api: Api, alice: Persona, bob: Persona) -> None:
    token = make_token(api, alice)["token"]  # every scope
    password = {"current_password": alice.password, "new_password": OTHER_PASSWORD}
    attempts = [
        api.post(TOKENS, {"name": "more", "scopes": ALL_SCOPES}, token),
        api.get(TOKENS, token),
        api.post(AUTH + "password", password, token),
        api.delete(f"{TENANT}members/{bob.user_id}/", token),
        api.post(TENANT + "invitations/", {"email": "eve@example.com", "role": "admin"}, token),
        api.post(AUTH + "mfa/totp", {}, token),
        api.post(AUTH + "logout-all", None, token),
        api.post(AUTH + "verify-email/resend", {}, token),
    ]
    for response in attempts:
        problem(response, 403, "insufficient_scope")
    assert api.login(alice.email, alice.password).status_code == 200  # password unchanged
    assert api.me(bob.access).status_code == 200  # still a member


# --- scopes on every operation of the schema --------------------------------------------------

PUBLIC = "public"
# What an API token needs for each operation: a scope, "any" API token, or "forbidden" to
# them (users only). A new operation fails this test until it is listed here.
RULES: dict[str, str] = {
    "GET /.well-known/jwks.json": PUBLIC,
    "GET /api/v5/auth/jwks": PUBLIC,
    "POST /api/v5/auth/login": PUBLIC,
    "POST /api/v5/auth/login/mfa": PUBLIC,
    "POST /api/v5/auth/password-reset": PUBLIC,
    "POST /api/v5/auth/password-reset/confirm": PUBLIC,
    "POST /api/v5/auth/refresh": PUBLIC,
    "POST /api/v5/auth/register": PUBLIC,
    "POST /api/v5/auth/verify-email": PUBLIC,
    "GET /api/v5/auth/me": "any",
    "GET /api/v5/auth/me/export": "forbidden",
    "DELETE /api/v5/auth/me": "forbidden",
    "GET /api/v5/tenant/": "any",
    "GET /api/v5/sessions": "sessions:read",
    "POST /api/v5/sessions": "sessions:write",
    "GET /api/v5/sessions/{session_id}": "sessions:read",
    "PATCH /api/v5/sessions/{session_id}": "sessions:write",
    "DELETE /api/v5/sessions/{session_id}": "sessions:write",
    "GET /api/v5/sessions/{session_id}/events": "sessions:read",
    "POST /api/v5/sessions/{session_id}/events": "events:publish",
    "POST /api/v5/sessions/{session_id}/fork": "sessions:write",
    "GET /api/v5/sessions/{session_id}/related": "sessions:read",
    "GET /api/v5/auth/api-tokens": "forbidden",
    "POST /api/v5/auth/api-tokens": "forbidden",
    "DELETE /api/v5/auth/api-tokens/{token_id}": "forbidden",
    "GET /api/v5/tenant/api-tokens/": "forbidden",
    "DELETE /api/v5/tenant/api-tokens/{token_id}/": "forbidden",
    "POST /api/v5/auth/logout": "forbidden",
    "POST /api/v5/auth/logout-all": "forbidden",
    "GET /api/v5/auth/sessions": "forbidden",
    "DELETE /api/v5/auth/sessions/{session_id}": "forbidden",
    "POST /api/v5/auth/password": "forbidden",
    "POST /api/v5/auth/verify-email/resend": "forbidden",
    "GET /api/v5/auth/mfa": "forbidden",
    "POST /api/v5/auth/mfa/totp": "forbidden",
    "POST /api/v5/auth/mfa/totp/confirm": "forbidden",
    "POST /api/v5/auth/mfa/totp/disable": "forbidden",
    "POST /api/v5/auth/mfa/recovery-codes": "forbidden",
    "POST /api/v5/tenant/invitations/": "forbidden",
    "GET /api/v5/tenant/invitations/": "forbidden",
    "DELETE /api/v5/tenant/invitations/{invitation_id}/": "forbidden",
    "PATCH /api/v5/tenant/members/{user_id}/": "forbidden",
    "GET /api/v5/tenant/members/": "forbidden",
    "DELETE /api/v5/tenant/members/{user_id}/": "forbidden",
    "GET /api/v5/tenant/settings/": "forbidden",
    "GET /api/v5/tenant/audit/": "forbidden",
    "PATCH /api/v5/tenant/settings/": "forbidden",
}
METHODS = ("get", "post", "put", "patch", "delete")


def _operations(api: Api) -> dict[str, dict[str, Any]]:
    response = api.get("/api/v5/schema/?format=json")
    assert response.status_code == 200, response.content
    return {
        f"{method.upper()} {path}": operation
        for path, item in response.json()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def _call(api: SessionApi, key: str, token: str, ids: dict[str, str]) -> Any:
    method, path = key.split(" ", 1)
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    if method == "GET":
        return api.get(path, token)
    if method == "DELETE":
        return api.delete(path, token)
    if method == "PATCH":
        return api.patch(path, {}, token)
    return api.post(path, {}, token)


def test_the_schema_states_each_operations_scope(api: Api) -> None:
    operations = _operations(api)
    assert set(operations) == set(RULES)
    for key, operation in operations.items():
        stated = operation.get("x-api-token-scope", PUBLIC)
        assert stated == RULES[key], (key, stated)


def test_scopes_are_enforced_on_every_operation(alice: Persona, bob: Persona) -> None:
    api = SessionApi()
    operations = _operations(api)
    ids = {
        "session_id": create_session(api, alice, name="s", workspace_path="/s")["id"],
        "token_id": str(uuid.uuid4()),
        "user_id": bob.user_id,
        "invitation_id": str(uuid.uuid4()),
    }
    none = make_token(api, alice, [])["token"]
    every = make_token(api, alice)["token"]
    for key in sorted(operations):
        rule = RULES[key]
        if rule == PUBLIC:
            continue
        if rule == "any":
            assert _call(api, key, none, ids).status_code == 200, key
        elif rule == "forbidden":
            problem(_call(api, key, every, ids), 403, "insufficient_scope")
        else:
            problem(_call(api, key, none, ids), 403, "insufficient_scope")
            others = [s for s in ALL_SCOPES if s != rule]
            problem(_call(api, key, make_token(api, alice, others)["token"], ids), 403)
    # With exactly the scope needed, every operation gets past the scope check (deletes last,
    # so the session is still there for the others).
    for key in sorted(operations, key=lambda k: k.startswith("DELETE")):
        rule = RULES[key]
        if rule in (PUBLIC, "any", "forbidden"):
            continue
        response = _call(api, key, make_token(api, alice, [rule])["token"], ids)
        assert response.status_code < 500, (key, response.content)
        assert response.status_code not in (401, 403), (key, response.content)


def test_a_scoped_token_reads_but_cannot_write(alice: Persona) -> None:
    api = SessionApi()
    session = create_session(api, alice, name="s", workspace_path="/s")
    reader = make_token(api, alice, ["sessions:read"])["token"]
    assert api.read(reader, session["id"]).status_code == 200
    problem(api.patch(session_url(session["id"]), {"name": "x"}, reader), 403, "insufficient_scope")
    problem(api.publish(reader, session["id"], "build.done"), 403, "insufficient_scope")
    writer = make_token(api, alice, ["sessions:write", "events:publish"])["token"]
    assert api.patch(session_url(session["id"]), {"name": "x"}, writer).status_code == 200
    assert api.publish(writer, session["id"], "build.done").status_code == 202
    problem(api.read(writer, session["id"]), 403, "insufficient_scope")


def test_another_tenants_session_is_404_to_a_token(alice: Persona, charlie: Persona) -> None:
    api = SessionApi()
    session = create_session(api, alice, name="s", workspace_path="/s")
    charlies = make_token(api, charlie)["token"]
    problem(api.read(charlies, session["id"]), 404)
    problem(api.patch(session_url(session["id"]), {"name": "x"}, charlies), 404)


# --- use, events ----------------------------------------------------------------------------------


def test_last_used_at_is_written_at_most_once_a_minute(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC))
    created = make_token(api, alice)

    def last_used() -> str | None:
        (entry,) = listed(api, TOKENS, alice.access)
        value: str | None = entry["last_used_at"]
        return value

    assert api.me(created["token"]).status_code == 200
    first = last_used()
    assert first is not None
    time_machine.shift(timedelta(seconds=30))
    assert api.me(created["token"]).status_code == 200
    assert last_used() == first
    time_machine.shift(timedelta(seconds=31))
    assert api.me(created["token"]).status_code == 200
    assert rfc3339(last_used() or "") > rfc3339(first)


def test_creation_revocation_and_new_addresses_are_auth_events(api: Api, alice: Persona) -> None:
    created = make_token(api, alice)
    token = created["token"]
    for _ in range(3):
        assert api.me(token, REMOTE_ADDR="10.1.1.1").status_code == 200
    assert api.me(token, REMOTE_ADDR="10.2.2.2").status_code == 200
    assert api.me(token, REMOTE_ADDR="10.1.1.1").status_code == 200
    assert api.delete(f"{TOKENS}/{created['id']}", alice.access).status_code == 204
    logged = [
        e
        for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid, limit=500)
        if e.type.startswith("api_token")
    ]
    logged.reverse()  # oldest first
    assert [e.type for e in logged] == [
        "api_token_created",
        "api_token_used_new_address",
        "api_token_used_new_address",
        "api_token_revoked",
    ]
    assert [e.ip for e in logged[1:3]] == ["10.1.1.1", "10.2.2.2"]
    assert all(e.data["api_token_id"] == created["id"] for e in logged)
    assert all(str(e.user_id) == alice.user_id for e in logged)
    assert logged[0].data["scopes"] == ALL_SCOPES
    assert logged[3].data["revoked_by"] == alice.user_id

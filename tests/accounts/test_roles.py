"""Roles (issue 16 part 1): owner, admin, member, viewer, on every operation of the schema.

``RULES`` has one entry per operation of the served OpenAPI schema: the request it makes as
a persona of each role, and the status each role gets. ``test_every_operation_has_a_rule``
fails when the schema gains an operation without one, so a new route must say who may call
it. Every answer is also checked against the schema (tests/reliability/
test_openapi_responses.py ``check``), and a 403 must be ``forbidden``.

The same table drives ``test_api_token_without_the_scope_is_refused``: an API token without
scopes is refused wherever ``x-api-token-scope`` names a scope or ``forbidden``.

Then the role changes themselves: PATCH members/{id}, the last owner, two owners demoting
each other at once, a demotion racing a write, invitations listed and revoked.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

import fdb_backend
from accounts.records import users
from accounts.services import Client as AuthClient
from accounts.services import member_role_set, principal_authenticate
from core.errors import ServiceError
from tests.accounts.helpers import (
    AUTH,
    PASSWORD,
    TENANT,
    Persona,
    invite_and_register,
    items,
    login_pair,
    problem,
    register_persona,
)
from tests.accounts.recovery import reset_token, verification_token, verify_email
from tests.reliability.test_openapi_responses import OPERATIONS, SCHEMA, check
from tests.workspaces.helpers import SessionApi, create_session

ROLES = ("owner", "admin", "member", "viewer")
NEW_PASSWORD = "An0ther-long-passphrase!"


def set_role(api: SessionApi, manager: Persona, member: Persona, role: str) -> dict[str, Any]:
    response = api.patch(TENANT + f"members/{member.user_id}/", {"role": role}, manager.access)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


class World:
    """Tenant A: Alice (owner), Dave (admin), Bob (member), Vic (viewer, who made a session
    while he was a member); tenant B: Charlie. Alice has a session everyone works on."""

    def __init__(self, api: SessionApi, alice: Persona, bob: Persona, charlie: Persona) -> None:
        self.api, self.alice, self.bob, self.charlie = api, alice, bob, charlie
        self.dave = invite_and_register(api, alice, "Dave", "dave@example.com", role="admin")
        self.vic = invite_and_register(api, alice, "Vic", "vic@example.com", role="member")
        self.vics = create_session(api, self.vic, name="vic's", workspace_path="/srv/v")
        set_role(api, alice, self.vic, "viewer")
        self.shared = create_session(api, alice, name="shared", workspace_path="/srv/a")
        self.by_role = {"owner": alice, "admin": self.dave, "member": bob, "viewer": self.vic}
        self.made = 0

    def request(
        self,
        label: str,
        token: str | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> Any:
        method, url = label.split(" ", 1)
        for name, value in params.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, url
        extra: dict[str, Any] = {
            "HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()
        }
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        client = self.api.client
        if method == "GET":
            response = client.get(url, **extra)
        else:
            data = b"" if body is None else json.dumps(body).encode()
            response = getattr(client, method.lower())(
                url, data, content_type="application/json", **extra
            )
        check(label, response)
        return response

    def fresh_member(self) -> Persona:
        self.made += 1
        n = self.made
        return invite_and_register(self.api, self.alice, f"M{n}", f"m{n}@example.com", "member")

    def api_token(self, persona: Persona, scopes: list[str] | None = None) -> dict[str, Any]:
        response = self.api.post(
            AUTH + "api-tokens", {"name": "t", "scopes": scopes or []}, persona.access
        )
        assert response.status_code == 201, response.content
        body: dict[str, Any] = response.json()
        return body

    def invitation(self, role: str = "member") -> str:
        self.made += 1
        response = self.api.invite(self.alice.access, f"i{self.made}@example.com", role)
        assert response.status_code == 201, response.content
        return str(response.json()["id"])

    def own_session(self, who: Persona) -> str:
        if who is self.vic:
            return str(self.vics["id"])
        return str(create_session(self.api, who, name="own", workspace_path="/srv/o")["id"])


# A rule: what to send as ``who`` with ``token`` (None: the persona's own, made fresh when
# the operation spends it), and the status of each role in ROLES order.
Call = Callable[[World, Persona, str | None], Any]


@dataclass(frozen=True)
class Rule:
    call: Call
    statuses: tuple[int, int, int, int]  # owner, admin, member, viewer


RULES: dict[str, Rule] = {}
EVERYONE = {"owner", "admin", "member", "viewer"}


def rule(label: str, *statuses: int) -> Callable[[Call], Call]:
    assert len(statuses) == 4, label

    def register(call: Call) -> Call:
        RULES[label] = Rule(call, (statuses[0], statuses[1], statuses[2], statuses[3]))
        return call

    return register


def _own(token: str | None, who: Persona) -> str:
    return token if token is not None else who.access


SESSION = "/api/v5/sessions/{session_id}"

# --- public operations: the same for everyone (a viewer signs in like anyone) ---------------


@rule("GET /.well-known/jwks.json", 200, 200, 200, 200)
def _well_known(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /.well-known/jwks.json", None)


@rule("GET /api/v5/auth/jwks", 200, 200, 200, 200)
def _jwks(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/jwks", None)


@rule("POST /api/v5/auth/login", 200, 200, 200, 200)
def _login(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        "POST /api/v5/auth/login", None, body={"email": who.email, "password": who.password}
    )


@rule("POST /api/v5/auth/login/mfa", 401, 401, 401, 401)
def _login_mfa(w: World, who: Persona, token: str | None) -> Any:
    body = {"challenge": "not-a-challenge", "code": "123456"}
    return w.request("POST /api/v5/auth/login/mfa", None, body=body)


@rule("POST /api/v5/auth/refresh", 200, 200, 200, 200)
def _refresh(w: World, who: Persona, token: str | None) -> Any:
    pair = login_pair(w.api, who)
    return w.request("POST /api/v5/auth/refresh", None, body={"refresh": pair["refresh"]})


@rule("POST /api/v5/auth/register", 201, 201, 201, 201)
def _register(w: World, who: Persona, token: str | None) -> Any:
    body = {"email": f"new-{who.name.lower()}@example.net", "password": PASSWORD}
    return w.request("POST /api/v5/auth/register", None, body=body)


@rule("POST /api/v5/auth/password-reset", 202, 202, 202, 202)
def _reset(w: World, who: Persona, token: str | None) -> Any:
    return w.request("POST /api/v5/auth/password-reset", None, body={"email": who.email})


@rule("POST /api/v5/auth/password-reset/confirm", 204, 204, 204, 204)
def _reset_confirm(w: World, who: Persona, token: str | None) -> Any:
    w.api.post(AUTH + "password-reset", {"email": who.email})
    body = {"token": reset_token(who), "new_password": NEW_PASSWORD}
    return w.request("POST /api/v5/auth/password-reset/confirm", None, body=body)


@rule("POST /api/v5/auth/verify-email", 204, 204, 204, 204)
def _verify(w: World, who: Persona, token: str | None) -> Any:
    body = {"token": verification_token(who)}
    return w.request("POST /api/v5/auth/verify-email", None, body=body)


# --- the caller's own account: every role manages it -------------------------------------


@rule("POST /api/v5/auth/verify-email/resend", 202, 202, 202, 202)
def _resend(w: World, who: Persona, token: str | None) -> Any:
    return w.request("POST /api/v5/auth/verify-email/resend", _own(token, who), body={})


@rule("POST /api/v5/auth/logout", 204, 204, 204, 204)
def _logout(w: World, who: Persona, token: str | None) -> Any:
    own = token if token is not None else login_pair(w.api, who)["access"]
    return w.request("POST /api/v5/auth/logout", own)


@rule("POST /api/v5/auth/logout-all", 204, 204, 204, 204)
def _logout_all(w: World, who: Persona, token: str | None) -> Any:
    own = token if token is not None else login_pair(w.api, who)["access"]
    return w.request("POST /api/v5/auth/logout-all", own)


@rule("GET /api/v5/auth/me", 200, 200, 200, 200)
def _me(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/me", _own(token, who))


@rule("GET /api/v5/auth/sessions", 200, 200, 200, 200)
def _sessions(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/sessions", _own(token, who))


@rule("DELETE /api/v5/auth/sessions/{session_id}", 204, 204, 204, 204)
def _session_revoke(w: World, who: Persona, token: str | None) -> Any:
    other = login_pair(w.api, who)["access"]
    target = who.session_id(w.api, other)
    return w.request(
        "DELETE /api/v5/auth/sessions/{session_id}", _own(token, who), session_id=target
    )


@rule("POST /api/v5/auth/password", 204, 204, 204, 204)
def _password(w: World, who: Persona, token: str | None) -> Any:
    body = {"current_password": who.password, "new_password": NEW_PASSWORD}
    return w.request("POST /api/v5/auth/password", _own(token, who), body=body)


@rule("GET /api/v5/auth/mfa", 200, 200, 200, 200)
def _mfa(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/mfa", _own(token, who))


@rule("POST /api/v5/auth/mfa/totp", 201, 201, 201, 201)
def _totp(w: World, who: Persona, token: str | None) -> Any:
    verify_email(w.api, who)
    body = {"password": who.password}
    return w.request("POST /api/v5/auth/mfa/totp", _own(token, who), body=body)


# Without an enrolment these reach the operation's own check (409/400), past any role check.
@rule("POST /api/v5/auth/mfa/totp/confirm", 409, 409, 409, 409)
def _totp_confirm(w: World, who: Persona, token: str | None) -> Any:
    return w.request("POST /api/v5/auth/mfa/totp/confirm", _own(token, who), body={"code": "1"})


@rule("POST /api/v5/auth/mfa/totp/disable", 409, 409, 409, 409)
def _totp_disable(w: World, who: Persona, token: str | None) -> Any:
    body = {"password": who.password, "code": "123456"}
    return w.request("POST /api/v5/auth/mfa/totp/disable", _own(token, who), body=body)


@rule("POST /api/v5/auth/mfa/recovery-codes", 409, 409, 409, 409)
def _recovery(w: World, who: Persona, token: str | None) -> Any:
    body = {"code": "123456"}
    return w.request("POST /api/v5/auth/mfa/recovery-codes", _own(token, who), body=body)


@rule("GET /api/v5/auth/me/export", 200, 200, 200, 200)
def _export(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/me/export", _own(token, who))


# Everyone may erase themselves; Alice is the last owner.
@rule("DELETE /api/v5/auth/me", 409, 204, 204, 204)
def _erase(w: World, who: Persona, token: str | None) -> Any:
    body = {"password": who.password}
    return w.request("DELETE /api/v5/auth/me", _own(token, who), body=body)


@rule("GET /api/v5/auth/api-tokens", 200, 200, 200, 200)
def _tokens(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/auth/api-tokens", _own(token, who))


# A viewer's token acts as the viewer: it may exist, and its writes are refused (below).
@rule("POST /api/v5/auth/api-tokens", 201, 201, 201, 201)
def _token_create(w: World, who: Persona, token: str | None) -> Any:
    body = {"name": "ci", "scopes": ["sessions:read"]}
    return w.request("POST /api/v5/auth/api-tokens", _own(token, who), body=body)


@rule("DELETE /api/v5/auth/api-tokens/{token_id}", 204, 204, 204, 204)
def _token_revoke(w: World, who: Persona, token: str | None) -> Any:
    target = w.api_token(who)["id"]
    return w.request("DELETE /api/v5/auth/api-tokens/{token_id}", _own(token, who), token_id=target)


# --- workspace sessions: everyone reads, a viewer never writes ---------------------------


@rule("GET /api/v5/sessions", 200, 200, 200, 200)
def _list(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/sessions", _own(token, who))


@rule("POST /api/v5/sessions", 201, 201, 201, 403)
def _create(w: World, who: Persona, token: str | None) -> Any:
    body = {"name": "n", "workspace_path": "/srv/n"}
    return w.request("POST /api/v5/sessions", _own(token, who), body=body)


@rule(f"GET {SESSION}", 200, 200, 200, 200)
def _read(w: World, who: Persona, token: str | None) -> Any:
    return w.request(f"GET {SESSION}", _own(token, who), session_id=w.shared["id"])


@rule(f"PATCH {SESSION}", 200, 200, 200, 403)
def _patch(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        f"PATCH {SESSION}", _own(token, who), body={"name": "x"}, session_id=w.shared["id"]
    )


# Each deletes a session of their own: a viewer not even that (Vic made his as a member).
@rule(f"DELETE {SESSION}", 204, 204, 204, 403)
def _delete(w: World, who: Persona, token: str | None) -> Any:
    return w.request(f"DELETE {SESSION}", _own(token, who), session_id=w.own_session(who))


@rule(f"GET {SESSION}/events", 200, 200, 200, 200)
def _events(w: World, who: Persona, token: str | None) -> Any:
    return w.request(f"GET {SESSION}/events", _own(token, who), session_id=w.shared["id"])


@rule(f"POST {SESSION}/events", 202, 202, 202, 403)
def _publish(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        f"POST {SESSION}/events",
        _own(token, who),
        body={"event": "build", "data": {"ok": True}},
        session_id=w.shared["id"],
    )


@rule(f"POST {SESSION}/fork", 201, 201, 201, 403)
def _fork(w: World, who: Persona, token: str | None) -> Any:
    return w.request(f"POST {SESSION}/fork", _own(token, who), body={}, session_id=w.shared["id"])


@rule(f"GET {SESSION}/related", 200, 200, 200, 200)
def _related(w: World, who: Persona, token: str | None) -> Any:
    return w.request(f"GET {SESSION}/related", _own(token, who), session_id=w.shared["id"])


# --- the tenant: everyone sees it and its members; owners and admins manage it -----------


@rule("GET /api/v5/tenant/", 200, 200, 200, 200)
def _tenant(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/tenant/", _own(token, who))


@rule("GET /api/v5/tenant/members/", 200, 200, 200, 200)
def _members(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/tenant/members/", _own(token, who))


@rule("PATCH /api/v5/tenant/members/{user_id}/", 200, 200, 403, 403)
def _member_role(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        "PATCH /api/v5/tenant/members/{user_id}/",
        _own(token, who),
        body={"role": "viewer"},
        user_id=w.fresh_member().user_id,
    )


@rule("DELETE /api/v5/tenant/members/{user_id}/", 204, 204, 403, 403)
def _member_remove(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        "DELETE /api/v5/tenant/members/{user_id}/",
        _own(token, who),
        user_id=w.fresh_member().user_id,
    )


@rule("GET /api/v5/tenant/invitations/", 200, 200, 403, 403)
def _invitations(w: World, who: Persona, token: str | None) -> Any:
    w.invitation()
    return w.request("GET /api/v5/tenant/invitations/", _own(token, who))


@rule("POST /api/v5/tenant/invitations/", 201, 201, 403, 403)
def _invite(w: World, who: Persona, token: str | None) -> Any:
    body = {"email": f"guest-{who.name.lower()}@example.com", "role": "member"}
    return w.request("POST /api/v5/tenant/invitations/", _own(token, who), body=body)


@rule("DELETE /api/v5/tenant/invitations/{invitation_id}/", 204, 204, 403, 403)
def _invitation_revoke(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        "DELETE /api/v5/tenant/invitations/{invitation_id}/",
        _own(token, who),
        invitation_id=w.invitation(),
    )


@rule("GET /api/v5/tenant/audit/", 200, 200, 403, 403)
def _audit(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/tenant/audit/", _own(token, who))


@rule("GET /api/v5/tenant/settings/", 200, 200, 200, 200)
def _settings(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/tenant/settings/", _own(token, who))


@rule("PATCH /api/v5/tenant/settings/", 200, 200, 403, 403)
def _settings_update(w: World, who: Persona, token: str | None) -> Any:
    body = {"require_email_verification": False}
    return w.request("PATCH /api/v5/tenant/settings/", _own(token, who), body=body)


@rule("GET /api/v5/tenant/api-tokens/", 200, 200, 403, 403)
def _tenant_tokens(w: World, who: Persona, token: str | None) -> Any:
    return w.request("GET /api/v5/tenant/api-tokens/", _own(token, who))


@rule("DELETE /api/v5/tenant/api-tokens/{token_id}/", 204, 204, 403, 403)
def _tenant_token_revoke(w: World, who: Persona, token: str | None) -> Any:
    return w.request(
        "DELETE /api/v5/tenant/api-tokens/{token_id}/",
        _own(token, who),
        token_id=w.api_token(w.bob)["id"],
    )


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def sessions() -> SessionApi:
    return SessionApi()


@pytest.fixture
def world(sessions: SessionApi, alice: Persona, charlie: Persona) -> World:
    bob = invite_and_register(sessions, alice, "Bob", "bob@example.com", role="member")
    return World(sessions, alice, bob, charlie)


def test_every_operation_has_a_rule() -> None:
    assert set(OPERATIONS) == set(RULES), {
        "no rule": sorted(set(OPERATIONS) - set(RULES)),
        "not in the schema": sorted(set(RULES) - set(OPERATIONS)),
    }


@pytest.mark.django_db  # the audit log reads the staff entries (ORM)
@pytest.mark.parametrize("label", sorted(RULES))
def test_each_role_gets_what_the_table_says(world: World, label: str) -> None:
    rule_of = RULES[label]
    got = {}
    for role, expected in zip(ROLES, rule_of.statuses, strict=True):
        response = rule_of.call(world, world.by_role[role], None)
        got[role] = response.status_code
        if expected == 403:
            problem(response, 403, "forbidden")
    assert got == dict(zip(ROLES, rule_of.statuses, strict=True)), (label, got)


def _scope_of(label: str) -> str | None:
    method, path = label.split(" ", 1)
    scope: str | None = SCHEMA["paths"][path][method.lower()].get("x-api-token-scope")
    return scope


@pytest.mark.django_db
@pytest.mark.parametrize(
    "label", sorted(label for label in RULES if _scope_of(label) not in (None, "any"))
)
def test_api_token_without_the_scope_is_refused(world: World, label: str) -> None:
    """An owner's API token with no scopes: refused wherever a scope (or a user) is needed,
    before anything happens."""
    token = world.api_token(world.alice)["token"]
    problem(RULES[label].call(world, world.alice, token), 403, "insufficient_scope")


@pytest.mark.parametrize("label", sorted(label for label in RULES if _scope_of(label) == "any"))
def test_api_token_without_scopes_may_ask_whom_it_is(world: World, label: str) -> None:
    token = world.api_token(world.vic)["token"]
    assert RULES[label].call(world, world.vic, token).status_code == 200


def test_a_viewers_api_token_with_every_scope_writes_nothing(world: World) -> None:
    scopes = ["sessions:read", "sessions:write", "events:publish", "locks"]
    token = world.api_token(world.vic, scopes)["token"]
    for label in (f"PATCH {SESSION}", "POST /api/v5/sessions", f"POST {SESSION}/events"):
        problem(RULES[label].call(world, world.vic, token), 403, "forbidden")
    assert _read(world, world.vic, token).status_code == 200
    after = world.api.get(f"/api/v5/sessions/{world.shared['id']}", world.alice.access).json()
    assert after["version"] == world.shared["version"]
    assert after["name"] == "shared"


# --- changing roles ------------------------------------------------------------------------


def member_url(persona: Persona) -> str:
    return TENANT + f"members/{persona.user_id}/"


def test_promotion_and_demotion_take_effect_on_the_next_request(world: World) -> None:
    api, bob, shared = world.api, world.bob, world.shared["id"]
    url = f"/api/v5/sessions/{shared}"
    assert api.patch(url, {"name": "by bob"}, bob.access).status_code == 200
    changed = set_role(api, world.alice, bob, "viewer")
    assert changed["role"] == "viewer"
    assert changed["id"] == bob.user_id
    problem(api.patch(url, {"name": "again"}, bob.access), 403, "forbidden")
    assert api.get(url, bob.access).status_code == 200
    assert api.me(bob.access).json()["role"] == "viewer"
    assert api.get(TENANT, bob.access).json()["role"] == "viewer"
    set_role(api, world.dave, bob, "member")
    assert api.patch(url, {"name": "back"}, bob.access).status_code == 200


def test_the_change_is_an_auth_event(world: World) -> None:
    from accounts.selectors import auth_event_list

    set_role(world.api, world.alice, world.bob, "admin")
    found = [
        e for e in auth_event_list(tenant_id=world.alice.tenant_uuid) if e.type == "role_changed"
    ]
    latest = found[0]
    assert latest.user_id == world.alice.user_uuid
    assert latest.data["member_id"] == world.bob.user_id
    assert latest.data["previous_role"] == "member"
    assert latest.data["role"] == "admin"


def test_member_record_has_an_etag_and_honours_if_match(world: World) -> None:
    api, url = world.api, member_url(world.bob)
    first = api.patch(url, {"role": "admin"}, world.alice.access)
    assert first.status_code == 200, first.content
    etag = first["ETag"]
    second = api.patch(url, {"role": "member"}, world.alice.access, if_match=etag)
    assert second.status_code == 200, second.content
    assert second["ETag"] != etag
    stale = api.patch(url, {"role": "viewer"}, world.alice.access, if_match=etag)
    problem(stale, 412, "version_conflict")
    assert stale["ETag"] == second["ETag"]
    assert api.me(world.bob.access).json()["role"] == "member"


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_only_an_owner_grants_owner(world: World, role: str) -> None:
    api = world.api
    target = world.fresh_member()
    if role != "member":
        set_role(api, world.alice, target, role)
    problem(api.patch(member_url(target), {"role": "owner"}, world.dave.access), 403, "forbidden")
    problem(api.patch(member_url(world.alice), {"role": "admin"}, world.dave.access), 403)
    assert set_role(api, world.alice, target, "owner")["role"] == "owner"
    # Now two owners: an owner may step down, an admin may not demote the new owner.
    problem(api.patch(member_url(target), {"role": "member"}, world.dave.access), 403)
    assert set_role(api, target, world.alice, "admin")["role"] == "admin"


def test_admin_changes_roles_up_to_admin(world: World) -> None:
    api, target = world.api, world.fresh_member()
    for role in ("admin", "viewer", "member"):
        assert set_role(api, world.dave, target, role)["role"] == role


def test_last_owner_stays(world: World) -> None:
    api, alice = world.api, world.alice
    for role in ("admin", "member", "viewer"):
        problem(api.patch(member_url(alice), {"role": role}, alice.access), 409, "last_owner")
    problem(api.delete(member_url(alice), alice.access), 409, "last_owner")
    assert api.me(alice.access).json()["role"] == "owner"


def test_same_role_changes_nothing(world: World) -> None:
    before = world.api.patch(member_url(world.bob), {"role": "member"}, world.alice.access)
    after = world.api.patch(member_url(world.bob), {"role": "member"}, world.alice.access)
    assert before["ETag"] == after["ETag"]


@pytest.mark.parametrize("body", [{}, {"role": "root"}, {"role": None}, {"role": "member", "x": 1}])
def test_bad_role_bodies_are_400(world: World, body: dict[str, Any]) -> None:
    problem(world.api.patch(member_url(world.bob), body, world.alice.access), 400, "invalid")


def test_another_tenants_member_is_404(world: World) -> None:
    api = world.api
    problem(api.patch(member_url(world.charlie), {"role": "viewer"}, world.alice.access), 404)
    problem(api.patch(member_url(world.bob), {"role": "viewer"}, world.charlie.access), 404)
    assert api.me(world.charlie.access).json()["role"] == "owner"
    assert api.me(world.bob.access).json()["role"] == "member"


def _role_in_store(persona: Persona) -> str:
    found = users(persona.tenant_uuid).get(fdb_backend.get_database(), persona.user_uuid)
    assert found is not None
    return str(found.role)


@pytest.mark.parametrize(
    ("targets", "refused"),
    [
        ("each other", 403),  # the second, run again, finds its caller an admin now
        ("themselves", 409),  # the second, run again, counts one owner: last_owner
    ],
)
def test_two_owners_demoting_at_once_leave_one_owner(
    world: World, monkeypatch: pytest.MonkeyPatch, targets: str, refused: int
) -> None:
    """Both transactions read the owners (two) before either writes: they are held at a
    barrier there. Stepping down each themselves, the two touch no common record: only the
    owner count, read in the transaction that writes as a conflicting read (not a snapshot),
    keeps the second from committing."""
    from accounts.services import tenancy

    api, alice = world.api, world.alice
    erin = world.fresh_member()
    set_role(api, alice, erin, "owner")
    barrier = threading.Barrier(2, timeout=10)
    owners_of = tenancy._owners
    held: set[int] = set()

    def owners_at_once(tr: Any, people: Any) -> Any:
        found = owners_of(tr, people)
        me = threading.get_ident()
        if me not in held:  # the first attempt of each: both have read two owners
            held.add(me)
            barrier.wait()
        return found

    monkeypatch.setattr(tenancy, "_owners", owners_at_once)

    def demote(caller: Persona, target: Persona) -> int:
        # The service each PATCH calls, straight: a process serves one storage-bound request
        # at a time (coditect/lean.py), which would keep the two from overlapping at all.
        db = fdb_backend.get_database()
        try:
            member_role_set(
                db=db,
                principal=principal_authenticate(db=db, token=caller.access),
                user_id=target.user_uuid,
                role="admin",
                client=AuthClient(),
            )
        except ServiceError as error:
            return error.status
        return 200

    with ThreadPoolExecutor(2) as pool:
        if targets == "each other":
            first, second = pool.submit(demote, alice, erin), pool.submit(demote, erin, alice)
        else:
            first, second = pool.submit(demote, alice, alice), pool.submit(demote, erin, erin)
        statuses = sorted([first.result(), second.result()])
    assert statuses == [200, refused], statuses
    roles = sorted([_role_in_store(alice), _role_in_store(erin)])
    assert roles == ["admin", "owner"], roles


def test_a_demotion_committed_during_a_write_refuses_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's PATCH reads his record (member) and is held there until Alice's demotion has
    committed; it then commits its write, conflicts, runs again and sees a viewer. A role
    read from the request's principal, or with a snapshot read, would let it through."""
    from workspaces import services

    api, bob, shared = world.api, world.bob, world.shared["id"]
    demoted = threading.Event()
    original = services.writer_check
    waited: list[str] = []

    def held_check(user: Any) -> Any:
        if user is not None and user.id == bob.user_uuid and not waited:
            waited.append(user.role)
            assert demoted.wait(10)
        return original(user)

    monkeypatch.setattr(services, "writer_check", held_check)

    def write() -> int:
        # The service of PATCH /sessions/{id}, straight (one request at a time: see above).
        db = fdb_backend.get_database()
        try:
            services.session_update(
                db=db,
                principal=principal_authenticate(db=db, token=bob.access),
                session_id=uuid.UUID(shared),
                changes={"name": "late"},
            )
        except ServiceError as error:
            assert error.code == "forbidden", error
            return error.status
        return 200

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(write)
        while not waited:
            threading.Event().wait(0.01)
        set_role(api, world.alice, bob, "viewer")
        demoted.set()
        status = pending.result()
    assert waited == ["member"]
    assert status == 403
    after = api.get(f"/api/v5/sessions/{shared}", world.alice.access).json()
    assert after["name"] == "shared"
    assert after["version"] == world.shared["version"]


# --- invitations ---------------------------------------------------------------------------


def test_invitations_are_listed_without_tokens_and_revoked(world: World) -> None:
    api, alice = world.api, world.alice
    made = api.invite(alice.access, "guest@example.com", "viewer").json()
    listed = items(api.get(TENANT + "invitations/", alice.access).json())
    (mine,) = [i for i in listed if i["id"] == made["id"]]
    assert mine == {
        "id": made["id"],
        "email": "guest@example.com",
        "role": "viewer",
        "created_by": alice.user_id,
        "created_at": mine["created_at"],
        "expires_at": made["expires_at"],
    }
    assert made["token"] not in str(listed)
    assert made["token"].split(".")[1] not in str(listed)
    assert api.delete(TENANT + f"invitations/{made['id']}/", alice.access).status_code == 204
    assert made["id"] not in {
        i["id"] for i in items(api.get(TENANT + "invitations/", alice.access).json())
    }
    refused = api.register("guest@example.com", invitation=made["token"])
    problem(refused, 400, "invalid_invitation")


def test_used_invitations_are_not_pending(world: World) -> None:
    api, alice = world.api, world.alice
    listed = {i["email"] for i in items(api.get(TENANT + "invitations/", alice.access).json())}
    assert "bob@example.com" not in listed
    assert "vic@example.com" not in listed


def test_invitation_of_another_tenant_is_404(world: World) -> None:
    theirs = world.api.invite(world.charlie.access, "c@example.com", "member").json()
    problem(world.api.delete(TENANT + f"invitations/{theirs['id']}/", world.alice.access), 404)
    listed = items(world.api.get(TENANT + "invitations/", world.charlie.access).json())
    assert theirs["id"] in {i["id"] for i in listed}
    listed = items(world.api.get(TENANT + "invitations/", world.alice.access).json())
    assert theirs["id"] not in {i["id"] for i in listed}


@pytest.mark.parametrize(
    ("inviter", "role", "status"),
    [
        ("owner", "owner", 201),
        ("owner", "viewer", 201),
        ("admin", "admin", 201),
        ("admin", "viewer", 201),
        ("admin", "owner", 403),
    ],
)
def test_invite_as_any_role_up_to_ones_own(
    world: World, inviter: str, role: str, status: int
) -> None:
    persona = world.by_role[inviter]
    response = world.api.invite(persona.access, "x@example.com", role)
    assert response.status_code == status, response.content
    if status == 201:
        joined = register_persona(
            world.api, "X", "x@example.com", invitation=response.json()["token"]
        )
        assert joined.user["role"] == role


def test_admin_cannot_revoke_an_owners_invitation(world: World) -> None:
    api = world.api
    made = api.invite(world.alice.access, "o@example.com", "owner").json()
    problem(api.delete(TENANT + f"invitations/{made['id']}/", world.dave.access), 403)
    assert api.delete(TENANT + f"invitations/{made['id']}/", world.alice.access).status_code == 204


def test_invitation_events(world: World) -> None:
    from accounts.selectors import auth_event_list

    made = world.api.invite(world.dave.access, "e@example.com", "viewer").json()
    world.api.delete(TENANT + f"invitations/{made['id']}/", world.dave.access)
    events = auth_event_list(tenant_id=world.alice.tenant_uuid)
    kinds = {e.type: e for e in reversed(events)}  # the newest of each kind
    assert kinds["invitation_revoked"].data["invitation_id"] == made["id"]
    assert kinds["invitation_revoked"].user_id == world.dave.user_uuid
    assert kinds["invitation_created"].data["role"] == "viewer"


def test_viewer_may_leave(world: World) -> None:
    assert world.api.delete(member_url(world.vic), world.vic.access).status_code == 204
    problem(world.api.me(world.vic.access), 401)

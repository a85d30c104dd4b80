"""Isolation sweep (issue 8): every way in, tried by tenant B on tenant A's data.

Charlie (owner of tenant B) tries every REST route, every web route, every WebSocket message
type, every support view of the admin and every management command action that takes a
tenant. The lists are read from the project itself (Django's URL resolver, the admin site,
the protocol's message types, the commands' parsers), and each entry needs a probe here: a
route or message type added tomorrow fails ``test_every_*_has_a_probe`` until someone says
how tenant B may try it. The per-app tests (tests/*/test_isolation.py) go deeper on each
app; this one is the exhaustive list.

For every attempt:
* no 5xx, and every error is a problem (``application/problem+json``) on API paths;
* nothing of tenant A comes back (ids, emails, names, paths), except what Charlie sent;
* where Charlie names tenant A's record by id, the answer is the one a random id gets, body
  and all (only ``request_id`` differs), and a 404 where the contract says so;
and after all of them tenant A is as it was: the same sessions, members, devices and
settings, and Alice's and Bob's tokens still work.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib import admin
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.test import Client
from django.urls import URLPattern, get_resolver

from realtime.protocol import CLIENT_TYPES
from tests.accounts.helpers import (
    AUTH,
    TENANT,
    Persona,
    b64url,
    login_pair,
    without_request_id,
)
from tests.realtime.helpers import PROTOCOL, Sockets, bearer, call, ws_path
from tests.reliability.routes import Route, rest_routes, walk
from tests.workspaces.helpers import SessionApi, all_events, create_session, session_url

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
else:
    from django.http import HttpResponse as Response

pytestmark = pytest.mark.slow

PROJECT_APPS = ("accounts", "workspaces", "realtime", "operations", "coditect", "fdb_backend")
ALICES_FILE = "/home/alice/project/main.py"
WRONG_PASSWORD = "not-alices-password-1"


# --- tenant A, and what must not change -----------------------------------------------------


@dataclass
class TenantA:
    alice: Persona
    bob: Persona
    session: dict[str, Any]
    alice_device: str
    bob_device: str
    cursors: dict[str, str]
    bob_token: str = ""  # the id of an API token of Bob's
    invitation: str = ""  # the id of a pending invitation of Alice's

    def secrets(self) -> set[str]:
        """Strings that only tenant A's data contains."""
        found = {
            self.alice.tenant_id,
            self.alice.tenant["slug"],
            self.alice.tenant["name"],
            self.alice.user_id,
            self.bob.user_id,
            self.alice.email,
            self.bob.email,
            self.session["id"],
            self.session["name"],
            # Not its workspace path: Charlie has a session at the same path (paths are names
            # anyone may choose), and lists by it.
            self.alice_device,
            self.bob_device,
            self.bob_token,
            self.invitation,
            "alice.private.event",
        }
        # Ids also travel as 32 hex digits (tokens, channel names).
        return found | {uuid.UUID(value).hex for value in found if _is_uuid(value)}

    def fingerprint(self, api: SessionApi) -> dict[str, Any]:
        """What tenant A looks like through its own eyes (read with its own tokens)."""
        alice, bob = self.alice.access, self.bob.access
        session = api.read(alice, self.session["id"])
        assert session.status_code == 200, session.content
        body = session.json()
        return {
            "alice": _ok(api.me(alice))["id"],
            "bob": _ok(api.me(bob))["id"],
            "session": {k: v for k, v in body.items() if k != "last_active_at"},
            "sessions": sorted(i["id"] for i in _ok(api.listing(alice, limit=200))["results"]),
            "events": [(e["seq"], e["event"]) for e in all_events(api, self.alice, body["id"])],
            "members": sorted(
                (m["id"], m["role"]) for m in _ok(api.get(TENANT + "members/", alice))["results"]
            ),
            "invitations": sorted(
                i["id"] for i in _ok(api.get(TENANT + "invitations/", alice))["results"]
            ),
            "devices": sorted(d["id"] for d in _ok(api.get(AUTH + "sessions", alice))["results"]),
            "bob_devices": sorted(d["id"] for d in _ok(api.get(AUTH + "sessions", bob))["results"]),
            "settings": _ok(api.get(TENANT + "settings/", alice)),
            "tenant": _ok(api.get(TENANT, alice)),
            "api_tokens": sorted(
                t["id"] for t in _ok(api.get(TENANT + "api-tokens/", alice))["results"]
            ),
        }


def _ok(response: Response) -> Any:
    assert response.status_code == 200, response.content
    return response.json()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.fixture
def tenant_a(sessions: SessionApi, alice: Persona, bob: Persona, db: None) -> TenantA:
    # db: the audit log reads the staff entries (ORM).
    session = create_session(
        sessions,
        alice,
        name="Alice's secret workspace",
        workspace_path="/home/alice/project",
        editor_state={"secret": "alice"},
    )
    create_session(sessions, alice, name="second", workspace_path="/home/alice/other")
    published = sessions.publish(alice.access, session["id"], "alice.private.event", {"x": 1})
    assert published.status_code == 202, published.content
    login_pair(sessions, alice)  # a second device, so Alice's device list has a next page
    cursors = {
        "sessions": _ok(sessions.listing(alice.access, limit=1))["next_cursor"],
        "members": _ok(sessions.get(TENANT + "members/?limit=1", alice.access))["next_cursor"],
        "devices": _ok(sessions.get(AUTH + "sessions?limit=1", alice.access))["next_cursor"],
        "audit": _ok(sessions.get(TENANT + "audit/?limit=1", alice.access))["next_cursor"],
    }
    assert all(cursors.values()), cursors
    token = sessions.post(AUTH + "api-tokens", {"name": "bob's agent", "scopes": []}, bob.access)
    assert token.status_code == 201, token.content
    invitation = sessions.invite(alice.access, "dana@example.com", "viewer")
    assert invitation.status_code == 201, invitation.content
    return TenantA(
        alice=alice,
        bob=bob,
        session=session,
        alice_device=alice.session_id(sessions),
        bob_device=bob.session_id(sessions),
        cursors=cursors,
        bob_token=token.json()["id"],
        invitation=invitation.json()["id"],
    )


# --- attempts and their checks ------------------------------------------------------------------


@dataclass
class Attempt:
    label: str
    response: Response
    sent: str = ""  # what Charlie put in the request (may come back: not a leak)
    like: Response | None = None  # the answer for a record that does not exist
    status: int | set[int] | None = None


@dataclass
class Sweep:
    api: SessionApi
    a: TenantA
    charlie: Persona
    attempts: list[Attempt] = field(default_factory=list)

    def token(self) -> str:
        """A fresh sign-in of Charlie's (probes may log one out)."""
        return str(login_pair(self.api, self.charlie)["access"])

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        client: Client | None = None,
    ) -> Response:
        client = client or self.api.client
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        if method in ("GET", "OPTIONS"):
            response: Response = getattr(client, method.lower())(path, **headers)
            return response
        data = b"" if body is None else json.dumps(body).encode()
        response = getattr(client, method.lower())(
            path, data, content_type="application/json", **headers
        )
        return response

    def attempt(self, label: str, response: Response, **kwargs: Any) -> None:
        self.attempts.append(Attempt(label, response, **kwargs))

    def check(self) -> None:
        secrets = self.a.secrets()
        for attempt in self.attempts:
            response, label = attempt.response, attempt.label
            assert response.status_code < 500, (label, response.content)
            text = response.content.decode(errors="replace")
            leaked = {s for s in secrets if s in text and s not in attempt.sent}
            assert not leaked, (label, leaked, text[:500])
            for name, value in response.items():
                assert not {s for s in secrets if s in value and s not in attempt.sent}, (
                    label,
                    name,
                    value,
                )
            if attempt.status is not None:
                wanted = {attempt.status} if isinstance(attempt.status, int) else attempt.status
                assert response.status_code in wanted, (label, response.status_code, text[:300])
            if response.status_code >= 400 and _is_api(label):
                content_type = response["Content-Type"]
                assert content_type.startswith("application/problem+json"), (label, content_type)
            if attempt.like is not None:
                like = attempt.like
                assert response.status_code == like.status_code, (label, text, like.content)
                assert _comparable(response) == _comparable(like), (label, text, like.content)


def _is_api(label: str) -> bool:
    path = label.split(" ", 2)[1] if label.count(" ") >= 1 else label
    return path.startswith(("/api/", "/.well-known/", "/web/auth/"))


def _comparable(response: Response) -> Any:
    if not response.content:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.content
    return without_request_id(body) if isinstance(body, dict) else body


def _toggle_slash(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


def _random_ids(params: tuple[str, ...]) -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in params}


@pytest.fixture
def sweep(sessions: SessionApi, tenant_a: TenantA, charlie: Persona) -> Sweep:
    create_session(sessions, charlie, name="Globex", workspace_path="/home/alice/project")
    return Sweep(api=sessions, a=tenant_a, charlie=charlie)


# --- REST: one probe per route ------------------------------------------------------------------

Probe = Callable[[Sweep, Route], None]


def a_ids(sweep: Sweep, route: Route) -> list[tuple[str, dict[str, str]]]:
    """Tenant A's ids for a route's path parameters, by whose they are."""
    a = sweep.a
    if route.params == ("session_id",) and route.path.startswith("/api/v5/sessions/"):
        return [("alice's session", {"session_id": a.session["id"]})]
    if route.params == ("session_id",) and route.path.startswith("/api/v5/auth/sessions/"):
        return [
            ("alice's device", {"session_id": a.alice_device}),
            ("bob's device", {"session_id": a.bob_device}),
        ]
    if route.params == ("token_id",):
        return [("bob's API token", {"token_id": a.bob_token})]
    if route.params == ("invitation_id",):
        return [("alice's invitation", {"invitation_id": a.invitation})]
    if route.params == ("user_id",):
        return [("alice", {"user_id": a.alice.user_id}), ("bob", {"user_id": a.bob.user_id})]
    raise AssertionError(f"{route.label}: say whose ids its parameters {route.params} take")


def by_id(body: Any = None) -> Probe:
    """Tenant A's id in the path: the answer a random id gets, 404, in both spellings."""

    def probe(sweep: Sweep, route: Route) -> None:
        token = sweep.token()
        for whose, ids in a_ids(sweep, route):
            for spell in (str, _toggle_slash):
                path, other = spell(route.url(**ids)), spell(route.url(**_random_ids(route.params)))
                sweep.attempt(
                    f"{route.method} {path} ({whose})",
                    sweep.request(route.method, path, body, token),
                    sent=path + json.dumps(body),
                    like=sweep.request(route.method, other, body, token),
                    status=404,
                )

    return probe


def own_only(query: str = "", body: Any = None, status: int | set[int] = 200) -> Probe:
    """A route that only ever shows the caller's own tenant: nothing of A comes back."""

    def probe(sweep: Sweep, route: Route) -> None:
        path = route.path + query
        sweep.attempt(
            f"{route.method} {path}",
            sweep.request(route.method, path, body, sweep.token()),
            sent=path + json.dumps(body),
            status=status,
        )

    return probe


def with_cursor(kind: str) -> Probe:
    """Tenant A's list cursor on Charlie's list: refused, or Charlie's own entries only."""

    def probe(sweep: Sweep, route: Route) -> None:
        token = sweep.token()
        plain = sweep.request("GET", route.path, token=token)
        sweep.attempt(f"GET {route.path}", plain, status=200)
        path = f"{route.path}?limit=1&cursor={sweep.a.cursors[kind]}"
        sweep.attempt(f"GET {path}", sweep.request("GET", path, token=token), status={200, 400})

    return probe


def probe_audit(sweep: Sweep, route: Route) -> None:
    """Charlie's audit log, with tenant A's cursor and filtered by A's users: his own only.
    (It may name Bob's email: Charlie invited that address himself, in probe_invitation.)"""
    token = sweep.token()
    own = f"{route.path}?limit=200"
    sweep.attempt(
        f"GET {own}", sweep.request("GET", own, token=token), sent=sweep.a.bob.email, status=200
    )
    cursor = f"{route.path}?limit=1&cursor={sweep.a.cursors['audit']}"
    sweep.attempt(f"GET {cursor}", sweep.request("GET", cursor, token=token), status=400)
    for name in ("alice", "bob"):
        path = f"{route.path}?user_id={getattr(sweep.a, name).user_id}"
        found = sweep.request("GET", path, token=token)
        sweep.attempt(f"GET {path}", found, sent=path, status=200)
        assert found.json()["results"] == [], path


def like_unknown(make: Callable[[Sweep, str, str], Any], authenticated: bool = False) -> Probe:
    """A body naming tenant A (its ids, its users' emails) answers as one naming nobody."""

    def probe(sweep: Sweep, route: Route) -> None:
        a = sweep.a
        token = sweep.token() if authenticated else None
        mine = make(sweep, uuid.UUID(a.alice.tenant_id).hex, uuid.UUID(a.alice.user_id).hex)
        nobody = make(sweep, uuid.uuid4().hex, uuid.uuid4().hex)
        sweep.attempt(
            f"{route.method} {route.path} naming tenant A",
            sweep.request(route.method, route.path, mine, token),
            sent=json.dumps(mine),
            like=sweep.request(route.method, route.path, nobody, token),
        )

    return probe


def onetime(field_name: str, **extra: Any) -> Callable[[Sweep, str, str], Any]:
    """A one-time token (`<tenant hex>.<user hex>.<secret>`) forged to point into a tenant."""
    return lambda sweep, tenant, user: {
        field_name: f"{tenant}.{user}.{b64url(b'x' * 32)}",
        **extra,
    }


def forged_refresh(sweep: Sweep, tenant: str, user: str) -> Any:
    """A refresh token that names a tenant and user, signed with nothing."""
    header = b64url(json.dumps({"alg": "none", "typ": "refresh+jwt"}).encode())
    claims = {"sub": str(uuid.UUID(user)), "tenant_id": str(uuid.UUID(tenant)), "gen": 1}
    return {"refresh": f"{header}.{b64url(json.dumps(claims).encode())}."}


def probe_register(sweep: Sweep, route: Route) -> None:
    like_unknown(
        lambda s, tenant, user: {
            "email": f"new-{uuid.uuid4().hex[:8]}@example.net",
            "password": sweep.charlie.password,
            "invitation": f"{tenant}.{b64url(b'y' * 32)}",
        }
    )(sweep, route)
    # Naming a new team after tenant A makes a team of its own.
    body = {"email": "mallory@example.net", "password": sweep.charlie.password}
    response = sweep.request(
        "POST", route.path, {**body, "tenant_name": sweep.a.alice.tenant["name"]}
    )
    sweep.attempt("POST register as 'Acme'", response, sent=json.dumps(body) + "Acme", status=201)
    assert response.json()["tenant"]["id"] != sweep.a.alice.tenant_id


def probe_login(sweep: Sweep, route: Route) -> None:
    like_unknown(
        lambda s, tenant, user: {
            "email": sweep.a.alice.email
            if tenant == uuid.UUID(sweep.a.alice.tenant_id).hex
            else "nobody@example.net",
            # Every persona has the same password; Charlie's guess must be a wrong one.
            "password": WRONG_PASSWORD,
        }
    )(sweep, route)


def probe_email(path_field: str = "email", authenticated: bool = False) -> Probe:
    return like_unknown(
        lambda s, tenant, user: {
            path_field: s.a.alice.email
            if tenant == uuid.UUID(s.a.alice.tenant_id).hex
            else "nobody@example.net"
        },
        authenticated,
    )


def probe_resend(sweep: Sweep, route: Route) -> None:
    probe_email()(sweep, route)
    own_only(body=None, status={202, 409})(sweep, route)


def probe_invitation(sweep: Sweep, route: Route) -> None:
    """Inviting tenant A's user into tenant B: no different from inviting a stranger."""
    token = sweep.token()
    known = sweep.request("POST", route.path, {"email": sweep.a.bob.email, "role": "member"}, token)
    other = sweep.request(
        "POST", route.path, {"email": "stranger@example.net", "role": "member"}, token
    )
    sweep.attempt("POST invitations/ for bob", known, sent=sweep.a.bob.email, status=201)
    sweep.attempt("POST invitations/ for a stranger", other, status=201)
    assert known.json().keys() == other.json().keys()
    # The invitation is to tenant B, whoever it names.
    assert known.json()["token"].startswith(uuid.UUID(sweep.charlie.tenant_id).hex + ".")


def probe_create_session(sweep: Sweep, route: Route) -> None:
    """Forking tenant A's session by naming it as parent: as if it did not exist."""

    def body(s: Sweep, tenant: str, user: str) -> Any:
        mine = tenant == uuid.UUID(s.a.alice.tenant_id).hex
        parent = s.a.session["id"] if mine else str(uuid.uuid4())
        return {"name": "fork", "workspace_path": "/srv/b", "parent_session_id": parent}

    like_unknown(body, authenticated=True)(sweep, route)


def probe_list_sessions(sweep: Sweep, route: Route) -> None:
    with_cursor("sessions")(sweep, route)
    path = f"{route.path}?workspace_path={sweep.a.session['workspace_path']}"
    response = sweep.request("GET", path, token=sweep.token())
    sweep.attempt(f"GET {path}", response, sent=path, status=200)
    assert [item["name"] for item in response.json()["results"]] == ["Globex"]


def probe_settings(sweep: Sweep, route: Route) -> None:
    body = {"require_email_verification": False} if route.method == "PATCH" else None
    own_only(body=body)(sweep, route)


REST_PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/api/v5/schema/"): own_only(),
    ("GET", "/.well-known/jwks.json"): own_only(),
    ("GET", "/api/v5/auth/jwks"): own_only(),
    ("POST", "/api/v5/auth/register"): probe_register,
    ("POST", "/api/v5/auth/login"): probe_login,
    ("POST", "/api/v5/auth/login/mfa"): like_unknown(onetime("challenge", code="123456")),
    ("POST", "/api/v5/auth/refresh"): like_unknown(forged_refresh),
    ("POST", "/api/v5/auth/logout"): own_only(status=204),
    ("POST", "/api/v5/auth/logout-all"): own_only(status=204),
    ("GET", "/api/v5/auth/me"): own_only(),
    ("GET", "/api/v5/auth/me/export"): own_only(),
    ("DELETE", "/api/v5/auth/me"): own_only(body={"password": "not-it"}, status=400),
    ("GET", "/api/v5/auth/sessions"): with_cursor("devices"),
    ("DELETE", "/api/v5/auth/sessions/{session_id}"): by_id(),
    ("POST", "/api/v5/auth/password"): own_only(
        body={"current_password": "not-it", "new_password": "An0ther-long-pass!"}, status=400
    ),
    ("POST", "/api/v5/auth/verify-email"): like_unknown(onetime("token")),
    ("POST", "/api/v5/auth/verify-email/resend"): probe_resend,
    ("POST", "/api/v5/auth/password-reset"): probe_email(),
    ("POST", "/api/v5/auth/password-reset/confirm"): like_unknown(
        onetime("token", new_password="An0ther-long-pass!")
    ),
    ("GET", "/api/v5/auth/mfa"): own_only(),
    ("POST", "/api/v5/auth/mfa/totp"): own_only(body={"password": "not-it"}, status=400),
    ("POST", "/api/v5/auth/mfa/totp/confirm"): own_only(body={"code": "123456"}, status=409),
    ("POST", "/api/v5/auth/mfa/totp/disable"): own_only(
        body={"password": "not-it", "code": "123456"}, status={400, 409}
    ),
    ("POST", "/api/v5/auth/mfa/recovery-codes"): own_only(body={"code": "123456"}, status=409),
    ("GET", "/api/v5/auth/api-tokens"): own_only(),
    ("POST", "/api/v5/auth/api-tokens"): own_only(body={"name": "b", "scopes": []}, status=201),
    ("DELETE", "/api/v5/auth/api-tokens/{token_id}"): by_id(),
    ("GET", "/api/v5/tenant/"): own_only(),
    ("GET", "/api/v5/tenant/api-tokens/"): own_only(),
    ("DELETE", "/api/v5/tenant/api-tokens/{token_id}/"): by_id(),
    ("GET", "/api/v5/tenant/members/"): with_cursor("members"),
    ("GET", "/api/v5/tenant/audit/"): probe_audit,
    ("DELETE", "/api/v5/tenant/members/{user_id}/"): by_id(),
    ("PATCH", "/api/v5/tenant/members/{user_id}/"): by_id({"role": "viewer"}),
    ("GET", "/api/v5/tenant/invitations/"): own_only(),
    ("DELETE", "/api/v5/tenant/invitations/{invitation_id}/"): by_id(),
    ("POST", "/api/v5/tenant/invitations/"): probe_invitation,
    ("GET", "/api/v5/tenant/settings/"): probe_settings,
    ("PATCH", "/api/v5/tenant/settings/"): probe_settings,
    ("GET", "/api/v5/sessions"): probe_list_sessions,
    ("POST", "/api/v5/sessions"): probe_create_session,
    ("GET", "/api/v5/sessions/{session_id}"): by_id(),
    ("PATCH", "/api/v5/sessions/{session_id}"): by_id({"name": "pwned"}),
    ("DELETE", "/api/v5/sessions/{session_id}"): by_id(),
    ("POST", "/api/v5/sessions/{session_id}/fork"): by_id({"name": "mine now"}),
    ("GET", "/api/v5/sessions/{session_id}/related"): by_id(),
    ("GET", "/api/v5/sessions/{session_id}/events"): by_id(),
    ("POST", "/api/v5/sessions/{session_id}/events"): by_id({"event": "pwned", "data": {}}),
}


def test_every_rest_route_has_a_probe() -> None:
    served = {(route.method, route.path) for route in rest_routes()}
    assert served - set(REST_PROBES) == set(), "REST routes without an isolation probe"
    assert set(REST_PROBES) - served == set(), "probes of routes that are gone"


def test_tenant_b_gets_nothing_of_tenant_a_over_rest(sweep: Sweep) -> None:
    before = sweep.a.fingerprint(sweep.api)
    for route in rest_routes():
        REST_PROBES[(route.method, route.path)](sweep, route)
    sweep.check()
    assert sweep.a.fingerprint(sweep.api) == before


# --- the other routes: probes, health, docs, pages, the pages' sign-in ----------------------------


def probe_page(sweep: Sweep, path: str, params: tuple[str, ...]) -> None:
    """A page shell carries no tenant's data: nothing of A, whoever asks, whatever id."""
    token = sweep.token()
    ids = {name: sweep.a.session["id"] for name in params}
    url = path
    for name, value in ids.items():
        url = url.replace("{" + name + "}", value)
    mine = sweep.request("GET", url, token=token)
    sweep.attempt(f"GET {url}", mine, sent=url)
    if params:
        other = path
        for name in params:
            other = other.replace("{" + name + "}", str(uuid.uuid4()))
        sweep.attempt(f"GET {other}", sweep.request("GET", other, token=token), sent=other)
        assert mine.status_code == sweep.attempts[-1].response.status_code


def probe_web_auth(sweep: Sweep, path: str) -> None:
    """The pages' sign-in endpoints: tenant A's email, ids or invitation, like nobody's."""
    name = path.removeprefix("/web/auth/")
    a = sweep.a
    tenant, user = uuid.UUID(a.alice.tenant_id).hex, uuid.UUID(a.alice.user_id).hex
    bodies: dict[str, tuple[Any, Any]] = {
        "login": (
            {"email": a.alice.email, "password": WRONG_PASSWORD},
            {"email": "nobody@example.net", "password": WRONG_PASSWORD},
        ),
        "login/mfa": (
            onetime("challenge", code="123456")(sweep, tenant, user),
            onetime("challenge", code="123456")(sweep, uuid.uuid4().hex, uuid.uuid4().hex),
        ),
        "register": (
            {
                "email": "m1@example.net",
                "password": sweep.charlie.password,
                "invitation": f"{tenant}.{b64url(b'y' * 32)}",
            },
            {
                "email": "m2@example.net",
                "password": sweep.charlie.password,
                "invitation": f"{uuid.uuid4().hex}.{b64url(b'y' * 32)}",
            },
        ),
    }
    browser = Client()  # Charlie's browser, signed in to the pages
    signed_in = sweep.request(
        "POST",
        "/web/auth/login",
        {"email": sweep.charlie.email, "password": sweep.charlie.password},
        client=browser,
    )
    assert signed_in.status_code == 200, signed_in.content
    if name in bodies:
        mine, nobody = bodies[name]
        sweep.attempt(
            f"POST {path} naming tenant A",
            sweep.request("POST", path, mine, client=browser),
            sent=json.dumps(mine),
            like=sweep.request("POST", path, nobody, client=Client()),
        )
    elif name in ("refresh", "logout", "logout-all"):
        # They act on the cookie's own sign-in, Charlie's; with Alice's token beside it,
        # never hers (the cookie decides, or both are refused).
        response = sweep.request("POST", path, {}, client=browser)
        sweep.attempt(f"POST {path} as Charlie", response, status={200, 204})
    else:
        raise AssertionError(f"{path}: a sign-in endpoint without a probe")


@dataclass(frozen=True)
class OtherRoute:
    path: str
    params: tuple[str, ...]
    view: Any

    @property
    def module(self) -> str:
        return str(getattr(self.view, "__module__", ""))


def other_routes() -> list[OtherRoute]:
    """Every served path that is not a REST operation or the admin (aliases included)."""
    rest = {route.path for route in rest_routes()}
    found = []
    for pattern, callback in walk(get_resolver().url_patterns, "/"):
        if pattern.startswith("/admin/"):
            continue
        path = pattern
        params = []
        while "<" in path:
            start, end = path.index("<"), path.index(">")
            name = path[start + 1 : end].split(":")[-1]
            params.append(name)
            path = path[:start] + "{" + name + "}" + path[end + 1 :]
        if path in rest or _toggle_slash(path) in rest:
            continue  # a REST route, or its other spelling: swept above
        found.append(OtherRoute(path, tuple(params), callback))
    return found


HEALTH_AND_DOCS = {
    "/healthz",
    "/readyz",
    "/metrics",  # loopback only (CODITECT_METRICS_ALLOW): tests/coditect/test_metrics.py
    "/favicon.ico",
    "/api/v5/docs/",
    "/api/v5/redoc/",
}


def classify(route: OtherRoute) -> str:
    path = route.path.rstrip("/") or "/"
    if path in {p.rstrip("/") for p in HEALTH_AND_DOCS}:
        return "health-docs"
    if route.module.endswith(".pages"):
        return "page"
    if route.path.startswith("/web/auth/"):
        return "web-auth"
    if route.module == "core.routes":  # the other spelling of a route listed
        return "alias"
    return "unknown"


def test_every_other_route_has_a_probe() -> None:
    unknown = [route.path for route in other_routes() if classify(route) == "unknown"]
    assert unknown == [], "routes the isolation sweep does not know how to try"


def test_tenant_b_gets_nothing_of_tenant_a_from_pages_and_probes(sweep: Sweep) -> None:
    before = sweep.a.fingerprint(sweep.api)
    for route in other_routes():
        kind = classify(route)
        if kind in ("health-docs", "page"):
            probe_page(sweep, route.path, route.params)
        elif kind == "web-auth":
            probe_web_auth(sweep, route.path.rstrip("/"))
        elif kind == "alias":
            sweep.attempt(f"GET {route.path}", sweep.request("GET", route.path), sent=route.path)
    sweep.check()
    assert sweep.a.fingerprint(sweep.api) == before


# --- WebSocket: connecting, and every message type --------------------------------------------


async def test_tenant_b_cannot_join_tenant_a_sessions(sweep: Sweep, sockets: Sockets) -> None:
    a = sweep.a
    watcher = await sockets.join(a.session["id"], a.alice.access, "alice")
    await watcher.drain(quiet=0.1)
    heard = len(watcher.heard())
    token = await call(sweep.token)
    codes = {}
    for whose, session_id in (("alice's", a.session["id"]), ("missing", str(uuid.uuid4()))):
        codes[whose] = (
            await sockets.refused(ws_path(session_id), bearer(token)),
            await sockets.refused(
                ws_path(session_id), [PROTOCOL], first={"type": "auth", "token": token}
            ),
        )
    assert codes["alice's"] == codes["missing"] == (4404, 4404), codes
    await watcher.drain(quiet=0.1)
    assert watcher.heard()[heard:] == []


# Each message type, as Charlie sends it on his own session's socket, naming tenant A's
# paths where a message takes one.
WS_PROBES: dict[str, dict[str, Any]] = {
    "ping": {},
    "auth": {},  # filled in with Charlie's own fresh token (and Bob's, at the end)
    "resume": {"last_seq": 0},
    "presence.list": {"limit": 500},  # his own session's connections only
    "state.patch": {"changes": {"workspace_path": "/home/alice/project", "name": "copy"}},
    "event.publish": {"event": "alice.private.event", "data": {"path": ALICES_FILE}},
    "lock.acquire": {"path": ALICES_FILE, "ttl_s": 30},
    "lock.renew": {"path": ALICES_FILE, "ttl_s": 30},
    "lock.release": {"path": ALICES_FILE},
}


def test_every_websocket_message_type_has_a_probe() -> None:
    assert set(CLIENT_TYPES) == set(WS_PROBES)


async def test_tenant_b_messages_never_reach_tenant_a(
    sweep: Sweep, sockets: Sockets, sessions: SessionApi
) -> None:
    a = sweep.a
    watcher = await sockets.join(a.session["id"], a.alice.access, "alice")
    await watcher.ok("lock.acquire", path=ALICES_FILE, ttl_s=60)
    await watcher.drain(quiet=0.1)
    heard = len(watcher.heard())
    before = await call(a.fingerprint, sessions)
    token = await call(sweep.token)
    charlies = await call(sessions.listing, token)
    own = charlies.json()["results"][0]["id"]
    peer = await sockets.join(own, token, "charlie")
    sent = []
    for kind in WS_PROBES:  # in this order: acquire, then renew, then release
        fields = dict(WS_PROBES[kind])
        if kind == "auth":
            fields["token"] = token
        if kind == "state.patch":
            fields["base_version"] = peer.welcome["version"]
        sent.append(json.dumps(fields))
        if kind == "ping":
            await peer.ping()
            continue
        reply = await peer.request(kind, **fields)
        assert reply["type"] in ("ack", "pong"), (kind, reply)
        if kind == "lock.acquire":
            assert reply["granted"] is True  # a lock of his own session, not Alice's
    await peer.ping()
    # Re-authenticating as tenant A's user: the socket never changes hands.
    await peer.send({"type": "auth", "id": "bob", "token": a.bob.access})
    assert await peer.expect_close() == 4401
    await watcher.drain(quiet=0.2)
    assert watcher.heard()[heard:] == [], watcher.heard()[heard:]
    secrets = a.secrets() - {"alice.private.event"}  # an event name Charlie sent himself
    received = json.dumps(peer.received)
    assert not {s for s in secrets if s in received}, peer.received
    after = await call(a.fingerprint, sessions)
    assert after == before
    lock = await watcher.ok("lock.renew", path=ALICES_FILE, ttl_s=60)
    assert lock["granted"] is True  # still Alice's


# --- the support admin: nothing for anyone but staff ---------------------------------------------


def support_urls(sweep: Sweep) -> list[str]:
    """Every support view, pointed at tenant A's records."""
    a = sweep.a
    urls = []
    for pattern in admin.site.get_urls():
        if not isinstance(pattern, URLPattern) or not (pattern.name or "").startswith("support_"):
            continue
        route = str(pattern.pattern)
        values = {
            "tenant_id": a.alice.tenant_id,
            "user_id": a.bob.user_id,
            "session_id": a.session["id"] if "workspace" in route else a.bob_device,
            "token_id": a.bob_token,
        }
        for name, value in values.items():
            route = route.replace(f"<uuid:{name}>", value)
        assert "<" not in route, f"{pattern.name}: a parameter the sweep does not know"
        queries = {"support_tenants": "?q=acme", "support_users": "?email=bob"}
        query = queries.get(pattern.name or "", "")
        urls.append(f"/admin/{route}{query}")
    assert len(urls) >= 15, urls
    return urls


@pytest.fixture
def outsiders(sweep: Sweep, django_user_model: Any) -> dict[str, Client]:
    """Everyone who is not staff: nobody, Charlie with his token, Charlie signed in to the
    pages, and a Django account without staff status (in the Support group, even)."""
    from django.contrib.auth.models import Group

    plain = django_user_model.objects.create(username="charlie-not-staff", is_staff=False)
    plain.set_unusable_password()
    plain.save()
    plain.groups.add(Group.objects.get(name="Support"))
    account = Client()
    account.force_login(plain)
    pages = Client()
    signed_in = pages.post(
        "/web/auth/login",
        {"email": sweep.charlie.email, "password": sweep.charlie.password},
        content_type="application/json",
    )
    assert signed_in.status_code == 200, signed_in.content
    bearer_client = Client(HTTP_AUTHORIZATION=f"Bearer {sweep.token()}")
    return {"anonymous": Client(), "bearer": bearer_client, "pages": pages, "account": account}


def test_support_views_give_tenant_b_users_nothing(
    sweep: Sweep, outsiders: dict[str, Client]
) -> None:
    from accounts.models import StaffAuditEntry

    before = sweep.a.fingerprint(sweep.api)
    for url in support_urls(sweep):
        for who, client in outsiders.items():
            for method in ("GET", "POST"):
                if method == "GET":
                    response = client.get(url)
                else:
                    response = client.post(url, {"reason": "because"})
                sweep.attempt(f"{method} {url} ({who})", response, sent=url, status=302)
                assert response["Location"].startswith("/admin/login/"), (url, who)
    sweep.check()
    assert not StaffAuditEntry.objects.exists()
    assert sweep.a.fingerprint(sweep.api) == before


# --- management commands that take a tenant -------------------------------------------------------


def tenant_actions() -> set[tuple[str, str]]:
    """(command, action) of every project command whose action names a tenant."""
    found = set()
    for name, app in get_commands().items():
        if app not in PROJECT_APPS:
            continue
        parser = load_command_class(app, name).create_parser("manage.py", name)
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for sub in actions:
            for action, subparser in sub.choices.items():
                if any(
                    "tenant" in (option.dest or "") for option in subparser._actions
                ):  # a positional TENANT or a --tenant option
                    found.add((name, action))
        if not actions and any("tenant" in (o.dest or "") for o in parser._actions):
            found.add((name, ""))
    return found


COMMAND_PROBES: dict[tuple[str, str], list[str]] = {
    ("tenants", "show"): ["--json"],
    ("tenants", "export"): ["-o", "{export}", "--no-progress"],
    ("tenants", "suspend"): ["--reason", "sweep"],
    ("tenants", "resume"): ["--reason", "sweep"],
    ("tenants", "quota"): ["--json", "--sessions", "5"],
    ("tenants", "delete"): ["--yes"],  # last: it removes tenant B
}


def test_every_command_that_takes_a_tenant_has_a_probe() -> None:
    assert tenant_actions() == set(COMMAND_PROBES)


def _run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def _export(tenant: str, path: Path) -> list[dict[str, Any]]:
    _run("tenants", "export", tenant, "-o", str(path), "--no-progress")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_commands_on_tenant_b_never_touch_tenant_a(sweep: Sweep, tmp_path: Path) -> None:
    a, charlie = sweep.a, sweep.charlie
    secrets = a.secrets()
    a_before = _export(a.alice.tenant_id, tmp_path / "a-before.jsonl")[1:]
    b_file = tmp_path / "b.jsonl"
    b_lines = _export(charlie.tenant_id, b_file)
    assert not {s for s in secrets if s in b_file.read_text()}, "tenant B's export holds A's data"

    # An import that claims to be tenant B but carries tenant A's records is refused whole.
    header, *body = b_lines
    a_tenant_line = next(line for line in a_before if line["scope"] == "tenant")
    a_login_line = next(
        line
        for line in a_before
        if line["scope"] == "global" and a.alice.email.encode() in base64.b64decode(line["key"])
    )
    for label, foreign in (("a record of A", a_tenant_line), ("A's login entry", a_login_line)):
        crafted = tmp_path / f"crafted-{len(label)}.jsonl"
        lines = [header, foreign, *body]
        crafted.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        with pytest.raises(CommandError) as refused:
            _run("tenants", "import", str(crafted), "--no-progress")
        assert "\n" not in str(refused.value), label

    for (command, action), extra in COMMAND_PROBES.items():
        for ref in (charlie.tenant_id, charlie.tenant["slug"]):
            if action == "delete" and ref != charlie.tenant_id:
                continue  # once is enough
            args = [arg.replace("{export}", str(tmp_path / "b2.jsonl")) for arg in extra]
            output = _run(command, action, ref, *args)
            assert not {s for s in secrets if s in output}, (command, action, output)
    with pytest.raises(CommandError, match="unknown tenant"):
        _run("tenants", "show", charlie.tenant_id)

    assert _export(a.alice.tenant_id, tmp_path / "a-after.jsonl")[1:] == a_before
    assert json.loads(_run("storage", "check", "--json"))["problems"] == []
    assert sweep.api.me(a.alice.access).status_code == 200
    assert sweep.api.me(a.bob.access).status_code == 200
    assert sweep.api.refresh(a.bob.refresh).status_code == 200


def test_the_sweep_tells_a_leak_from_an_echo(sweep: Sweep) -> None:
    """The checks themselves: a body with tenant A's id fails, the same id sent back does not."""
    path = session_url(sweep.a.session["id"])
    leaking = sweep.request("GET", path, token=sweep.a.alice.access)
    sweep.attempts = [Attempt("GET own read of A, as if Charlie's", leaking)]
    with pytest.raises(AssertionError):
        sweep.check()
    sweep.attempts = [Attempt("GET echo", leaking, sent=leaking.content.decode())]
    sweep.check()

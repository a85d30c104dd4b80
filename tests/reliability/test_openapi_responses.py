"""Real responses of every operation against the served OpenAPI schema, strictly (issue 14).

The schema is read from ``GET /api/v5/schema/?format=json``, as a client generator reads it.
Each of its operations has a case below that makes real requests (Django's test client, the
whole middleware stack) for its success and for documented errors; every response is checked:

* its status is one the operation documents, with the documented media type;
* its body validates against the documented schema with every object closed
  (``additionalProperties: false`` unless the schema says otherwise): each required field is
  there and no field is undocumented;
* each header the response documents as required is present (and an integer where it says
  so); a problem's ``code`` is one that response lists (as an example).

``test_every_operation_has_a_case`` fails when the schema gains an operation without a case,
so a new route cannot skip this; each case must reach a success and, where the operation
documents errors, at least one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.db import OperationalError, connection
from django.test import Client, override_settings
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.accounts.helpers import PASSWORD, Persona, login_pair, token_parts
from tests.accounts.recovery import (
    code_at,
    enroll,
    reset_token,
    step_start,
    unverify,
    verification_token,
    verify_email,
)
from tests.workspaces.helpers import SessionApi, create_session

SCHEMA_PATH = "/api/v5/schema/?format=json"
METHODS = ("get", "put", "post", "patch", "delete")
PROBLEM = "application/problem+json"
# Keywords of OpenAPI 3.0 that JSON Schema does not have, or that do not constrain a value.
_ANNOTATIONS = {"nullable", "example", "examples", "readOnly", "writeOnly", "description"}
_ANNOTATIONS |= {"discriminator", "xml", "externalDocs", "deprecated", "title"}


def _served_schema() -> dict[str, Any]:
    # Read at collection, before pytest-django allows the test client's host.
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        response = Client().get(SCHEMA_PATH)
    assert response.status_code == 200, response.content
    schema: dict[str, Any] = json.loads(response.content)
    return schema


SCHEMA = _served_schema()
OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in SCHEMA["paths"].items()
    for method in item
    if method in METHODS
)


# --- the strict validator ------------------------------------------------------------------


def strict(node: Any) -> Any:
    """An OpenAPI 3.0 schema as a closed JSON Schema: references inlined, ``allOf`` merged,
    ``nullable`` as a null type, and every object with properties closed to others."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return strict(SCHEMA["components"]["schemas"][name])
    out = {
        key: strict(value)
        for key, value in node.items()
        if key not in _ANNOTATIONS and key != "properties"
    }
    if "properties" in node:  # a map of names (one may be "title"), each a schema
        out["properties"] = {name: strict(sub) for name, sub in node["properties"].items()}
    for part in out.pop("allOf", []):
        out.setdefault("properties", {}).update(part.get("properties", {}))
        out["required"] = sorted({*out.get("required", []), *part.get("required", [])})
        for key, value in part.items():
            if key not in ("properties", "required"):
                out.setdefault(key, value)
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "oneOf" in out or "anyOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


@dataclass
class Seen:
    statuses: set[int] = field(default_factory=set)
    codes: set[str] = field(default_factory=set)


def check(label: str, response: Any) -> None:
    """Assert ``response`` is what the schema documents for operation ``label``."""
    method, path = label.split(" ", 1)
    operation = SCHEMA["paths"][path][method.lower()]
    status = response.status_code
    documented = operation["responses"].get(str(status))
    assert documented is not None, (label, status, response.content[:300])
    content = documented.get("content")
    if not content:
        assert response.content == b"", (label, status, response.content[:300])
    else:
        media = response["Content-Type"].split(";")[0].strip()
        assert media in content, (label, status, media, sorted(content))
        body = json.loads(response.content)
        validator = Draft202012Validator(
            strict(content[media]["schema"]), format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        problems = sorted(validator.iter_errors(body), key=lambda error: error.path)
        assert not problems, (label, status, [p.message for p in problems], body)
        if media == PROBLEM:
            listed = {ex["value"]["code"] for ex in content[media].get("examples", {}).values()}
            assert body["code"] in listed, (label, status, body["code"], sorted(listed))
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert response.has_header(name), (label, status, name)
            if header.get("schema", {}).get("type") == "integer":
                assert response[name].isdigit(), (label, status, name, response[name])


# --- the world a case runs in ---------------------------------------------------------------


class World:
    """Alice (owner of tenant A), Bob (member of A), Charlie (owner of tenant B), a workspace
    session each of Alice and Charlie, and ``call``, which checks and records every answer."""

    def __init__(self, api: SessionApi, alice: Persona, bob: Persona, charlie: Persona) -> None:
        self.api, self.alice, self.bob, self.charlie = api, alice, bob, charlie
        self.session = create_session(api, alice, name="mine", workspace_path="/srv/a")
        self.foreign = create_session(api, charlie, name="theirs", workspace_path="/srv/b")
        self.seen: dict[str, Seen] = {}
        self.settings: Any = None
        self.clock: Any = None

    def call(
        self,
        label: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        environ: dict[str, Any] | None = None,
        **params: str,
    ) -> Any:
        method, url = label.split(" ", 1)
        for name, value in params.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, url
        if query:
            url += "?" + urlencode(query)
        extra: dict[str, Any] = {
            "HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()
        }
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        extra |= environ or {}
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        client = self.api.client
        if method == "GET":
            response = client.get(url, **extra)
        else:
            send = getattr(client, method.lower())
            response = send(url, data, content_type=content_type, **extra)
        check(label, response)
        seen = self.seen.setdefault(label, Seen())
        seen.statuses.add(response.status_code)
        if response.get("Content-Type", "").startswith(PROBLEM):
            seen.codes.add(json.loads(response.content)["code"])
        return response

    def json(self, label: str, status: int, **kwargs: Any) -> Any:
        response = self.call(label, **kwargs)
        assert response.status_code == status, (label, response.status_code, response.content)
        return json.loads(response.content) if response.content else None

    def device(self, persona: Persona) -> tuple[str, str]:
        """Another sign-in of ``persona``: its access token and auth session id."""
        pair = login_pair(self.api, persona)
        return pair["access"], str(token_parts(pair["access"])[1]["session_id"])

    def mfa_on(self, persona: Persona) -> tuple[str, datetime]:
        """TOTP on for ``persona``, the clock frozen at a step start; the next step's moment."""
        moment = step_start(datetime.now(UTC))
        self.clock.move_to(moment, tick=False)
        secret, _ = enroll(self.api, persona, moment)
        later = moment + timedelta(seconds=30)
        self.clock.move_to(later, tick=False)
        return secret, later


@pytest.fixture
def world(
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    settings: Any,
    time_machine: Any,
) -> Iterator[World]:
    world = World(sessions, alice, bob, charlie)
    world.settings, world.clock = settings, time_machine
    yield world


# --- the cases: one per operation of the schema ---------------------------------------------

Case = Callable[[World], None]
# A body sent chunked, as a WSGI server that does not end wsgi.input hands it on (the test
# client's environ): no length, and 411 from the middleware.
CHUNKED = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
CASES: dict[str, Case] = {}
SESSION = "/api/v5/sessions/{session_id}"


def case(label: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[label] = function
        return function

    return register


@case("POST /api/v5/auth/register")
def _register(w: World) -> None:
    body = {"email": "new@example.com", "password": PASSWORD, "tenant_name": "New"}
    w.json("POST /api/v5/auth/register", 201, body=body)
    w.json("POST /api/v5/auth/register", 409, body=body)
    w.json("POST /api/v5/auth/register", 400, body={**body, "email": "x", "invitation": "no"})
    w.json("POST /api/v5/auth/register", 400, body={**body, "invitation": "not-a-token"})


@case("POST /api/v5/auth/login")
def _login(w: World) -> None:
    label = "POST /api/v5/auth/login"
    w.json(label, 200, body={"email": w.alice.email, "password": PASSWORD})
    w.json(label, 401, body={"email": w.alice.email, "password": "wrong password"})
    # The errors every operation with a body shares.
    w.json(label, 400, raw=b"{")
    w.json(label, 400, body={"email": w.alice.email, "password": PASSWORD, "extra": 1})
    w.json(label, 415, raw=b"email=a", content_type="application/x-www-form-urlencoded")
    body = {"email": w.alice.email, "password": PASSWORD}
    w.json(label, 411, body=body, environ=CHUNKED)
    w.settings.CODITECT_MAX_BODY_BYTES = 64
    w.json(label, 413, body={"email": w.alice.email, "password": "p" * 100})
    w.settings.CODITECT_MAX_BODY_BYTES = 2 * 1024 * 1024
    w.settings.CODITECT_THROTTLE_SCALE = 0.0001  # every limit 1
    w.call(label, body={"email": w.bob.email, "password": PASSWORD})
    w.json(label, 429, body={"email": w.bob.email, "password": PASSWORD})


@case("POST /api/v5/auth/login/mfa")
def _login_mfa(w: World) -> None:
    secret, later = w.mfa_on(w.alice)
    # The login answer that starts this: a problem with the challenge (MfaRequiredProblem).
    body = w.json(
        "POST /api/v5/auth/login", 401, body={"email": w.alice.email, "password": PASSWORD}
    )
    assert body["code"] == "mfa_required"
    challenge = body["mfa_challenge"]
    w.json(
        "POST /api/v5/auth/login/mfa",
        200,
        body={"challenge": challenge, "code": code_at(secret, later)},
    )
    w.json("POST /api/v5/auth/login/mfa", 401, body={"challenge": challenge, "code": "000000"})


@case("POST /api/v5/auth/refresh")
def _refresh(w: World) -> None:
    w.json("POST /api/v5/auth/refresh", 200, body={"refresh": w.alice.refresh})
    w.json("POST /api/v5/auth/refresh", 401, body={"refresh": "not-a-token"})


@case("POST /api/v5/auth/logout")
def _logout(w: World) -> None:
    access, _ = w.device(w.alice)
    w.json("POST /api/v5/auth/logout", 204, token=access)
    w.json("POST /api/v5/auth/logout", 401, token=access)
    w.json("POST /api/v5/auth/logout", 401)


@case("POST /api/v5/auth/logout-all")
def _logout_all(w: World) -> None:
    w.json("POST /api/v5/auth/logout-all", 401, token="not-a-token")
    w.json("POST /api/v5/auth/logout-all", 204, token=w.bob.access)


@case("GET /api/v5/auth/me")
def _me(w: World) -> None:
    w.json("GET /api/v5/auth/me", 200, token=w.alice.access)
    w.json("GET /api/v5/auth/me", 401)


@case("GET /api/v5/auth/me/export")
def _me_export(w: World) -> None:
    create_session(w.api, w.bob, name="bob's", workspace_path="/srv/bob")
    body = w.json("GET /api/v5/auth/me/export", 200, token=w.bob.access)
    assert body["user"]["id"] == w.bob.user_id
    assert [s["name"] for s in body["workspace_sessions"]] == ["bob's"]
    w.json("GET /api/v5/auth/me/export", 401)


@case("DELETE /api/v5/auth/me")
def _me_erase(w: World) -> None:
    label = "DELETE /api/v5/auth/me"
    w.json(label, 400, token=w.bob.access, body={"password": "wrong password"})
    w.json(label, 409, token=w.alice.access, body={"password": PASSWORD})
    w.json(label, 204, token=w.bob.access, body={"password": PASSWORD})
    w.json(label, 401, token=w.bob.access, body={"password": PASSWORD})


@case("GET /api/v5/auth/sessions")
def _auth_sessions(w: World) -> None:
    w.device(w.alice)
    page = w.json("GET /api/v5/auth/sessions", 200, token=w.alice.access, query={"limit": 1})
    assert page["next_cursor"]
    w.json(
        "GET /api/v5/auth/sessions",
        200,
        token=w.alice.access,
        query={"cursor": page["next_cursor"]},
    )
    w.json("GET /api/v5/auth/sessions", 400, token=w.alice.access, query={"limit": 0})
    w.json("GET /api/v5/auth/sessions", 400, token=w.alice.access, query={"cursor": "nope"})


@case("DELETE /api/v5/auth/sessions/{session_id}")
def _auth_session_revoke(w: World) -> None:
    label = "DELETE /api/v5/auth/sessions/{session_id}"
    _, other = w.device(w.alice)
    _, theirs = w.device(w.charlie)
    w.json(label, 404, token=w.alice.access, session_id=theirs)
    w.json(label, 404, token=w.alice.access, session_id="not-a-uuid")
    w.json(label, 204, token=w.alice.access, session_id=other)


def _api_token(w: World, persona: Persona) -> str:
    """A new API token of ``persona``: its id."""
    made = w.json(
        "POST /api/v5/auth/api-tokens",
        201,
        token=persona.access,
        body={"name": "ci", "scopes": ["sessions:read"]},
    )
    return str(made["id"])


@case("GET /api/v5/auth/api-tokens")
def _api_tokens_list(w: World) -> None:
    label = "GET /api/v5/auth/api-tokens"
    _api_token(w, w.alice)
    w.json(label, 400, token=w.alice.access, query={"limit": 0})
    w.json(label, 200, token=w.alice.access)


@case("POST /api/v5/auth/api-tokens")
def _api_tokens_create(w: World) -> None:
    label = "POST /api/v5/auth/api-tokens"
    w.json(label, 400, token=w.alice.access, body={"name": "ci", "scopes": ["root"]})
    made = w.json(label, 201, token=w.alice.access, body={"name": "ci", "scopes": ["locks"]})
    w.json(label, 403, token=made["token"], body={"name": "x", "scopes": ["locks"]})


@case("DELETE /api/v5/auth/api-tokens/{token_id}")
def _api_token_revoke(w: World) -> None:
    label = "DELETE /api/v5/auth/api-tokens/{token_id}"
    theirs = _api_token(w, w.charlie)
    w.json(label, 404, token=w.alice.access, token_id=theirs)
    w.json(label, 204, token=w.alice.access, token_id=_api_token(w, w.alice))


@case("GET /api/v5/tenant/api-tokens/")
def _tenant_api_tokens(w: World) -> None:
    label = "GET /api/v5/tenant/api-tokens/"
    _api_token(w, w.bob)
    w.json(label, 403, token=w.bob.access)
    w.json(label, 200, token=w.alice.access)


@case("DELETE /api/v5/tenant/api-tokens/{token_id}/")
def _tenant_api_token_revoke(w: World) -> None:
    label = "DELETE /api/v5/tenant/api-tokens/{token_id}/"
    bobs = _api_token(w, w.bob)
    w.json(label, 403, token=w.bob.access, token_id=bobs)
    w.json(label, 404, token=w.alice.access, token_id=_api_token(w, w.charlie))
    w.json(label, 204, token=w.alice.access, token_id=bobs)


@case("GET /api/v5/tenant/audit/")
def _tenant_audit(w: World) -> None:
    label = "GET /api/v5/tenant/audit/"
    page = w.json(label, 200, token=w.alice.access, query={"limit": 1})
    assert page["results"] and page["next_cursor"]
    w.json(label, 200, token=w.alice.access, query={"kind": "login", "before": "2999-01-01T00:00Z"})
    w.json(label, 400, token=w.alice.access, query={"after": "yesterday"})
    w.json(label, 400, token=w.charlie.access, query={"cursor": page["next_cursor"]})
    w.json(label, 403, token=w.bob.access)
    made = w.json(
        "POST /api/v5/auth/api-tokens",
        201,
        token=w.alice.access,
        body={"name": "ci", "scopes": ["sessions:read"]},
    )
    w.json(label, 403, token=made["token"])
    w.json(label, 401)

    def down(*args: Any) -> None:
        raise OperationalError("the staff database is down")

    with connection.execute_wrapper(down):
        w.json(label, 503, token=w.alice.access)


@case("POST /api/v5/auth/password")
def _password(w: World) -> None:
    label = "POST /api/v5/auth/password"
    change = {"current_password": "wrong", "new_password": "An0ther-long-passphrase!"}
    w.json(label, 400, token=w.alice.access, body=change)
    w.json(label, 204, token=w.alice.access, body={**change, "current_password": PASSWORD})


@case("GET /api/v5/auth/jwks")
def _jwks(w: World) -> None:
    w.json("GET /api/v5/auth/jwks", 200)


@case("GET /.well-known/jwks.json")
def _well_known_jwks(w: World) -> None:
    w.json("GET /.well-known/jwks.json", 200)


@case("POST /api/v5/auth/verify-email")
def _verify_email(w: World) -> None:
    token = verification_token(w.alice)
    w.json("POST /api/v5/auth/verify-email", 204, body={"token": token})
    w.json("POST /api/v5/auth/verify-email", 400, body={"token": token})


@case("POST /api/v5/auth/verify-email/resend")
def _verify_email_resend(w: World) -> None:
    label = "POST /api/v5/auth/verify-email/resend"
    w.json(label, 202, body={"email": w.alice.email})
    w.json(label, 202, token=w.alice.access, body={})
    w.json(label, 400, body={})
    w.json("POST /api/v5/auth/verify-email", 204, body={"token": verification_token(w.alice)})
    w.json(label, 409, token=w.alice.access, body={})


@case("POST /api/v5/auth/password-reset")
def _password_reset(w: World) -> None:
    w.json("POST /api/v5/auth/password-reset", 202, body={"email": w.alice.email})
    w.json("POST /api/v5/auth/password-reset", 400, body={"email": 5})


@case("POST /api/v5/auth/password-reset/confirm")
def _password_reset_confirm(w: World) -> None:
    label = "POST /api/v5/auth/password-reset/confirm"
    w.json("POST /api/v5/auth/password-reset", 202, body={"email": w.alice.email})
    body = {"token": reset_token(w.alice), "new_password": "An0ther-long-passphrase!"}
    w.json(label, 204, body=body)
    w.json(label, 400, body=body)


@case("GET /api/v5/auth/mfa")
def _mfa(w: World) -> None:
    w.json("GET /api/v5/auth/mfa", 200, token=w.alice.access)
    w.mfa_on(w.alice)
    w.json("GET /api/v5/auth/mfa", 200, token=w.alice.access)
    w.json("GET /api/v5/auth/mfa", 401)


@case("POST /api/v5/auth/mfa/totp")
def _totp(w: World) -> None:
    w.json("POST /api/v5/auth/mfa/totp", 403, token=w.alice.access, body={"password": PASSWORD})
    verify_email(w.api, w.alice)
    w.json("POST /api/v5/auth/mfa/totp", 400, token=w.alice.access, body={"password": "wrong"})
    w.json("POST /api/v5/auth/mfa/totp", 201, token=w.alice.access, body={"password": PASSWORD})


@case("POST /api/v5/auth/mfa/totp/confirm")
def _totp_confirm(w: World) -> None:
    label = "POST /api/v5/auth/mfa/totp/confirm"
    w.json(label, 409, token=w.alice.access, body={"code": "123456"})
    verify_email(w.api, w.alice)
    moment = step_start(datetime.now(UTC))
    w.clock.move_to(moment, tick=False)
    started = w.json(
        "POST /api/v5/auth/mfa/totp", 201, token=w.alice.access, body={"password": PASSWORD}
    )
    unverify(w.alice)  # an enrolment started before a second factor needed the address
    w.json(label, 403, token=w.alice.access, body={"code": "123456"})
    mail.outbox.clear()  # the first link is spent: verify_email asks for a new one
    verify_email(w.api, w.alice)
    w.json(label, 400, token=w.alice.access, body={"code": "000000"})
    code = code_at(started["secret"], moment)
    w.json(label, 200, token=w.alice.access, body={"code": code})
    w.json(label, 409, token=w.alice.access, body={"code": code})


@case("POST /api/v5/auth/mfa/totp/disable")
def _totp_disable(w: World) -> None:
    label = "POST /api/v5/auth/mfa/totp/disable"
    w.json(label, 409, token=w.alice.access, body={"password": PASSWORD, "code": "123456"})
    secret, later = w.mfa_on(w.alice)
    w.json(label, 400, token=w.alice.access, body={"password": PASSWORD, "code": "000000"})
    code = code_at(secret, later)
    w.json(label, 204, token=w.alice.access, body={"password": PASSWORD, "code": code})


@case("POST /api/v5/auth/mfa/recovery-codes")
def _recovery_codes(w: World) -> None:
    label = "POST /api/v5/auth/mfa/recovery-codes"
    w.json(label, 409, token=w.alice.access, body={"code": "123456"})
    secret, later = w.mfa_on(w.alice)
    w.json(label, 200, token=w.alice.access, body={"code": code_at(secret, later)})
    w.json(label, 400, token=w.alice.access, body={"code": code_at(secret, later)})


@case("GET /api/v5/tenant/")
def _tenant(w: World) -> None:
    w.json("GET /api/v5/tenant/", 200, token=w.bob.access)
    w.json("GET /api/v5/tenant/", 401, token="x.y.z")


@case("GET /api/v5/tenant/members/")
def _members(w: World) -> None:
    w.json("GET /api/v5/tenant/members/", 200, token=w.bob.access)
    w.json("GET /api/v5/tenant/members/", 400, token=w.bob.access, query={"limit": 201})


@case("DELETE /api/v5/tenant/members/{user_id}/")
def _member_remove(w: World) -> None:
    label = "DELETE /api/v5/tenant/members/{user_id}/"
    w.json(label, 403, token=w.bob.access, user_id=w.alice.user_id)
    w.json(label, 404, token=w.alice.access, user_id=w.charlie.user_id)
    w.json(label, 409, token=w.alice.access, user_id=w.alice.user_id)
    w.json(label, 204, token=w.alice.access, user_id=w.bob.user_id)


@case("POST /api/v5/tenant/invitations/")
def _invite(w: World) -> None:
    label = "POST /api/v5/tenant/invitations/"
    invite = {"email": "dana@example.com", "role": "admin"}
    w.json(label, 201, token=w.alice.access, body=invite)
    w.json(label, 403, token=w.bob.access, body=invite)
    w.json(label, 400, token=w.alice.access, body={**invite, "role": "superuser"})


@case("GET /api/v5/tenant/invitations/")
def _invitations(w: World) -> None:
    label = "GET /api/v5/tenant/invitations/"
    for n in range(2):
        w.api.invite(w.alice.access, f"guest{n}@example.com", "viewer")
    page = w.json(label, 200, token=w.alice.access, query={"limit": 1})
    assert page["next_cursor"]
    w.json(label, 200, token=w.alice.access, query={"cursor": page["next_cursor"]})
    w.json(label, 403, token=w.bob.access)
    w.json(label, 400, token=w.alice.access, query={"cursor": "nope"})


@case("DELETE /api/v5/tenant/invitations/{invitation_id}/")
def _invitation_revoke(w: World) -> None:
    label = "DELETE /api/v5/tenant/invitations/{invitation_id}/"
    mine = w.api.invite(w.alice.access, "guest@example.com", "viewer").json()["id"]
    theirs = w.api.invite(w.charlie.access, "other@example.com", "member").json()["id"]
    w.json(label, 403, token=w.bob.access, invitation_id=mine)
    w.json(label, 404, token=w.alice.access, invitation_id=theirs)
    w.json(label, 204, token=w.alice.access, invitation_id=mine)
    w.json(label, 404, token=w.alice.access, invitation_id=mine)


@case("PATCH /api/v5/tenant/members/{user_id}/")
def _member_role(w: World) -> None:
    label = "PATCH /api/v5/tenant/members/{user_id}/"
    bob = w.bob.user_id
    w.json(label, 403, token=w.bob.access, body={"role": "admin"}, user_id=bob)
    w.json(label, 404, token=w.alice.access, body={"role": "admin"}, user_id=w.charlie.user_id)
    w.json(label, 409, token=w.alice.access, body={"role": "member"}, user_id=w.alice.user_id)
    w.json(label, 400, token=w.alice.access, body={"role": "boss"}, user_id=bob)
    w.json(
        label,
        412,
        token=w.alice.access,
        body={"role": "viewer"},
        headers={"If-Match": '"99"'},
        user_id=bob,
    )
    w.json(label, 200, token=w.alice.access, body={"role": "viewer"}, user_id=bob)


@case("GET /api/v5/tenant/settings/")
def _settings(w: World) -> None:
    w.json("GET /api/v5/tenant/settings/", 200, token=w.bob.access)
    w.json("GET /api/v5/tenant/settings/", 401)


@case("PATCH /api/v5/tenant/settings/")
def _settings_update(w: World) -> None:
    label = "PATCH /api/v5/tenant/settings/"
    change = {"require_email_verification": False}
    w.json(label, 403, token=w.bob.access, body=change)
    w.json(label, 412, token=w.alice.access, body=change, headers={"If-Match": '"999"'})
    w.json(label, 200, token=w.alice.access, body=change)


@case("GET /api/v5/sessions")
def _sessions(w: World) -> None:
    w.json("GET /api/v5/sessions", 200, token=w.bob.access, query={"owner": "all"})
    w.json("GET /api/v5/sessions", 400, token=w.bob.access, query={"owner": "them"})


@case("POST /api/v5/sessions")
def _session_create(w: World) -> None:
    label = "POST /api/v5/sessions"
    w.json(label, 201, token=w.bob.access, body={"name": "b", "workspace_path": "/srv/b"})
    w.json(label, 400, token=w.bob.access, body={"workspace_path": "/srv/b"})
    w.settings.CODITECT_QUOTA_SESSIONS = 1  # the world's tenant has sessions already
    w.json(label, 403, token=w.bob.access, body={"name": "b", "workspace_path": "/srv/b"})
    body = {"name": "b", "workspace_path": "/srv/b"}
    w.json(label, 411, token=w.bob.access, body=body, environ=CHUNKED)
    w.settings.CODITECT_MAX_BODY_BYTES = 16
    w.json(label, 413, token=w.bob.access, body={"name": "b", "workspace_path": "/srv/b"})


@case(f"GET {SESSION}")
def _session_read(w: World) -> None:
    w.json(f"GET {SESSION}", 200, token=w.bob.access, session_id=w.session["id"])
    w.json(f"GET {SESSION}", 404, token=w.bob.access, session_id=w.foreign["id"])


@case(f"PATCH {SESSION}")
def _session_update(w: World) -> None:
    sid, stale = w.session["id"], {"If-Match": f'"{w.session["version"]}"'}
    w.json(
        f"PATCH {SESSION}",
        200,
        token=w.alice.access,
        body={"name": "n"},
        headers=stale,
        session_id=sid,
    )
    w.json(
        f"PATCH {SESSION}",
        412,
        token=w.alice.access,
        body={"name": "m"},
        headers=stale,
        session_id=sid,
    )
    w.json(f"PATCH {SESSION}", 400, token=w.alice.access, body={}, session_id=sid)
    w.json(
        f"PATCH {SESSION}",
        404,
        token=w.alice.access,
        body={"name": "m"},
        session_id=w.foreign["id"],
    )


@case(f"DELETE {SESSION}")
def _session_delete(w: World) -> None:
    sid = w.session["id"]
    w.json(f"DELETE {SESSION}", 403, token=w.bob.access, session_id=sid)
    w.json(
        f"DELETE {SESSION}", 412, token=w.alice.access, headers={"If-Match": '"99"'}, session_id=sid
    )
    w.json(f"DELETE {SESSION}", 204, token=w.alice.access, session_id=sid)
    w.json(f"DELETE {SESSION}", 404, token=w.alice.access, session_id=sid)


@case(f"POST {SESSION}/fork")
def _fork(w: World) -> None:
    w.json(
        f"POST {SESSION}/fork",
        201,
        token=w.bob.access,
        body={"name": "f"},
        session_id=w.session["id"],
    )
    w.json(f"POST {SESSION}/fork", 404, token=w.bob.access, body={}, session_id=w.foreign["id"])


@case(f"GET {SESSION}/related")
def _related(w: World) -> None:
    sid = w.session["id"]
    w.json(f"POST {SESSION}/fork", 201, token=w.alice.access, body={}, session_id=sid)
    w.json(f"GET {SESSION}/related", 200, token=w.bob.access, session_id=sid)
    w.json(f"GET {SESSION}/related", 404, token=w.bob.access, session_id=w.foreign["id"])


@case(f"POST {SESSION}/events")
def _publish(w: World) -> None:
    sid = w.session["id"]
    w.json(
        f"POST {SESSION}/events",
        202,
        token=w.bob.access,
        body={"event": "e", "data": {"n": 1}},
        session_id=sid,
    )
    w.json(
        f"POST {SESSION}/events",
        400,
        token=w.bob.access,
        body={"event": "no spaces"},
        session_id=sid,
    )
    w.json(
        f"POST {SESSION}/events",
        404,
        token=w.bob.access,
        body={"event": "e"},
        session_id=w.foreign["id"],
    )


@case(f"GET {SESSION}/events")
def _events(w: World) -> None:
    sid = w.session["id"]
    w.json(
        f"POST {SESSION}/events",
        202,
        token=w.alice.access,
        body={"event": "e", "data": None},
        session_id=sid,
    )
    w.json(f"PATCH {SESSION}", 200, token=w.alice.access, body={"name": "n"}, session_id=sid)
    page = w.json(
        f"GET {SESSION}/events", 200, token=w.bob.access, query={"limit": 1}, session_id=sid
    )
    assert page["results"] and page["next_cursor"]
    w.json(
        f"GET {SESSION}/events", 400, token=w.bob.access, query={"after_seq": -1}, session_id=sid
    )
    w.json(f"GET {SESSION}/events", 404, token=w.bob.access, session_id=w.foreign["id"])


# --- the tests ---------------------------------------------------------------------------------


def test_every_operation_has_a_case() -> None:
    assert set(OPERATIONS) == set(CASES), {
        "no case": sorted(set(OPERATIONS) - set(CASES)),
        "not in the schema": sorted(set(CASES) - set(OPERATIONS)),
    }


def _documented_errors(label: str) -> set[int]:
    method, path = label.split(" ", 1)
    return {int(s) for s in SCHEMA["paths"][path][method.lower()]["responses"] if s >= "400"}


@pytest.mark.django_db  # the audit log reads the staff entries (ORM)
@pytest.mark.parametrize("label", sorted(CASES))
def test_responses_match_the_schema(world: World, label: str) -> None:
    CASES[label](world)
    seen = world.seen.get(label, Seen())
    assert any(200 <= s < 300 for s in seen.statuses), (label, seen.statuses)
    if _documented_errors(label):
        assert any(s >= 400 for s in seen.statuses), (label, seen.statuses)

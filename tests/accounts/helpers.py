"""Helpers shared by the accounts tests: a JSON client, personas, problem checks, forged tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.test import Client

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
else:
    from django.http import HttpResponse as Response

AUTH = "/api/v5/auth/"
TENANT = "/api/v5/tenant/"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}
PAIR_FIELDS = {"access", "refresh", "token_type", "expires_in", "refresh_expires_in"}
USER_FIELDS = {"id", "email", "display_name", "tenant_id", "role"}
TENANT_FIELDS = {"id", "name", "slug", "status"}

# Strong enough for Django's validators and unrelated to any test email.
PASSWORD = "Tr0ub4dor&3-horse-staple"
OTHER_PASSWORD = "c0rrect-Battery-h0rse!"


class Api:
    """A Django test client that speaks JSON and bearer tokens."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    @staticmethod
    def _headers(token: str | None, extra: dict[str, Any]) -> dict[str, Any]:
        if token is not None:
            extra.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
        return extra

    def post(self, path: str, body: Any = None, token: str | None = None, **extra: Any) -> Response:
        data = b"" if body is None else json.dumps(body).encode()
        return self.client.post(
            path, data, content_type="application/json", **self._headers(token, extra)
        )

    def post_raw(
        self,
        path: str,
        data: bytes,
        token: str | None = None,
        content_type: str = "application/json",
        **extra: Any,
    ) -> Response:
        return self.client.post(
            path, data, content_type=content_type, **self._headers(token, extra)
        )

    def get(self, path: str, token: str | None = None, **extra: Any) -> Response:
        return self.client.get(path, **self._headers(token, extra))

    def delete(self, path: str, token: str | None = None, **extra: Any) -> Response:
        return self.client.delete(path, **self._headers(token, extra))

    # --- flows -------------------------------------------------------------------------

    def register(self, email: str, password: str = PASSWORD, **fields: Any) -> Response:
        return self.post(AUTH + "register", {"email": email, "password": password, **fields})

    def login(self, email: str, password: str = PASSWORD, **extra: Any) -> Response:
        return self.post(AUTH + "login", {"email": email, "password": password}, **extra)

    def refresh(self, refresh: str, **extra: Any) -> Response:
        return self.post(AUTH + "refresh", {"refresh": refresh}, **extra)

    def me(self, token: str, **extra: Any) -> Response:
        return self.get(AUTH + "me", token, **extra)

    def invite(self, token: str, email: str, role: str = "member") -> Response:
        return self.post(TENANT + "invitations/", {"email": email, "role": role}, token)


@dataclass
class Persona:
    name: str
    email: str
    password: str
    access: str
    refresh: str
    user_id: str
    tenant_id: str
    user: dict[str, Any] = field(default_factory=dict)
    tenant: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.tenant_id)

    @property
    def user_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.user_id)

    def session_id(self, api: Api, token: str | None = None) -> str:
        """The id of the auth session that ``token`` (default: this persona's) belongs to."""
        response = api.get(AUTH + "sessions", token or self.access)
        assert response.status_code == 200, response.content
        (current,) = [s for s in response.json()["results"] if s["current"]]
        return str(current["id"])


def persona_from(name: str, email: str, password: str, body: dict[str, Any]) -> Persona:
    return Persona(
        name=name,
        email=email,
        password=password,
        access=body["access"],
        refresh=body["refresh"],
        user_id=body["user"]["id"],
        tenant_id=body["user"]["tenant_id"],
        user=body["user"],
        tenant=body.get("tenant") or {},
    )


def register_persona(
    api: Api,
    name: str,
    email: str,
    password: str = PASSWORD,
    **fields: Any,
) -> Persona:
    response = api.register(email, password, **fields)
    assert response.status_code == 201, response.content
    return persona_from(name, email, password, response.json())


def invite_and_register(
    api: Api, inviter: Persona, name: str, email: str, role: str = "member"
) -> Persona:
    invitation = api.invite(inviter.access, email, role)
    assert invitation.status_code == 201, invitation.content
    return register_persona(
        api, name, email, display_name=name, invitation=invitation.json()["token"]
    )


def login_pair(api: Api, persona: Persona, **extra: Any) -> dict[str, Any]:
    """A second auth session (another device) of ``persona``."""
    response = api.login(persona.email, persona.password, **extra)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and code, when given); return its body."""
    content = response.content
    assert response.status_code == status, (response.status_code, content)
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body: dict[str, Any] = json.loads(content)
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"].endswith(body["code"]), body
    assert body["request_id"] == response["X-Request-ID"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def field_attrs(body: dict[str, Any]) -> set[str]:
    return {str(error.get("attr")) for error in body.get("errors") or []}


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "request_id"}


def assert_pair(body: dict[str, Any]) -> None:
    assert body.keys() >= PAIR_FIELDS, body
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access"], str)
    assert body["access"]
    assert isinstance(body["refresh"], str)
    assert body["refresh"]
    assert body["access"] != body["refresh"]
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] > 0
    assert isinstance(body["refresh_expires_in"], int)
    assert body["refresh_expires_in"] > 0


def items(body: Any) -> list[dict[str, Any]]:
    """A list endpoint's entries, whether it answers a list or ``{"results": [...]}``."""
    if isinstance(body, dict):
        results: list[dict[str, Any]] = body["results"]
        return results
    assert isinstance(body, list), body
    return body


def rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


# --- forged tokens ----------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The unverified header and payload of a JWT."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return head + "." + b64url(signature)


def hs256(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    header = {**header, "alg": "HS256"}
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = hmac.new(key, head.encode(), hashlib.sha256).digest()
    return head + "." + b64url(signature)

"""CORS for an IDE front end on another origin (CONTRACT §1): origins from CODITECT_CORS_ORIGINS,
API paths only, never credentials; on every answer of the API, errors and the lean path too.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.accounts.conftest import accounts_environment, alice, api, charlie
from tests.accounts.helpers import Api, Persona
from tests.coditect.test_asgi import http
from tests.coditect.test_settings import manage
from tests.workspaces.helpers import SessionApi, create_session

__all__ = ["accounts_environment", "alice", "api", "charlie"]

IDE = "https://ide.example.com"
FOREIGN = "https://evil.example"
SESSIONS = "/api/v5/sessions"


@pytest.fixture(autouse=True)
def cors_origins(settings, accounts_environment: None) -> None:
    settings.CODITECT_CORS_ORIGINS = [IDE]
    settings.CORS_ALLOWED_ORIGINS = [IDE]


def preflight(client: Client, path: str, origin: str, method: str = "PATCH") -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, if-match",
    )


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def test_a_preflight_from_an_allowed_origin_is_answered(alice: Persona) -> None:
    session = create_session(SessionApi(), alice)
    response = preflight(Client(), f"{SESSIONS}/{session['id']}", IDE)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == IDE
    assert {"authorization", "content-type", "if-match"} <= listed(
        response["Access-Control-Allow-Headers"]
    )
    assert {"get", "post", "patch", "delete"} <= listed(response["Access-Control-Allow-Methods"])
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "origin" in listed(response["Vary"])
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize(
    "origin", [FOREIGN, "http://ide.example.com", "https://ide.example.com:8443", "null"]
)
def test_a_preflight_from_another_origin_gets_no_allow_header(origin: str) -> None:
    response = preflight(Client(), SESSIONS, origin)
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response


def test_nothing_is_allowed_by_default(settings) -> None:
    settings.CODITECT_CORS_ORIGINS = []
    settings.CORS_ALLOWED_ORIGINS = []
    response = preflight(Client(), SESSIONS, IDE)
    assert "Access-Control-Allow-Origin" not in response


def test_a_call_from_an_allowed_origin_can_read_the_answer_and_its_headers(
    alice: Persona,
) -> None:
    session = create_session(SessionApi(), alice)
    response = Api().get(f"{SESSIONS}/{session['id']}", alice.access, HTTP_ORIGIN=IDE)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == IDE
    exposed = listed(response["Access-Control-Expose-Headers"])
    assert {"etag", "location", "retry-after", "x-request-id"} <= exposed
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in listed(response["Vary"])


def test_a_call_from_another_origin_gets_no_allow_header(alice: Persona) -> None:
    response = Api().get(SESSIONS, alice.access, HTTP_ORIGIN=FOREIGN)
    assert response.status_code == 200  # CORS is the browser's to enforce: it hides this
    assert "Access-Control-Allow-Origin" not in response


def test_another_tenants_session_is_still_404_from_an_allowed_origin(
    alice: Persona, charlie: Persona
) -> None:
    session = create_session(SessionApi(), alice)
    response = Api().get(f"{SESSIONS}/{session['id']}", charlie.access, HTTP_ORIGIN=IDE)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response["Access-Control-Allow-Origin"] == IDE


def test_errors_carry_the_headers_so_the_front_end_can_read_them(settings) -> None:
    api = Api()
    unauthenticated = api.get(SESSIONS, HTTP_ORIGIN=IDE)
    assert unauthenticated.status_code == 401
    assert unauthenticated["Access-Control-Allow-Origin"] == IDE
    unknown = api.get("/api/v5/nothing-here", HTTP_ORIGIN=IDE)
    assert unknown.status_code == 404
    assert unknown["Access-Control-Allow-Origin"] == IDE
    settings.CODITECT_MAX_BODY_BYTES = 100
    too_large = api.post_raw(SESSIONS, b"{" + b" " * 200 + b"}", HTTP_ORIGIN=IDE)
    assert too_large.status_code == 413
    assert too_large["Content-Type"] == "application/problem+json"
    assert too_large["Access-Control-Allow-Origin"] == IDE


@pytest.mark.parametrize("path", ["/healthz", "/admin/login/", "/"])
def test_pages_and_probes_are_not_cross_origin(path: str) -> None:
    response = Client().get(path, HTTP_ORIGIN=IDE)
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Origin" not in preflight(Client(), path, IDE, "GET")


async def test_the_lean_asgi_path_carries_the_headers(alice: Persona) -> None:
    from asgiref.sync import sync_to_async

    session = await sync_to_async(create_session)(SessionApi(), alice)
    headers = [(b"origin", IDE.encode()), (b"authorization", f"Bearer {alice.access}".encode())]
    status, answer, _ = await http("GET", f"{SESSIONS}/{session['id']}", headers=headers)
    assert status == 200
    assert answer["access-control-allow-origin"] == IDE
    assert "etag" in listed(answer["access-control-expose-headers"])
    assert "access-control-allow-credentials" not in answer
    status, answer, _ = await http(
        "OPTIONS",
        SESSIONS,
        headers=[
            (b"origin", IDE.encode()),
            (b"access-control-request-method", b"POST"),
        ],
    )
    assert status == 200
    assert answer["access-control-allow-origin"] == IDE


def test_the_origins_come_from_the_environment(tmp_path) -> None:
    show = "from django.conf import settings; print(settings.CORS_ALLOWED_ORIGINS)"
    base = {"CODITECT_STORAGE_URL": "memory:", "DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    result = manage("shell", "-c", show, **base, CODITECT_CORS_ORIGINS=f"{IDE}, http://x:3000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str([IDE, "http://x:3000"])
    for bad in ("ide.example.com", "https://ide.example.com/", "*", "https://a.example/app"):
        result = manage("shell", "-c", show, **base, CODITECT_CORS_ORIGINS=bad)
        assert result.returncode != 0
        assert "CODITECT_CORS_ORIGINS takes origins" in result.stderr, result.stderr

"""Bad input everywhere: always a 4xx problem with a stable code, never a 500, nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.accounts.helpers import (
    AUTH,
    PASSWORD,
    TENANT,
    Api,
    Persona,
    field_attrs,
    problem,
)

BODY_ROUTES = ["register", "login", "refresh", "password", "invitations"]


def path_of(route: str) -> str:
    return TENANT + "invitations/" if route == "invitations" else AUTH + route


def token_for(route: str, alice: Persona) -> str | None:
    return alice.access if route in ("password", "invitations") else None


def valid_body(route: str, alice: Persona) -> dict[str, Any]:
    return {
        "register": {"email": "new@example.com", "password": PASSWORD},
        "login": {"email": alice.email, "password": alice.password},
        "refresh": {"refresh": alice.refresh},
        "password": {"current_password": alice.password, "new_password": PASSWORD + "x"},
        "invitations": {"email": "new@example.com", "role": "member"},
    }[route]


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"email": ', b"\xff\xfe", b'{"a": NaN}', b'{"a": 1} tail']
)
def test_malformed_json(api: Api, alice: Persona, route: str, raw: bytes) -> None:
    response = api.post_raw(path_of(route), raw, token_for(route, alice))
    problem(response, 400, "malformed_json")


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("raw", [b"[]", b'["a", "b"]', b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(api: Api, alice: Persona, route: str, raw: bytes) -> None:
    response = api.post_raw(path_of(route), raw, token_for(route, alice))
    body = problem(response, 400)
    assert body["code"] in ("invalid", "malformed_json"), body


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_empty_body(api: Api, alice: Persona, route: str) -> None:
    response = api.post_raw(path_of(route), b"", token_for(route, alice))
    problem(response, 400, "invalid")


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_empty_object(api: Api, alice: Persona, route: str) -> None:
    response = api.post(path_of(route), {}, token_for(route, alice))
    body = problem(response, 400, "invalid")
    assert field_attrs(body) <= set(valid_body(route, alice)) | {"None"}, body
    assert field_attrs(body) & set(valid_body(route, alice)), body


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_each_required_field_missing(api: Api, alice: Persona, route: str) -> None:
    full = valid_body(route, alice)
    required = [name for name in full if (route, name) != ("invitations", "role")]
    for name in required:
        partial = {key: value for key, value in full.items() if key != name}
        body = problem(api.post(path_of(route), partial, token_for(route, alice)), 400, "invalid")
        assert name in field_attrs(body), (name, body)


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_unknown_field(api: Api, alice: Persona, route: str) -> None:
    body = {**valid_body(route, alice), "is_staff": True}
    result = problem(api.post(path_of(route), body, token_for(route, alice)), 400, "invalid")
    assert "is_staff" in field_attrs(result), result


def test_unknown_field_writes_nothing(api: Api) -> None:
    body = {"email": "new@example.com", "password": PASSWORD, "role": "owner"}
    problem(api.post(AUTH + "register", body), 400, "invalid")
    problem(api.login("new@example.com"), 401, "invalid_credentials")


def test_unknown_field_changes_no_password(api: Api, alice: Persona) -> None:
    body = {"current_password": alice.password, "new_password": PASSWORD + "x", "force": True}
    problem(api.post(AUTH + "password", body, alice.access), 400, "invalid")
    assert api.login(alice.email, alice.password).status_code == 200


def test_unknown_field_creates_no_invitation(api: Api, alice: Persona) -> None:
    body = {"email": "new@example.com", "role": "member", "token": "chosen-by-me-1234567890"}
    problem(api.post(TENANT + "invitations/", body, alice.access), 400, "invalid")
    problem(
        api.register("new@example.com", invitation="chosen-by-me-1234567890"),
        400,
        "invalid_invitation",
    )


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("register", "email", 12345),
    ("register", "email", None),
    ("register", "email", ["a@example.com"]),
    ("register", "password", ["x", "y"]),
    ("register", "password", {"p": 1}),
    ("register", "password", True),
    ("register", "display_name", ["Ann"]),
    ("register", "tenant_name", {"n": "Acme"}),
    ("register", "invitation", 7),
    ("login", "email", 12345),
    ("login", "email", ["a@example.com"]),
    ("login", "password", ["x", "y"]),
    ("login", "password", None),
    ("refresh", "refresh", 123),
    ("refresh", "refresh", ["a.b.c"]),
    ("refresh", "refresh", None),
    ("password", "current_password", ["x"]),
    ("password", "new_password", {"p": 1}),
    ("invitations", "email", 5),
    ("invitations", "role", ["member"]),
]


@pytest.mark.parametrize(("route", "name", "value"), WRONG_TYPES)
def test_wrong_types(api: Api, alice: Persona, route: str, name: str, value: Any) -> None:
    body = {**valid_body(route, alice), name: value}
    response = api.post(path_of(route), body, token_for(route, alice))
    assert 400 <= response.status_code < 500, response.content
    result = problem(response, response.status_code)
    if isinstance(value, (list, dict, bool)) or value is None:
        assert response.status_code == 400, result
        assert result["code"] in ("invalid", "invalid_invitation"), result
    # Nothing changed for Alice.
    assert api.login(alice.email, alice.password).status_code == 200


def test_wrong_types_write_nothing(api: Api) -> None:
    problem(api.post(AUTH + "register", {"email": 12345, "password": PASSWORD}), 400, "invalid")
    problem(
        api.post(AUTH + "register", {"email": "new@example.com", "password": [PASSWORD]}),
        400,
        "invalid",
    )
    problem(api.login("new@example.com"), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("display_name", "null\u0000byte"),
        ("display_name", "lone \ud800 surrogate"),
        ("tenant_name", "lone \udfff surrogate"),
        ("email", "a\u0000b@example.com"),
        ("email", "\ud800@example.com"),
        ("password", "Surrogate-\ud800-Passw0rd"),
    ],
)
def test_strings_that_cannot_be_stored(api: Api, name: str, value: str) -> None:
    body = {"email": "new@example.com", "password": PASSWORD, name: value}
    response = api.post(AUTH + "register", body)
    body_out = problem(response, 400, "invalid")
    assert name in field_attrs(body_out), body_out


@pytest.mark.parametrize(
    "password", ["Surrogate-\ud800-Passw0rd", "nul\u0000Passw0rd-long", "x" * 100_000]
)
def test_odd_passwords_at_login_are_refused_cleanly(api: Api, alice: Persona, password) -> None:
    response = api.login(alice.email, password)
    assert response.status_code in (400, 401), response.content
    problem(response, response.status_code)


@pytest.mark.parametrize(
    "email", ["\ud800@example.com", "a\u0000@example.com", "x" * 300 + "@example.com", ""]
)
def test_odd_emails_at_login_are_refused_cleanly(api: Api, email: str) -> None:
    response = api.login(email, PASSWORD)
    assert response.status_code in (400, 401), response.content
    problem(response, response.status_code)


def test_long_refresh_token_is_refused_cleanly(api: Api) -> None:
    response = api.refresh("a" * 100_000)
    assert response.status_code in (400, 401), response.content
    problem(response, response.status_code)


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_body_that_is_not_json(api: Api, alice: Persona, route: str) -> None:
    response = api.post_raw(
        path_of(route),
        b"email=a%40example.com&password=x",
        token_for(route, alice),
        content_type="application/x-www-form-urlencoded",
    )
    problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("route", BODY_ROUTES)
def test_huge_body(api: Api, alice: Persona, route: str) -> None:
    raw = json.dumps({**valid_body(route, alice), "padding": "x" * (3 * 1024 * 1024)})
    response = api.post_raw(path_of(route), raw.encode(), token_for(route, alice))
    problem(response, 413, "body_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", AUTH + "login"),
        ("get", AUTH + "register"),
        ("get", AUTH + "refresh"),
        ("delete", AUTH + "jwks"),  # DELETE me is the erasure now (issue 16 part 3)
        ("post", AUTH + "jwks"),
    ],
)
def test_wrong_method_is_405(api: Api, alice: Persona, method: str, path: str) -> None:
    if method == "post":
        response = api.post(path, {}, alice.access)
    else:
        response = getattr(api, method)(path, alice.access)
    problem(response, 405, "method_not_allowed")


@pytest.mark.parametrize("path", [AUTH + "nothing", AUTH + "sessions/a/b", TENANT + "nothing"])
def test_unknown_paths_are_404_problems(api: Api, alice: Persona, path: str) -> None:
    problem(api.get(path, alice.access), 404, "not_found")

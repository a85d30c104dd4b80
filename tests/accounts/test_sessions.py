"""Authenticated requests: the auth session is checked on every one, so revocation is immediate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts import services
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    TENANT,
    Api,
    Persona,
    field_attrs,
    login_pair,
    problem,
    rfc3339,
)

SOME_ID = "6f1c1a9e-4f43-4d0c-9a57-0d6a8c1f2b3e"
AUTHENTICATED = [
    ("get", AUTH + "me"),
    ("get", AUTH + "sessions"),
    ("post", AUTH + "logout"),
    ("post", AUTH + "logout-all"),
    ("post", AUTH + "password"),
    ("delete", AUTH + "sessions/" + SOME_ID),
    ("get", TENANT),
    ("get", TENANT + "members/"),
    ("post", TENANT + "invitations/"),
    ("delete", TENANT + "members/" + SOME_ID),
]


def call(api: Api, method: str, path: str, token: str | None = None):
    if method == "post":
        return api.post(path, {}, token)
    return getattr(api, method)(path, token)


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_no_token_is_401_with_a_challenge(api: Api, method: str, path: str) -> None:
    response = call(api, method, path)
    problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_revoked_session_is_401_everywhere(
    api: Api, alice: Persona, method: str, path: str
) -> None:
    assert api.post(AUTH + "logout", None, alice.access).status_code == 204
    response = call(api, method, path, alice.access)
    problem(response, 401, "session_revoked")
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- logout -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [AUTH + "logout", AUTH + "logout/"])
def test_logout_ends_this_auth_session_at_once(api: Api, alice: Persona, path: str) -> None:
    laptop = login_pair(api, alice)
    response = api.post(path, None, alice.access)
    assert response.status_code == 204, response.content
    assert response.content == b""
    problem(api.me(alice.access), 401, "session_revoked")
    problem(api.refresh(alice.refresh), 401)
    assert api.me(laptop["access"]).status_code == 200


def test_logout_twice_is_401(api: Api, alice: Persona) -> None:
    assert api.post(AUTH + "logout", None, alice.access).status_code == 204
    problem(api.post(AUTH + "logout", None, alice.access), 401, "session_revoked")


def test_logout_then_login_again(api: Api, alice: Persona) -> None:
    assert api.post(AUTH + "logout", None, alice.access).status_code == 204
    assert api.me(login_pair(api, alice)["access"]).status_code == 200


@pytest.mark.parametrize("path", [AUTH + "logout-all", AUTH + "logout-all/"])
def test_logout_all_ends_every_session_of_the_user(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, path: str
) -> None:
    laptop = login_pair(api, alice)
    assert api.post(path, None, alice.access).status_code == 204
    problem(api.me(alice.access), 401, "session_revoked")
    problem(api.me(laptop["access"]), 401, "session_revoked")
    problem(api.refresh(laptop["refresh"]), 401)
    problem(api.refresh(alice.refresh), 401)
    assert api.me(bob.access).status_code == 200
    assert api.me(charlie.access).status_code == 200
    assert api.me(login_pair(api, alice)["access"]).status_code == 200


# --- the list of auth sessions ------------------------------------------------------------


@pytest.mark.parametrize("path", [AUTH + "sessions", AUTH + "sessions/"])
def test_sessions_lists_every_device(api: Api, alice: Persona, bob: Persona, path: str) -> None:
    phone = login_pair(api, alice, REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="Phone/1.0")
    response = api.get(path, alice.access)
    assert response.status_code == 200, response.content
    body = response.json()
    assert "next_cursor" in body
    assert body["next_cursor"] is None
    sessions = body["results"]
    assert len(sessions) == 2
    for session in sessions:
        assert session.keys() >= {"id", "created_at", "last_used_at", "ip", "user_agent", "current"}
        uuid.UUID(session["id"])
        rfc3339(session["created_at"])
        rfc3339(session["last_used_at"])
    assert sorted(s["current"] for s in sessions) == [False, True]
    (other,) = [s for s in sessions if not s["current"]]
    assert other["ip"] == "10.1.2.3"
    assert other["user_agent"] == "Phone/1.0"
    # Seen from the phone, the phone is current.
    from_phone = api.get(
        AUTH + "sessions", phone["access"], REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="Phone/1.0"
    ).json()["results"]
    (current,) = [s for s in from_phone if s["current"]]
    assert current["id"] == other["id"]
    assert {s["id"] for s in from_phone} == {s["id"] for s in sessions}
    # Bob's own session is not among Alice's.
    assert bob.session_id(api) not in {s["id"] for s in sessions}


def test_sessions_records_the_test_clients_address(api: Api, alice: Persona) -> None:
    (session,) = api.get(AUTH + "sessions", alice.access).json()["results"]
    assert session["ip"] == "127.0.0.1"
    assert session["current"] is True


def test_last_used_moves_on_with_refresh(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    (before,) = api.get(AUTH + "sessions", alice.access).json()["results"]
    time_machine.shift(timedelta(minutes=5))
    pair = api.refresh(alice.refresh).json()
    (after,) = api.get(AUTH + "sessions", pair["access"]).json()["results"]
    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"]
    assert rfc3339(after["last_used_at"]) >= rfc3339(before["last_used_at"]) + timedelta(minutes=4)


def test_revoked_sessions_are_not_listed(api: Api, alice: Persona) -> None:
    laptop = login_pair(api, alice)
    assert api.post(AUTH + "logout", None, laptop["access"]).status_code == 204
    sessions = api.get(AUTH + "sessions", alice.access).json()["results"]
    assert [s["current"] for s in sessions] == [True]


@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_my_other_device(api: Api, alice: Persona, slash: str) -> None:
    laptop = login_pair(api, alice)
    laptop_id = alice.session_id(api, laptop["access"])
    response = api.delete(AUTH + "sessions/" + laptop_id + slash, alice.access)
    assert response.status_code == 204, response.content
    problem(api.me(laptop["access"]), 401, "session_revoked")
    problem(api.refresh(laptop["refresh"]), 401)
    assert api.me(alice.access).status_code == 200


def test_delete_my_current_session(api: Api, alice: Persona) -> None:
    response = api.delete(AUTH + "sessions/" + alice.session_id(api), alice.access)
    assert response.status_code == 204, response.content
    problem(api.me(alice.access), 401, "session_revoked")


def test_delete_a_session_of_someone_else_is_404(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    for victim in (bob, charlie):
        problem(
            api.delete(AUTH + "sessions/" + victim.session_id(api), alice.access),
            404,
            "not_found",
        )
        assert api.me(victim.access).status_code == 200


@pytest.mark.parametrize(
    "session_id",
    [str(uuid.uuid4()), "not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", "%20"],
)
def test_delete_unknown_session_is_404(api: Api, alice: Persona, session_id: str) -> None:
    problem(api.delete(AUTH + "sessions/" + session_id, alice.access), 404, "not_found")
    assert api.me(alice.access).status_code == 200


# --- password change -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [AUTH + "password", AUTH + "password/"])
def test_password_change_revokes_the_other_sessions(
    api: Api, alice: Persona, bob: Persona, path: str
) -> None:
    laptop = login_pair(api, alice)
    response = api.post(
        path, {"current_password": alice.password, "new_password": OTHER_PASSWORD}, alice.access
    )
    assert response.status_code == 204, response.content
    assert api.me(alice.access).status_code == 200
    problem(api.me(laptop["access"]), 401, "session_revoked")
    problem(api.refresh(laptop["refresh"]), 401)
    problem(api.login(alice.email, alice.password), 401, "invalid_credentials")
    assert api.login(alice.email, OTHER_PASSWORD).status_code == 200
    assert api.me(bob.access).status_code == 200


def test_password_change_with_the_wrong_current_password(api: Api, alice: Persona) -> None:
    laptop = login_pair(api, alice)
    body = {"current_password": "Wr0ng-password!", "new_password": OTHER_PASSWORD}
    problem(api.post(AUTH + "password", body, alice.access), 400, "wrong_password")
    assert api.me(laptop["access"]).status_code == 200
    assert api.login(alice.email, alice.password).status_code == 200
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "weak", ["short1!", "password123", "1234567890123", "alice@example.com", "x" * 1025]
)
def test_password_change_to_a_weak_password(api: Api, alice: Persona, weak: str) -> None:
    body = {"current_password": alice.password, "new_password": weak}
    result = problem(api.post(AUTH + "password", body, alice.access), 400, "invalid")
    assert "new_password" in field_attrs(result), result
    assert api.login(alice.email, alice.password).status_code == 200


# --- lock, suspend, resume -----------------------------------------------------------------


def test_locking_a_user_stops_their_tokens_at_once(api: Api, alice: Persona, bob: Persona) -> None:
    services.user_lock(tenant_id=bob.tenant_uuid, user_id=bob.user_uuid, reason="test")
    response = api.me(bob.access)
    assert (response.status_code, response.json()["code"]) in {
        (401, "session_revoked"),
        (403, "account_locked"),
    }, response.content
    problem(response, response.status_code)
    assert api.refresh(bob.refresh).status_code in (401, 403)
    assert api.me(alice.access).status_code == 200
    services.user_unlock(tenant_id=bob.tenant_uuid, user_id=bob.user_uuid)
    pair = login_pair(api, bob)
    assert api.me(pair["access"]).status_code == 200


def test_suspending_a_tenant_stops_its_tokens_at_once(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    services.tenant_suspend(tenant_id=alice.tenant_uuid, reason="test")
    for persona in (alice, bob):
        problem(api.me(persona.access), 403, "tenant_suspended")
        problem(api.get(TENANT + "members/", persona.access), 403, "tenant_suspended")
        assert api.refresh(persona.refresh).status_code in (401, 403)
    assert api.me(charlie.access).status_code == 200
    services.tenant_resume(tenant_id=alice.tenant_uuid)
    pair = login_pair(api, alice)
    assert api.me(pair["access"]).status_code == 200

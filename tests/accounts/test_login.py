"""POST /api/v5/auth/login: a token pair for the right password, one answer for every wrong one."""

from __future__ import annotations

import pytest

from accounts import services
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    USER_FIELDS,
    Api,
    Persona,
    assert_pair,
    problem,
    without_request_id,
)


@pytest.mark.parametrize("path", [AUTH + "login", AUTH + "login/"])
def test_login_returns_a_pair_and_the_user(api: Api, alice: Persona, path: str) -> None:
    response = api.post(path, {"email": alice.email, "password": alice.password})
    assert response.status_code == 200, response.content
    body = response.json()
    assert_pair(body)
    assert body["user"].keys() >= USER_FIELDS
    assert {key: body["user"][key] for key in USER_FIELDS} == {
        key: alice.user[key] for key in USER_FIELDS
    }
    assert body["access"] != alice.access
    assert body["refresh"] != alice.refresh
    assert api.me(body["access"]).status_code == 200
    assert api.me(alice.access).status_code == 200  # the first device is untouched


def test_login_email_is_case_insensitive(api: Api, alice: Persona) -> None:
    response = api.login("ALICE@Example.COM", alice.password)
    assert response.status_code == 200, response.content
    assert response.json()["user"]["id"] == alice.user_id


def test_invited_member_logs_in(api: Api, bob: Persona) -> None:
    response = api.login(bob.email, bob.password)
    assert response.status_code == 200, response.content
    assert response.json()["user"]["role"] == "member"
    assert response.json()["user"]["tenant_id"] == bob.tenant_id


def test_unknown_email_and_wrong_password_look_the_same(api: Api, alice: Persona) -> None:
    wrong = problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    unknown = problem(api.login("nobody@example.com", OTHER_PASSWORD), 401, "invalid_credentials")
    assert without_request_id(wrong) == without_request_id(unknown)


def test_empty_password_is_not_a_login(api: Api, alice: Persona) -> None:
    response = api.login(alice.email, "")
    assert response.status_code in (400, 401)
    problem(response, response.status_code)


def test_locked_user_hears_so_only_with_the_right_password(api: Api, alice: Persona) -> None:
    services.user_lock(tenant_id=alice.tenant_uuid, user_id=alice.user_uuid, reason="test")
    problem(api.login(alice.email, alice.password), 403, "account_locked")
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    services.user_unlock(tenant_id=alice.tenant_uuid, user_id=alice.user_uuid)
    assert api.login(alice.email, alice.password).status_code == 200


def test_locking_one_user_leaves_the_others(api: Api, alice: Persona, bob: Persona) -> None:
    services.user_lock(tenant_id=bob.tenant_uuid, user_id=bob.user_uuid, reason="test")
    problem(api.login(bob.email, bob.password), 403, "account_locked")
    assert api.login(alice.email, alice.password).status_code == 200


def test_suspended_tenant_hears_so_only_with_the_right_password(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    services.tenant_suspend(tenant_id=alice.tenant_uuid, reason="test")
    problem(api.login(alice.email, alice.password), 403, "tenant_suspended")
    problem(api.login(bob.email, bob.password), 403, "tenant_suspended")
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    assert api.login(charlie.email, charlie.password).status_code == 200
    services.tenant_resume(tenant_id=alice.tenant_uuid)
    assert api.login(alice.email, alice.password).status_code == 200
    assert api.login(bob.email, bob.password).status_code == 200


def test_suspended_tenant_shows_in_me_after_resume(api: Api, alice: Persona) -> None:
    services.tenant_suspend(tenant_id=alice.tenant_uuid, reason="test")
    services.tenant_resume(tenant_id=alice.tenant_uuid)
    pair = api.login(alice.email, alice.password).json()
    assert api.me(pair["access"]).json()["tenant"]["status"] == "active"

"""Password reset end to end: the request (always 202), the mailed token, the new password,
every session revoked; expired, reused, replaced and forged tokens; throttles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts import selectors
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    Api,
    Persona,
    login_pair,
    problem,
    without_request_id,
)
from tests.accounts.recovery import forged_tokens, mails_to, reset_token, verification_token

NEW_PASSWORD = "a-Brand-new-passw0rd!"


def request_reset(api: Api, email: str, **extra: Any) -> Any:
    return api.post(AUTH + "password-reset", {"email": email}, **extra)


def confirm(api: Api, token: object, password: object = NEW_PASSWORD) -> Any:
    return api.post(AUTH + "password-reset/confirm", {"token": token, "new_password": password})


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(datetime.now(UTC).replace(microsecond=0), tick=False)
    return time_machine


def test_reset_sets_the_password_and_signs_out_everywhere(
    api: Api, alice: Persona, bob: Persona
) -> None:
    laptop = login_pair(api, alice)
    response = request_reset(api, "Alice@Example.com")
    assert response.status_code == 202
    assert response.content == b""
    (message,) = mails_to(alice.email, "Reset")
    assert message.subject == "Reset your Coditect password for Acme"
    assert "http://127.0.0.1:8000/reset-password#token=" in message.body
    assert "expires in 1 hour" in message.body

    assert confirm(api, reset_token(alice)).status_code == 204
    for access in (alice.access, laptop["access"]):
        problem(api.me(access), 401, "session_revoked")
    problem(api.refresh(laptop["refresh"]), 401)
    problem(api.login(alice.email, alice.password), 401, "invalid_credentials")
    assert api.login(alice.email, NEW_PASSWORD).status_code == 200
    assert api.me(bob.access).status_code == 200  # nobody else is signed out
    kinds = [e.type for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)]
    assert kinds[:4] == ["login", "login_failed", "password_reset", "password_reset_requested"]
    (reset,) = [e for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)
                if e.type == "password_reset"]  # fmt: skip
    assert reset.data == {"sessions": 2}
    assert str(reset.user_id) == alice.user_id


def test_a_token_works_once(api: Api, alice: Persona) -> None:
    request_reset(api, alice.email)
    token = reset_token(alice)
    assert confirm(api, token).status_code == 204
    body = problem(confirm(api, token, OTHER_PASSWORD), 400, "invalid_reset_token")
    assert body["errors"][0]["attr"] == "token"
    assert api.login(alice.email, NEW_PASSWORD).status_code == 200


def test_a_newer_request_replaces_the_token(api: Api, alice: Persona) -> None:
    request_reset(api, alice.email)
    first = reset_token(alice)
    request_reset(api, alice.email)
    second = reset_token(alice)
    assert first != second
    problem(confirm(api, first), 400, "invalid_reset_token")
    assert confirm(api, second).status_code == 204


def test_an_expired_token_is_refused_and_changes_nothing(
    api: Api, alice: Persona, frozen, settings
) -> None:
    request_reset(api, alice.email)
    token = reset_token(alice)
    frozen.shift(timedelta(seconds=settings.CODITECT_PASSWORD_RESET_TTL_S - 1))
    problem(confirm(api, token, "1234"), 400, "invalid")  # still valid: the policy speaks
    frozen.shift(timedelta(seconds=1))
    problem(confirm(api, token), 400, "reset_token_expired")
    assert api.login(alice.email, alice.password).status_code == 200


def test_the_new_password_follows_the_registration_policy(api: Api, alice: Persona) -> None:
    request_reset(api, alice.email)
    token = reset_token(alice)
    for weak in ("short", "password123", "12345678901", "alice@example.com"):
        body = problem(confirm(api, token, weak), 400, "invalid")
        assert body["errors"][0]["attr"] == "new_password"
    problem(confirm(api, token, 12345678), 400, "invalid")
    assert api.me(alice.access).status_code == 200  # nothing changed meanwhile
    assert confirm(api, token).status_code == 204


def test_unknown_emails_get_the_same_answer_and_no_mail(api: Api, alice: Persona) -> None:
    known = request_reset(api, alice.email)
    unknown = request_reset(api, "nobody@example.com")
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
    assert sorted(h for h in known.headers if h != "X-Request-ID") == sorted(
        h for h in unknown.headers if h != "X-Request-ID"
    )
    assert mails_to("nobody@example.com") == []


def test_requests_are_throttled_alike_for_unknown_emails(
    api: Api, alice: Persona, settings, frozen
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MAIL_PER_EMAIL = 2
    for email in (alice.email, "nobody@example.com"):
        for n in range(2):
            assert request_reset(api, email, REMOTE_ADDR=f"10.0.{n}.1").status_code == 202
    known = problem(request_reset(api, alice.email, REMOTE_ADDR="10.8.8.8"), 429, "throttled")
    unknown = problem(request_reset(api, "nobody@example.com"), 429, "throttled")
    assert without_request_id(known) == without_request_id(unknown)
    assert len(mails_to(alice.email, "Reset")) == 2
    frozen.shift(timedelta(hours=1))
    assert request_reset(api, alice.email).status_code == 202


def test_requests_are_throttled_per_client_address(api: Api, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MAIL_PER_ADDRESS = 2
    for n in range(2):
        assert request_reset(api, f"x{n}@example.com", REMOTE_ADDR="10.5.5.5").status_code == 202
    problem(request_reset(api, "y@example.com", REMOTE_ADDR="10.5.5.5"), 429, "throttled")
    assert request_reset(api, "y@example.com", REMOTE_ADDR="10.6.6.6").status_code == 202


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "0" * 32 + "." + "0" * 32 + "." + "A" * 43,
        "g" * 32 + "." + "0" * 32 + "." + "A" * 43,
        "x" * 300,
    ],
)
def test_malformed_and_unknown_tokens(api: Api, alice: Persona, token: str) -> None:
    problem(confirm(api, token), 400, "invalid_reset_token")
    assert api.login(alice.email, alice.password).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"token": 1, "new_password": NEW_PASSWORD},
        {"token": "x"},
        {"new_password": NEW_PASSWORD},
        {"token": "x", "new_password": NEW_PASSWORD, "email": "alice@example.com"},
    ],
)
def test_bodies_that_are_not_a_confirmation(api: Api, body: dict) -> None:
    problem(api.post(AUTH + "password-reset/confirm", body), 400, "invalid")


def test_a_verification_token_is_not_a_reset_token(api: Api, alice: Persona) -> None:
    problem(confirm(api, verification_token(alice)), 400, "invalid_reset_token")


def test_reset_proves_the_email_address(api: Api, alice: Persona) -> None:
    assert api.me(alice.access).json()["email_verified"] is False
    request_reset(api, alice.email)
    assert confirm(api, reset_token(alice)).status_code == 204
    logged_in = api.login(alice.email, NEW_PASSWORD).json()
    assert logged_in["user"]["email_verified"] is True


def test_other_tenants_tokens_reach_nobody_else(api: Api, alice: Persona, charlie: Persona) -> None:
    request_reset(api, charlie.email)
    request_reset(api, alice.email)
    charlies = reset_token(charlie)
    alices = reset_token(alice)
    for forged in forged_tokens(alices, charlies):
        problem(confirm(api, forged), 400, "invalid_reset_token")
    assert confirm(api, charlies).status_code == 204
    # Charlie's reset touched neither Alice's password nor her sessions nor her token.
    assert api.me(alice.access).status_code == 200
    assert api.login(alice.email, alice.password).status_code == 200
    assert confirm(api, alices, OTHER_PASSWORD).status_code == 204


def test_a_password_change_voids_an_outstanding_token(api: Api, alice: Persona) -> None:
    request_reset(api, alice.email)
    token = reset_token(alice)
    change = {"current_password": alice.password, "new_password": OTHER_PASSWORD}
    assert api.post(AUTH + "password", change, alice.access).status_code == 204
    problem(confirm(api, token), 400, "invalid_reset_token")
    assert api.login(alice.email, OTHER_PASSWORD).status_code == 200

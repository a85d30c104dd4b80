"""POST password: a wrong current password counts as a failed login of the account
(issue 15, finding 3), so a stolen access token cannot guess the password past the login
budgets, and each guess it is refused costs no Argon2 hash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from accounts import selectors
from accounts.services import sessions
from tests.accounts.helpers import AUTH, OTHER_PASSWORD, Api, Persona, problem

WRONG = "not-the-password-1"


@pytest.fixture(autouse=True)
def clock(time_machine):
    """A few seconds into an hour, frozen: no throttle window ends mid-test."""
    start = datetime.now(UTC).replace(minute=0, second=5, microsecond=0) + timedelta(hours=1)
    time_machine.move_to(start, tick=False)
    return time_machine


@pytest.fixture
def limits(settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 3
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 1000
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 1000
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 1000


def change(api: Api, persona: Persona, current: str, **extra: object):
    body = {"current_password": current, "new_password": OTHER_PASSWORD}
    return api.post(AUTH + "password", body, persona.access, **extra)


def test_wrong_current_passwords_are_throttled_per_account(
    api: Api, alice: Persona, limits: None
) -> None:
    for n in range(3):
        problem(change(api, alice, WRONG, REMOTE_ADDR=f"10.9.0.{n}"), 400, "wrong_password")
    # The fourth guess, from yet another address, is refused before any hash is computed.
    with mock.patch.object(sessions, "password_check", wraps=sessions.password_check) as spy:
        body = problem(change(api, alice, alice.password, REMOTE_ADDR="10.9.0.9"), 429)
    assert body["code"] == "throttled"
    assert spy.call_count == 0
    # The budget is the account's: login with that email is throttled as well.
    problem(api.login(alice.email, alice.password), 429, "throttled")


def test_wrong_current_passwords_use_the_hourly_failure_budget(
    api: Api, alice: Persona, limits: None, settings, clock
) -> None:
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 1000
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 2
    for _ in range(2):
        problem(change(api, alice, WRONG), 400, "wrong_password")
    problem(change(api, alice, alice.password), 429, "throttled")
    # The lockout is the login's: the right password does not sign in either this hour.
    problem(api.login(alice.email, alice.password), 429, "throttled")
    clock.shift(timedelta(hours=1))
    assert api.login(alice.email, alice.password).status_code == 200


def test_wrong_current_password_is_logged_as_a_failed_login(api: Api, alice: Persona) -> None:
    problem(change(api, alice, WRONG, REMOTE_ADDR="10.9.9.9"), 400, "wrong_password")
    failed = [
        event
        for event in selectors.auth_event_list(tenant_id=alice.tenant_uuid, limit=50)
        if event.type == "login_failed"
    ]
    assert len(failed) == 1, failed
    assert failed[0].data == {"reason": "password_change"}
    assert failed[0].ip == "10.9.9.9"
    assert str(failed[0].user_id) == alice.user_id


def test_the_address_throttle_counts_password_changes(
    api: Api, alice: Persona, bob: Persona, limits: None, settings
) -> None:
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 1000
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 2
    address = {"REMOTE_ADDR": "10.8.8.8"}
    problem(change(api, alice, WRONG, **address), 400, "wrong_password")
    problem(change(api, bob, WRONG, **address), 400, "wrong_password")
    problem(change(api, alice, alice.password, **address), 429, "throttled")
    assert change(api, alice, alice.password, REMOTE_ADDR="10.8.8.9").status_code == 204

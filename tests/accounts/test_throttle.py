"""Throttling of login and register: per email, per client address, and failed logins per hour.

The autouse fixture scales every limit by 1000; these tests scale them back to 1 and set
small limits, so a handful of requests reach them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.accounts.helpers import (
    OTHER_PASSWORD,
    Api,
    Persona,
    problem,
    without_request_id,
)


@pytest.fixture(autouse=True)
def clock(time_machine):
    """Time stands still a few seconds into an hour, so no window ends mid-test by chance."""
    start = datetime.now(UTC).replace(minute=0, second=5, microsecond=0) + timedelta(hours=1)
    time_machine.move_to(start, tick=False)
    return time_machine


@pytest.fixture
def small_limits(settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 3
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 1000
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 1000
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 1000


def throttled(response, longest: int) -> dict:
    body = problem(response, 429, "throttled")
    retry_after = response["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= longest, retry_after
    return body


def test_login_per_email_even_from_many_addresses(
    api: Api, alice: Persona, small_limits: None
) -> None:
    for n in range(3):
        response = api.login(alice.email, OTHER_PASSWORD, REMOTE_ADDR=f"10.0.0.{n + 1}")
        problem(response, 401, "invalid_credentials")
    # The right password does not get past the throttle either.
    throttled(api.login(alice.email, alice.password, REMOTE_ADDR="10.0.0.9"), 60)
    # Another email from the same addresses is not throttled.
    assert (
        api.login("bob@nowhere.example", OTHER_PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 401
    )


def test_login_per_email_counts_successes_and_failures_alike(
    api: Api, alice: Persona, small_limits: None
) -> None:
    assert api.login(alice.email, alice.password).status_code == 200
    assert api.login(alice.email, OTHER_PASSWORD).status_code == 401
    assert api.login(alice.email, alice.password).status_code == 200
    throttled(api.login(alice.email, alice.password), 60)


def test_login_per_email_is_case_insensitive(api: Api, alice: Persona, small_limits: None) -> None:
    for email in ("alice@example.com", "ALICE@example.com", "Alice@Example.Com"):
        assert api.login(email, OTHER_PASSWORD).status_code == 401
    throttled(api.login("aLiCe@example.com", alice.password), 60)


def test_login_throttle_ends_after_its_minute(
    api: Api, alice: Persona, small_limits: None, clock
) -> None:
    for _ in range(3):
        assert api.login(alice.email, OTHER_PASSWORD).status_code == 401
    throttled(api.login(alice.email, alice.password), 60)
    clock.shift(timedelta(seconds=61))
    assert api.login(alice.email, alice.password).status_code == 200


def test_existing_and_unknown_emails_are_throttled_alike(
    api: Api, alice: Persona, small_limits: None
) -> None:
    answers = []
    for email in (alice.email, "ghost@example.com"):
        statuses = [api.login(email, OTHER_PASSWORD).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        response = api.login(email, OTHER_PASSWORD)
        throttled(response, 60)
        answers.append((without_request_id(response.json()), response["Retry-After"]))
    assert answers[0] == answers[1]


def test_login_per_address(api: Api, alice: Persona, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 3
    for n in range(3):
        response = api.login(f"user{n}@example.com", OTHER_PASSWORD, REMOTE_ADDR="10.0.0.7")
        problem(response, 401, "invalid_credentials")
    throttled(api.login(alice.email, alice.password, REMOTE_ADDR="10.0.0.7"), 60)
    assert api.login(alice.email, alice.password, REMOTE_ADDR="10.0.0.8").status_code == 200


def test_register_per_address(api: Api, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 3
    for n in range(3):
        response = api.post(
            "/api/v5/auth/register",
            {"email": f"r{n}@example.com", "password": "Tr0ub4dor&3-horse-staple"},
            REMOTE_ADDR="10.0.1.1",
        )
        assert response.status_code == 201, response.content
    blocked = api.post(
        "/api/v5/auth/register",
        {"email": "r9@example.com", "password": "Tr0ub4dor&3-horse-staple"},
        REMOTE_ADDR="10.0.1.1",
    )
    throttled(blocked, 3600)
    # Nothing was written for the throttled request.
    problem(
        api.login("r9@example.com", "Tr0ub4dor&3-horse-staple", REMOTE_ADDR="10.0.1.2"),
        401,
        "invalid_credentials",
    )
    other = api.post(
        "/api/v5/auth/register",
        {"email": "r9@example.com", "password": "Tr0ub4dor&3-horse-staple"},
        REMOTE_ADDR="10.0.1.2",
    )
    assert other.status_code == 201, other.content


def test_register_per_address_lasts_an_hour(api: Api, settings, clock) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 1
    assert api.register("s1@example.com").status_code == 201
    throttled(api.register("s2@example.com"), 3600)
    clock.shift(timedelta(minutes=2))
    throttled(api.register("s2@example.com"), 3600)
    clock.shift(timedelta(minutes=60))
    assert api.register("s2@example.com").status_code == 201


def test_failed_logins_per_hour_lock_out_even_the_right_password(
    api: Api, alice: Persona, bob: Persona, settings, clock
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 1000
    settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS = 1000
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 3
    for n in range(3):
        problem(
            api.login(alice.email, OTHER_PASSWORD, REMOTE_ADDR=f"10.0.2.{n}"),
            401,
            "invalid_credentials",
        )
    throttled(api.login(alice.email, alice.password), 3600)
    clock.shift(timedelta(minutes=5))
    throttled(api.login(alice.email, alice.password, REMOTE_ADDR="10.0.2.99"), 3600)
    assert api.login(bob.email, bob.password).status_code == 200  # only Alice's account
    clock.shift(timedelta(minutes=61))
    assert api.login(alice.email, alice.password).status_code == 200


def test_failed_logins_per_hour_for_unknown_emails_too(api: Api, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 3
    for _ in range(3):
        problem(api.login("ghost@example.com", OTHER_PASSWORD), 401, "invalid_credentials")
    throttled(api.login("ghost@example.com", OTHER_PASSWORD), 3600)


def test_scale_multiplies_the_limits(api: Api, alice: Persona, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 2
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 2
    statuses = [api.login(alice.email, OTHER_PASSWORD).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 401]
    throttled(api.login(alice.email, alice.password), 60)

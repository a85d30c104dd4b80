"""Tests that kill mutants which survived the suite (bench/mutation.py, docs/security.md,
"Mutation testing"): each pins a check of the auth core that nothing else distinguished."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import fdb_backend
from accounts.throttle import (
    Bucket,
    Throttled,
    throttle_check,
    throttle_hit,
    throttle_purge,
    throttle_record,
)
from tests.accounts.helpers import Api, Persona, problem
from tests.accounts.resign import signed_with_the_current_key

# --- accounts/tokens.py ----------------------------------------------------------------------


def of_length(token: str, length: int) -> str:
    """``token`` re-signed by the real key, padded with a claim to exactly ``length``."""
    for header_pad in range(4):
        header = {"x": "y" * header_pad} if header_pad else {}
        for pad in range(length):
            forged = signed_with_the_current_key(token, header=header, pad="p" * pad)
            if len(forged) == length:
                return forged
            if len(forged) > length:
                break
    raise AssertionError(length)


def test_a_token_of_4096_characters_is_read(api: Api, alice: Persona) -> None:
    assert api.me(of_length(alice.access, 4096)).status_code == 200


def test_a_token_longer_than_4096_characters_is_refused_unread(api: Api, alice: Persona) -> None:
    problem(api.me(of_length(alice.access, 4097)), 401, "invalid_token")


@pytest.mark.parametrize("token_use", ["refresh", "zzz", None])
def test_access_token_claiming_another_use_is_refused(
    api: Api, alice: Persona, token_use: str | None
) -> None:
    """The ``token_use`` claim is checked on its own, behind the ``typ`` header."""
    problem(api.me(signed_with_the_current_key(alice.access, token_use=token_use)), 401)


@pytest.mark.parametrize("token_use", ["access", "zzz", None])
def test_refresh_token_claiming_another_use_is_refused(
    api: Api, alice: Persona, token_use: str | None
) -> None:
    forged = signed_with_the_current_key(alice.refresh, token_use=token_use)
    problem(api.refresh(forged), 401, "invalid_token")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "not-a-uuid"},
        {"tenant_id": "not-a-uuid"},
        {"session_id": 12},
        {"jti": ["x"]},
        {"iat": "yesterday"},
    ],
)
def test_signed_token_with_malformed_claims_is_invalid_not_an_error(
    api: Api, alice: Persona, claims: dict[str, Any]
) -> None:
    problem(api.me(signed_with_the_current_key(alice.access, **claims)), 401, "invalid_token")
    forged = signed_with_the_current_key(alice.refresh, **claims)
    problem(api.refresh(forged), 401, "invalid_token")


# --- accounts/throttle.py --------------------------------------------------------------------

MINUTE_START = 60_000 * 60.0  # a moment at which a minute (and an hour) window starts


def bucket(limit: int, window_s: int = 60, subject: str = "someone") -> Bucket:
    return Bucket("login_email", subject, limit, window_s)


def refused_after(*, limit: int, hits: list[float], window_s: int = 60) -> int | None:
    """The retry-after of the first refused hit among ``hits`` (moments), or None."""
    db = fdb_backend.get_database()
    for moment in hits:
        try:
            throttle_hit(db=db, buckets=[bucket(limit, window_s)], now=moment)
        except Throttled as error:
            return error.retry_after
    return None


@pytest.fixture
def unscaled(settings: Any) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1


@pytest.mark.parametrize(
    ("window_s", "offset", "retry_after"),
    [(60, 5.0, 55), (60, 59.5, 1), (60, 58.2, 2), (3600, 5.0, 3595), (3600, 3599.9, 1)],
)
def test_retry_after_is_the_rest_of_the_window(
    unscaled: None, window_s: int, offset: float, retry_after: int
) -> None:
    moment = MINUTE_START + offset
    assert refused_after(limit=1, hits=[moment, moment], window_s=window_s) == retry_after


def test_retry_after_over_http_is_the_rest_of_the_minute(
    api: Api, alice: Persona, settings: Any, time_machine: Any
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 1
    time_machine.move_to(datetime.fromtimestamp(MINUTE_START + 20, UTC), tick=False)
    assert api.login(alice.email, alice.password).status_code == 200
    response = api.login(alice.email, alice.password)
    problem(response, 429, "throttled")
    assert response["Retry-After"] == "40"


def test_hits_within_one_window_add_up_and_the_next_window_starts_afresh(
    unscaled: None,
) -> None:
    assert refused_after(limit=1, hits=[MINUTE_START + 1, MINUTE_START + 1.5]) == 59
    assert refused_after(limit=1, hits=[MINUTE_START + 61]) is None


@pytest.mark.parametrize(("scale", "allowed"), [(2, 6), (0.5, 1), (0.1, 1), (1, 3)])
def test_the_scale_multiplies_the_limit_and_leaves_at_least_one(
    settings: Any, scale: float, allowed: int
) -> None:
    settings.CODITECT_THROTTLE_SCALE = scale
    hits = [MINUTE_START + 1] * (allowed + 1)
    db = fdb_backend.get_database()
    for _ in range(allowed):
        throttle_hit(db=db, buckets=[bucket(3)], now=hits[0])
    with pytest.raises(Throttled):
        throttle_hit(db=db, buckets=[bucket(3)], now=hits[0])


def test_check_counts_nothing_and_refuses_at_and_over_the_limit(unscaled: None) -> None:
    db = fdb_backend.get_database()
    moment = MINUTE_START + 1
    throttle_check(db=db, buckets=[bucket(1)], now=moment)  # nothing counted yet
    throttle_check(db=db, buckets=[bucket(1)], now=moment)  # and checking counted nothing
    throttle_record(db=db, buckets=[bucket(1)], now=moment)
    with pytest.raises(Throttled) as at_limit:
        throttle_check(db=db, buckets=[bucket(1)], now=moment)
    assert at_limit.value.retry_after == 59
    throttle_record(db=db, buckets=[bucket(1)], now=moment)
    with pytest.raises(Throttled):
        throttle_check(db=db, buckets=[bucket(1)], now=moment)  # over it, too
    throttle_check(db=db, buckets=[bucket(1, subject="someone else")], now=moment)


def test_purge_removes_ended_windows_only_and_dry_run_removes_nothing(unscaled: None) -> None:
    db = fdb_backend.get_database()
    for n in range(3):
        throttle_record(db=db, buckets=[bucket(1, subject=f"s{n}")], now=MINUTE_START + 1)
    throttle_record(db=db, buckets=[bucket(1, subject="live")], now=MINUTE_START + 61)
    later = MINUTE_START + 70
    assert throttle_purge(db=db, now=MINUTE_START + 30) == 0  # nothing has ended yet
    assert throttle_purge(db=db, now=later, dry_run=True) == 3
    assert throttle_purge(db=db, now=later, batch=2) == 3  # over two batches
    assert throttle_purge(db=db, now=later) == 0
    # The live window still counts.
    with pytest.raises(Throttled):
        throttle_check(db=db, buckets=[bucket(1, subject="live")], now=later)


def test_purge_without_a_moment_uses_the_clock() -> None:
    db = fdb_backend.get_database()
    throttle_record(db=db, buckets=[bucket(1)], now=MINUTE_START + 1)
    assert throttle_purge(db=db) == 1

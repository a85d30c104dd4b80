"""Tests that kill mutants which survived the suite (bench/mutation.py, docs/security.md,
"Mutation testing"): each pins a check of the auth core that nothing else distinguished."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

import fdb_backend
from accounts import selectors, services, signing_keys
from accounts.errors import AccountError
from accounts.records import auth_sessions, tenants
from accounts.services import (
    Principal,
    bearer_authenticate,
    principal_check,
    principal_require_scope,
)
from accounts.services import refresh as refresh_service
from accounts.throttle import (
    Bucket,
    Throttled,
    throttle_check,
    throttle_hit,
    throttle_purge,
    throttle_record,
)
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    Api,
    Persona,
    login_pair,
    problem,
    token_parts,
)
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


@pytest.mark.parametrize("typ", ["JWT", "zzz", "refresh+jwt", None])
def test_access_token_with_another_typ_header_is_refused(
    api: Api, alice: Persona, typ: str | None
) -> None:
    """The ``typ`` header is checked on its own, ahead of the ``token_use`` claim."""
    forged = signed_with_the_current_key(alice.access, header={"typ": typ})
    problem(api.me(forged), 401, "invalid_token")


@pytest.mark.parametrize("typ", ["JWT", "zzz", "at+jwt", None])
def test_refresh_token_with_another_typ_header_is_refused(
    api: Api, alice: Persona, typ: str | None
) -> None:
    forged = signed_with_the_current_key(alice.refresh, header={"typ": typ})
    problem(api.refresh(forged), 401, "invalid_token")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "not-a-uuid"},
        {"tenant_id": "not-a-uuid"},
        {"session_id": 12},
        {"jti": ["x"]},
        {"iat": "yesterday"},
        {"gen": [1]},
        {"gen": "one"},
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
    [
        (60, 5.0, 55),
        (60, 59.5, 1),
        (60, 58.2, 2),
        (60, 65.0, 55),  # an odd window number
        (3600, 5.0, 3595),
        (3600, 3599.9, 1),
        (3600, 3605.0, 3595),
    ],
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


def test_a_refusal_is_counted_once_by_the_scope_that_decided_it(unscaled: None) -> None:
    """coditect_throttle_hits_total{kind="throttle"}: one count per refused call, labelled by
    the scope over its limit whose window ends last (the one Retry-After reports), never by
    the scopes checked together."""
    from core.metrics import throttle_hits

    def count(scope: str) -> float:
        return float(throttle_hits.labels("throttle", scope)._value.get())

    db = fdb_backend.get_database()
    moment = MINUTE_START + 1
    email = Bucket("login_email", "e", 1, 60)
    address = Bucket("login_address", "a", 1, 3600)
    before = count("login_email"), count("login_address")
    throttle_hit(db=db, buckets=[email, address], now=moment)
    with pytest.raises(Throttled) as refused:  # both over: the hour's window decides
        throttle_hit(db=db, buckets=[email, address], now=moment)
    assert refused.value.retry_after == 3599
    assert (count("login_email"), count("login_address")) == (before[0], before[1] + 1)
    with pytest.raises(Throttled):  # only the email's: its own
        throttle_check(db=db, buckets=[email, Bucket("login_address", "b", 1, 3600)], now=moment)
    assert (count("login_email"), count("login_address")) == (before[0] + 1, before[1] + 1)


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


# --- accounts/services/refresh.py ------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature is verified (jwt.decode_complete), in order."""
    seen: list[str] = []
    decode = jwt.decode_complete

    def counted(token: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode_complete", counted)
    return seen


def test_an_access_token_is_verified_once_per_process(
    api: Api, alice: Persona, decodes: list[str]
) -> None:
    assert api.me(alice.access).status_code == 200
    assert api.me(alice.access).status_code == 200
    assert decodes.count(alice.access) <= 1
    # A refresh token is not an access token: it is verified whenever it comes.
    assert api.refresh(alice.refresh).status_code == 200


def test_a_token_of_the_active_key_is_parsed_once(
    api: Api, alice: Persona, decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 18: the header is read apart only for a token the active key did not sign.
    headers: list[str] = []
    read = jwt.get_unverified_header

    def counted(token: Any) -> Any:
        headers.append(token)
        return read(token)

    monkeypatch.setattr(jwt, "get_unverified_header", counted)
    assert api.refresh(alice.refresh).status_code == 200
    assert decodes == [alice.refresh]
    assert headers == []


def test_the_verified_cache_starts_over_when_full(
    api: Api, alice: Persona, decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 300: past the integers Python shares, so a size compared by identity would never match.
    monkeypatch.setattr(refresh_service, "VERIFIED_CACHE_MAX", 300)
    tokens = [signed_with_the_current_key(alice.access, jti=str(uuid.uuid4())) for _ in range(301)]
    first, last = tokens[0], tokens[-1]
    for token in [*tokens[:2], first]:  # the second use of a token is a hit
        assert api.me(token).status_code == 200
    assert decodes == tokens[:2]
    for token in tokens[2:300]:
        assert api.me(token).status_code == 200
    assert api.me(first).status_code == 200  # 300 held: still there
    assert len(decodes) == 300
    for token in (last, first):  # the 301st finds it full and clears it
        assert api.me(token).status_code == 200
    assert decodes[-2:] == [last, first]


def test_a_cached_access_token_expires_on_its_second(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    expires = token_parts(alice.access)[1]["exp"]
    time_machine.move_to(datetime.fromtimestamp(expires - 5, UTC), tick=False)
    assert api.me(alice.access).status_code == 200  # verified and cached
    time_machine.move_to(datetime.fromtimestamp(expires, UTC), tick=False)
    problem(api.me(alice.access), 401, "token_expired")


def test_refresh_token_of_another_family_is_invalid(api: Api, alice: Persona) -> None:
    for family in ("00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"):
        forged = signed_with_the_current_key(alice.refresh, token_family=family)
        problem(api.refresh(forged), 401, "invalid_token")
    assert api.refresh(alice.refresh).status_code == 200


def test_the_session_idle_expiry_holds_even_for_a_longer_token(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=False)
    later = int(time.time()) + 60 * 86_400
    forged = signed_with_the_current_key(alice.refresh, exp=later)
    time_machine.shift(timedelta(days=14, seconds=1))
    problem(api.refresh(forged), 401, "token_expired")


EXTREME_IDS = ["00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"]


@pytest.mark.parametrize("jti", EXTREME_IDS)
def test_a_current_generation_with_another_jti_is_reuse(api: Api, alice: Persona, jti: str) -> None:
    forged = signed_with_the_current_key(alice.refresh, jti=jti)
    problem(api.refresh(forged), 401, "token_reused")
    problem(api.refresh(alice.refresh), 401, "session_revoked")


def test_the_previous_jti_under_the_current_generation_is_reuse(api: Api, alice: Persona) -> None:
    """Grace is for the previous generation's token exactly; its jti with another
    generation is a forgery and revokes the family."""
    second = api.refresh(alice.refresh).json()
    generation = token_parts(second["refresh"])[1]["gen"]
    forged = signed_with_the_current_key(alice.refresh, gen=generation)
    problem(api.refresh(forged), 401, "token_reused")


@pytest.mark.parametrize(
    "jti", ["00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"]
)
def test_grace_is_for_the_previous_jti_exactly(api: Api, alice: Persona, jti: str) -> None:
    pair = login_pair(api, alice)
    assert api.refresh(pair["refresh"]).status_code == 200
    forged = signed_with_the_current_key(pair["refresh"], jti=jti)  # the previous generation
    problem(api.refresh(forged), 401, "token_reused")


def test_refresh_records_the_new_user_agent_and_keeps_the_old_when_none_comes(
    api: Api, alice: Persona
) -> None:
    pair = login_pair(api, alice, HTTP_USER_AGENT="Old/1")
    pair = api.refresh(pair["refresh"], HTTP_USER_AGENT="New/2").json()
    assert current_session(api, pair["access"])["user_agent"] == "New/2"
    pair = api.refresh(pair["refresh"], HTTP_USER_AGENT="").json()
    assert current_session(api, pair["access"])["user_agent"] == "New/2"


def current_session(api: Api, access: str) -> dict[str, Any]:
    response = api.get(AUTH + "sessions", access)
    assert response.status_code == 200, response.content
    (current,) = [s for s in response.json()["results"] if s["current"]]
    return dict(current)


# --- accounts/services/registration.py -------------------------------------------------------


def events_of(tenant_id: str) -> list[Any]:
    return list(selectors.auth_event_list(tenant_id=uuid.UUID(tenant_id)))


def test_a_team_without_a_name_is_named_after_the_local_part(api: Api) -> None:
    body = api.register("zed.q@example.com").json()
    assert body["tenant"]["name"] == "zed.q's team"
    assert body["tenant"]["slug"].startswith("zed-q-")


@pytest.mark.parametrize("email", ["aaron@example.com", "zoe@example.com", "MIKE@example.com"])
def test_an_invitation_admits_only_the_address_it_names(
    api: Api, alice: Persona, email: str
) -> None:
    token = api.invite(alice.access, "mike@example.com").json()["token"]
    if email == "MIKE@example.com":  # the same address, cased otherwise
        assert api.register(email, invitation=token).status_code == 201
    else:
        problem(api.register(email, invitation=token), 400, "invalid_invitation")


def test_an_invitation_to_a_suspended_team_is_invalid(api: Api, alice: Persona) -> None:
    token = api.invite(alice.access, "mike@example.com").json()["token"]
    services.tenant_suspend(tenant_id=alice.tenant_uuid, reason="test")
    problem(api.register("mike@example.com", invitation=token), 400, "invalid_invitation")
    services.tenant_resume(tenant_id=alice.tenant_uuid)
    assert api.register("mike@example.com", invitation=token).status_code == 201


def test_registration_events_say_how_the_account_came(
    api: Api, alice: Persona, bob: Persona
) -> None:
    logged = {(e.type, e.user_id): e for e in events_of(alice.tenant_id)}
    assert ("registered", alice.user_uuid) in logged
    assert ("member_joined", bob.user_uuid) in logged
    assert "claim" not in logged["registered", alice.user_uuid].data
    assert "claim" not in logged["member_joined", bob.user_uuid].data


def test_a_claim_is_logged_as_one(api: Api, alice: Persona) -> None:
    problem(api.register(alice.email, "another pass 4 claims", tenant_name="Mine"), 409)
    claims = [e for e in events_of_all() if e.type == "registered" and e.data.get("claim")]
    assert len(claims) == 1
    assert claims[0].data["claim"] is True


def events_of_all() -> list[Any]:
    """The events of every tenant: the claim's tenant is new and its id not returned."""
    found = []
    for tenant in tenants().list_by_key(fdb_backend.get_database()).records:
        found.extend(selectors.auth_event_list(tenant_id=tenant.id))
    return found


# --- accounts/services/principal.py ----------------------------------------------------------


def test_an_access_token_naming_another_user_of_the_session_is_refused(
    api: Api, alice: Persona, bob: Persona
) -> None:
    # Both ways round, so that neither order of the two ids passes a comparison.
    problem(api.me(signed_with_the_current_key(alice.access, sub=bob.user_id)), 401)
    problem(api.me(signed_with_the_current_key(bob.access, sub=alice.user_id)), 401)
    assert api.me(alice.access).status_code == 200


def test_last_used_is_written_at_most_once_a_minute(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=False)
    pair = login_pair(api, alice)

    def last_used_after(seconds: int) -> str:
        time_machine.shift(timedelta(seconds=seconds))
        assert api.me(pair["access"]).status_code == 200
        return str(current_session(api, pair["access"])["last_used_at"])

    first = current_session(api, pair["access"])["last_used_at"]
    assert last_used_after(59) == first  # 59 s: not yet
    touched = last_used_after(1)  # 60 s exactly: written
    assert touched != first
    assert last_used_after(75) != touched  # and again 75 s later


def held_principal(api: Api, persona: Persona, token: str | None = None) -> Principal:
    return bearer_authenticate(db=fdb_backend.get_database(), token=token or persona.access)


def check_code(principal: Principal) -> str | None:
    try:
        principal_check(db=fdb_backend.get_database(), principal=principal)
    except AccountError as error:
        return error.code
    return None


def test_a_held_api_token_once_revoked_is_unknown(api: Api, alice: Persona) -> None:
    body = {"name": "ci", "scopes": ["sessions:read"]}
    created = api.post(AUTH + "api-tokens", body, alice.access).json()
    principal = held_principal(api, alice, created["token"])
    assert check_code(principal) is None
    assert api.delete(AUTH + "api-tokens/" + created["id"], alice.access).status_code == 204
    assert check_code(principal) == "invalid_token"


def test_a_held_session_checked_against_another_user_is_revoked(
    api: Api, alice: Persona, bob: Persona
) -> None:
    principal = held_principal(api, alice)
    assert check_code(principal) is None
    as_bob = dataclasses.replace(principal, user=held_principal(api, bob).user)
    assert check_code(as_bob) == "session_revoked"


@pytest.mark.parametrize("step", [-1, 1])
def test_the_current_jti_under_another_generation_is_reuse(
    api: Api, alice: Persona, step: int
) -> None:
    second = api.refresh(alice.refresh).json()["refresh"]
    generation = token_parts(second)[1]["gen"] + step
    forged = signed_with_the_current_key(second, gen=generation)
    problem(api.refresh(forged), 401, "token_reused")


def test_the_previous_jti_two_generations_back_is_reuse(api: Api, alice: Persona) -> None:
    second = api.refresh(alice.refresh).json()["refresh"]
    api.refresh(second)  # previous_jti is now the second token's
    forged = signed_with_the_current_key(second, gen=token_parts(second)[1]["gen"] - 1)
    problem(api.refresh(forged), 401, "token_reused")


def test_generations_count_up_by_one(api: Api, alice: Persona) -> None:
    token = alice.refresh
    first = token_parts(token)[1]["gen"]
    for step in (1, 2, 3):
        token = api.refresh(token).json()["refresh"]
        assert token_parts(token)[1]["gen"] == first + step


def test_refresh_of_a_session_that_does_not_exist_is_invalid(api: Api, alice: Persona) -> None:
    forged = signed_with_the_current_key(alice.refresh, session_id=str(uuid.uuid4()))
    problem(api.refresh(forged), 401, "invalid_token")


def test_the_session_idle_expiry_is_exact_to_the_microsecond(api: Api, time_machine: Any) -> None:
    time_machine.move_to(datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC), tick=False)
    body = api.register("exact@example.com").json()
    forged = signed_with_the_current_key(body["refresh"], exp=int(time.time()) + 60 * 86_400)
    time_machine.shift(timedelta(days=14))  # the session's refresh_expires_at, exactly
    problem(api.refresh(forged), 401, "token_expired")


def test_the_grace_window_includes_its_last_second(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    time_machine.move_to(datetime.now(UTC), tick=False)
    assert api.refresh(alice.refresh).status_code == 200
    time_machine.shift(timedelta(seconds=10))  # CODITECT_REFRESH_GRACE_S, exactly
    assert api.refresh(alice.refresh).status_code == 200


def test_refresh_records_the_new_address(api: Api, alice: Persona) -> None:
    pair = login_pair(api, alice, REMOTE_ADDR="10.0.0.1")
    pair = api.refresh(pair["refresh"], REMOTE_ADDR="10.0.0.2").json()
    assert current_session(api, pair["access"])["ip"] == "10.0.0.2"


def test_refresh_keeps_512_characters_of_the_user_agent(api: Api, alice: Persona) -> None:
    pair = api.refresh(alice.refresh, HTTP_USER_AGENT="u" * 600).json()
    assert current_session(api, pair["access"])["user_agent"] == "u" * 512


def test_a_key_rotated_by_another_process_is_picked_up_at_its_first_token(
    api: Api, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process still holds the keys from before the rotation (another process made
    it): a token signed with the new key makes it reload them, at once."""
    db = fdb_backend.get_database()
    stale = signing_keys.keyring(db=db)
    signing_keys.signing_key_rotate(db=db)
    fresh = login_pair(api, alice)  # signed with the new key
    assert token_parts(fresh["access"])[0]["kid"] not in stale.public_keys
    monkeypatch.setattr(signing_keys, "_keyring", stale)
    monkeypatch.setattr(signing_keys, "_last_miss", 0.0)
    assert api.me(fresh["access"]).status_code == 200
    monkeypatch.setattr(signing_keys, "_keyring", stale)
    monkeypatch.setattr(signing_keys, "_last_miss", 0.0)
    assert api.refresh(fresh["refresh"]).status_code == 200


# --- principal, continued --------------------------------------------------------------------


@pytest.mark.parametrize("family", EXTREME_IDS)
def test_an_access_token_of_another_family_is_refused(
    api: Api, alice: Persona, family: str
) -> None:
    problem(api.me(signed_with_the_current_key(alice.access, token_family=family)), 401)


def test_an_access_token_of_a_session_that_does_not_exist_is_refused(
    api: Api, alice: Persona
) -> None:
    forged = signed_with_the_current_key(alice.access, session_id=str(uuid.uuid4()))
    problem(api.me(forged), 401, "session_revoked")


def test_a_held_session_once_logged_out_is_revoked(api: Api, alice: Persona) -> None:
    pair = login_pair(api, alice)
    principal = held_principal(api, alice, pair["access"])
    assert api.post(AUTH + "logout", None, pair["access"]).status_code == 204
    assert check_code(principal) == "session_revoked"


def test_a_held_session_checked_against_the_other_user_either_way(
    api: Api, alice: Persona, bob: Persona
) -> None:
    of_alice, of_bob = held_principal(api, alice), held_principal(api, bob)
    assert check_code(dataclasses.replace(of_bob, user=of_alice.user)) == "session_revoked"
    assert check_code(dataclasses.replace(of_alice, user=of_bob.user)) == "session_revoked"


def test_the_api_token_id_of_a_principal(api: Api, alice: Persona) -> None:
    body = {"name": "ci", "scopes": ["sessions:read"]}
    created = api.post(AUTH + "api-tokens", body, alice.access).json()
    assert held_principal(api, alice).api_token_id is None
    assert str(held_principal(api, alice, created["token"]).api_token_id) == created["id"]


def test_retry_after_of_registration_is_the_rest_of_the_hour(
    api: Api, settings: Any, time_machine: Any
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 1
    time_machine.move_to(datetime.fromtimestamp(MINUTE_START + 5, UTC), tick=False)
    assert api.register("first@example.com").status_code == 201
    response = api.register("second@example.com")
    problem(response, 429, "throttled")
    assert response["Retry-After"] == "3595"


def test_an_api_token_stops_on_its_expiry_exactly(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    time_machine.move_to(start, tick=False)
    expiry = start + timedelta(minutes=5)
    body = {"name": "ci", "scopes": ["sessions:read"], "expires_at": expiry.isoformat()}
    created = api.post(AUTH + "api-tokens", body, alice.access).json()
    principal = held_principal(api, alice, created["token"])
    time_machine.move_to(expiry - timedelta(seconds=1), tick=False)
    assert check_code(principal) is None
    time_machine.move_to(expiry, tick=False)
    assert check_code(principal) == "token_expired"


def test_a_principal_is_authenticated_and_scoped(api: Api, alice: Persona) -> None:
    body = {"name": "ci", "scopes": ["sessions:read"]}
    created = api.post(AUTH + "api-tokens", body, alice.access).json()
    agent, person = held_principal(api, alice, created["token"]), held_principal(api, alice)
    assert agent.is_authenticated is True
    assert person.is_authenticated is True
    principal_require_scope(principal=agent, scope="sessions:read")
    principal_require_scope(principal=person, scope="sessions:write")
    with pytest.raises(AccountError) as refused:
        principal_require_scope(principal=agent, scope="sessions:write")
    assert refused.value.code == "insufficient_scope"


def test_retry_after_of_the_hourly_failure_budget(
    api: Api, alice: Persona, settings: Any, time_machine: Any
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_LOGIN_FAILURES_PER_HOUR = 1
    time_machine.move_to(datetime.fromtimestamp(MINUTE_START + 20, UTC), tick=False)
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    response = api.login(alice.email, alice.password)
    problem(response, 429, "throttled")
    assert response["Retry-After"] == "3580"


def test_a_family_past_its_256th_rotation_still_rotates(api: Api, alice: Persona) -> None:
    """Generations are compared by value: past 256, Python's integers are distinct objects."""
    claims = token_parts(alice.refresh)[1]
    sessions = auth_sessions(alice.tenant_uuid)
    db = fdb_backend.get_database()
    session = sessions.get(db, uuid.UUID(claims["session_id"]))
    assert session is not None
    sessions.save(db, dataclasses.replace(session, generation=300))  # as if rotated 300 times
    forged = signed_with_the_current_key(alice.refresh, gen=300)
    response = api.refresh(forged)
    assert response.status_code == 200, response.content
    assert token_parts(response.json()["refresh"])[1]["gen"] == 301
    # And the grace replay of generation 300 is recognised as the previous generation.
    again = api.refresh(forged)
    assert again.status_code == 200, again.content
    assert again.json()["refresh"] == forged

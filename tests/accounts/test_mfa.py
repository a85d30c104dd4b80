"""TOTP end to end: enrolment, login with a challenge, replay and drift, recovery codes,
brute force, disabling, isolation across tenants, and support staff's reset. The clock is
frozen a few seconds into a 30-second step, and moved step by step."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command

from accounts import selectors
from accounts.models import StaffAuditEntry
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    Api,
    Persona,
    assert_pair,
    problem,
)
from tests.accounts.recovery import (
    challenge_of,
    code_at,
    enroll,
    forged_tokens,
    login_mfa,
    reset_token,
    step_start,
    unverify,
    verification_token,
    verify_email,
)
from tests.admin.conftest import logged_in, readonly_staff, support_staff
from tests.admin.helpers import support

__all__ = ["readonly_staff", "support_staff"]


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(step_start(datetime.now(UTC)), tick=False)
    return time_machine


def now() -> datetime:
    return datetime.now(UTC)


def step(clock, steps: int = 1) -> None:
    clock.shift(timedelta(seconds=30 * steps))


def event_types(persona: Persona) -> list[str]:
    return [e.type for e in selectors.auth_event_list(tenant_id=persona.tenant_uuid)]


def status(api: Api, access: str) -> dict:
    response = api.get(AUTH + "mfa", access)
    assert response.status_code == 200, response.content
    body: dict = response.json()
    return body


# --- enrolment -----------------------------------------------------------------------------------


def test_enrolment_needs_the_password_then_a_first_code(api: Api, alice: Persona, clock) -> None:
    verify_email(api, alice)
    assert status(api, alice.access) == {
        "totp_enabled": False,
        "totp_enabled_at": None,
        "enrollment_pending": False,
        "recovery_codes_left": 0,
    }
    wrong = problem(api.post(AUTH + "mfa/totp", {"password": OTHER_PASSWORD}, alice.access), 400)
    assert wrong["code"] == "wrong_password"
    assert wrong["errors"][0]["attr"] == "password"

    started = api.post(AUTH + "mfa/totp", {"password": alice.password}, alice.access)
    assert started.status_code == 201, started.content
    assert started["Cache-Control"] == "no-store"
    body = started.json()
    assert (body["digits"], body["period"], body["algorithm"]) == (6, 30, "SHA1")
    uri = urlparse(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["Coditect"]
    assert "alice%40example.com" in uri.path or "alice@example.com" in uri.path
    assert status(api, alice.access)["enrollment_pending"] is True
    # Pending: login does not ask for a code yet.
    assert api.login(alice.email, alice.password).status_code == 200

    secret = body["secret"]
    problem(api.post(AUTH + "mfa/totp/confirm", {"code": "000000"}, alice.access), 400)
    confirmed = api.post(AUTH + "mfa/totp/confirm", {"code": code_at(secret, now())}, alice.access)
    assert confirmed.status_code == 200, confirmed.content
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    shown = status(api, alice.access)
    assert shown["totp_enabled"] is True
    assert shown["totp_enabled_at"] is not None
    assert shown["recovery_codes_left"] == 10
    assert "secret" not in shown
    assert "mfa_enabled" in event_types(alice)


def test_a_new_start_replaces_a_pending_secret(api: Api, alice: Persona, clock) -> None:
    verify_email(api, alice)
    first = api.post(AUTH + "mfa/totp", {"password": alice.password}, alice.access).json()
    second = api.post(AUTH + "mfa/totp", {"password": alice.password}, alice.access).json()
    assert first["secret"] != second["secret"]
    stale = {"code": code_at(first["secret"], now())}
    problem(api.post(AUTH + "mfa/totp/confirm", stale, alice.access), 400, "invalid_mfa_code")
    fresh = {"code": code_at(second["secret"], now())}
    assert api.post(AUTH + "mfa/totp/confirm", fresh, alice.access).status_code == 200


def test_states_that_do_not_allow_the_step(api: Api, alice: Persona, clock) -> None:
    code = {"code": "123456"}
    problem(api.post(AUTH + "mfa/totp/confirm", code, alice.access), 409, "mfa_not_enrolling")
    body = {"password": alice.password, "code": "123456"}
    problem(api.post(AUTH + "mfa/totp/disable", body, alice.access), 409, "mfa_not_enabled")
    problem(api.post(AUTH + "mfa/recovery-codes", code, alice.access), 409, "mfa_not_enabled")
    enroll(api, alice, now())
    again = {"password": alice.password}
    problem(api.post(AUTH + "mfa/totp", again, alice.access), 409, "mfa_already_enabled")
    problem(api.post(AUTH + "mfa/totp/confirm", code, alice.access), 409, "mfa_already_enabled")
    problem(api.get(AUTH + "mfa"), 401)


# --- login ---------------------------------------------------------------------------------------


def test_login_asks_for_a_code_after_the_password(api: Api, alice: Persona, clock) -> None:
    secret, _ = enroll(api, alice, now())
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    response = api.login(alice.email, alice.password)
    body = problem(response, 401, "mfa_required")
    assert response["WWW-Authenticate"] == 'Bearer realm="coditect", error="mfa_required"'
    assert "access" not in body
    assert body["mfa_challenge_expires_in"] == 300
    assert body["mfa_methods"] == ["totp", "recovery_code"]
    step(clock)
    done = login_mfa(api, body["mfa_challenge"], code_at(secret, now()))
    assert done.status_code == 200, done.content
    pair = done.json()
    assert_pair(pair)
    assert pair["user"]["id"] == alice.user_id
    assert api.me(pair["access"]).status_code == 200
    (login,) = [e for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)
                if e.type == "login"]  # fmt: skip
    assert login.data == {"method": "totp"}


def test_a_code_is_never_accepted_twice(api: Api, alice: Persona, clock) -> None:
    secret, _ = enroll(api, alice, now())
    # The code that confirmed the enrolment is spent.
    body = problem(login_mfa(api, challenge_of(api, alice), code_at(secret, now())), 401)
    assert body["code"] == "mfa_code_reused"
    step(clock)
    code = code_at(secret, now())
    assert login_mfa(api, challenge_of(api, alice), code).status_code == 200
    # Replayed, even on a fresh challenge: refused, and so is any code of an earlier step.
    problem(login_mfa(api, challenge_of(api, alice), code), 401, "mfa_code_reused")
    earlier = code_at(secret, now(), -1)
    problem(login_mfa(api, challenge_of(api, alice), earlier), 401, "mfa_code_reused")
    step(clock)
    assert login_mfa(api, challenge_of(api, alice), code_at(secret, now())).status_code == 200


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_clock_drift_of_one_step(
    api: Api, alice: Persona, clock, steps: int, accepted: bool
) -> None:
    secret, _ = enroll(api, alice, now())
    step(clock, 5)
    response = login_mfa(api, challenge_of(api, alice), code_at(secret, now(), steps))
    if accepted:
        assert response.status_code == 200, response.content
    else:
        problem(response, 401, "invalid_mfa_code")


def test_recovery_codes_work_once_each(api: Api, alice: Persona, clock) -> None:
    _, codes = enroll(api, alice, now())
    done = login_mfa(api, challenge_of(api, alice), codes[0].upper().replace("-", " "))
    assert done.status_code == 200, done.content
    assert status(api, done.json()["access"])["recovery_codes_left"] == 9
    problem(login_mfa(api, challenge_of(api, alice), codes[0]), 401, "invalid_mfa_code")
    assert login_mfa(api, challenge_of(api, alice), codes[1]).status_code == 200
    methods = [e.data.get("method") for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)
               if e.type == "login"]  # fmt: skip
    assert methods[:2] == ["recovery_code", "recovery_code"]


def test_a_challenge_is_single_use_and_short_lived(
    api: Api, alice: Persona, clock, settings
) -> None:
    secret, _ = enroll(api, alice, now())
    step(clock)
    challenge = challenge_of(api, alice)
    assert login_mfa(api, challenge, code_at(secret, now())).status_code == 200
    step(clock)
    problem(login_mfa(api, challenge, code_at(secret, now())), 401, "invalid_mfa_challenge")

    late = challenge_of(api, alice)
    clock.shift(timedelta(seconds=settings.CODITECT_MFA_CHALLENGE_TTL_S))
    body = problem(login_mfa(api, late, code_at(secret, now())), 401, "mfa_challenge_expired")
    assert body["errors"][0]["attr"] == "challenge"
    # A newer login replaces the challenge of an older one.
    older, newer = challenge_of(api, alice), challenge_of(api, alice)
    problem(login_mfa(api, older, code_at(secret, now())), 401, "invalid_mfa_challenge")
    assert login_mfa(api, newer, code_at(secret, now())).status_code == 200


def test_a_mistyped_code_can_be_corrected_on_the_same_challenge(
    api: Api, alice: Persona, clock
) -> None:
    secret, _ = enroll(api, alice, now())
    step(clock)
    challenge = challenge_of(api, alice)
    right = code_at(secret, now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    body = problem(login_mfa(api, challenge, wrong), 401, "invalid_mfa_code")
    assert body["errors"][0]["attr"] == "code"
    assert login_mfa(api, challenge, right).status_code == 200
    assert "login_failed" in event_types(alice)


@pytest.mark.parametrize(
    "challenge", ["", "x", "a.b.c", "0" * 32 + "." + "0" * 32 + "." + "A" * 43]
)
def test_malformed_or_unknown_challenges(api: Api, alice: Persona, clock, challenge: str) -> None:
    response = login_mfa(api, challenge, "123456")
    if challenge:
        problem(response, 401, "invalid_mfa_challenge")
    else:
        problem(response, 400, "invalid")


@pytest.mark.parametrize(
    "code",
    ["12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", "zzzz-zzzz-zzzz-zzz"],
)
def test_malformed_codes(api: Api, alice: Persona, clock, code: str) -> None:
    enroll(api, alice, now())
    step(clock)
    problem(login_mfa(api, challenge_of(api, alice), code), 401, "invalid_mfa_code")


@pytest.mark.parametrize(
    "body",
    [
        {"challenge": "x"},
        {"code": "123456"},
        {"challenge": 1, "code": "1"},
        {"challenge": "x" * 301, "code": "1"},
    ],
)
def test_bodies_that_are_not_an_attempt(api: Api, body: dict) -> None:
    problem(api.post(AUTH + "login/mfa", body), 400, "invalid")


def test_email_verification_is_checked_after_the_code(
    api: Api, alice: Persona, bob: Persona, clock
) -> None:
    secret, _ = enroll(api, bob, now())
    unverify(bob)  # an account from before a factor needed a verified address
    assert api.post(AUTH + "verify-email/resend", {"email": bob.email}).status_code == 202
    assert api.post(AUTH + "verify-email", {"token": verification_token(alice)}).status_code == 204
    patched = api.client.patch(
        "/api/v5/tenant/settings/",
        {"require_email_verification": True},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice.access}",
    )
    assert patched.status_code == 200
    step(clock)
    # The password alone reveals only that a code is needed; the right code, the rest.
    challenge = challenge_of(api, bob)
    code = code_at(secret, now())
    problem(login_mfa(api, challenge, code), 403, "email_not_verified")
    assert api.post(AUTH + "verify-email", {"token": verification_token(bob)}).status_code == 204
    # Nothing was spent by the refusal: the same challenge and code now complete the login.
    assert login_mfa(api, challenge, code).status_code == 200


# --- brute force ---------------------------------------------------------------------------------


def test_wrong_codes_run_out_the_hourly_budget(api: Api, alice: Persona, clock, settings) -> None:
    secret, _ = enroll(api, alice, now())
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_MFA_FAILURES_PER_HOUR = 3
    settings.CODITECT_THROTTLE_MFA_PER_USER = 1000
    step(clock)
    right = code_at(secret, now())
    wrong = f"{(int(right) + 7) % 1_000_000:06d}"
    for _ in range(3):
        problem(login_mfa(api, challenge_of(api, alice), wrong), 401, "invalid_mfa_code")
    # Now even the right code is refused, whatever the challenge.
    limited = login_mfa(api, challenge_of(api, alice), right)
    problem(limited, 429, "throttled")
    assert 1 <= int(limited["Retry-After"]) <= 3600
    # The budget is the user's, not the client's: other addresses are refused too, and
    # the signed-in endpoints share it.
    problem(login_mfa(api, challenge_of(api, alice), right, REMOTE_ADDR="10.7.7.7"), 429)
    login = api.post(AUTH + "mfa/recovery-codes", {"code": right}, alice.access)
    problem(login, 429, "throttled")
    clock.shift(timedelta(hours=1))
    assert login_mfa(api, challenge_of(api, alice), code_at(secret, now())).status_code == 200


def test_codes_are_limited_per_minute(api: Api, alice: Persona, clock, settings) -> None:
    secret, _ = enroll(api, alice, now())
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MFA_PER_USER = 2
    clock.move_to(datetime.fromtimestamp(int(now().timestamp()) // 60 * 60 + 65, UTC), tick=False)
    challenge = challenge_of(api, alice)
    for _ in range(2):
        problem(login_mfa(api, challenge, "000000"), 401)
    problem(login_mfa(api, challenge, code_at(secret, now())), 429, "throttled")
    clock.shift(timedelta(minutes=1))
    assert login_mfa(api, challenge_of(api, alice), code_at(secret, now())).status_code == 200


def test_wrong_passwords_on_the_factor_endpoints_count_too(
    api: Api, alice: Persona, clock, settings
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_MFA_FAILURES_PER_HOUR = 2
    for _ in range(2):
        problem(api.post(AUTH + "mfa/totp", {"password": OTHER_PASSWORD}, alice.access), 400)
    problem(api.post(AUTH + "mfa/totp", {"password": alice.password}, alice.access), 429)


# --- turning it off, new recovery codes -------------------------------------------------------


def test_disabling_needs_the_password_and_a_code(api: Api, alice: Persona, clock) -> None:
    secret, codes = enroll(api, alice, now())
    step(clock)
    code = code_at(secret, now())
    wrong_password = {"password": OTHER_PASSWORD, "code": code}
    problem(
        api.post(AUTH + "mfa/totp/disable", wrong_password, alice.access), 400, "wrong_password"
    )
    wrong_code = {"password": alice.password, "code": "000000"}
    problem(api.post(AUTH + "mfa/totp/disable", wrong_code, alice.access), 400, "invalid_mfa_code")
    assert status(api, alice.access)["totp_enabled"] is True
    right = {"password": alice.password, "code": codes[3]}  # a recovery code will do
    assert api.post(AUTH + "mfa/totp/disable", right, alice.access).status_code == 204
    assert status(api, alice.access)["totp_enabled"] is False
    assert api.login(alice.email, alice.password).status_code == 200
    assert "mfa_disabled" in event_types(alice)
    # A new enrolment starts from scratch: new secret, new codes.
    step(clock)
    _, fresh = enroll(api, alice, now())
    assert not set(fresh) & set(codes)


def test_new_recovery_codes_replace_the_old(api: Api, alice: Persona, clock) -> None:
    secret, old = enroll(api, alice, now())
    step(clock)
    response = api.post(AUTH + "mfa/recovery-codes", {"code": code_at(secret, now())}, alice.access)
    assert response.status_code == 200, response.content
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    problem(login_mfa(api, challenge_of(api, alice), old[0]), 401, "invalid_mfa_code")
    assert login_mfa(api, challenge_of(api, alice), new[0]).status_code == 200


def test_a_password_reset_leaves_the_second_factor_on(api: Api, alice: Persona, clock) -> None:
    secret, _ = enroll(api, alice, now())
    challenge = challenge_of(api, alice)  # dropped by the reset
    assert api.post(AUTH + "password-reset", {"email": alice.email}).status_code == 202
    body = {"token": reset_token(alice), "new_password": "a-Brand-new-passw0rd!"}
    assert api.post(AUTH + "password-reset/confirm", body).status_code == 204
    step(clock)
    problem(login_mfa(api, challenge, code_at(secret, now())), 401, "invalid_mfa_challenge")
    response = api.login(alice.email, "a-Brand-new-passw0rd!")
    challenge = problem(response, 401, "mfa_required")["mfa_challenge"]
    assert login_mfa(api, challenge, code_at(secret, now())).status_code == 200


def test_a_password_change_voids_a_pending_challenge(api: Api, alice: Persona, clock) -> None:
    secret, _ = enroll(api, alice, now())
    challenge = challenge_of(api, alice)
    change = {"current_password": alice.password, "new_password": OTHER_PASSWORD}
    assert api.post(AUTH + "password", change, alice.access).status_code == 204
    step(clock)
    problem(login_mfa(api, challenge, code_at(secret, now())), 401, "invalid_mfa_challenge")


# --- isolation -----------------------------------------------------------------------------------


def test_another_tenants_codes_and_challenges_reach_nobody_else(
    api: Api, alice: Persona, charlie: Persona, clock
) -> None:
    alice_secret, alice_codes = enroll(api, alice, now())
    charlie_secret, charlie_codes = enroll(api, charlie, now())
    step(clock)
    theirs = challenge_of(api, charlie)
    ours = challenge_of(api, alice)
    # Charlie's code and recovery code do not open Alice's challenge.
    problem(login_mfa(api, ours, code_at(charlie_secret, now())), 401, "invalid_mfa_code")
    problem(login_mfa(api, ours, charlie_codes[0]), 401, "invalid_mfa_code")
    # Charlie's challenge re-addressed to Alice's tenant or user names nobody's.
    for forged in forged_tokens(ours, theirs):
        problem(login_mfa(api, forged, code_at(alice_secret, now())), 401, "invalid_mfa_challenge")
    # Both still work for their own people.
    done = login_mfa(api, theirs, charlie_codes[0])
    assert done.json()["user"]["id"] == charlie.user_id
    assert login_mfa(api, ours, alice_codes[0]).json()["user"]["id"] == alice.user_id


def test_nothing_secret_is_stored_in_clear(api: Api, alice: Persona, clock, tmp_path: Path) -> None:
    secret, codes = enroll(api, alice, now())
    challenge = challenge_of(api, alice)
    assert api.post(AUTH + "password-reset", {"email": alice.email}).status_code == 202
    tokens = [reset_token(alice), verification_token(alice), challenge]
    path = tmp_path / "acme.jsonl"
    call_command("tenants", "export", alice.tenant_id, "--output", str(path))
    stored = b"".join(
        base64.b64decode(json.loads(line).get("value", ""))
        for line in path.read_text().splitlines()
    )
    assert b"alice@example.com" in stored  # the export holds the user record
    for clear in [secret, *codes, *(c.replace("-", "") for c in codes)]:
        assert clear.encode() not in stored
        assert clear.upper().encode() not in stored
    for token in tokens:
        assert token.split(".")[2].encode() not in stored


# --- support staff --------------------------------------------------------------------------------


def test_support_sees_the_factor_and_resets_it_with_an_audit_entry(
    api: Api, alice: Persona, clock, support_staff
) -> None:
    enroll(api, alice, now())
    page = logged_in(support_staff).get(support("user", alice.tenant_id, alice.user_id))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Two-factor (TOTP)" in text
    assert "on since" in text
    assert "10 recovery codes left" in text
    assert support("user_mfa_reset", alice.tenant_id, alice.user_id) in text

    path = support("user_mfa_reset", alice.tenant_id, alice.user_id)
    form = logged_in(support_staff).post(path, {"reason": ""})
    assert form.status_code == 400
    assert status(api, alice.access)["totp_enabled"] is True
    done = logged_in(support_staff).post(path, {"reason": "ticket #7: lost phone"})
    assert done.status_code == 302
    (entry,) = StaffAuditEntry.objects.all()
    assert (entry.action, entry.target_type, entry.target_id, entry.tenant_id, entry.reason) == (
        "mfa_reset", "user", alice.user_id, alice.tenant_uuid, "ticket #7: lost phone"
    )  # fmt: skip
    assert entry.staff_username == "agent"
    assert status(api, alice.access)["totp_enabled"] is False
    assert api.login(alice.email, alice.password).status_code == 200
    (reset,) = [e for e in selectors.auth_event_list(tenant_id=alice.tenant_uuid)
                if e.type == "mfa_reset"]  # fmt: skip
    assert reset.data == {"by": "support", "reason": "ticket #7: lost phone"}
    page = logged_in(support_staff).get(support("user", alice.tenant_id, alice.user_id))
    assert "Two-factor (TOTP)</th><td>off" in page.content.decode()


def test_read_only_support_sees_but_cannot_reset(
    api: Api, alice: Persona, clock, readonly_staff
) -> None:
    enroll(api, alice, now())
    page = logged_in(readonly_staff).get(support("user", alice.tenant_id, alice.user_id))
    assert page.status_code == 200
    path = support("user_mfa_reset", alice.tenant_id, alice.user_id)
    assert path not in page.content.decode()
    assert logged_in(readonly_staff).post(path, {"reason": "try"}).status_code == 403
    assert not StaffAuditEntry.objects.exists()
    assert status(api, alice.access)["totp_enabled"] is True

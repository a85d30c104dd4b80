"""Who holds an address (issue 15, finding 2): an account nobody verified cannot turn on a
second factor, cannot keep the address from the person who proves the mailbox, and a
password reset (which proves it) clears a factor set up before the address was verified."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyotp
import pytest
from django.core import mail

import fdb_backend
from accounts import selectors
from accounts.records import tenants
from accounts.services import user_lock
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    PASSWORD,
    TENANT,
    Api,
    Persona,
    problem,
    register_persona,
    without_request_id,
)
from tests.accounts.recovery import (
    challenge_of,
    enroll,
    mailed_token,
    mails_to,
    reset_token,
    step_start,
    unverify,
    verify_email,
)

VICTIM = "victim@example.net"
VICTIM_PASSWORD = "the real owner's pass 81"


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(step_start(datetime.now(UTC)), tick=False)
    return time_machine


@pytest.fixture
def squatter(api: Api) -> Persona:
    """Mallory registered the victim's address; she cannot read the victim's mail."""
    return register_persona(api, "Mallory", VICTIM, tenant_name="Squat", display_name="M")


def event_types(tenant_id: str) -> list[str]:
    return [e.type for e in selectors.auth_event_list(tenant_id=uuid.UUID(tenant_id))]


def claim_token(address: str) -> str:
    return mailed_token(address, "Confirm")


# --- a second factor needs a verified address ---------------------------------------------------


def test_an_unverified_account_cannot_turn_on_a_second_factor(api: Api, alice: Persona) -> None:
    body = {"password": alice.password}
    refused = problem(api.post(AUTH + "mfa/totp", body, alice.access), 403, "email_not_verified")
    assert "two-factor" in refused["detail"]
    assert api.get(AUTH + "mfa", alice.access).json()["enrollment_pending"] is False
    # The password is still checked first: a wrong one says so, verified or not.
    wrong = {"password": OTHER_PASSWORD}
    problem(api.post(AUTH + "mfa/totp", wrong, alice.access), 400, "wrong_password")
    verify_email(api, alice)
    assert api.post(AUTH + "mfa/totp", body, alice.access).status_code == 201


def test_an_enrolment_pending_from_before_is_not_confirmed_unverified(
    api: Api, alice: Persona, clock
) -> None:
    verify_email(api, alice)
    started = api.post(AUTH + "mfa/totp", {"password": alice.password}, alice.access)
    assert started.status_code == 201
    unverify(alice)
    code = {"code": pyotp.TOTP(started.json()["secret"]).now()}
    problem(api.post(AUTH + "mfa/totp/confirm", code, alice.access), 403, "email_not_verified")
    assert api.get(AUTH + "mfa", alice.access).json()["totp_enabled"] is False


def test_a_password_reset_clears_a_factor_set_up_unverified(
    api: Api, squatter: Persona, clock
) -> None:
    """A squatter's factor from before the rule: the owner of the mailbox resets the
    password and signs in with it alone."""
    enroll(api, squatter, datetime.now(UTC))
    unverify(squatter)
    challenge_of(api, squatter)  # the factor is on
    assert api.post(AUTH + "password-reset", {"email": VICTIM}).status_code == 202
    body = {"token": reset_token(VICTIM), "new_password": VICTIM_PASSWORD}
    assert api.post(AUTH + "password-reset/confirm", body).status_code == 204
    signed_in = api.login(VICTIM, VICTIM_PASSWORD)
    assert signed_in.status_code == 200, signed_in.content
    assert signed_in.json()["user"]["email_verified"] is True
    access = signed_in.json()["access"]
    assert api.get(AUTH + "mfa", access).json() == {
        "totp_enabled": False,
        "totp_enabled_at": None,
        "enrollment_pending": False,
        "recovery_codes_left": 0,
    }
    (reset,) = [
        e
        for e in selectors.auth_event_list(tenant_id=squatter.tenant_uuid)
        if e.type == "password_reset"
    ]
    assert reset.data["mfa_cleared"] is True


def test_a_password_reset_keeps_a_factor_set_up_verified(api: Api, alice: Persona, clock) -> None:
    enroll(api, alice, datetime.now(UTC))  # verifies first
    assert api.post(AUTH + "password-reset", {"email": alice.email}).status_code == 202
    body = {"token": reset_token(alice), "new_password": VICTIM_PASSWORD}
    assert api.post(AUTH + "password-reset/confirm", body).status_code == 204
    problem(api.login(alice.email, VICTIM_PASSWORD), 401, "mfa_required")


# --- an unverified account does not hold the address against its owner -------------------------


def test_the_invited_owner_of_an_address_claims_it_from_a_squatter(
    api: Api, alice: Persona, squatter: Persona
) -> None:
    invitation = api.invite(alice.access, VICTIM).json()["token"]
    mail.outbox.clear()
    answer = api.register(VICTIM, VICTIM_PASSWORD, invitation=invitation)
    problem(answer, 409, "email_taken")
    # Until the mailbox proves the claim, nothing changes for anyone.
    assert api.me(squatter.access).status_code == 200
    problem(api.login(VICTIM, VICTIM_PASSWORD), 401, "invalid_credentials")
    members = api.get(TENANT + "members/", alice.access).json()["results"]
    assert VICTIM in [m["email"] for m in members]  # pending, like any unverified member

    assert api.post(AUTH + "verify-email", {"token": claim_token(VICTIM)}).status_code == 204
    # The squatter is gone: her tokens and her password open nothing any more.
    problem(api.me(squatter.access), 401)
    problem(api.refresh(squatter.refresh), 401)
    problem(api.login(VICTIM, squatter.password), 401, "invalid_credentials")
    signed_in = api.login(VICTIM, VICTIM_PASSWORD)
    assert signed_in.status_code == 200, signed_in.content
    user = signed_in.json()["user"]
    assert (user["tenant_id"], user["email"], user["email_verified"]) == (
        alice.tenant_id,
        VICTIM,
        True,
    )
    # Her team, with nobody left in it, is suspended (its data kept for support).
    tenant = tenants().get(fdb_backend.get_database(), squatter.tenant_uuid)
    assert tenant is not None
    assert (tenant.status, tenant.status_reason) == ("suspended", "email_released")
    assert {"email_released", "tenant_suspended"} <= set(event_types(squatter.tenant_id))
    assert "email_verified" in event_types(alice.tenant_id)


def test_a_plain_registration_claims_an_unverified_address_too(api: Api, squatter: Persona) -> None:
    mail.outbox.clear()
    problem(api.register(VICTIM, VICTIM_PASSWORD, tenant_name="Mine"), 409, "email_taken")
    assert api.post(AUTH + "verify-email", {"token": claim_token(VICTIM)}).status_code == 204
    signed_in = api.login(VICTIM, VICTIM_PASSWORD)
    assert signed_in.status_code == 200, signed_in.content
    assert signed_in.json()["user"]["tenant_id"] != squatter.tenant_id
    assert signed_in.json()["user"]["role"] == "owner"


def test_the_409_is_the_same_for_verified_and_unverified_holders(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    verify_email(api, charlie)
    mail.outbox.clear()
    taken_verified = problem(api.register(charlie.email, VICTIM_PASSWORD), 409, "email_taken")
    taken_unverified = problem(api.register(alice.email, VICTIM_PASSWORD), 409, "email_taken")
    assert without_request_id(taken_verified) == without_request_id(taken_unverified)
    # Only the unverified holder's address gets a claim link; the answer does not say so.
    assert mails_to(alice.email, "Confirm")
    assert not mails_to(charlie.email)


def test_a_claim_loses_to_an_address_verified_meanwhile(api: Api, squatter: Persona) -> None:
    """The mailbox owner confirmed the existing account instead (its own link): that
    account is the address's, and the claim is refused."""
    squatter_link = claim_token(VICTIM)  # the registration's verification mail
    mail.outbox.clear()
    problem(api.register(VICTIM, VICTIM_PASSWORD), 409, "email_taken")
    claim = claim_token(VICTIM)
    assert api.post(AUTH + "verify-email", {"token": squatter_link}).status_code == 204
    problem(api.post(AUTH + "verify-email", {"token": claim}), 409, "email_taken")
    assert api.me(squatter.access).status_code == 200
    problem(api.login(VICTIM, VICTIM_PASSWORD), 401, "invalid_credentials")


def test_a_locked_holder_is_not_claimed(api: Api, squatter: Persona) -> None:
    user_lock(tenant_id=squatter.tenant_uuid, user_id=squatter.user_uuid, reason="abuse")
    mail.outbox.clear()
    problem(api.register(VICTIM, VICTIM_PASSWORD), 409, "email_taken")
    assert not mails_to(VICTIM)


def test_the_only_owner_of_a_team_with_members_is_not_released(
    api: Api, alice: Persona, squatter: Persona
) -> None:
    invitation = api.invite(squatter.access, "crony@example.org").json()["token"]
    assert api.register("crony@example.org", PASSWORD, invitation=invitation).status_code == 201
    mail.outbox.clear()
    invited = api.invite(alice.access, VICTIM).json()["token"]
    problem(api.register(VICTIM, VICTIM_PASSWORD, invitation=invited), 409, "email_taken")
    refused = problem(api.post(AUTH + "verify-email", {"token": claim_token(VICTIM)}), 409)
    assert "Reset its password" in refused["detail"]
    assert api.me(squatter.access).status_code == 200


def test_claims_mail_the_address_at_most_the_hourly_budget(
    api: Api, squatter: Persona, settings
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MAIL_PER_EMAIL = 2
    settings.CODITECT_THROTTLE_MAIL_PER_ADDRESS = 1000
    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS = 1000
    mail.outbox.clear()
    for _ in range(4):
        problem(api.register(VICTIM, VICTIM_PASSWORD), 409, "email_taken")
    assert len(mails_to(VICTIM)) == 2

"""Email verification end to end: the mail sent at registration, confirming its token,
resending, and a tenant that requires verified emails before login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail

from accounts import selectors
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    TENANT,
    Api,
    Persona,
    problem,
    register_persona,
    without_request_id,
)
from tests.accounts.recovery import forged_tokens, mails_to, verification_token

SETTINGS = TENANT + "settings/"


def verify(api: Api, token: object) -> Any:
    return api.post(AUTH + "verify-email", {"token": token})


def verified(api: Api, persona: Persona) -> bool:
    response = api.me(persona.access)
    assert response.status_code == 200, response.content
    return bool(response.json()["email_verified"])


def event_types(persona: Persona) -> list[str]:
    return [e.type for e in selectors.auth_event_list(tenant_id=persona.tenant_uuid)]


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(datetime.now(UTC).replace(microsecond=0), tick=False)
    return time_machine


# --- the mail and the token -------------------------------------------------------------------


def test_register_mails_a_token_that_verifies_the_address(api: Api, alice: Persona) -> None:
    (message,) = mails_to(alice.email)
    assert message.subject == "Confirm your email address for Acme on Coditect"
    assert message.from_email == "Coditect <noreply@localhost>"
    assert "Hello Alice," in message.body
    assert "http://127.0.0.1:8000/verify-email#token=" in message.body
    assert "expires in 3 days" in message.body
    assert alice.user["email_verified"] is False
    assert not verified(api, alice)

    response = verify(api, verification_token(alice))
    assert response.status_code == 204, response.content
    assert verified(api, alice)
    assert event_types(alice)[0] == "email_verified"
    # The flag is in every user object: login answers with it too.
    assert api.login(alice.email, alice.password).json()["user"]["email_verified"] is True


def test_a_token_works_once(api: Api, alice: Persona) -> None:
    token = verification_token(alice)
    assert verify(api, token).status_code == 204
    body = problem(verify(api, token), 400, "invalid_verification_token")
    assert body["errors"] == [
        {"attr": "token", "code": "invalid_verification_token", "detail": body["detail"]}
    ]


def test_an_expired_token_is_refused_and_changes_nothing(api: Api, frozen, settings) -> None:
    dora = register_persona(api, "Dora", "dora@example.com", tenant_name="Dora's")
    token = verification_token(dora)
    frozen.shift(timedelta(seconds=settings.CODITECT_EMAIL_VERIFICATION_TTL_S))
    problem(verify(api, token), 400, "verification_token_expired")
    fresh = api.login(dora.email, dora.password).json()  # the access token expired too
    assert fresh["user"]["email_verified"] is False
    # A new token (resend) works where the old one expired.
    assert api.post(AUTH + "verify-email/resend", None, fresh["access"]).status_code == 202
    assert verify(api, verification_token(dora)).status_code == 204


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "a.b.c",
        "0" * 32 + "." + "0" * 32 + "." + "A" * 43,  # well formed, but nobody's
        "x" * 300,
    ],
)
def test_malformed_and_unknown_tokens(api: Api, alice: Persona, token: str) -> None:
    problem(verify(api, token), 400, "invalid_verification_token")
    assert not verified(api, alice)


@pytest.mark.parametrize(
    "body", [{"token": 12}, {"token": None}, {}, {"token": ""}, {"token": "x" * 301}]
)
def test_bodies_that_are_not_a_token(api: Api, body: dict) -> None:
    problem(api.post(AUTH + "verify-email", body), 400, "invalid")


def test_a_token_changed_by_one_character_is_refused(api: Api, alice: Persona) -> None:
    token = verification_token(alice)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    problem(verify(api, forged), 400, "invalid_verification_token")
    problem(verify(api, token.upper()), 400, "invalid_verification_token")
    assert verify(api, token).status_code == 204


# --- resending ----------------------------------------------------------------------------------


def test_resend_replaces_the_previous_token(api: Api, alice: Persona) -> None:
    first = verification_token(alice)
    assert api.post(AUTH + "verify-email/resend", None, alice.access).status_code == 202
    second = verification_token(alice)
    assert second != first
    assert len(mails_to(alice.email)) == 2
    problem(verify(api, first), 400, "invalid_verification_token")
    assert verify(api, second).status_code == 204
    problem(
        api.post(AUTH + "verify-email/resend", None, alice.access), 409, "email_already_verified"
    )


def test_resend_by_email_answers_alike_for_unknown_emails(api: Api, alice: Persona) -> None:
    known = api.post(AUTH + "verify-email/resend", {"email": "ALICE@example.com"})
    unknown = api.post(AUTH + "verify-email/resend", {"email": "nobody@example.com"})
    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.content == unknown.content == b""
    assert len(mails_to(alice.email)) == 2
    assert mails_to("nobody@example.com") == []
    assert verify(api, verification_token(alice)).status_code == 204
    # Verified: nothing more is sent, and the answer stays the same.
    assert api.post(AUTH + "verify-email/resend", {"email": alice.email}).status_code == 202
    assert len(mails_to(alice.email)) == 2


def test_resend_wants_a_bearer_token_or_an_email(api: Api, alice: Persona) -> None:
    problem(api.post(AUTH + "verify-email/resend", None), 400, "invalid")
    both = api.post(AUTH + "verify-email/resend", {"email": alice.email}, alice.access)
    problem(both, 400, "invalid")
    problem(api.post(AUTH + "verify-email/resend", None, "garbage"), 401)
    problem(api.post(AUTH + "verify-email/resend", {"email": "not an email"}), 400, "invalid")


def test_resend_is_throttled_per_email_alike_for_unknown_emails(
    api: Api, alice: Persona, settings, frozen
) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MAIL_PER_EMAIL = 2
    for email in (alice.email, "nobody@example.com"):
        for n in range(2):
            body = {"email": email}
            assert (
                api.post(AUTH + "verify-email/resend", body, REMOTE_ADDR=f"10.0.{n}.1").status_code
                == 202
            )
    known = api.post(AUTH + "verify-email/resend", {"email": alice.email}, REMOTE_ADDR="10.9.9.9")
    unknown = api.post(AUTH + "verify-email/resend", {"email": "nobody@example.com"})
    assert without_request_id(problem(known, 429, "throttled")) == without_request_id(
        problem(unknown, 429, "throttled")
    )
    # The signed-in resend counts against the same address.
    problem(api.post(AUTH + "verify-email/resend", None, alice.access), 429, "throttled")
    assert 1 <= int(known["Retry-After"]) <= 3600
    frozen.shift(timedelta(hours=1))
    access = api.login(alice.email, alice.password).json()["access"]
    assert api.post(AUTH + "verify-email/resend", None, access).status_code == 202


def test_resend_is_throttled_per_client_address(api: Api, alice: Persona, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_MAIL_PER_ADDRESS = 3
    for n in range(3):
        body = {"email": f"someone{n}@example.com"}
        assert (
            api.post(AUTH + "verify-email/resend", body, REMOTE_ADDR="10.1.1.1").status_code == 202
        )
    body = {"email": alice.email}
    problem(api.post(AUTH + "verify-email/resend", body, REMOTE_ADDR="10.1.1.1"), 429, "throttled")
    assert api.post(AUTH + "verify-email/resend", body, REMOTE_ADDR="10.2.2.2").status_code == 202


def test_confirmations_are_throttled_per_client_address(api: Api, settings) -> None:
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_TOKENS_PER_ADDRESS = 2
    for _ in range(2):
        problem(verify(api, "junk"), 400, "invalid_verification_token")
    problem(verify(api, "junk"), 429, "throttled")
    problem(api.post(AUTH + "verify-email", {"token": "junk"}, REMOTE_ADDR="10.3.3.3"), 400)


# --- the tenant setting ------------------------------------------------------------------------


def require_verification(api: Api, owner: Persona, on: bool = True, **extra: Any) -> Any:
    return api.client.patch(
        SETTINGS,
        {"require_email_verification": on},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {owner.access}",
        **extra,
    )


def test_the_setting_is_off_by_default_and_readable_by_members(
    api: Api, alice: Persona, bob: Persona
) -> None:
    for persona in (alice, bob):
        response = api.get(SETTINGS, persona.access)
        assert response.status_code == 200, response.content
        assert response.json() == {"require_email_verification": False}
        assert response["ETag"].strip('"').isdigit()
    assert api.get(TENANT + "settings", alice.access).status_code == 200
    problem(api.get(SETTINGS), 401)


def test_only_owners_and_admins_change_it_and_only_once_verified(
    api: Api, alice: Persona, bob: Persona
) -> None:
    problem(require_verification(api, bob), 403, "forbidden")
    body = problem(require_verification(api, alice), 403, "email_not_verified")
    assert body["errors"][0]["attr"] == "require_email_verification"
    assert api.get(SETTINGS, alice.access).json()["require_email_verification"] is False
    assert verify(api, verification_token(alice)).status_code == 204
    response = require_verification(api, alice)
    assert response.status_code == 200, response.content
    assert response.json() == {"require_email_verification": True}
    assert "tenant_settings_changed" in event_types(alice)


@pytest.mark.parametrize(
    "body", [{"require_email_verification": "yes"}, {"require_email_verification": 1}, {"x": 1}]
)
def test_the_setting_takes_a_json_boolean(api: Api, alice: Persona, body: dict) -> None:
    response = api.client.patch(
        SETTINGS, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice.access}"
    )
    problem(response, 400, "invalid")


def test_if_match_guards_the_setting(api: Api, alice: Persona) -> None:
    assert verify(api, verification_token(alice)).status_code == 204
    etag = api.get(SETTINGS, alice.access)["ETag"]
    problem(require_verification(api, alice, HTTP_IF_MATCH='"999"'), 412, "version_conflict")
    problem(require_verification(api, alice, HTTP_IF_MATCH="garbage"), 412, "version_conflict")
    changed = require_verification(api, alice, HTTP_IF_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    problem(require_verification(api, alice, False, HTTP_IF_MATCH=etag), 412, "version_conflict")


def test_a_required_verification_gates_login_after_the_password(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    assert verify(api, verification_token(alice)).status_code == 204
    assert require_verification(api, alice).status_code == 200
    # Open sessions stay; the next login is refused, only after the right password.
    assert api.me(bob.access).status_code == 200
    problem(api.login(bob.email, OTHER_PASSWORD), 401, "invalid_credentials")
    problem(api.login(bob.email, bob.password), 403, "email_not_verified")
    # Signed out, Bob asks for a new mail by address, confirms it and gets in.
    assert api.post(AUTH + "verify-email/resend", {"email": bob.email}).status_code == 202
    assert verify(api, verification_token(bob)).status_code == 204
    assert api.login(bob.email, bob.password).status_code == 200
    assert api.login(alice.email, alice.password).status_code == 200
    # Another tenant's setting is its own: Charlie is unverified and logs in.
    assert api.login(charlie.email, charlie.password).status_code == 200
    assert api.get(SETTINGS, charlie.access).json()["require_email_verification"] is False


def test_joining_a_tenant_that_requires_verification(api: Api, alice: Persona) -> None:
    assert verify(api, verification_token(alice)).status_code == 204
    assert require_verification(api, alice).status_code == 200
    invitation = api.invite(alice.access, "erin@example.com").json()["token"]
    response = api.register("erin@example.com", invitation=invitation)
    body = problem(response, 403, "email_not_verified")
    assert "access" not in body
    assert "Your account is created" in body["detail"]
    problem(api.login("erin@example.com", alice.password), 403, "email_not_verified")
    assert verify(api, verification_token("erin@example.com")).status_code == 204
    logged_in = api.login("erin@example.com", alice.password)
    assert logged_in.status_code == 200
    assert logged_in.json()["user"]["email_verified"] is True


def test_other_tenants_cannot_use_or_change_anything(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    alices = verification_token(alice)
    charlies = verification_token(charlie)
    # Charlie's secret under Alice's tenant or user names nobody's token.
    for forged in forged_tokens(alices, charlies):
        problem(verify(api, forged), 400, "invalid_verification_token")
    assert not verified(api, alice)
    assert verify(api, charlies).status_code == 204
    assert not verified(api, alice)
    # Charlie's setting changes Globex only.
    assert require_verification(api, charlie).status_code == 200
    assert api.get(SETTINGS, alice.access).json()["require_email_verification"] is False
    assert api.login(alice.email, alice.password).status_code == 200


def test_mail_goes_to_the_outbox_in_the_users_tenant_context(api: Api) -> None:
    mail.outbox.clear()
    register_persona(api, "Fay", "fay@example.com", tenant_name="<Fay & Co>", display_name="Fay")
    (message,) = mail.outbox
    assert message.subject == "Confirm your email address for <Fay & Co> on Coditect"
    assert "for <Fay & Co> on Coditect" in message.body
    (html, _), *_ = message.alternatives  # type: ignore[attr-defined]
    assert "&lt;Fay &amp; Co&gt;" in html
    assert "<Fay & Co>" not in html

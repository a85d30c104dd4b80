"""Helpers of the recovery and second-factor tests: mail as a user reads it, TOTP codes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from django.core import mail

import fdb_backend
from accounts.records import users
from tests.accounts.helpers import AUTH, Api, Persona

TOKEN = re.compile(r"#token=([0-9a-f]{32}\.[0-9a-f]{32}\.[A-Za-z0-9_-]{43})")
PERIOD = 30


def forged_tokens(own: str, foreign: str) -> list[str]:
    """The foreign token's secret re-addressed to the own token's tenant, user or both
    (tokens are ``tenant.user.secret``): each names nobody's token."""
    tenant_a, user_a, _ = own.split(".")
    tenant_b, user_b, secret_b = foreign.split(".")
    return [
        f"{tenant_a}.{user_a}.{secret_b}",
        f"{tenant_b}.{user_a}.{secret_b}",
        f"{tenant_a}.{user_b}.{secret_b}",
    ]


def mails_to(address: str, subject_has: str = "") -> list[Any]:
    return [
        m for m in mail.outbox if address.lower() in [t.lower() for t in m.to]
        and subject_has in m.subject
    ]  # fmt: skip


def mailed_token(address: str, subject_has: str) -> str:
    """The token of the newest such mail, read from its link as a person would click it;
    the HTML part carries the same link."""
    found = mails_to(address, subject_has)
    assert found, [(m.to, m.subject) for m in mail.outbox]
    message = found[-1]
    match = TOKEN.search(message.body)
    assert match, message.body
    (html, kind), *_ = message.alternatives
    assert kind == "text/html"
    assert f"#token={match.group(1)}" in html
    return match.group(1)


def verification_token(persona: Persona | str) -> str:
    return mailed_token(persona if isinstance(persona, str) else persona.email, "Confirm")


def reset_token(persona: Persona | str) -> str:
    return mailed_token(persona if isinstance(persona, str) else persona.email, "Reset")


def step_start(now: datetime) -> datetime:
    """A moment 5 s into a TOTP step, a little after ``now``."""
    seconds = int(now.timestamp()) // PERIOD * PERIOD + PERIOD + 5
    return datetime.fromtimestamp(seconds, UTC)


def code_at(secret: str, moment: datetime, steps: int = 0) -> str:
    """The code an authenticator shows at ``moment`` shifted by ``steps`` periods."""
    step = int((moment + timedelta(seconds=steps * PERIOD)).timestamp()) // PERIOD
    return pyotp.TOTP(secret).generate_otp(step)


def verify_email(api: Api, persona: Persona) -> None:
    """Confirm ``persona``'s address with the newest verification mail (asking for one when
    the outbox has none), unless it is confirmed already."""
    if api.me(persona.access).json()["email_verified"]:
        return
    if not mails_to(persona.email, "Confirm"):
        resent = api.post(AUTH + "verify-email/resend", None, persona.access)
        assert resent.status_code == 202, resent.content
    response = api.post(AUTH + "verify-email", {"token": verification_token(persona)})
    assert response.status_code == 204, response.content


def unverify(persona: Persona) -> None:
    """Mark ``persona``'s address unverified in storage: an account from before a second
    factor needed a verified address (the API has no way back)."""

    @fdb_backend.transactional
    def write(tr: Any) -> None:
        people = users(persona.tenant_uuid)
        user = people.get(tr, persona.user_uuid)
        assert user is not None
        people.save(tr, dataclasses.replace(user, email_verified_at=None))

    write(fdb_backend.get_database())


def enroll(api: Api, persona: Persona, moment: datetime) -> tuple[str, list[str]]:
    """Turn TOTP on for ``persona`` at ``moment`` (the clock is frozen there): its secret
    and recovery codes. The confirming code's step is spent. The address is verified first,
    as a second factor needs it."""
    verify_email(api, persona)
    started = api.post(AUTH + "mfa/totp", {"password": persona.password}, persona.access)
    assert started.status_code == 201, started.content
    secret = started.json()["secret"]
    confirmed = api.post(
        AUTH + "mfa/totp/confirm", {"code": code_at(secret, moment)}, persona.access
    )
    assert confirmed.status_code == 200, confirmed.content
    return secret, confirmed.json()["recovery_codes"]


def challenge_of(api: Api, persona: Persona, **extra: Any) -> str:
    """Log in with the password and return the mfa_required challenge."""
    response = api.login(persona.email, persona.password, **extra)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "mfa_required", body
    return str(body["mfa_challenge"])


def login_mfa(api: Api, challenge: str, code: str, **extra: Any) -> Any:
    return api.post(AUTH + "login/mfa", {"challenge": challenge, "code": code}, **extra)

"""Password reset: a token mailed on request sets a new password and signs out everywhere.

The request answers the same for known and unknown emails, after the same work: it counts
the throttles and hands the rest (finding the account, storing the token, the mail) to the
background thread (``background_run``), whether or not an account exists. One reset token
per user: a new request replaces the previous token. Reset does not log in, so a second
factor still guards the next login.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.mail import token_mail_send
from accounts.passwords import password_hash, password_problems
from accounts.records import Tenant, User, tenants, users
from accounts.services.common import (
    Client,
    EventStamp,
    background_run,
    email_key,
    revoke_user_sessions,
)
from accounts.services.login import find_by_email
from accounts.services.mfa import without_factor
from accounts.services.onetime import (
    RESET,
    onetime_holder,
    onetime_mail_throttle,
    onetime_new,
    onetime_presented,
    password_bound,
)


def password_reset_request(*, db: Any, email: str, client: Client) -> None:
    """Mail a reset token to the account of ``email``, if there is one.

    Answers (returns, or raises 429 throttled) exactly alike for unknown emails, after the
    same work: the throttles count the email and the client address whether or not an
    account exists, and everything that depends on the account happens after the answer,
    on the background thread (issue 15, finding 9: the store and mail work on the request
    made a known email answer measurably slower).
    """
    key = email_key(email)
    onetime_mail_throttle(db=db, scope="reset_mail", email_key=key, client=client)
    stamp = EventStamp.fresh(client=client)
    background_run(lambda: _reset_mail(db=db, key=key, stamp=stamp), name="password_reset_mail")


def _reset_mail(*, db: Any, key: str, stamp: EventStamp) -> None:
    """Store a reset token on the account of ``key`` and mail it; nothing when none."""
    found, _ = find_by_email(db, key)
    if found is None:
        return
    token, secret = onetime_new(tenant_id=found.tenant_id, subject_id=found.id)
    expires_at = stamp.at + timedelta(seconds=settings.CODITECT_PASSWORD_RESET_TTL_S)

    @fdb_backend.transactional
    def store(tr: Any) -> tuple[User, Tenant] | None:
        people = users(found.tenant_id)
        user, tenant = people.get(tr, found.id), tenants().get(tr, found.tenant_id)
        if user is None or tenant is None:
            return None
        digest = RESET.digest(secret, bound=password_bound(user))
        saved = people.save(
            tr,
            dataclasses.replace(user, reset_token_hash=digest, reset_token_expires_at=expires_at),
        )
        stamp.write(tr, tenant_id=tenant.id, type="password_reset_requested", user_id=user.id)
        return saved, tenant

    stored = store(db)
    if stored is None:
        return
    user, tenant = stored
    token_mail_send(
        template="password_reset",
        user=user,
        tenant=tenant,
        token=token,
        page="/reset-password",
        valid_for_s=settings.CODITECT_PASSWORD_RESET_TTL_S,
    )


def password_reset_confirm(*, db: Any, token: str, new_password: str, client: Client) -> None:
    """Set ``new_password`` with a reset token: the token is spent, every auth session of
    the user is revoked, a pending MFA challenge is dropped, and the address counts as
    verified (the token came through it).

    Raises AccountError 400 invalid_reset_token (malformed, unknown, used, replaced by a
    newer one, issued before the password last changed, another tenant's) /
    reset_token_expired / invalid (password policy, attr
    new_password), 429 throttled. A refused request changes nothing.
    """
    parsed = onetime_presented(db=db, token=token, kind=RESET, client=client)
    stamp = EventStamp.fresh(client=client)
    now = stamp.at
    # The token is checked before the (costly) hash, so junk tokens cost no Argon2 time.
    user = onetime_holder(db, parsed, kind=RESET, now=now)
    problems = password_problems(
        password=new_password, email=user.email, display_name=user.display_name
    )
    if problems:
        raise AccountError(400, "invalid", " ".join(problems), attr="new_password")
    hashed = password_hash(password=new_password)

    @fdb_backend.transactional
    def reset(tr: Any) -> None:
        people = users(parsed.tenant_id)
        current = onetime_holder(tr, parsed, kind=RESET, now=now)
        # The reset proves the mailbox: the address counts as verified from now on, and a
        # second factor set up before anyone proved it goes (issue 15, finding 2): it may be
        # a squatter's, who registered this address and would otherwise keep its owner out.
        unproven = _factor_unproven(current)
        kept = without_factor(current) if unproven else current
        people.save(
            tr,
            dataclasses.replace(
                kept,
                password_hash=hashed,
                password_changed_at=now,
                reset_token_hash="",
                reset_token_expires_at=None,
                mfa_challenge_hash="",
                mfa_challenge_expires_at=None,
                email_verified_at=current.email_verified_at or now,
            ),
        )
        revoked = revoke_user_sessions(
            tr, tenant_id=parsed.tenant_id, user_id=current.id, reason="password_reset", now=now
        )
        details = {"mfa_cleared": True} if unproven else {}
        stamp.write(
            tr,
            tenant_id=parsed.tenant_id,
            type="password_reset",
            user_id=current.id,
            sessions=revoked,
            **details,
        )

    reset(db)


def _factor_unproven(user: User) -> bool:
    """Whether ``user`` has a second factor (on, or an enrolment pending) set up while the
    address was unverified: before it was verified, or with it still unverified."""
    if not user.totp_secret and user.totp_enabled_at is None:
        return False
    if user.email_verified_at is None:
        return True
    return user.totp_enabled_at is not None and user.totp_enabled_at < user.email_verified_at

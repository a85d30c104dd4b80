"""Login by email and password: throttled, constant-time for unknown emails, audited.

With a second factor on, the right password opens no session: it answers 401 mfa_required
with a short-lived challenge, which ``user_login_mfa`` (services/mfa.py) completes.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import (
    ACCOUNT_LOCKED,
    EMAIL_NOT_VERIFIED,
    INVALID_CREDENTIALS,
    TENANT_SUSPENDED,
    AccountError,
    MfaRequired,
    fail,
    throttled,
)
from accounts.passwords import password_check, password_check_dummy
from accounts.records import Tenant, User, email_index, tenants, users
from accounts.services.common import (
    Client,
    EventStamp,
    SessionIds,
    auth_session_open,
    email_key,
)
from accounts.services.issue import TokenPair, token_pair_issue
from accounts.services.onetime import CHALLENGE, onetime_new, password_bound
from accounts.throttle import Bucket, Throttled, throttle_check, throttle_hit, throttle_record
from core.metrics import counts_outcomes
from fdb_backend.records import resolve_unique

HOUR = 3600
MINUTE = 60


@dataclass(frozen=True)
class LoggedIn:
    tokens: TokenPair
    user: User
    tenant: Tenant


def _throttled(error: Throttled) -> AccountError:
    return throttled(error.retry_after)


@fdb_backend.transactional
def find_by_email(tr: Any, key: str) -> tuple[User | None, Tenant | None]:
    """The user whose casefolded email is ``key`` (``email_key``), with their tenant."""
    pointer = resolve_unique(tr, email_index(), (key,))
    if pointer is None:
        return None, None
    tenant_id, user_id = pointer
    return users(tenant_id).get(tr, user_id), tenants().get(tr, tenant_id)


def password_attempt_throttle(*, db: Any, email_key: str, client: Client) -> Bucket:
    """Count one password attempt on the account of ``email_key``; raise 429 throttled when
    the email or the client address is over its per-minute limit, or the account has used
    its hourly failure budget. Returns the failure bucket, which ``password_failure_record``
    charges when the password is wrong.

    Every check of a password an account holder types (login, and the current password of
    a password change) goes through here before its Argon2 hash, so one budget bounds the
    guesses, and the hashing, whoever holds the request.
    """
    failures = Bucket("login_failures", email_key, settings.CODITECT_LOGIN_FAILURES_PER_HOUR, HOUR)
    try:
        throttle_hit(
            db=db,
            buckets=[
                Bucket(
                    "login_email", email_key, settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL, MINUTE
                ),
                Bucket(
                    "login_address", client.ip, settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS, MINUTE
                ),
            ],
        )
        throttle_check(db=db, buckets=[failures])
    except Throttled as error:
        raise _throttled(error) from None
    return failures


def password_failure_record(
    db: Any,
    *,
    failures: Bucket,
    stamp: EventStamp,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    reason: str = "",
) -> None:
    """A wrong password: charged to the account's hourly budget, logged as login_failed."""
    throttle_record(db=db, buckets=[failures])
    details = {"reason": reason} if reason else {}
    stamp.write(db, tenant_id=tenant_id, type="login_failed", user_id=user_id, **details)


@counts_outcomes("password")
def user_login(*, db: Any, email: str, password: str, client: Client) -> LoggedIn:
    """Check the password and open a new auth session (one per login per device).

    Unknown email and wrong password raise the same 401 invalid_credentials after the same
    work; a locked account, a suspended tenant, a second factor (MfaRequired, 401
    mfa_required) and an unverified email in a tenant that requires one (403
    email_not_verified) are only revealed to the right password.
    Raises AccountError 401/403/429.
    """
    key = email_key(email)
    failures = password_attempt_throttle(db=db, email_key=key, client=client)
    user, tenant = find_by_email(db, key)
    now = datetime.now(UTC)
    if user is None or tenant is None:
        password_check_dummy(password=password)
        throttle_record(db=db, buckets=[failures])
        raise fail(INVALID_CREDENTIALS)
    check = password_check(encoded=user.password_hash, password=password)
    stamp = EventStamp.fresh(client=client, at=now)
    if not check.ok:
        password_failure_record(
            db, failures=failures, stamp=stamp, tenant_id=tenant.id, user_id=user.id
        )
        raise fail(INVALID_CREDENTIALS)
    if user.locked:
        raise fail(ACCOUNT_LOCKED)
    if tenant.status != "active":
        raise fail(TENANT_SUSPENDED)
    new_hash = check.new_hash
    if user.totp_enabled_at is not None:
        raise _mfa_challenge(db, user=user, new_hash=new_hash, now=now)
    if tenant.require_email_verification and user.email_verified_at is None:
        raise fail(EMAIL_NOT_VERIFIED)

    ids = SessionIds.fresh()

    @fdb_backend.transactional
    def open_session(tr: Any) -> Any:
        current = users(tenant.id).get(tr, user.id)
        if current is None:  # removed between the check and now
            raise fail(INVALID_CREDENTIALS)
        if current.locked:
            raise fail(ACCOUNT_LOCKED)
        if new_hash is not None and current.password_hash == user.password_hash:
            users(tenant.id).save(tr, dataclasses.replace(current, password_hash=new_hash))
        return auth_session_open(
            tr, tenant_id=tenant.id, ids=ids, user_id=user.id, client=client, now=now,
            login=stamp,
        )  # fmt: skip

    session = open_session(db)
    return LoggedIn(
        tokens=token_pair_issue(db=db, tenant_id=tenant.id, session=session, now=now),
        user=user,
        tenant=tenant,
    )


def _mfa_challenge(db: Any, *, user: User, new_hash: str | None, now: datetime) -> MfaRequired:
    """Store a new challenge on the user (replacing any earlier one) and return the error
    that hands it out."""
    token, secret = onetime_new(tenant_id=user.tenant_id, subject_id=user.id)
    ttl = settings.CODITECT_MFA_CHALLENGE_TTL_S

    @fdb_backend.transactional
    def store(tr: Any) -> None:
        people = users(user.tenant_id)
        current = people.get(tr, user.id)
        if current is None:  # removed between the check and now
            raise fail(INVALID_CREDENTIALS)
        if current.locked:
            raise fail(ACCOUNT_LOCKED)
        # Like open_session: upgrade the hash unless the password changed meanwhile.
        hashed = (
            new_hash
            if new_hash is not None and current.password_hash == user.password_hash
            else current.password_hash
        )
        people.save(
            tr,
            dataclasses.replace(
                current,
                password_hash=hashed,
                mfa_challenge_hash=CHALLENGE.digest(secret, bound=password_bound(current)),
                mfa_challenge_expires_at=now + timedelta(seconds=ttl),
            ),
        )

    store(db)
    return MfaRequired(challenge=token, expires_in=ttl)

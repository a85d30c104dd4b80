"""The second factor: TOTP (RFC 6238) with single-use recovery codes.

Enrolment stores a secret (sealed, see ``totp_seal``) and shows it once with its otpauth
URI; the first valid code turns the factor on and hands out ten recovery codes, stored as
digests. A code of the current 30-second step or of the step either side is accepted
(clock drift), and never twice: the user keeps the last step spent, and a code of that step
or an earlier one is refused. Every code check counts against per-user throttles, and a
wrong code also against a per-hour failure budget (docs/accounts.md).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import os
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

import fdb_backend
from accounts.errors import (
    ACCOUNT_LOCKED,
    EMAIL_NOT_VERIFIED,
    INVALID_MFA_CODE,
    MFA_ALREADY_ENABLED,
    MFA_CODE_REQUIRED,
    MFA_CODE_REUSED,
    MFA_NOT_ENABLED,
    MFA_NOT_ENROLLING,
    SESSION_REVOKED,
    TENANT_SUSPENDED,
    WRONG_PASSWORD,
    AccountError,
    fail,
    mfa_code_error,
    throttled,
)
from accounts.passwords import password_check
from accounts.records import AuthSession, Tenant, User, tenants, users
from accounts.services.common import Client, EventStamp, SessionIds, auth_session_open, existing
from accounts.services.issue import token_pair_issue
from accounts.services.login import LoggedIn
from accounts.services.onetime import (
    CHALLENGE,
    onetime_holder,
    onetime_read,
)
from accounts.services.principal import Principal
from accounts.throttle import Bucket, Throttled, throttle_check, throttle_hit, throttle_record
from core.metrics import counts_outcomes
from core.time import rfc3339

logger = logging.getLogger(__name__)

PERIOD_S = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODES = 10
HOUR = 3600
MINUTE = 60

_TOTP_CODE = re.compile(r"[0-9]{6}")  # ASCII only: \d would admit other scripts' digits
_RECOVERY_CODE = re.compile(r"[a-z2-7]{16}")
# Refusals of a code: each counts against the hourly failure budget.
_CODE_REFUSALS = frozenset({INVALID_MFA_CODE[1], MFA_CODE_REUSED[1]})

T = TypeVar("T")


# --- the secret, sealed ---------------------------------------------------------------------


def _sealing_key() -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"coditect totp secrets"
    ).derive(settings.SECRET_KEY.encode())
    return AESGCM(derived)


def _bound_to(user: User) -> bytes:
    # A sealed secret copied onto another user (or tenant) does not open there.
    return b"totp" + user.tenant_id.bytes + user.id.bytes


def totp_seal(secret: str, *, user: User) -> bytes:
    """AES-GCM under a key derived from SECRET_KEY: a copy of the store (an export, a
    backup) does not give away anyone's second factor."""
    nonce = os.urandom(12)
    return nonce + _sealing_key().encrypt(nonce, secret.encode(), _bound_to(user))


def totp_unseal(sealed: bytes, *, user: User) -> str | None:
    """The secret, or None when there is none or it was sealed under another SECRET_KEY
    (a tenant imported from another deployment: its users sign in with a recovery code)."""
    if len(sealed) <= 12:
        return None
    try:
        return _sealing_key().decrypt(sealed[:12], sealed[12:], _bound_to(user)).decode()
    except InvalidTag:
        logger.warning("a TOTP secret does not open with this SECRET_KEY")
        return None


# --- codes ----------------------------------------------------------------------------------


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // PERIOD_S


_REUSED = -1


def _totp_match(secret: str, code: str, *, step: int, last_step: int) -> int | None:
    """The step ``code`` belongs to (within the drift), ``_REUSED`` when it belongs only to
    spent steps, None when to none. Every candidate is compared, in constant time."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_S)
    fresh, spent = None, False
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            if candidate > last_step:
                fresh = candidate
            else:
                spent = True
    if fresh is not None:
        return fresh
    return _REUSED if spent else None


def _recovery_normal(code: str) -> str | None:
    text = code.replace("-", "").lower()
    return text if _RECOVERY_CODE.fullmatch(text) else None


def _recovery_digest(user_id: uuid.UUID, normal: str) -> str:
    # 80 random bits per code: a digest needs no slow hash to resist guessing.
    return hashlib.sha256(b"recovery\x00" + user_id.bytes + normal.encode()).hexdigest()[:32]


def recovery_codes_new(user_id: uuid.UUID) -> tuple[list[str], list[str]]:
    """Ten fresh codes (``abcd-efgh-ijkl-mnop``, 80 bits each) and their digests."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes, [_recovery_digest(user_id, c.replace("-", "")) for c in codes]


def _spend(
    user: User, code: str, *, now: datetime, login: bool, recovery: bool
) -> tuple[User, str]:
    """``user`` with ``code`` spent, and how (``totp`` or ``recovery_code``).

    Raises AccountError invalid_mfa_code / mfa_code_reused (401 when ``login``, else 400).
    """
    text = "".join(code.split())
    if _TOTP_CODE.fullmatch(text):
        secret = totp_unseal(user.totp_secret, user=user)
        found = (
            None
            if secret is None
            else _totp_match(secret, text, step=time_step(now), last_step=user.totp_last_step)
        )
        if found == _REUSED:
            raise mfa_code_error(MFA_CODE_REUSED, login=login)
        if found is None:
            raise mfa_code_error(INVALID_MFA_CODE, login=login)
        return dataclasses.replace(user, totp_last_step=found), "totp"
    normal = _recovery_normal(text) if recovery else None
    if normal is not None:
        digest = _recovery_digest(user.id, normal)
        matches = [hmac.compare_digest(stored, digest) for stored in user.recovery_codes]
        if any(matches):
            left = [c for c, used in zip(user.recovery_codes, matches, strict=True) if not used]
            return dataclasses.replace(user, recovery_codes=left), "recovery_code"
    raise mfa_code_error(INVALID_MFA_CODE, login=login)


def _failure_budget(db: Any, user_id: uuid.UUID) -> Bucket:
    """Count one code attempt; raise 429 when the user is over either budget. Returns the
    failure bucket, which ``_counting`` charges when the code is refused."""
    subject = str(user_id)
    failures = Bucket("mfa_failures", subject, settings.CODITECT_MFA_FAILURES_PER_HOUR, HOUR)
    try:
        throttle_hit(
            db=db,
            buckets=[Bucket("mfa_user", subject, settings.CODITECT_THROTTLE_MFA_PER_USER, MINUTE)],
        )
        throttle_check(db=db, buckets=[failures])
    except Throttled as error:
        raise throttled(error.retry_after) from None
    return failures


def _counting(db: Any, failures: Bucket, run: Callable[[], T]) -> T:
    """``run()``; a refused code is charged to the failure budget (a refused password is
    charged by _password_ok, which runs before)."""
    try:
        return run()
    except AccountError as error:
        if error.code in _CODE_REFUSALS:
            throttle_record(db=db, buckets=[failures])
        raise


def _password_ok(db: Any, failures: Bucket, user: User, password: str) -> None:
    if not password_check(encoded=user.password_hash, password=password).ok:
        throttle_record(db=db, buckets=[failures])
        raise fail(WRONG_PASSWORD, attr="password")


def _current(tr: Any, principal: Principal) -> User:
    current = users(principal.tenant_id).get(tr, principal.user_id)
    if current is None:
        raise fail(SESSION_REVOKED)
    return current


# --- the signed-in user's factor --------------------------------------------------------------


@dataclass(frozen=True)
class MfaStatus:
    totp_enabled: bool
    totp_enabled_at: datetime | None
    enrollment_pending: bool
    recovery_codes_left: int


def mfa_status(*, principal: Principal) -> MfaStatus:
    """The caller's second factor as read for this request."""
    user = principal.user
    return MfaStatus(
        totp_enabled=user.totp_enabled_at is not None,
        totp_enabled_at=user.totp_enabled_at,
        enrollment_pending=user.totp_enabled_at is None and bool(user.totp_secret),
        recovery_codes_left=len(user.recovery_codes) if user.totp_enabled_at else 0,
    )


def mfa_status_json(status: MfaStatus) -> dict[str, Any]:
    """The second factor's state as the API (``GET mfa``) and a person's export show it."""
    at = status.totp_enabled_at
    return {
        "totp_enabled": status.totp_enabled,
        "totp_enabled_at": rfc3339(at) if at is not None else None,
        "enrollment_pending": status.enrollment_pending,
        "recovery_codes_left": status.recovery_codes_left,
    }


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str  # base32, shown this once
    uri: str  # otpauth://totp/... for a QR code


def _require_verified(user: User) -> None:
    """A second factor only on an account whose address someone proved (issue 15, finding
    2): else whoever registered another person's address could put a factor on it that
    locks the address's owner out after a password reset."""
    if user.email_verified_at is None:
        raise AccountError(
            403,
            EMAIL_NOT_VERIFIED[1],
            "Confirm your email address before turning on two-factor authentication.",
        )


def totp_enroll_start(
    *, db: Any, principal: Principal, password: str, client: Client
) -> TotpEnrollment:
    """A new TOTP secret, pending until ``totp_enroll_confirm`` sees its first code (a new
    start replaces a pending secret). Needs the password, so a stolen access token cannot
    put a factor of its own on the account, and a verified email address.

    Raises AccountError 400 wrong_password, 403 email_not_verified, 409
    mfa_already_enabled, 429 throttled.
    """
    if principal.user.totp_enabled_at is not None:
        raise fail(MFA_ALREADY_ENABLED)
    failures = _failure_budget(db, principal.user_id)
    _password_ok(db, failures, principal.user, password)
    _require_verified(principal.user)
    secret = pyotp.random_base32()
    sealed = totp_seal(secret, user=principal.user)

    @fdb_backend.transactional
    def store(tr: Any) -> None:
        current = _current(tr, principal)
        if current.totp_enabled_at is not None:
            raise fail(MFA_ALREADY_ENABLED)
        _require_verified(current)
        users(principal.tenant_id).save(tr, dataclasses.replace(current, totp_secret=sealed))

    store(db)
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_S).provisioning_uri(
        name=principal.user.email, issuer_name=settings.CODITECT_TOTP_ISSUER
    )
    return TotpEnrollment(secret=secret, uri=uri)


def totp_enroll_confirm(*, db: Any, principal: Principal, code: str, client: Client) -> list[str]:
    """Turn the pending factor on with its first code; returns the recovery codes (shown
    once). Raises AccountError 400 invalid_mfa_code / mfa_code_reused, 403
    email_not_verified, 409 mfa_already_enabled / mfa_not_enrolling, 429 throttled."""
    if principal.user.totp_enabled_at is not None:
        raise fail(MFA_ALREADY_ENABLED)
    failures = _failure_budget(db, principal.user_id)
    codes, digests = recovery_codes_new(principal.user_id)
    stamp = EventStamp.fresh(client=client)
    now = stamp.at

    @fdb_backend.transactional
    def confirm(tr: Any) -> None:
        current = _current(tr, principal)
        if current.totp_enabled_at is not None:
            raise fail(MFA_ALREADY_ENABLED)
        if not current.totp_secret:
            raise fail(MFA_NOT_ENROLLING)
        _require_verified(current)  # an enrolment started before the rule, too
        spent, _ = _spend(current, code, now=now, login=False, recovery=False)
        users(principal.tenant_id).save(
            tr, dataclasses.replace(spent, totp_enabled_at=now, recovery_codes=digests)
        )
        stamp.write_as(tr, principal, type="mfa_enabled", method="totp")

    _counting(db, failures, lambda: confirm(db))
    return codes


def totp_disable(
    *, db: Any, principal: Principal, password: str, code: str, client: Client
) -> None:
    """Turn the factor off with the password and a code (or a recovery code).

    Raises AccountError 400 wrong_password / invalid_mfa_code / mfa_code_reused, 409
    mfa_not_enabled, 429 throttled.
    """
    if principal.user.totp_enabled_at is None:
        raise fail(MFA_NOT_ENABLED)
    failures = _failure_budget(db, principal.user_id)
    _password_ok(db, failures, principal.user, password)
    _factor_change(
        db, principal, failures, code=code, client=client, type="mfa_disabled", to=without_factor
    )


def recovery_codes_regenerate(
    *, db: Any, principal: Principal, code: str, client: Client
) -> list[str]:
    """Replace every recovery code with ten new ones, given a code (or a recovery code).

    Raises AccountError 400 invalid_mfa_code / mfa_code_reused, 409 mfa_not_enabled, 429.
    """
    if principal.user.totp_enabled_at is None:
        raise fail(MFA_NOT_ENABLED)
    failures = _failure_budget(db, principal.user_id)
    codes, digests = recovery_codes_new(principal.user_id)
    _factor_change(
        db,
        principal,
        failures,
        code=code,
        client=client,
        type="mfa_recovery_codes_regenerated",
        to=lambda spent: dataclasses.replace(spent, recovery_codes=digests),
    )
    return codes


def _factor_change(
    db: Any,
    principal: Principal,
    failures: Bucket,
    *,
    code: str,
    client: Client,
    type: str,
    to: Callable[[User], User],
) -> None:
    """Change the caller's factor, which must be on, to ``to(user)`` (the user with
    ``code``, or the recovery code, spent), with its event ``type`` naming the method that
    proved it; a wrong code counts against ``failures``. Raises 409 mfa_not_enabled and
    what ``_spend`` raises."""
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def change(tr: Any) -> None:
        current = _current(tr, principal)
        if current.totp_enabled_at is None:
            raise fail(MFA_NOT_ENABLED)
        spent, method = _spend(current, code, now=stamp.at, login=False, recovery=True)
        users(principal.tenant_id).save(tr, to(spent))
        stamp.write_as(tr, principal, type=type, method=method)

    _counting(db, failures, lambda: change(db))


def factors_confirm(*, db: Any, principal: Principal, password: str, code: str) -> None:
    """Check the caller's password and, when their second factor is on, a code (or a
    recovery code): what an irreversible action (erasing the account) asks first. The code
    is not marked spent: the action that follows removes the user.

    Raises AccountError 400 wrong_password / mfa_code_required / invalid_mfa_code /
    mfa_code_reused, 429 throttled.
    """
    failures = _failure_budget(db, principal.user_id)
    _password_ok(db, failures, principal.user, password)
    user = principal.user
    if user.totp_enabled_at is None:
        return
    if not code:
        raise fail(MFA_CODE_REQUIRED, attr="code")
    now = datetime.now(UTC)
    _counting(db, failures, lambda: _spend(user, code, now=now, login=False, recovery=True))


def without_factor(user: User) -> User:
    """``user`` with no second factor: none on, none pending, no recovery codes."""
    return dataclasses.replace(
        user,
        totp_secret=b"",
        totp_enabled_at=None,
        totp_last_step=0,
        recovery_codes=[],
        mfa_challenge_hash="",
        mfa_challenge_expires_at=None,
    )


# --- completing a login ----------------------------------------------------------------------


@counts_outcomes("mfa")
def user_login_mfa(*, db: Any, challenge: str, code: str, client: Client) -> LoggedIn:
    """Complete a login that answered mfa_required: a code (or a recovery code) against the
    challenge opens the auth session. The challenge and the code are spent together.

    Raises AccountError 401 invalid_mfa_challenge / mfa_challenge_expired /
    invalid_mfa_code / mfa_code_reused, 403 account_locked / tenant_suspended /
    email_not_verified, 429 throttled. A refused attempt spends nothing, so a mistyped code
    can be corrected while the challenge lives.
    """
    try:
        throttle_hit(
            db=db,
            buckets=[
                Bucket(
                    "login_address", client.ip, settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS, MINUTE
                )
            ],
        )
    except Throttled as error:
        raise throttled(error.retry_after) from None
    parsed = onetime_read(challenge, kind=CHALLENGE)
    now = datetime.now(UTC)
    user = onetime_holder(db, parsed, kind=CHALLENGE, now=now)
    failures = _failure_budget(db, user.id)
    ids, stamp = SessionIds.fresh(), EventStamp.fresh(client=client, at=now)

    @fdb_backend.transactional
    def complete(tr: Any) -> tuple[AuthSession, User, Tenant]:
        people = users(parsed.tenant_id)
        current = onetime_holder(tr, parsed, kind=CHALLENGE, now=now)
        tenant = tenants().get(tr, parsed.tenant_id)
        if tenant is None or current.totp_enabled_at is None:
            raise CHALLENGE.refused()
        if current.locked:
            raise fail(ACCOUNT_LOCKED)
        if tenant.status != "active":
            raise fail(TENANT_SUSPENDED)
        spent, method = _spend(current, code, now=now, login=True, recovery=True)
        if tenant.require_email_verification and current.email_verified_at is None:
            raise fail(EMAIL_NOT_VERIFIED)
        people.save(
            tr, dataclasses.replace(spent, mfa_challenge_hash="", mfa_challenge_expires_at=None)
        )
        session = auth_session_open(
            tr, tenant_id=tenant.id, ids=ids, user_id=current.id, client=client, now=now,
            login=stamp, method=method,
        )  # fmt: skip
        return session, spent, tenant

    try:
        session, done, tenant = _counting(db, failures, lambda: complete(db))
    except AccountError as error:
        if error.code in _CODE_REFUSALS:
            stamp.write(
                db, tenant_id=user.tenant_id, type="login_failed", user_id=user.id, reason="mfa"
            )
        raise
    return LoggedIn(
        tokens=token_pair_issue(db=db, tenant_id=tenant.id, session=session, now=now),
        user=done,
        tenant=tenant,
    )


# --- support staff ---------------------------------------------------------------------------


def mfa_reset(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str) -> User:
    """Take a user's second factor away (they lost it): their next login needs only the
    password. Open sessions stay. Raises AccountError 404."""
    stamp = EventStamp.fresh()

    @fdb_backend.transactional
    def reset(tr: Any) -> User:
        people = users(tenant_id)
        saved = people.save(tr, without_factor(existing(people.get(tr, user_id))))
        stamp.write(
            tr, tenant_id=tenant_id, type="mfa_reset", user_id=user_id, by="support", reason=reason
        )
        return saved

    done: User = reset(db)
    return done

"""One-time tokens: email verification, password reset and the login's MFA challenge.

A token reads ``<tenant id hex>.<subject id hex>.<secret>``: the ids say where its digest is
stored (the subject is the user), so a lookup needs no global index and stays inside the
tenant the token names; the secret is 256 random bits. Only a SHA-256 digest of the secret
is stored, computed together with the token's purpose and what it is bound to (the email
address it proves; the password it replaces), so a digest of one purpose never matches a
token of another, and a token outlives neither what it is bound to.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from accounts.errors import (
    INVALID_MFA_CHALLENGE,
    INVALID_RESET_TOKEN,
    INVALID_VERIFICATION_TOKEN,
    MFA_CHALLENGE_EXPIRED,
    RESET_TOKEN_EXPIRED,
    VERIFICATION_TOKEN_EXPIRED,
    AccountError,
    fail,
    throttled,
)
from accounts.records import User, users
from accounts.services.common import Client, claimed_key
from accounts.throttle import Bucket, Throttled, throttle_hit

# Purposes: a digest made for one never matches a token presented for another.
VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose label, not a password
MFA_CHALLENGE = "mfa_challenge"

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_LENGTH = 200


@dataclass(frozen=True)
class OneTime:
    tenant_id: uuid.UUID
    subject_id: uuid.UUID
    secret: str


def onetime_new(*, tenant_id: uuid.UUID, subject_id: uuid.UUID) -> tuple[str, str]:
    """A fresh token and its secret (made outside any retried transaction)."""
    secret = secrets.token_urlsafe(32)
    return f"{tenant_id.hex}.{subject_id.hex}.{secret}", secret


def onetime_parse(token: str) -> OneTime | None:
    """The parts of a well-formed token, or None for anything else."""
    if len(token) > _MAX_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not _SECRET.fullmatch(parts[2]):
        return None
    try:
        tenant_id, subject_id = uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    if tenant_id.hex != parts[0] or subject_id.hex != parts[1]:
        return None  # one spelling per token (no braces, dashes or capitals)
    return OneTime(tenant_id, subject_id, parts[2])


def password_bound(user: User) -> str:
    """What reset tokens and MFA challenges are bound to: a password change (or a changed
    email) voids every one issued before it."""
    return f"{user.email_key}\x00{user.password_changed_at.isoformat()}"


def onetime_digest(secret: str, *, purpose: str, bound: str = "") -> str:
    return hashlib.sha256(f"{purpose}\x00{bound}\x00{secret}".encode()).hexdigest()


def onetime_matches(stored: str, secret: str, *, purpose: str, bound: str = "") -> bool:
    """Whether ``secret`` is the one whose digest is ``stored`` (constant time; an empty
    ``stored`` matches nothing)."""
    candidate = onetime_digest(secret, purpose=purpose, bound=bound)
    return bool(stored) and hmac.compare_digest(stored, candidate)


@dataclass(frozen=True)
class OneTimeKind:
    """What tells one kind of token from another: its ``purpose``; where its user keeps its
    digest and expiry, and what it is bound to (``stored``); and the ``errors`` of a token
    that is not live (invalid, expired), on the request's field ``attr``."""

    purpose: str
    stored: Callable[[User], tuple[str, datetime | None, str]]
    errors: tuple[tuple[int, str, str], tuple[int, str, str]]
    attr: str

    def digest(self, secret: str, *, bound: str) -> str:
        """What a user keeps of a token of this kind: the digest of ``secret`` bound to
        ``bound``."""
        return onetime_digest(secret, purpose=self.purpose, bound=bound)

    def refused(self) -> AccountError:
        """The error of a token that is not one of this kind's (malformed, unknown, used)."""
        return fail(self.errors[0], attr=self.attr)

    def expired(self) -> AccountError:
        """The error of this kind's token that was spent or has lapsed."""
        return fail(self.errors[1], attr=self.attr)


VERIFICATION = OneTimeKind(
    VERIFY_EMAIL,
    # The token proves the address it was mailed to: a claimed one while a change waits.
    stored=lambda u: (
        u.email_token_hash,
        u.email_token_expires_at,
        claimed_key(u.email_key) or u.email_key,
    ),
    errors=(INVALID_VERIFICATION_TOKEN, VERIFICATION_TOKEN_EXPIRED),
    attr="token",
)
RESET = OneTimeKind(
    PASSWORD_RESET,
    stored=lambda u: (u.reset_token_hash, u.reset_token_expires_at, password_bound(u)),
    errors=(INVALID_RESET_TOKEN, RESET_TOKEN_EXPIRED),
    attr="token",
)
CHALLENGE = OneTimeKind(
    MFA_CHALLENGE,
    stored=lambda u: (u.mfa_challenge_hash, u.mfa_challenge_expires_at, password_bound(u)),
    errors=(INVALID_MFA_CHALLENGE, MFA_CHALLENGE_EXPIRED),
    attr="challenge",
)


def onetime_read(token: str, *, kind: OneTimeKind) -> OneTime:
    """The parts of ``token``; raises ``kind``'s invalid error when it is malformed."""
    parsed = onetime_parse(token)
    if parsed is None:
        raise kind.refused()
    return parsed


def onetime_holder(tr: Any, parsed: OneTime, *, kind: OneTimeKind, now: datetime) -> User:
    """The user the token names, read in ``tr``, when the token is their live one of
    ``kind``. Raises ``kind``'s invalid error for no user or a wrong secret and its expired
    error for a spent or lapsed token, in that order, so a wrong token never learns whether
    a right one would have expired."""
    user = users(parsed.tenant_id).get(tr, parsed.subject_id)
    if user is None:
        raise kind.refused()
    digest, expires_at, bound = kind.stored(user)
    if not onetime_matches(digest, parsed.secret, purpose=kind.purpose, bound=bound):
        raise kind.refused()
    if expires_at is None or expires_at <= now:
        raise kind.expired()
    return user


# --- throttles of the flows that mail tokens and take them back -----------------------------


def onetime_mail_throttle(*, db: Any, scope: str, email_key: str, client: Client) -> None:
    """Count a request that may mail a token: per email (``scope`` names the flow) and per
    client address, per hour; the count is the same for unknown emails. Raises 429."""
    _hit(
        db,
        Bucket(scope, email_key, settings.CODITECT_THROTTLE_MAIL_PER_EMAIL, 3600),
        Bucket("mail_address", client.ip, settings.CODITECT_THROTTLE_MAIL_PER_ADDRESS, 3600),
    )


def onetime_presented(*, db: Any, token: str, kind: OneTimeKind, client: Client) -> OneTime:
    """The parts of a mailed ``token`` presented for confirmation, counted first per client
    address per minute. Raises 429, or ``kind``'s invalid error when it is malformed."""
    _hit(db, Bucket("token_address", client.ip, settings.CODITECT_THROTTLE_TOKENS_PER_ADDRESS, 60))
    return onetime_read(token, kind=kind)


def _hit(db: Any, *buckets: Bucket) -> None:
    try:
        throttle_hit(db=db, buckets=list(buckets))
    except Throttled as error:
        raise throttled(error.retry_after) from None

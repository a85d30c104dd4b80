"""Register: a new tenant with its owner, or a new member through an invitation.

Either way a verification token is mailed to the new address (services/verification.py).

An address held by a verified (or locked) account is taken: 409 email_taken. An address
held by an account nobody verified does not hold against the person who proves it (issue
15, finding 2): the registration answers the same 409, but is stored as a pending claim and
a claim link goes to the address; opening it (verify-email) releases the unverified holder
and gives the address to the new account (docs/accounts.md, "Who holds an address").
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.passwords import password_hash, password_problems
from accounts.records import Tenant, User, invitations, tenants, users
from accounts.services.common import (
    Client,
    EventStamp,
    SessionIds,
    auth_session_open,
    claim_key,
    email_key,
    slug_for,
)
from accounts.services.issue import TokenPair, token_pair_issue
from accounts.services.login import find_by_email
from accounts.services.onetime import onetime_mail_throttle
from accounts.services.verification import (
    verification_mail_send,
    verification_token_new,
)
from accounts.throttle import Bucket, Throttled, throttle_hit
from fdb_backend.records import UniqueViolation


@dataclass(frozen=True)
class Registered:
    tokens: TokenPair
    user: User
    tenant: Tenant


def invitation_parse(token: str) -> tuple[uuid.UUID, str] | None:
    """``<tenant id hex>.<secret>`` -> (tenant id, hash of the secret), or None if malformed."""
    tenant_part, _, secret = token.partition(".")
    if not secret or len(token) > 200:
        return None
    try:
        tenant_id = uuid.UUID(hex=tenant_part)
    except ValueError:
        return None
    return tenant_id, invitation_hash(secret)


def invitation_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _email_taken() -> AccountError:
    # One answer whether the holder is verified or not: it tells no more than before.
    return AccountError(
        409,
        "email_taken",
        "An account with this email exists. Sign in, or reset its password. If that account "
        "was never confirmed and the address is yours, we mailed you a link to claim it.",
        attr="email",
    )


def _claimable(holder: User | None) -> bool:
    """Whether a registration may claim the address ``holder`` has: nobody proved it, and
    support has not locked the account (a lock is not to be walked around)."""
    return holder is not None and holder.email_verified_at is None and not holder.locked


def _invalid_invitation() -> AccountError:
    return AccountError(
        400, "invalid_invitation", "The invitation is invalid, used or expired.", attr="invitation"
    )


def user_register(
    *,
    db: Any,
    email: str,
    password: str,
    display_name: str = "",
    tenant_name: str = "",
    invitation: str | None = None,
    client: Client,
) -> Registered:
    """Create a tenant and its owner, or join the invitation's tenant; log in at once.

    Raises AccountError: 400 invalid (weak password) / invalid_invitation, 409 email_taken,
    429 throttled; 403 email_not_verified when an invitation admits the user to a tenant
    that requires verified emails: the account is then created and its verification mail
    sent, but no session is opened (as login would refuse one).

    When an unverified account holds the address, the 409 is the same, but the new account
    is stored as a pending claim (no session, nobody can sign in with it) and a claim link
    is mailed to the address (at most CODITECT_THROTTLE_MAIL_PER_EMAIL an hour).
    """
    try:
        throttle_hit(
            db=db,
            buckets=[
                Bucket(
                    "register_address",
                    client.ip,
                    settings.CODITECT_THROTTLE_REGISTER_PER_ADDRESS,
                    3600,
                )
            ],
        )
    except Throttled as error:
        raise AccountError(
            429, "throttled", "Too many attempts; try again later.", retry_after=error.retry_after
        ) from None
    problems = password_problems(password=password, email=email, display_name=display_name)
    if problems:
        raise AccountError(400, "invalid", " ".join(problems), attr="password")
    invite = None
    if invitation is not None:
        invite = invitation_parse(invitation)
        if invite is None:
            raise _invalid_invitation()
    now = datetime.now(UTC)
    # Everything random is made here, outside the retried transaction.
    hashed = password_hash(password=password)
    user_id, ids = uuid.uuid4(), SessionIds.fresh()
    new_tenant_id, stamp = uuid.uuid4(), EventStamp.fresh(client=client, at=now)
    slug = slug_for(tenant_name or email.partition("@")[0])
    key = email_key(email)
    held, _ = find_by_email(db, key)
    if _claimable(held):
        try:  # a claim mails the address: its own per-email budget, and the address's
            onetime_mail_throttle(db=db, scope="claim_mail", email_key=key, client=client)
        except AccountError:
            raise _email_taken() from None
    verification = verification_token_new(
        tenant_id=invite[0] if invite is not None else new_tenant_id,
        user_id=user_id,
        email_key=key,
        now=now,
    )

    @fdb_backend.transactional
    def register(tr: Any) -> tuple[User, Tenant, Any, bool]:
        if invite is not None:
            tenant_id, token_hash = invite
            tenant = tenants().get(tr, tenant_id)
            invites = invitations(tenant_id)
            found = invites.get(tr, token_hash, now=now) if tenant is not None else None
            if tenant is None or found is None or tenant.status != "active":
                raise _invalid_invitation()
            if email_key(found.email) != key:  # an invitation is for the person it names
                raise _invalid_invitation()
            invites.delete(tr, token_hash)  # single use
            role = found.role
        else:
            tenant = tenants().save(
                tr,
                Tenant(
                    id=new_tenant_id,
                    name=(tenant_name or f"{email.partition('@')[0]}'s team")[:200],
                    slug=slug,
                    created_at=now,
                ),
            )
            role = "owner"
        holder, _ = find_by_email(tr, key)  # again, in the transaction: it decides
        if holder is not None and not (_claimable(holder) and _claimable(held)):
            raise _email_taken()
        claim = holder is not None
        user = users(tenant.id).save(
            tr,
            User(
                id=user_id,
                tenant_id=tenant.id,
                email=email,
                email_key=claim_key(user_id=user_id, email_key=key) if claim else key,
                display_name=display_name,
                password_hash=hashed,
                role=role,
                created_at=now,
                password_changed_at=now,
                email_token_hash=verification.digest,
                email_token_expires_at=verification.expires_at,
            ),
        )
        session = None
        if not claim and not tenant.require_email_verification:
            session = auth_session_open(
                tr, tenant_id=tenant.id, ids=ids, user_id=user.id, client=client, now=now
            )
        stamp.write(
            tr,
            tenant_id=tenant.id,
            type="member_joined" if invite is not None else "registered",
            user_id=user.id,
            role=role,
            **({"claim": True} if claim else {}),
        )
        return user, tenant, session, claim

    try:
        user, tenant, session, claim = register(db)
    except UniqueViolation as error:
        if error.index != "user_by_email":
            raise
        raise _email_taken() from None
    verification_mail_send(user=user, tenant=tenant, token=verification.token, claim=claim)
    if claim:
        raise _email_taken()
    if session is None:
        raise AccountError(
            403,
            "email_not_verified",
            "Your account is created. Confirm your email address with the mail we sent, "
            "then sign in.",
        )
    return Registered(
        tokens=token_pair_issue(db=db, tenant_id=tenant.id, session=session, now=now),
        user=user,
        tenant=tenant,
    )

"""Email verification: a token mailed at registration (and again on request) proves the
address; a tenant may require it before its members log in."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import (
    EMAIL_ALREADY_VERIFIED,
    AccountError,
    fail,
)
from accounts.mail import token_mail_send
from accounts.records import Tenant, User, tenants, users
from accounts.services.common import (
    Client,
    EventStamp,
    claimed_key,
    email_key,
    existing,
    revoke_user_sessions,
)
from accounts.services.login import find_by_email
from accounts.services.onetime import (
    VERIFICATION,
    onetime_holder,
    onetime_mail_throttle,
    onetime_new,
    onetime_presented,
)
from accounts.services.principal import Principal, principal_require_manager
from fdb_backend.records import VersionConflict


@dataclass(frozen=True)
class VerificationToken:
    token: str  # mailed once; the user record keeps only ``digest``
    digest: str
    expires_at: datetime


def verification_token_new(
    *, tenant_id: uuid.UUID, user_id: uuid.UUID, email_key: str, now: datetime
) -> VerificationToken:
    """A token that proves ``email_key`` for this user (a changed email voids it)."""
    token, secret = onetime_new(tenant_id=tenant_id, subject_id=user_id)
    return VerificationToken(
        token=token,
        digest=VERIFICATION.digest(secret, bound=email_key),
        expires_at=now + timedelta(seconds=settings.CODITECT_EMAIL_VERIFICATION_TTL_S),
    )


def verification_mail_send(*, user: User, tenant: Tenant, token: str, claim: bool = False) -> None:
    """Mail ``token`` to the user (call after the transaction that stored its digest). The
    token of a pending registration's ``claim`` goes to the address it claims, in a mail
    that says what confirming does to the account that holds it."""
    token_mail_send(
        template="claim_email" if claim else "verify_email",
        user=user,
        tenant=tenant,
        token=token,
        page="/verify-email",
        valid_for_s=settings.CODITECT_EMAIL_VERIFICATION_TTL_S,
    )


def email_verification_confirm(*, db: Any, token: str, client: Client) -> None:
    """Mark the address the token was mailed to as verified; the token is spent.

    The token of a pending claim (services/registration.py) also settles the claim: the
    unverified account that holds the address is released (``_release``) and the claiming
    account takes the address, verified.

    Raises AccountError 400 invalid_verification_token (malformed, unknown, used, another
    tenant's, or mailed to an address the user no longer has) / verification_token_expired,
    409 email_taken (a claim whose address a verified or locked account holds by now, or
    whose holder is the only owner of a team with other members), 429 throttled. A refused
    token changes nothing.
    """
    parsed = onetime_presented(db=db, token=token, kind=VERIFICATION, client=client)
    verified = EventStamp.fresh(client=client)
    now = verified.at
    # The events of a release it may settle: the holder's, and their tenant's suspension.
    released = EventStamp.fresh(client=client, at=now), EventStamp.fresh(client=client, at=now)

    @fdb_backend.transactional
    def confirm(tr: Any) -> None:
        people = users(parsed.tenant_id)
        user = onetime_holder(tr, parsed, kind=VERIFICATION, now=now)
        claimed = claimed_key(user.email_key)
        if claimed is not None:
            holder, _ = find_by_email(tr, claimed)
            if holder is not None:
                _release(tr, holder, stamps=released)
        people.save(
            tr,
            dataclasses.replace(
                user,
                email_key=claimed or user.email_key,
                email_verified_at=user.email_verified_at or now,
                email_token_hash="",
                email_token_expires_at=None,
            ),
        )
        verified.write(
            tr,
            tenant_id=parsed.tenant_id,
            type="email_verified",
            user_id=user.id,
            **({"claim": True} if claimed is not None else {}),
        )

    confirm(db)


def _release(tr: Any, holder: User, *, stamps: tuple[EventStamp, EventStamp]) -> None:
    """Take the address away from ``holder``, an account nobody verified, for a claim the
    mailbox just proved: its sessions end and the account goes (as a removed member's does);
    a tenant left with nobody is suspended, its data kept for support. Raises 409
    email_taken when ``holder`` may not be released (verified or locked by now, or the only
    owner of a team with others in it: the mailbox owner resets its password instead, which
    gives them that account)."""
    if holder.email_verified_at is not None or holder.locked:
        raise AccountError(409, "email_taken", "An account with this email exists.")
    people = users(holder.tenant_id)
    others = [u for u in people.list_by_key(tr).records if u.id != holder.id]
    if holder.role == "owner" and others and not any(u.role == "owner" for u in others):
        raise AccountError(
            409,
            "email_taken",
            "The unconfirmed account with this email owns a team with other members. "
            "Reset its password to take that account over instead.",
        )
    revoke_user_sessions(
        tr,
        tenant_id=holder.tenant_id,
        user_id=holder.id,
        reason="email_released",
        now=stamps[0].at,
    )
    people.delete(tr, holder.id)
    stamps[0].write(tr, tenant_id=holder.tenant_id, type="email_released", user_id=holder.id)
    if others:
        return
    every = tenants()
    tenant = every.get(tr, holder.tenant_id)
    if tenant is not None and tenant.status == "active":
        every.save(
            tr, dataclasses.replace(tenant, status="suspended", status_reason="email_released")
        )
        stamps[1].write(
            tr, tenant_id=tenant.id, type="tenant_suspended", user_id=None, reason="email_released"
        )


def email_verification_resend(
    *, db: Any, client: Client, principal: Principal | None = None, email: str = ""
) -> None:
    """Mail a new verification token; the previous one stops working.

    With a ``principal``: to the caller's own address (409 email_already_verified when it
    is). Without one: to the account of ``email``, if there is one that is unverified; the
    call answers the same whether or not there is (a tenant that requires verification
    leaves its unverified members no other way in). Raises AccountError 409, 429.
    """
    if principal is not None:
        if principal.user.email_verified_at is not None:
            raise fail(EMAIL_ALREADY_VERIFIED)
        key = principal.user.email_key
    else:
        key = email_key(email)
    onetime_mail_throttle(db=db, scope="verify_mail", email_key=key, client=client)
    if principal is not None:
        tenant_id, user_id = principal.tenant_id, principal.user_id
    else:
        found, _ = find_by_email(db, key)
        if found is None:
            return
        tenant_id, user_id = found.tenant_id, found.id
    now = datetime.now(UTC)
    issued = verification_token_new(tenant_id=tenant_id, user_id=user_id, email_key=key, now=now)

    @fdb_backend.transactional
    def store(tr: Any) -> tuple[User, Tenant] | None:
        people = users(tenant_id)
        user, tenant = people.get(tr, user_id), tenants().get(tr, tenant_id)
        if user is None or tenant is None or user.email_verified_at is not None:
            return None
        saved = people.save(
            tr,
            dataclasses.replace(
                user, email_token_hash=issued.digest, email_token_expires_at=issued.expires_at
            ),
        )
        return saved, tenant

    stored = store(db)
    if stored is not None:
        verification_mail_send(user=stored[0], tenant=stored[1], token=issued.token)


# --- the tenant's setting -----------------------------------------------------------------


def tenant_settings_update(
    *,
    db: Any,
    principal: Principal,
    client: Client,
    require_email_verification: bool | None = None,
    expected_version: int | None = None,
) -> Tenant:
    """Change the tenant's account settings (owners and admins).

    Turning on ``require_email_verification`` needs the caller's own address verified, so
    nobody locks themselves out. Sessions already open stay open; the setting applies to
    the next login. Raises AccountError 403 forbidden / email_not_verified, 412
    version_conflict.
    """
    principal_require_manager(principal=principal)
    if require_email_verification and principal.user.email_verified_at is None:
        raise AccountError(
            403,
            "email_not_verified",
            "Confirm your own email address before requiring it of every member.",
            attr="require_email_verification",
        )
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def update(tr: Any) -> Tenant:
        every = tenants()
        tenant = existing(every.get(tr, principal.tenant_id))
        if expected_version is not None and expected_version != tenant.version:
            raise VersionConflict(expected_version, tenant.version)
        if require_email_verification is None or (
            require_email_verification == tenant.require_email_verification
        ):
            return tenant
        saved = every.save(
            tr,
            dataclasses.replace(tenant, require_email_verification=require_email_verification),
            expected_version=tenant.version,
        )
        stamp.write_as(
            tr,
            principal,
            type="tenant_settings_changed",
            require_email_verification=require_email_verification,
        )
        return saved

    try:
        updated: Tenant = update(db)
    except VersionConflict:
        raise AccountError(
            412, "version_conflict", "The tenant changed since you read it."
        ) from None
    return updated

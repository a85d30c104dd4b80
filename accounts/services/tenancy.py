"""Tenant membership and the levers support staff and operators pull.

``user_lock``/``user_unlock``, ``tenant_suspend``/``tenant_resume`` and
``auth_session_revoke_all`` are the entry points that reach into a tenant by id; they are
for staff and maintenance code, which audits who called them.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings

import fdb_backend
from accounts.errors import (
    ABOVE_OWN_ROLE,
    LAST_OWNER,
    OWNERS_ONLY,
    AccountError,
    fail,
    refuse,
)
from accounts.records import (
    ROLES,
    Invitation,
    Role,
    Tenant,
    User,
    invitations,
    role_rank,
    tenants,
    users,
)
from accounts.services.common import Client, EventStamp, existing, revoke_user_sessions
from accounts.services.erasure import user_data_erase
from accounts.services.principal import Principal, principal_require_manager
from accounts.services.registration import invitation_hash
from accounts.services.roles import manager_require
from fdb_backend.records import Collection, Page

T = TypeVar("T")


@dataclass(frozen=True)
class IssuedInvitation:
    token: str  # shown once; only its hash is stored
    invitation: Invitation


def _grant_check(*, caller: User, role: str) -> None:
    """RoleError 403 unless ``caller`` may grant ``role``: at most their own, and ``owner``
    only by an owner."""
    if role == "owner" and caller.role != "owner":
        raise refuse(OWNERS_ONLY)
    if role_rank(role) > role_rank(caller.role):
        raise refuse(ABOVE_OWN_ROLE)


def invitation_create(
    *, db: Any, principal: Principal, email: str, role: Role, client: Client
) -> IssuedInvitation:
    """A single-use invitation to join the caller's tenant as ``role``.

    Owners and admins invite, each as any role up to their own (only an owner invites an
    owner). Raises AccountError 400 for an unknown role, RoleError 403.
    """
    principal_require_manager(principal=principal)
    if role not in ROLES:
        raise AccountError(400, "invalid", "Role must be one of " + ", ".join(ROLES) + ".")
    secret = secrets.token_urlsafe(32)
    token = f"{principal.tenant_id.hex}.{secret}"
    stamp, invitation_id = EventStamp.fresh(client=client), uuid.uuid4()
    now = stamp.at
    invitation = Invitation(
        id=invitation_id,
        token_hash=invitation_hash(secret),
        email=email,
        role=role,
        created_by=principal.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CODITECT_INVITATION_TTL_S),
    )

    @fdb_backend.transactional
    def create(tr: Any) -> Invitation:
        _grant_check(caller=manager_require(tr, principal=principal), role=role)
        saved = invitations(principal.tenant_id).save(tr, invitation)
        stamp.write_as(
            tr,
            principal,
            type="invitation_created",
            email=email,
            role=role,
            invitation_id=str(invitation_id),
        )
        return saved

    return IssuedInvitation(token=token, invitation=create(db))


def invitation_list(
    *, db: Any, principal: Principal, limit: int = 50, cursor: str | None = None
) -> Page[Invitation]:
    """The tenant's pending invitations (not used, not expired, not revoked), for owners and
    admins; their tokens are never stored, so never shown. Raises 403, InvalidContinuation."""
    principal_require_manager(principal=principal)
    page: Page[Invitation] = invitations(principal.tenant_id).list_by_key(
        db, limit=limit, continuation=cursor
    )
    return page


def invitation_revoke(
    *, db: Any, principal: Principal, invitation_id: uuid.UUID, client: Client
) -> None:
    """Revoke a pending invitation: its token stops working at once. Owners and admins; an
    owner's invitation only by an owner. Raises 403, 404 (unknown, used, expired, or of
    another tenant)."""
    principal_require_manager(principal=principal)
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def revoke(tr: Any) -> None:
        caller = manager_require(tr, principal=principal)
        pending = invitations(principal.tenant_id)
        found = existing(
            pending.find_unique(tr, "invitations_by_id", (invitation_id,), now=stamp.at)
        )
        _grant_check(caller=caller, role=found.role)
        pending.delete(tr, found.token_hash)
        stamp.write_as(
            tr,
            principal,
            type="invitation_revoked",
            invitation_id=str(found.id),
            email=found.email,
            role=found.role,
        )

    revoke(db)


def _owners(tr: Any, people: Collection[User]) -> list[User]:
    """The tenant's owners, by scanning its members in ``tr``: a conflicting read of the whole
    range, so two transactions that each remove a different owner cannot both commit."""
    return [u for u in people.list_by_key(tr).records if u.role == "owner"]


def member_role_set(
    *,
    db: Any,
    principal: Principal,
    user_id: uuid.UUID,
    role: Role,
    client: Client,
    expected_version: int | None = None,
) -> User:
    """Change a member's role; it applies to their next request and to their open sockets'
    next write (accounts/services/roles.py).

    Owners and admins change roles up to their own; only an owner grants or removes
    ``owner``; the last owner stays. Race-safe: the caller's role, the member and the owner
    count are read in the transaction that writes, so two owners demoting each other at once
    leave one owner. Raises AccountError 400, 404, 412 ``version_conflict`` (``If-Match``),
    409 ``last_owner``; RoleError 403.
    """
    principal_require_manager(principal=principal)
    if role not in ROLES:
        raise AccountError(400, "invalid", "Role must be one of " + ", ".join(ROLES) + ".")
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def change(tr: Any) -> User:
        caller = manager_require(tr, principal=principal)
        people = users(principal.tenant_id)
        member = existing(people.get(tr, user_id))
        AccountError.version_check(
            expected=expected_version,
            current=member.version,
            detail="The member changed since that version.",
        )
        if member.role == role:
            return member
        _grant_check(caller=caller, role=role)
        if member.role == "owner":
            if caller.role != "owner":
                raise refuse(OWNERS_ONLY)
            if len(_owners(tr, people)) <= 1:
                raise fail(LAST_OWNER)
        saved = people.save(tr, dataclasses.replace(member, role=role))
        stamp.write_as(
            tr,
            principal,
            type="role_changed",
            member_id=str(member.id),
            previous_role=member.role,
            role=role,
        )
        return saved

    changed: User = change(db)
    return changed


def member_remove(*, db: Any, principal: Principal, user_id: uuid.UUID, client: Client) -> None:
    """Remove a member from the caller's tenant: they are erased as they would erase
    themselves (accounts/services/erasure.py), the ``member_removed`` event naming who did it.

    Raises AccountError 403 (not a manager; an admin removing an owner), 404, 409 last_owner.
    """
    if user_id != principal.user_id:
        principal_require_manager(principal=principal)

    def authorize(tr: Any, member: User) -> None:
        # In the erasure's transaction: the caller's role as it is now, not as the request
        # found it (accounts/services/roles.py). Leaving needs no role.
        if member.id == principal.user_id:
            return
        caller = manager_require(tr, principal=principal)
        if member.role == "owner" and caller.role != "owner":
            raise refuse(OWNERS_ONLY)

    user_data_erase(
        db=db,
        tenant_id=principal.tenant_id,
        user_id=user_id,
        actor_id=principal.user_id,
        client=client,
        authorize=authorize,
    )


def user_lock(
    *, db: Any = None, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str, locked: bool = True
) -> User:
    """Lock (or unlock) a user; locking revokes every session they have, at once."""

    def lock(tr: Any, stamp: EventStamp) -> User:
        people = users(tenant_id)
        user = existing(people.get(tr, user_id))
        saved = people.save(
            tr, dataclasses.replace(user, locked=locked, locked_reason=reason if locked else "")
        )
        if locked:
            revoke_user_sessions(
                tr, tenant_id=tenant_id, user_id=user_id, reason="locked", now=stamp.at
            )
        kind = "user_locked" if locked else "user_unlocked"
        stamp.write(tr, tenant_id=tenant_id, type=kind, user_id=user_id, reason=reason)
        return saved

    return _lever(db, lock)


def user_unlock(
    *, db: Any = None, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str = ""
) -> User:
    return user_lock(db=db, tenant_id=tenant_id, user_id=user_id, reason=reason, locked=False)


def tenant_suspend(
    *, db: Any = None, tenant_id: uuid.UUID, reason: str, suspended: bool = True
) -> Tenant:
    """Suspend (or resume) a tenant: its users' tokens stop working on the next request."""

    def suspend(tr: Any, stamp: EventStamp) -> Tenant:
        all_tenants = tenants()
        tenant = existing(all_tenants.get(tr, tenant_id))
        saved = all_tenants.save(
            tr,
            dataclasses.replace(
                tenant, status="suspended" if suspended else "active", status_reason=reason
            ),
        )
        kind = "tenant_suspended" if suspended else "tenant_resumed"
        stamp.write(tr, tenant_id=tenant_id, type=kind, user_id=None, reason=reason)
        return saved

    return _lever(db, suspend)


def tenant_resume(*, db: Any = None, tenant_id: uuid.UUID, reason: str = "") -> Tenant:
    return tenant_suspend(db=db, tenant_id=tenant_id, reason=reason, suspended=False)


def auth_session_revoke_all(
    *, db: Any = None, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> int:
    """Revoke every session of a user (support staff: "sign out everywhere")."""

    def revoke(tr: Any, stamp: EventStamp) -> int:
        return revoke_user_sessions(
            tr, tenant_id=tenant_id, user_id=user_id, reason=reason, now=stamp.at
        )

    return _lever(db, revoke)


def _lever(db: Any, change: Callable[[Any, EventStamp], T]) -> T:
    """``change(tr, stamp)`` in one transaction on ``db`` (None: the process's database),
    the frame of the levers above. The stamp is made before the transaction, which may run
    again, and records no client: staff and maintenance code audit their own calls."""
    stamp = EventStamp.fresh()

    @fdb_backend.transactional
    def run(tr: Any) -> T:
        return change(tr, stamp)

    return run(db or fdb_backend.get_database())

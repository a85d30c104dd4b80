"""Tenant membership and the levers support staff and operators pull.

``user_lock``/``user_unlock``, ``tenant_suspend``/``tenant_resume`` and
``auth_session_revoke_all`` are the entry points that reach into a tenant by id; they are
for staff and maintenance code, which audits who called them.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import NOT_FOUND, AccountError
from accounts.records import Invitation, Role, Tenant, User, invitations, tenants, users
from accounts.services.common import Client, event, revoke_user_sessions
from accounts.services.erasure import user_data_erase
from accounts.services.principal import Principal, principal_require_manager
from accounts.services.registration import invitation_hash


@dataclass(frozen=True)
class IssuedInvitation:
    token: str  # shown once; only its hash is stored
    invitation: Invitation


def invitation_create(
    *, db: Any, principal: Principal, email: str, role: Role, client: Client
) -> IssuedInvitation:
    principal_require_manager(principal=principal)
    if role not in ("admin", "member"):
        raise AccountError(400, "invalid", "Role must be admin or member.", attr="role")
    secret = secrets.token_urlsafe(32)
    token = f"{principal.tenant_id.hex}.{secret}"
    now, event_id = datetime.now(UTC), uuid.uuid4()
    invitation = Invitation(
        token_hash=invitation_hash(secret),
        email=email,
        role=role,
        created_by=principal.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CODITECT_INVITATION_TTL_S),
    )

    @fdb_backend.transactional
    def create(tr: Any) -> Invitation:
        saved = invitations(principal.tenant_id).save(tr, invitation)
        event(
            tr,
            tenant_id=principal.tenant_id,
            event_id=event_id,
            type="invitation_created",
            at=now,
            client=client,
            user_id=principal.user_id,
            email=email,
            role=role,
        )
        return saved

    return IssuedInvitation(token=token, invitation=create(db))


def member_remove(*, db: Any, principal: Principal, user_id: uuid.UUID, client: Client) -> None:
    """Remove a member from the caller's tenant: they are erased as they would erase
    themselves (accounts/services/erasure.py), the ``member_removed`` event naming who did it.

    Raises AccountError 403 (not a manager; an admin removing an owner), 404, 409 last_owner.
    """
    if user_id != principal.user_id:
        principal_require_manager(principal=principal)

    def authorize(member: User) -> None:
        owner_by_other = member.role == "owner" and member.id != principal.user_id
        if owner_by_other and principal.user.role != "owner":
            raise AccountError(403, "forbidden", "Only an owner can remove an owner.")

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
    db = db or fdb_backend.get_database()
    now, event_id = datetime.now(UTC), uuid.uuid4()

    @fdb_backend.transactional
    def lock(tr: Any) -> User:
        people = users(tenant_id)
        user = people.get(tr, user_id)
        if user is None:
            raise AccountError(*NOT_FOUND)
        saved = people.save(
            tr, dataclasses.replace(user, locked=locked, locked_reason=reason if locked else "")
        )
        if locked:
            revoke_user_sessions(tr, tenant_id=tenant_id, user_id=user_id, reason="locked", now=now)
        event(
            tr,
            tenant_id=tenant_id,
            event_id=event_id,
            type="user_locked" if locked else "user_unlocked",
            at=now,
            client=Client(),
            user_id=user_id,
            reason=reason,
        )
        return saved

    return lock(db)


def user_unlock(
    *, db: Any = None, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str = ""
) -> User:
    return user_lock(db=db, tenant_id=tenant_id, user_id=user_id, reason=reason, locked=False)


def tenant_suspend(
    *, db: Any = None, tenant_id: uuid.UUID, reason: str, suspended: bool = True
) -> Tenant:
    """Suspend (or resume) a tenant: its users' tokens stop working on the next request."""
    db = db or fdb_backend.get_database()
    now, event_id = datetime.now(UTC), uuid.uuid4()

    @fdb_backend.transactional
    def suspend(tr: Any) -> Tenant:
        all_tenants = tenants()
        tenant = all_tenants.get(tr, tenant_id)
        if tenant is None:
            raise AccountError(*NOT_FOUND)
        saved = all_tenants.save(
            tr,
            dataclasses.replace(
                tenant, status="suspended" if suspended else "active", status_reason=reason
            ),
        )
        event(
            tr,
            tenant_id=tenant_id,
            event_id=event_id,
            type="tenant_suspended" if suspended else "tenant_resumed",
            at=now,
            client=Client(),
            user_id=None,
            reason=reason,
        )
        return saved

    return suspend(db)


def tenant_resume(*, db: Any = None, tenant_id: uuid.UUID, reason: str = "") -> Tenant:
    return tenant_suspend(db=db, tenant_id=tenant_id, reason=reason, suspended=False)


def auth_session_revoke_all(
    *, db: Any = None, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> int:
    """Revoke every session of a user (support staff: "sign out everywhere")."""
    db = db or fdb_backend.get_database()
    now = datetime.now(UTC)

    @fdb_backend.transactional
    def revoke(tr: Any) -> int:
        return revoke_user_sessions(
            tr, tenant_id=tenant_id, user_id=user_id, reason=reason, now=now
        )

    return int(revoke(db))

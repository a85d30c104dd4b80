"""Support staff: cross-tenant reads and audited actions (the explicit entry points that
DESIGN §3.3 allows).

The reads take a tenant id chosen by a staff member, not a principal's: only the support
views call them, behind staff status and ``accounts.view_support``. Every action checks its
own Django permission, requires a reason and writes a ``StaffAuditEntry`` (staff account,
action, target, reason, time) in an ORM transaction wrapped around the storage change: an
action that fails leaves no entry. Actions on tenants, users and their auth sessions also
land in the tenant's auth event log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.db import transaction

import fdb_backend
from accounts.errors import NOT_FOUND, AccountError
from accounts.models import StaffAuditEntry
from accounts.records import (
    ApiToken,
    AuthEvent,
    AuthSession,
    Tenant,
    User,
    auth_event_read,
    auth_sessions,
    email_index,
    tenants,
    users,
)
from accounts.services.api_tokens import api_token_revoke_by_staff, api_tokens_of_user
from accounts.services.common import EventStamp, email_key, revoke_user_sessions, revoked
from accounts.services.mfa import mfa_reset
from accounts.services.quotas import Quota, quota_usage
from accounts.services.tenancy import user_lock
from accounts.throttle import Bucket, Throttled, throttle_check, throttle_record
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from fdb_backend.records import Page
from operations.tenants import tenant_quota_set, tenant_status_set
from workspaces.records import WorkspaceSession
from workspaces.services import session_delete_by_staff

REASON_MAX = 1000
# Longer than any email (254), tenant name (200) or slug: a search for more matches nothing,
# and is answered without reading (a key of it could pass FoundationDB's 10 kB limit).
SEARCH_MAX = 254
COUNT_CAP = 10_000  # counts on the tenant page stop here ("10000+")

Staff = AbstractBaseUser | AnonymousUser


class StaffForbidden(Exception):
    """The staff member lacks the permission of this action (HTTP 403)."""

    def __init__(self, permission: str) -> None:
        super().__init__("staff permission required", permission)
        self.permission = permission


class StaffInvalid(Exception):
    """The request cannot be carried out as given (a missing reason): HTTP 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- reads -----------------------------------------------------------------------------


def tenant_search(
    *, db: Any, query: str = "", limit: int = 50, cursor: str | None = None, scan: int = 2000
) -> Page[Tenant]:
    """Tenants by id (exact), slug (exact) or name (substring, case-insensitive).

    A name search reads at most ``scan`` tenants per call and hands back a continuation
    for the rest. Raises InvalidContinuation for a cursor from elsewhere.
    """
    text = query.strip()
    if len(text) > SEARCH_MAX:
        return Page([], None)
    collection = tenants()
    if text:
        try:
            found = collection.get(db, uuid.UUID(text))
        except ValueError:
            pass
        else:
            return Page([found] if found else [], None)
    matches: list[Tenant] = []
    needle = text.casefold()
    if needle and cursor is None:
        exact = collection.find_unique(db, "tenant_by_slug", (text,))
        if exact is not None:
            matches.append(exact)
    read = 0
    while True:
        page = collection.list_by_key(db, limit=min(200, scan), continuation=cursor)
        cursor = page.continuation
        read += len(page.records)
        for tenant in page.records:
            if not needle or (
                tenant not in matches
                and (needle in tenant.name.casefold() or needle in tenant.slug)
            ):
                matches.append(tenant)
        if cursor is None or len(matches) >= limit or read >= scan:
            return Page(matches, cursor)


@dataclass(frozen=True)
class TenantOverview:
    tenant: Tenant
    members: list[User]
    more_members: bool
    counts: dict[str, int]  # capped at COUNT_CAP
    quotas: dict[str, Quota]  # usage, limit in force and the tenant's own override


def tenant_overview(*, db: Any, tenant_id: uuid.UUID, members: int = 100) -> TenantOverview:
    """A tenant, its first members and counts of what it holds. Raises AccountError 404."""
    tenant = tenant_get(db=db, tenant_id=tenant_id)
    page = users(tenant_id).list_by_key(db, limit=members)
    scope = keyspace.tenant(tenant_id)
    ranges = {
        "users": scope.collection("users").range(),
        "auth sessions": scope.collection("auth_sessions").range(),
        "workspace sessions": scope.collection("workspace_sessions").range(),
        "invitations": scope.collection("invitations").range(),
    }
    counts = {name: storage.count_keys(db, r, cap=COUNT_CAP) for name, r in ranges.items()}
    quotas = quota_usage(db, tenant_id=tenant_id)
    return TenantOverview(tenant, page.records, page.continuation is not None, counts, quotas)


def tenant_get(*, db: Any, tenant_id: uuid.UUID) -> Tenant:
    """A tenant by id, for a support page about one of its things. Raises AccountError 404."""
    tenant = tenants().get(db, tenant_id)
    if tenant is None:
        raise AccountError(*NOT_FOUND)
    return tenant


@dataclass(frozen=True)
class UserHit:
    user: User
    tenant: Tenant | None


def user_search(*, db: Any, email: str, limit: int = 50) -> list[UserHit]:
    """Users of every tenant whose email starts with ``email`` (case-insensitive), in
    email order, read from the login index."""
    prefix = email_key(email.strip())
    if not prefix or len(prefix) > SEARCH_MAX:
        return []

    @fdb_backend.transactional
    def read(tr: Any) -> list[UserHit]:
        snap = tr.snapshot
        hits = []
        for pointer in storage.string_prefix_pointers(snap, email_index(), prefix, limit=limit):
            tenant_id, user_id = pointer[0], pointer[1]
            user = users(tenant_id).get(snap, user_id)
            if user is not None:
                hits.append(UserHit(user, tenants().get(snap, tenant_id)))
        return hits

    return read(db)


@dataclass(frozen=True)
class UserOverview:
    user: User
    tenant: Tenant
    sessions: list[AuthSession]  # newest first, revoked ones included
    events: list[AuthEvent]  # this user's, newest first


def user_overview(
    *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, sessions: int = 100, events: int = 50
) -> UserOverview:
    """A user with their auth sessions and recent auth events. Raises AccountError 404."""

    @fdb_backend.transactional
    def read(tr: Any) -> UserOverview:
        snap = tr.snapshot
        user = users(tenant_id).get(snap, user_id)
        tenant = tenants().get(snap, tenant_id)
        if user is None or tenant is None:
            raise AccountError(*NOT_FOUND)
        listed = auth_sessions(tenant_id).list_by_index(
            snap, "auth_sessions_by_user", (user_id,), limit=sessions
        )
        recent = auth_event_read(snap, tenant_id=tenant_id, limit=events, user_id=user_id)
        ordered = sorted(listed.records, key=lambda s: s.created_at, reverse=True)
        return UserOverview(user, tenant, ordered, recent)

    return read(db)


def auth_events(
    *, db: Any, tenant_id: uuid.UUID, limit: int = 100, type: str = ""
) -> list[AuthEvent]:
    """A tenant's newest auth events (of one ``type`` when given), newest first."""

    @fdb_backend.transactional
    def read(tr: Any) -> list[AuthEvent]:
        return auth_event_read(tr.snapshot, tenant_id=tenant_id, limit=limit, type=type or None)

    return read(db)


# --- audited actions -------------------------------------------------------------------


def can(staff: Staff, permission: str) -> bool:
    """Whether an active staff account holds ``permission``."""
    return (
        isinstance(staff, PermissionsMixin)
        and bool(staff.is_active)
        and bool(getattr(staff, "is_staff", False))
        and staff.has_perm(permission)
    )


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise StaffInvalid("A reason is required.")
    if len(reason) > REASON_MAX:
        raise StaffInvalid(f"The reason is longer than {REASON_MAX} characters.")
    return reason


@dataclass(frozen=True)
class _Audit:
    """An audited action under way: its checked reason, and the stamp (time, event id) of
    the auth event it may write, made here, outside the storage transaction that may be
    retried."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    reason: str
    stamp: EventStamp = field(default_factory=EventStamp.fresh)

    @property
    def now(self) -> datetime:
        return self.stamp.at

    def event(self, tr: Any, *, type: str, **data: Any) -> None:
        """Write the tenant's auth event of this action: no client (support acts from the
        admin, not from the user's device), ``by`` support, with the staff's reason."""
        self.stamp.write(
            tr,
            tenant_id=self.tenant_id,
            type=type,
            user_id=self.user_id,
            **data,
            by="support",
            reason=self.reason,
        )


@contextmanager
def _audited(
    *,
    staff: Staff,
    permission: str,
    action: str,
    tenant_id: uuid.UUID,
    reason: str,
    user_id: uuid.UUID | None = None,
    target: tuple[str, uuid.UUID] | None = None,
) -> Iterator[_Audit]:
    """Check the permission and the reason, then run the body inside the ORM transaction
    that writes the audit entry (rolled back when the body raises). The target is the user
    when one is named, else the tenant, unless given as (type, id)."""
    if not can(staff, permission):
        raise StaffForbidden(permission)
    audit = _Audit(tenant_id, user_id, _reason(reason))
    if target is None:
        target = ("user", user_id) if user_id is not None else ("tenant", tenant_id)
    with transaction.atomic():
        StaffAuditEntry.objects.create(
            staff_id=staff.pk,
            staff_username=staff.get_username(),
            action=action,
            target_type=target[0],
            target_id=str(target[1]),
            tenant_id=tenant_id,
            user_id=user_id,
            reason=audit.reason,
        )
        yield audit


def staff_tenant_suspend(
    *, db: Any, staff: Staff, tenant_id: uuid.UUID, reason: str, suspended: bool = True
) -> Tenant:
    """Suspend (or resume) a tenant: its users are refused from their next request on."""
    with _audited(
        staff=staff,
        permission="accounts.suspend_tenant",
        action="tenant_suspend" if suspended else "tenant_resume",
        tenant_id=tenant_id,
        reason=reason,
    ) as audit:
        return tenant_status_set(
            db=db, tenant_id=tenant_id, suspended=suspended, reason=audit.reason
        )


def staff_tenant_quota_set(
    *,
    db: Any,
    staff: Staff,
    tenant_id: uuid.UUID,
    overrides: dict[str, int | None],
    reason: str,
) -> dict[str, Quota]:
    """Set (a whole number, 0: unlimited) or reset (None) a tenant's own quotas."""
    with _audited(
        staff=staff,
        permission="accounts.change_tenant_quota",
        action="tenant_quota",
        tenant_id=tenant_id,
        reason=reason,
    ) as audit:
        return tenant_quota_set(
            db=db, tenant_id=tenant_id, overrides=overrides, reason=audit.reason
        )


def staff_user_lock(
    *,
    db: Any,
    staff: Staff,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    reason: str,
    locked: bool = True,
) -> User:
    """Lock (every session revoked at once) or unlock a user."""
    with _audited(
        staff=staff,
        permission="accounts.lock_user",
        action="user_lock" if locked else "user_unlock",
        tenant_id=tenant_id,
        user_id=user_id,
        reason=reason,
    ) as audit:
        return user_lock(
            db=db, tenant_id=tenant_id, user_id=user_id, reason=audit.reason, locked=locked
        )


def staff_session_revoke(
    *,
    db: Any,
    staff: Staff,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    reason: str,
) -> bool:
    """Revoke one auth session of a user (its tokens stop at once); False if it already
    was. Raises AccountError 404 when it is not that user's."""
    with _audited(
        staff=staff,
        permission="accounts.revoke_sessions",
        action="session_revoke",
        tenant_id=tenant_id,
        user_id=user_id,
        target=("auth_session", session_id),
        reason=reason,
    ) as audit:

        @fdb_backend.transactional
        def revoke(tr: Any) -> bool:
            sessions = auth_sessions(tenant_id)
            session = sessions.get(tr, session_id)
            if session is None or session.user_id != user_id:
                raise AccountError(*NOT_FOUND)
            if session.revoked_at is not None:
                return False
            sessions.save(tr, revoked(session, reason="staff_revoked", now=audit.now))
            audit.event(tr, type="device_revoked", session_id=str(session_id))
            return True

        return bool(revoke(db))


def staff_sessions_revoke_all(
    *, db: Any, staff: Staff, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> int:
    """Revoke every auth session of a user ("sign out everywhere"); returns how many were
    live. Raises AccountError 404 for an unknown user."""
    with _audited(
        staff=staff,
        permission="accounts.revoke_sessions",
        action="sessions_revoke_all",
        tenant_id=tenant_id,
        user_id=user_id,
        reason=reason,
    ) as audit:

        @fdb_backend.transactional
        def revoke(tr: Any) -> int:
            if users(tenant_id).get(tr, user_id) is None:
                raise AccountError(*NOT_FOUND)
            count = revoke_user_sessions(
                tr, tenant_id=tenant_id, user_id=user_id, reason="staff_revoked", now=audit.now
            )
            audit.event(tr, type="logout_all", sessions=count)
            return count

        return int(revoke(db))


def staff_workspace_session_delete(
    *, db: Any, staff: Staff, tenant_id: uuid.UUID, session_id: uuid.UUID, reason: str
) -> WorkspaceSession:
    """Delete a workspace session with everything it holds; its sockets close (4404).
    Returns its head as it was. Raises WorkspaceError 404."""
    with _audited(
        staff=staff,
        permission="accounts.delete_workspace_session",
        action="workspace_session_delete",
        tenant_id=tenant_id,
        target=("workspace_session", session_id),
        reason=reason,
    ):
        return session_delete_by_staff(db=db, tenant_id=tenant_id, session_id=session_id)


def staff_mfa_reset(
    *, db: Any, staff: Staff, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> User:
    """``mfa_reset`` by a support staff member: needs ``accounts.lock_user`` and a reason,
    and writes a staff audit entry (action ``mfa_reset``)."""
    with _audited(
        staff=staff,
        permission="accounts.lock_user",
        action="mfa_reset",
        tenant_id=tenant_id,
        user_id=user_id,
        reason=reason,
    ) as audit:
        return mfa_reset(db=db, tenant_id=tenant_id, user_id=user_id, reason=audit.reason)


# --- staff sign-in: throttle, lockout, audit --------------------------------------------
#
# The admin's login form (operations.admin_site) asks ``staff_login_check`` before it
# checks anything, reports each refusal to ``staff_login_fail`` and each sign-in to
# ``staff_login_record``; sign-outs go to ``staff_logout_record``. Failures are counted per
# username and per client address in the storage layer (accounts.throttle), so every process
# sees one count; at the limit the form is locked for the rest of the window. The audit
# entries have no tenant and name the client address as their target.

USERNAME_MAX = 150  # Django's username length; what is audited of a typed username


class StaffLoginLocked(Exception):
    """Too many failed sign-ins for this username or client address: HTTP 429."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("staff sign-in locked", retry_after)
        self.retry_after = retry_after


def _login_buckets(username: str, address: str) -> list[Bucket]:
    window = settings.CODITECT_ADMIN_LOGIN_LOCKOUT_S
    # Usernames are case-sensitive in Django, but counting them folded stops a guesser from
    # getting a fresh allowance per spelling.
    return [
        Bucket(
            "admin_login_username",
            username.casefold(),
            settings.CODITECT_ADMIN_LOGIN_FAILURES_PER_USERNAME,
            window,
        ),
        Bucket(
            "admin_login_address",
            address,
            settings.CODITECT_ADMIN_LOGIN_FAILURES_PER_ADDRESS,
            window,
        ),
    ]


def _sign_in_entry(
    *, action: str, username: str, address: str, reason: str, staff: Staff | None = None
) -> None:
    StaffAuditEntry.objects.create(
        staff_id=staff.pk if staff is not None else None,
        staff_username=username[:USERNAME_MAX],
        action=action,
        target_type="admin_site",
        target_id=address[:64],
        tenant_id=None,
        reason=reason,
    )


def staff_login_check(*, db: Any, username: str, address: str, now: float | None = None) -> None:
    """Raise StaffLoginLocked while this username or address has used up its failures."""
    try:
        throttle_check(db=db, buckets=_login_buckets(username, address), now=now)
    except Throttled as locked:
        raise StaffLoginLocked(locked.retry_after) from None


def staff_login_fail(
    *, db: Any, username: str, address: str, reason: str, now: float | None = None
) -> bool:
    """Count and audit a refused sign-in (``admin_login_failed``); when it uses up the last
    failure allowed, audit the lockout too (``admin_login_locked``) and return True."""
    buckets = _login_buckets(username, address)
    throttle_record(db=db, buckets=buckets, now=now)
    _sign_in_entry(action="admin_login_failed", username=username, address=address, reason=reason)
    try:
        throttle_check(db=db, buckets=buckets, now=now)
    except Throttled as locked:
        _sign_in_entry(
            action="admin_login_locked",
            username=username,
            address=address,
            reason=f"too many failed sign-ins; locked for {locked.retry_after} s",
        )
        return True
    return False


def staff_login_record(*, staff: Staff, address: str, reason: str) -> None:
    """Audit a staff member's sign-in to the admin (``admin_login``)."""
    _sign_in_entry(
        action="admin_login",
        username=staff.get_username(),
        address=address,
        reason=reason,
        staff=staff,
    )


def staff_logout_record(*, staff: Staff, address: str) -> None:
    """Audit a staff member's sign-out from the admin (``admin_logout``)."""
    _sign_in_entry(
        action="admin_logout",
        username=staff.get_username(),
        address=address,
        reason="signed out",
        staff=staff,
    )


# --- API tokens (CONTRACT §7) ------------------------------------------------------------


def user_api_tokens(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[ApiToken]:
    """A user's API tokens, newest first (what the user page shows: never their secrets)."""
    found = api_tokens_of_user(db=db, tenant_id=tenant_id, user_id=user_id)
    return sorted(found, key=lambda t: t.created_at, reverse=True)


def staff_api_token_revoke(
    *,
    db: Any,
    staff: Staff,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    token_id: uuid.UUID,
    reason: str,
) -> ApiToken:
    """Revoke one API token of a user (refused from its next request on, its sockets closed
    within about a second). Raises AccountError 404 when it is not that user's."""
    with _audited(
        staff=staff,
        permission="accounts.revoke_sessions",
        action="api_token_revoke",
        tenant_id=tenant_id,
        user_id=user_id,
        target=("api_token", token_id),
        reason=reason,
    ) as audit:
        found = api_tokens_of_user(db=db, tenant_id=tenant_id, user_id=user_id)
        if token_id not in {t.id for t in found}:
            raise AccountError(*NOT_FOUND)
        return api_token_revoke_by_staff(
            db=db, tenant_id=tenant_id, token_id=token_id, reason=audit.reason
        )

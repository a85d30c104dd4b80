"""Who is calling: an access token checked against its live auth session on every request."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fdb_backend
from accounts.errors import (
    ACCOUNT_LOCKED,
    MANAGERS_ONLY,
    SESSION_REVOKED,
    TENANT_SUSPENDED,
    AccountError,
    fail,
)
from accounts.records import AuthSession, Tenant, User, auth_sessions, tenants, users
from accounts.services.refresh import claims_of
from accounts.tokens import ACCESS
from fdb_backend.records import get_together

# last_used_at is written at most this often per session, so reads stay reads.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    user: User
    tenant: Tenant
    session: AuthSession

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    @property
    def is_authenticated(self) -> bool:  # what DRF's IsAuthenticated asks
        return True


Loaded = tuple[AuthSession | None, User | None, Tenant | None]
# (tenant id, auth session id, user id): what an access token names.
Key = tuple[uuid.UUID, uuid.UUID, uuid.UUID]


@fdb_backend.transactional
def _load_many(tr: Any, keys: list[Key]) -> dict[Key, Loaded]:
    """The auth session, user and tenant of each key, every record read once and all of
    them together: one read whether one request asks or a server re-checks its sockets."""
    reads: dict[tuple[str, uuid.UUID, uuid.UUID], tuple[Any, uuid.UUID]] = {}
    for t, s, u in keys:
        reads.setdefault(("session", t, s), (auth_sessions(t), s))
        reads.setdefault(("user", t, u), (users(t), u))
        reads.setdefault(("tenant", t, t), (tenants(), t))
    found = dict(zip(reads, get_together(tr.snapshot, list(reads.values())), strict=True))
    return {
        (t, s, u): (found["session", t, s], found["user", t, u], found["tenant", t, t])
        for t, s, u in keys
    }


@fdb_backend.transactional
def _touch(tr: Any, tenant_id: uuid.UUID, session_id: uuid.UUID, now: datetime) -> None:
    sessions = auth_sessions(tenant_id)
    session = sessions.get(tr, session_id)
    if (
        session is not None
        and session.revoked_at is None
        and now - session.last_used_at >= _TOUCH_EVERY
    ):
        sessions.save(tr, dataclasses.replace(session, last_used_at=now))


def principal_authenticate(*, db: Any, token: str) -> Principal:
    """The caller of an access token, or AccountError 401/403 when it may not act.

    Revocation (logout, device revoke, password change, lock, removal, suspension) is seen
    by the very next request because the auth session is read every time.
    """
    claims = claims_of(db=db, token=token, token_use=ACCESS)
    key = (claims.tenant_id, claims.session_id, claims.user_id)
    session, user, tenant = _load_many(db, [key])[key]
    if (
        session is None
        or session.token_family != claims.token_family
        or session.user_id != claims.user_id
        or session.revoked_at is not None
        or user is None
        or tenant is None
    ):
        raise fail(SESSION_REVOKED)
    if user.locked:
        raise fail(ACCOUNT_LOCKED)
    if tenant.status != "active":
        raise fail(TENANT_SUSPENDED)
    now = datetime.now(UTC)
    if now - session.last_used_at >= _TOUCH_EVERY:
        _touch(db, claims.tenant_id, session.id, now)
    return Principal(user=user, tenant=tenant, session=session)


def principal_require_manager(*, principal: Principal) -> None:
    """Raises AccountError 403 unless the caller is an owner or admin of the tenant."""
    if principal.user.role not in ("owner", "admin"):
        raise AccountError(*MANAGERS_ONLY)


def principal_check(*, db: Any, principal: Principal) -> None:
    """Re-check a principal held open (a WebSocket): raises AccountError once it is revoked."""
    error = principals_check(db=db, principals=[principal])[0]
    if error is not None:
        raise error


def principals_check(*, db: Any, principals: Sequence[Principal]) -> list[AccountError | None]:
    """principal_check of many principals in one transaction: an error or None for each.

    A server re-checks all its open sockets at once, reading each auth session once however
    many sockets share it.
    """
    keys = {(p.tenant_id, p.session.id, p.user_id) for p in principals}
    found = _load_many(db, sorted(keys))
    return [_why_not(*found[(p.tenant_id, p.session.id, p.user_id)]) for p in principals]


def _why_not(
    session: AuthSession | None, user: User | None, tenant: Tenant | None
) -> AccountError | None:
    if (
        session is None
        or session.revoked_at is not None
        or user is None
        or session.user_id != user.id
        or tenant is None
    ):
        return fail(SESSION_REVOKED)
    if user.locked:
        return fail(ACCOUNT_LOCKED)
    if tenant.status != "active":
        return AccountError(*TENANT_SUSPENDED)
    return None

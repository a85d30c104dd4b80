"""Who is calling: an access token checked against its live auth session on every request,
or an API token checked against its record (accounts/services/api_tokens.py)."""

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
    INSUFFICIENT_SCOPE,
    INVALID_TOKEN,
    MANAGERS_ONLY,
    SESSION_REVOKED,
    TENANT_SUSPENDED,
    TOKEN_EXPIRED,
    USER_ONLY,
    AccountError,
    fail,
)
from accounts.records import (
    SCOPES,
    ApiToken,
    AuthSession,
    Tenant,
    User,
    api_tokens,
    auth_sessions,
    tenants,
    users,
)
from accounts.services.refresh import claims_of
from accounts.tokens import ACCESS
from fdb_backend.records import get_together

# last_used_at is written at most this often per session, so reads stay reads.
_TOUCH_EVERY = timedelta(seconds=60)
_ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True)
class Principal:
    """The caller: a user acting through an access token (``session``) or through one of
    their API tokens (``api_token``; ``session`` is then None)."""

    user: User
    tenant: Tenant
    session: AuthSession | None
    api_token: ApiToken | None = None
    # When the credential stops working by time (access token expiry); None: only revocation.
    expires_at: datetime | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    @property
    def api_token_id(self) -> uuid.UUID | None:
        return self.api_token.id if self.api_token is not None else None

    @property
    def scopes(self) -> frozenset[str]:
        """What the caller may do: everything for the user's own access token."""
        return _ALL_SCOPES if self.api_token is None else frozenset(self.api_token.scopes)

    @property
    def is_authenticated(self) -> bool:  # what DRF's IsAuthenticated asks
        return True


Loaded = tuple[AuthSession | ApiToken | None, User | None, Tenant | None]
# (kind, tenant id, auth session or API token id, user id): what a credential names.
Key = tuple[str, uuid.UUID, uuid.UUID, uuid.UUID]
SESSION, API_TOKEN = "session", "api_token"


@fdb_backend.transactional
def _load_many(tr: Any, keys: list[Key]) -> dict[Key, Loaded]:
    """The auth session (or API token), user and tenant of each key, every record read once
    and all of them together: one read whether one request asks or a server re-checks its
    sockets."""
    reads: dict[tuple[str, uuid.UUID, uuid.UUID], tuple[Any, uuid.UUID]] = {}
    for kind, t, c, u in keys:
        reads.setdefault((kind, t, c), (auth_sessions(t) if kind == SESSION else api_tokens(t), c))
        reads.setdefault(("user", t, u), (users(t), u))
        reads.setdefault(("tenant", t, t), (tenants(), t))
    found = dict(zip(reads, get_together(tr.snapshot, list(reads.values())), strict=True))
    return {
        (kind, t, c, u): (found[kind, t, c], found["user", t, u], found["tenant", t, t])
        for kind, t, c, u in keys
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
    key = (SESSION, claims.tenant_id, claims.session_id, claims.user_id)
    session, user, tenant = _load_many(db, [key])[key]
    if (
        not isinstance(session, AuthSession)
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
    return Principal(user=user, tenant=tenant, session=session, expires_at=claims.expires_at)


def principal_require_manager(*, principal: Principal) -> None:
    """Raises AccountError 403 unless the caller is an owner or admin of the tenant."""
    if principal.user.role not in ("owner", "admin"):
        raise AccountError(*MANAGERS_ONLY)


def principal_require_user(*, principal: Principal) -> AuthSession:
    """The caller's auth session; AccountError 403 ``insufficient_scope`` for an API token,
    which never manages accounts, members, tokens, MFA or passwords (CONTRACT §7)."""
    if principal.session is None:
        raise fail(USER_ONLY)
    return principal.session


def principal_require_scope(*, principal: Principal, scope: str) -> None:
    """Raises AccountError 403 ``insufficient_scope`` unless the caller's scopes allow it."""
    if scope not in principal.scopes:
        raise AccountError(*INSUFFICIENT_SCOPE)


def principal_check(*, db: Any, principal: Principal) -> None:
    """Re-check a principal held open (a WebSocket): raises AccountError once it is revoked."""
    error = principals_check(db=db, principals=[principal])[0]
    if error is not None:
        raise error


def principals_check(*, db: Any, principals: Sequence[Principal]) -> list[AccountError | None]:
    """principal_check of many principals in one transaction: an error or None for each.

    A server re-checks all its open sockets at once, reading each auth session (or API
    token) once however many sockets share it.
    """
    keys = [_key_of(p) for p in principals]
    found = _load_many(db, sorted(set(keys)))
    now = datetime.now(UTC)
    return [credential_problem(key[0], *found[key], now=now) for key in keys]


def _key_of(principal: Principal) -> Key:
    if principal.api_token is not None:
        return (API_TOKEN, principal.tenant_id, principal.api_token.id, principal.user_id)
    assert principal.session is not None
    return (SESSION, principal.tenant_id, principal.session.id, principal.user_id)


def credential_problem(
    kind: str,
    credential: AuthSession | ApiToken | None,
    user: User | None,
    tenant: Tenant | None,
    *,
    now: datetime,
) -> AccountError | None:
    """Why a credential (``kind``: an auth session or an API token) may no longer act, or
    None. A revoked API token is gone, so it is as unknown as one that never was."""
    if credential is None and kind == API_TOKEN:
        return fail(INVALID_TOKEN)
    if (
        credential is None
        or (isinstance(credential, AuthSession) and credential.revoked_at is not None)
        or user is None
        or credential.user_id != user.id
        or tenant is None
    ):
        return fail(SESSION_REVOKED)
    if (
        isinstance(credential, ApiToken)
        and credential.expires_at is not None
        and credential.expires_at <= now
    ):
        return fail(TOKEN_EXPIRED)
    if user.locked:
        return fail(ACCOUNT_LOCKED)
    if tenant.status != "active":
        return AccountError(*TENANT_SUSPENDED)
    return None

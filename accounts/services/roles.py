"""Roles, checked where they count: inside the transaction that writes (docs/accounts.md,
"Roles").

A request's ``Principal`` carries the user record as it was when the request (or the socket)
was authenticated. A socket stays open for hours, and a role can change while a request is
between its authentication and its write; so every write reads the caller's user record
again in its own transaction. The read is a conflicting one, not a snapshot: a role change
that commits before the write makes the write's transaction retry and see the new role, so
a member demoted to viewer writes nothing after the demotion commits, over REST or over a
socket opened long before. No cache to expire.
"""

from __future__ import annotations

import uuid
from typing import Any

from accounts.errors import (
    ACCOUNT_LOCKED,
    MANAGERS_ONLY,
    SESSION_REVOKED,
    VIEWER_READ_ONLY,
    fail,
    refuse,
)
from accounts.records import MANAGER_ROLES, WRITER_ROLES, User, users
from accounts.services.principal import Principal
from fdb_backend.records import Collection


def caller_key(principal: Principal) -> tuple[Collection[User], uuid.UUID]:
    """Where the caller's user record is, for a caller that reads it together with other
    records (``get_together``) and checks it with ``writer_check``."""
    return users(principal.tenant_id), principal.user_id


def caller_check(user: User | None) -> User:
    """The caller's user record as read in the transaction: AccountError 401
    ``session_revoked`` when they were removed meanwhile, 403 ``account_locked`` when locked."""
    if user is None:
        raise fail(SESSION_REVOKED)
    if user.locked:
        raise fail(ACCOUNT_LOCKED)
    return user


def writer_check(user: User | None) -> User:
    """``caller_check``, then RoleError 403 ``forbidden`` for a viewer."""
    found = caller_check(user)
    if found.role not in WRITER_ROLES:
        raise refuse(VIEWER_READ_ONLY)
    return found


def session_writer_require(tr: Any, *, principal: Principal) -> User:
    """Inside a writing transaction: the caller's current user record, or RoleError 403
    ``forbidden`` when their role is viewer now (see the module's docstring)."""
    collection, user_id = caller_key(principal)
    return writer_check(collection.get(tr, user_id))


def manager_require(tr: Any, *, principal: Principal) -> User:
    """Inside a transaction that manages the tenant: the caller's current user record, or
    403 ``forbidden`` unless they are an owner or admin now."""
    collection, user_id = caller_key(principal)
    found = caller_check(collection.get(tr, user_id))
    if found.role not in MANAGER_ROLES:
        raise refuse(MANAGERS_ONLY)
    return found

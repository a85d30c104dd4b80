"""Reads of the accounts app: what the API and the admin show."""

from __future__ import annotations

import uuid
from typing import Any

import fdb_backend
from accounts.records import AuthEvent, AuthSession, User, auth_event_read, auth_sessions, users
from fdb_backend.records import Page


def auth_session_list(
    *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> Page[AuthSession]:
    """The user's live (not revoked) auth sessions."""

    @fdb_backend.transactional
    def read(tr: Any) -> Page[AuthSession]:
        page = auth_sessions(tenant_id).list_by_index(
            tr.snapshot, "auth_sessions_by_user", (user_id,), limit=limit, continuation=cursor
        )
        return Page([s for s in page.records if s.revoked_at is None], page.continuation)

    return read(db)


def member_list(
    *, db: Any, tenant_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> Page[User]:
    return users(tenant_id).list_by_key(db, limit=limit, continuation=cursor)


def auth_event_list(*, tenant_id: uuid.UUID, limit: int = 100, db: Any = None) -> list[AuthEvent]:
    """The tenant's newest auth events, newest first."""
    database = db or fdb_backend.get_database()

    @fdb_backend.transactional
    def read(tr: Any) -> list[AuthEvent]:
        return auth_event_read(tr, tenant_id=tenant_id, limit=limit)

    return read(database)

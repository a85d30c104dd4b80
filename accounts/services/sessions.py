"""Signing out: this device, every device, another device; and changing the password."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import fdb_backend
from accounts.errors import AccountError
from accounts.passwords import password_check, password_hash, password_problems
from accounts.records import auth_sessions, users
from accounts.services.common import Client, EventStamp, revoke_user_sessions, revoked
from accounts.services.login import password_attempt_throttle, password_failure_record
from accounts.services.principal import Principal, principal_require_user


def auth_session_logout(*, db: Any, principal: Principal, client: Client) -> None:
    """Revoke the caller's auth session: its access and refresh tokens stop at once."""
    current = principal_require_user(principal=principal)
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def logout(tr: Any) -> None:
        sessions = auth_sessions(principal.tenant_id)
        session = sessions.get(tr, current.id)
        if session is not None and session.revoked_at is None:
            sessions.save(tr, revoked(session, reason="logout", now=stamp.at))
        stamp.write_as(tr, principal, type="logout")

    logout(db)


def auth_session_logout_all(*, db: Any, principal: Principal, client: Client) -> int:
    """Revoke every auth session of the caller; returns how many were live."""
    principal_require_user(principal=principal)
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def logout_all(tr: Any) -> int:
        count = revoke_user_sessions(
            tr,
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            reason="logout_all",
            now=stamp.at,
        )
        stamp.write_as(tr, principal, type="logout_all", sessions=count)
        return count

    return int(logout_all(db))


def auth_session_revoke(
    *, db: Any, principal: Principal, session_id: uuid.UUID, client: Client
) -> bool:
    """Sign out one of the caller's own devices; False when it is not theirs (404)."""
    principal_require_user(principal=principal)
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def revoke(tr: Any) -> bool:
        sessions = auth_sessions(principal.tenant_id)
        session = sessions.get(tr, session_id)
        if (
            session is None
            or session.user_id != principal.user_id
            or session.revoked_at is not None
        ):
            return False
        sessions.save(tr, revoked(session, reason="device_revoked", now=stamp.at))
        stamp.write_as(tr, principal, type="device_revoked", session_id=str(session_id))
        return True

    return bool(revoke(db))


def user_password_change(
    *, db: Any, principal: Principal, current_password: str, new_password: str, client: Client
) -> None:
    """Set a new password; every other auth session of the user is revoked.

    A wrong current password counts as a failed login of the account (its per-minute and
    per-hour budgets, the client address's, a ``login_failed`` event with reason
    ``password_change``): a stolen access token cannot guess the password faster than a
    login could, nor make the server hash without limit.

    Raises AccountError 400 wrong_password / invalid, 429 throttled.
    """
    session = principal_require_user(principal=principal)
    user = principal.user
    failures = password_attempt_throttle(db=db, email_key=user.email_key, client=client)
    if not password_check(encoded=user.password_hash, password=current_password).ok:
        password_failure_record(
            db,
            failures=failures,
            stamp=EventStamp.fresh(client=client),
            tenant_id=principal.tenant_id,
            user_id=user.id,
            reason="password_change",
        )
        raise AccountError(
            400, "wrong_password", "The current password is incorrect.", attr="current_password"
        )
    problems = password_problems(
        password=new_password, email=user.email, display_name=user.display_name
    )
    if problems:
        raise AccountError(400, "invalid", " ".join(problems), attr="new_password")
    hashed = password_hash(password=new_password)
    stamp = EventStamp.fresh(client=client)
    now = stamp.at

    @fdb_backend.transactional
    def change(tr: Any) -> None:
        people = users(principal.tenant_id)
        current = people.get(tr, user.id)
        if current is None:
            raise AccountError(401, "session_revoked", "This session has been signed out.")
        people.save(tr, dataclasses.replace(current, password_hash=hashed, password_changed_at=now))
        revoke_user_sessions(
            tr,
            tenant_id=principal.tenant_id,
            user_id=user.id,
            reason="password_changed",
            now=now,
            keep=session.id,
        )
        stamp.write_as(tr, principal, type="password_changed")

    change(db)

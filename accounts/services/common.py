"""Pieces every account flow shares: who is calling, emails, event records, sessions."""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from django.conf import settings

import fdb_backend
from accounts.errors import NOT_FOUND, AccountError
from accounts.mail import delivered_at_once
from accounts.records import AuthEvent, AuthSession, auth_event_write, auth_sessions
from accounts.services.issue import refresh_expiry
from fdb_backend.pool import made_once

R = TypeVar("R")


@dataclass(frozen=True)
class Client:
    """Where a request came from, as recorded on auth sessions and events."""

    ip: str = ""
    user_agent: str = ""


def email_key(email: str) -> str:
    """The form emails are unique in: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", email).casefold()


# A registration that claims an address held by an unverified account (issue 15, finding
# 2) is stored under this placeholder until the mailbox proves the claim: it holds nothing in
# the unique email index meanwhile, so nobody can sign in with it. The space keeps it apart
# from every email key (an address has none).
_CLAIM = "claim "


def claim_key(*, user_id: uuid.UUID, email_key: str) -> str:
    return f"{_CLAIM}{user_id.hex} {email_key}"


def claimed_key(stored: str) -> str | None:
    """The email key a pending claim is for, or None when ``stored`` is a real email key."""
    if not stored.startswith(_CLAIM):
        return None
    return stored[len(_CLAIM) :].partition(" ")[2]


def slug_for(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", name).lower()).strip("-")
    return f"{(base or 'team')[:40]}-{secrets.token_hex(3)}"


def event(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    event_id: uuid.UUID,
    type: str,
    at: datetime,
    client: Client,
    user_id: uuid.UUID | None,
    **data: Any,
) -> None:
    auth_event_write(
        tr,
        tenant_id=tenant_id,
        event=AuthEvent(
            id=event_id,
            type=type,
            at=at,
            user_id=user_id,
            ip=client.ip,
            user_agent=client.user_agent,
            data=data,
        ),
    )


class Caller(Protocol):
    """Who acts, as a ``Principal`` names them: a user of a tenant."""

    @property
    def tenant_id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID: ...


@dataclass(frozen=True, kw_only=True)
class EventStamp:
    """What the auth event of one call is given before its transaction: the moment, the
    client and the event's id. Made outside the transactional function, which may run
    again, so a retry rewrites the same record (same key, same body) instead of adding one;
    each use case then names only what is its own: the tenant, type, user and data."""

    at: datetime
    event_id: uuid.UUID
    # Operators' and support staff's levers record no client.
    client: Client = Client()

    @classmethod
    def fresh(cls, *, client: Client = Client(), at: datetime | None = None) -> EventStamp:
        """A new event id, at ``at`` (default: now)."""
        return cls(at=datetime.now(UTC) if at is None else at, event_id=uuid.uuid4(), client=client)

    @fdb_backend.transactional
    def write(
        self, tr: Any, *, tenant_id: uuid.UUID, type: str, user_id: uuid.UUID | None, **data: Any
    ) -> None:
        """Append the event to ``tenant_id``'s auth event log: in ``tr``, or in a
        transaction of its own when given the database (a refused attempt's event)."""
        event(
            tr,
            tenant_id=tenant_id,
            event_id=self.event_id,
            type=type,
            at=self.at,
            client=self.client,
            user_id=user_id,
            **data,
        )

    def write_as(self, tr: Any, caller: Caller, *, type: str, **data: Any) -> None:
        """``write`` for an action of the caller's own: their tenant's event, naming them."""
        self.write(tr, tenant_id=caller.tenant_id, type=type, user_id=caller.user_id, **data)


def existing(record: R | None) -> R:
    """``record``, or AccountError 404 not_found when there is none."""
    if record is None:
        raise AccountError(*NOT_FOUND)
    return record


@dataclass(frozen=True)
class SessionIds:
    """The ids of a new auth session, made before the transaction that may be retried."""

    session_id: uuid.UUID
    family: uuid.UUID
    jti: uuid.UUID

    @classmethod
    def fresh(cls) -> SessionIds:
        return cls(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


def auth_session_open(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    ids: SessionIds,
    user_id: uuid.UUID,
    client: Client,
    now: datetime,
    login: EventStamp | None = None,
    **data: Any,
) -> AuthSession:
    """Store a new auth session (one login on one device) with its token family; with
    ``login``, also the ``login`` event of the sign-in it completes (``data``: e.g. the
    second factor's ``method``)."""
    session = auth_sessions(tenant_id).save(
        tr,
        new_auth_session(
            session_id=ids.session_id, family=ids.family, jti=ids.jti,
            user_id=user_id, client=client, now=now,
        ),
    )  # fmt: skip
    if login is not None:
        login.write(tr, tenant_id=tenant_id, type="login", user_id=user_id, **data)
    return session


def new_auth_session(
    *,
    session_id: uuid.UUID,
    family: uuid.UUID,
    jti: uuid.UUID,
    user_id: uuid.UUID,
    client: Client,
    now: datetime,
) -> AuthSession:
    absolute = now + timedelta(seconds=settings.CODITECT_REFRESH_ABSOLUTE_TTL_S)
    return AuthSession(
        id=session_id,
        user_id=user_id,
        token_family=family,
        refresh_jti=jti,
        refresh_expires_at=refresh_expiry(now=now, absolute_expires_at=absolute),
        ip=client.ip[:64],
        user_agent=client.user_agent[:512],
        created_at=now,
        last_used_at=now,
        absolute_expires_at=absolute,
    )


def revoke_user_sessions(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    reason: str,
    now: datetime,
    keep: uuid.UUID | None = None,
) -> int:
    """Revoke every live auth session of a user (but ``keep``); returns how many."""
    sessions = auth_sessions(tenant_id)
    count = 0
    for session in sessions.list_by_index(tr, "auth_sessions_by_user", (user_id,)).records:
        if session.id == keep or session.revoked_at is not None:
            continue
        sessions.save(tr, revoked(session, reason=reason, now=now))
        count += 1
    return count


def revoked(session: AuthSession, *, reason: str, now: datetime) -> AuthSession:
    return dataclasses.replace(session, revoked_at=now, revoked_reason=reason)


# --- work done after the answer -------------------------------------------------------------

logger = logging.getLogger("accounts.background")
# Its own thread, not the mail's: a slow mail server does not hold these jobs up.
_executor = made_once(
    lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="accounts-background")
)


def background_run(job: Callable[[], None], *, name: str) -> None:
    """Run ``job`` on the accounts' background thread (one per process, in order), after
    the request that asked for it has answered.

    For work whose answer must not depend on what it finds (a reset request for a known or
    an unknown email): the request does the same thing either way, hand the job over. A
    failing job is logged (``name`` says which, never its data) and dropped; the user asks
    again. With the locmem mail backend (tests) the job runs at once, as accounts/mail.py
    delivers at once there, so a test reads the outbox right after the response.
    """
    if delivered_at_once():
        _logged(job, name)
    else:
        _executor().submit(_logged, job, name)


def background_drain(*, timeout: float) -> bool:
    """Wait until every job handed over before this call has run (shutdown, tests)."""
    done = _executor().submit(lambda: None)
    try:
        done.result(timeout=timeout)
    except TimeoutError:
        return False
    return True


def _logged(job: Callable[[], None], name: str) -> None:
    try:
        job()
    except Exception:
        logger.exception("account background job failed", extra={"job": name})

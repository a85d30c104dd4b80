"""A person's data rights: the export of everything stored about them, and their erasure
(CONTRACT §2 "Your data", docs/accounts.md "Export and erasure").

Accounts exports and erases its own records; the workspaces and realtime apps add theirs
through ``accounts.hooks`` (sections and steps registered in their ``AppConfig.ready``).

An erasure is, in order:

1. one transaction that checks the tenant keeps an owner (409 ``last_owner``), deletes the
   user with their auth sessions and API tokens (every credential stops at once: the next
   request, and the sockets' re-check within ``CODITECT_WS_AUTH_CHECK_S``, find nothing) and
   writes the audit event;
2. the invitations they sent, then every registered step (their workspace sessions with
   everything attached, their connections, locks and the events that name them);
3. their auth events lose their IP address and user agent; the events stay for the
   tenant's audit log.

Steps 2 and 3 run in bounded transactions after the user is gone, and are idempotent:
``user_erase_finish`` completes an erasure that stopped half way, and ``storage check``
reports (``--repair`` removes) workspace sessions whose owner is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fdb_backend
from accounts.errors import AccountError
from accounts.hooks import erasure_steps, export_sections
from accounts.records import (
    ApiToken,
    AuthEvent,
    AuthSession,
    Invitation,
    User,
    api_tokens,
    auth_events_of_user,
    auth_events_strip_client,
    auth_sessions,
    invitations,
    users,
)
from accounts.services.api_tokens import revoke_user_api_tokens
from accounts.services.common import Client, EventStamp, existing
from accounts.services.mfa import factors_confirm, mfa_status, mfa_status_json
from accounts.services.principal import Principal, principal_require_user
from core.time import rfc3339

# Keys of the auth event log read per transaction while exporting or stripping.
EVENT_BATCH = 500
# Invitations looked at per transaction while removing those a person sent.
INVITATION_BATCH = 200
LAST_OWNER = (409, "last_owner", "A tenant needs at least one owner.")
EXPORT_FORMAT = "coditect.export.v1"


def _json(record: Any, names: str, **values: Any) -> dict[str, Any]:
    """The fields ``names`` (space-separated, in this order) of ``record`` as the export
    writes them: ids as strings, times in RFC 3339, sequences as lists; ``values`` stand
    for fields the record names otherwise or does not hold."""
    return {
        name: _value(values[name] if name in values else getattr(record, name))
        for name in names.split()
    }


def _value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, tuple | list):
        return list(value)
    return value


# --- export -------------------------------------------------------------------------------


def user_export(*, db: Any, principal: Principal) -> dict[str, Any]:
    """Everything stored about the caller, as readable JSON: their profile, tenant and role,
    second factor (never its secret), auth sessions, auth events, API tokens (never a digest),
    the invitations they sent, and every registered section (their workspace sessions with
    state and events, their live connections and locks).

    Raises AccountError 403 ``insufficient_scope`` for an API token (a person's own data is
    theirs to take, not an agent's).
    """
    principal_require_user(principal=principal)
    tenant_id, user_id = principal.tenant_id, principal.user_id
    user, tenant = principal.user, principal.tenant
    mfa = mfa_status(principal=principal)

    @fdb_backend.transactional
    def read(tr: Any) -> tuple[list[AuthSession], list[ApiToken]]:
        snap = tr.snapshot
        sessions = auth_sessions(tenant_id).list_by_index(snap, "auth_sessions_by_user", (user_id,))
        tokens = api_tokens(tenant_id).list_by_index(snap, "api_tokens_by_user", (user_id,))
        return sessions.records, tokens.records

    sessions, tokens = read(db)
    exported: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": rfc3339(datetime.now(UTC)),
        "user": _user_json(user),
        "tenant": _json(tenant, "id name slug role", role=user.role),
        "mfa": mfa_status_json(mfa),
        "auth_sessions": [_auth_session_json(s) for s in sessions],
        "auth_events": [_auth_event_json(e) for e in _events_of(db, tenant_id, user_id)],
        "api_tokens": [_api_token_json(t) for t in tokens],
        "invitations_sent": [
            _invitation_json(i) for i in _invitations_of(db, tenant_id, user_id, live=True)
        ],
    }
    for name, section in export_sections():
        exported[name] = section(db=db, tenant_id=tenant_id, user_id=user_id)
    return exported


def _user_json(user: User) -> dict[str, Any]:
    return _json(
        user,
        "id email display_name role locked locked_reason created_at password_changed_at "
        "email_verified_at",
    )


def _auth_session_json(session: AuthSession) -> dict[str, Any]:
    return _json(
        session,
        "id created_at last_used_at expires_at ip user_agent revoked_at revoked_reason",
        expires_at=session.absolute_expires_at,
    )


def _auth_event_json(found: AuthEvent) -> dict[str, Any]:
    return _json(found, "id type at ip user_agent data")


def _api_token_json(token: ApiToken) -> dict[str, Any]:
    return _json(token, "id name scopes created_at expires_at last_used_at addresses")


def _invitation_json(invitation: Invitation) -> dict[str, Any]:
    return _json(invitation, "email role created_at expires_at")


def _events_of(db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[AuthEvent]:
    """The user's auth events, oldest first, read EVENT_BATCH keys per transaction."""

    @fdb_backend.transactional
    def read(tr: Any, after: bytes | None) -> tuple[list[AuthEvent], bytes | None]:
        return auth_events_of_user(
            tr.snapshot, tenant_id=tenant_id, user_id=user_id, after=after, limit=EVENT_BATCH
        )

    found: list[AuthEvent] = []
    after: bytes | None = None
    while True:
        batch, after = read(db, after)
        found.extend(batch)
        if after is None:
            return found


def _invitations_of(
    db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, *, live: bool
) -> list[Invitation]:
    every = invitations(tenant_id).scan(db, batch_size=INVITATION_BATCH, include_expired=not live)
    return [i for i in every if i.created_by == user_id]


# --- erasure ------------------------------------------------------------------------------


def user_erase(
    *, db: Any, principal: Principal, password: str, code: str = "", client: Client
) -> None:
    """Erase the caller, given their password (and a code when their second factor is on).

    Raises AccountError 400 wrong_password / mfa_code_required / invalid_mfa_code /
    mfa_code_reused, 403 insufficient_scope (an API token), 409 last_owner, 429 throttled.
    """
    principal_require_user(principal=principal)
    factors_confirm(db=db, principal=principal, password=password, code=code)
    # The erasure's own event names the person only: not the address they erased from.
    user_data_erase(
        db=db,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        actor_id=None,
        client=Client(),
    )


def user_data_erase(
    *,
    db: Any,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    client: Client,
    authorize: Callable[[Any, User], None] | None = None,
) -> None:
    """Erase a user of ``tenant_id``: by themselves (``actor_id`` None: the event is
    ``account_erased``) or removed by a manager ``actor_id`` (``member_removed``, with the
    manager's ``client``). ``authorize(tr, user)`` runs inside the transaction and raises to
    refuse (an admin removing an owner; a manager who is no longer one).

    Raises AccountError 404 (no such user), 409 last_owner, or what ``authorize`` raises.
    """
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def remove(tr: Any) -> None:
        people = users(tenant_id)
        member = existing(people.get(tr, user_id))
        if authorize is not None:
            authorize(tr, member)
        if member.role == "owner":
            owners = [u for u in people.list_by_key(tr).records if u.role == "owner"]
            if len(owners) <= 1:
                raise AccountError(*LAST_OWNER)
        sessions = auth_sessions(tenant_id)
        for session in sessions.list_by_index(tr, "auth_sessions_by_user", (user_id,)).records:
            sessions.delete(tr, session.id)
        revoke_user_api_tokens(tr, tenant_id=tenant_id, user_id=user_id)
        people.delete(tr, user_id)
        if actor_id is None:
            stamp.write(tr, tenant_id=tenant_id, type="account_erased", user_id=user_id)
        else:
            stamp.write(
                tr,
                tenant_id=tenant_id,
                type="member_removed",
                user_id=actor_id,
                member_id=str(user_id),
            )

    remove(db)
    user_erase_finish(db=db, tenant_id=tenant_id, user_id=user_id)


def user_erase_finish(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """What an erasure does after the user is gone, each part in bounded transactions and
    idempotent: the invitations they sent, every registered step, and the IP addresses and
    user agents of their auth events. Refuses (ValueError) while the user still exists."""
    if users(tenant_id).get(db, user_id) is not None:
        raise ValueError("the user still exists", str(user_id))
    for invitation in _invitations_of(db, tenant_id, user_id, live=False):
        invitations(tenant_id).delete(db, invitation.token_hash)
    for _, step in erasure_steps():
        step(db=db, tenant_id=tenant_id, user_id=user_id)

    @fdb_backend.transactional
    def strip(tr: Any, after: bytes | None) -> bytes | None:
        _, following = auth_events_strip_client(
            tr, tenant_id=tenant_id, user_id=user_id, after=after, limit=EVENT_BATCH
        )
        return following

    after = strip(db, None)
    while after is not None:
        after = strip(db, after)

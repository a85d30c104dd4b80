"""The tenant audit log (GET /api/v5/tenant/audit): the tenant's auth events, from storage,
and the support staff's actions on it, from the ORM (``StaffAuditEntry``), merged newest
first into one cursor-paged list (docs/accounts.md "Tenant audit log").

Both sources are read through an index that holds only what the filters match (the auth
event log's indexes, accounts/audit_keys.py; the staff entries' database indexes), at most
``limit + 1`` entries of each per page, so a page is always full when more exist and a rare
filter reads no more than a common one.

Order: newest first by time, to the microsecond; at the same microsecond auth events come
before staff entries, and each source by its own id. A cursor is that position (plus a
digest of the filters it was made with), sealed by ``core.cursors``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.db import DatabaseError
from django.db.models import Q

import fdb_backend
from accounts import audit_keys
from accounts.errors import AccountError
from accounts.models import StaffAuditEntry
from accounts.records import auth_event_decode
from accounts.services.principal import Principal, principal_require_manager
from fdb_backend.records import InvalidContinuation, epoch_micros

STAFF_PREFIX = "staff."
# Auth event types and staff actions are lower-case words joined by underscores.
KIND_RE = re.compile(r"(staff\.)?[a-z][a-z0-9_]{0,63}")
AUDIT_UNAVAILABLE = (
    503,
    "audit_unavailable",
    "The audit log cannot be read right now; try again shortly.",
)
RETRY_AFTER_S = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Position ranks at one microsecond: higher is newer (listed first).
_AUTH, _STAFF = 1, 0


@dataclass(frozen=True)
class AuditEntry:
    source: Literal["auth", "staff"]
    id: str
    kind: str
    at: datetime
    user_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    data: dict[str, Any] = field(default_factory=dict)
    # Where the entry sits in the list: (at_micros, rank, the source's own id).
    position: tuple[int, int, Any] = (0, 0, 0)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    continuation: str | None


def _invalid(attr: str, detail: str) -> AccountError:
    return AccountError(400, "invalid", detail, attr=attr)


def _micros(value: datetime | None, attr: str) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise _invalid(attr, "Times need a time zone (RFC 3339, e.g. 2026-01-31T12:00:00Z).")
    return epoch_micros(value)


_FIRST, _LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


def _of_micros(micros: int) -> datetime:
    # Within what a datetime holds: RFC 3339 allows 0001-01-01T00:00:00+14:00, a moment
    # before it (for the database, as early as anything can be).
    earliest, latest = epoch_micros(_FIRST), epoch_micros(_LAST)
    return _EPOCH + timedelta(microseconds=min(max(micros, earliest), latest))


def _binding(tenant_id: uuid.UUID, filters: tuple[Any, ...]) -> str:
    text = repr((str(tenant_id), *filters)).encode()
    return hashlib.blake2b(text, digest_size=8).hexdigest()


def _continuation(binding: str, position: tuple[int, int, Any]) -> str:
    at, rank, own = position
    tail = own.hex if rank == _AUTH else str(own)
    return f"a1-{binding}-{at}-{rank}-{tail}"


def _position(continuation: str | None, binding: str) -> tuple[int, int, Any] | None:
    """The position a continuation names; InvalidContinuation for one that is not this
    list's (another filter, another tenant) or not one at all."""
    if continuation is None:
        return None
    parts = continuation.split("-")
    if len(parts) != 5 or parts[0] != "a1" or parts[1] != binding:
        raise InvalidContinuation("cursor of another list")
    try:
        at, rank = int(parts[2]), int(parts[3])
        own: Any = uuid.UUID(hex=parts[4]) if rank == _AUTH else int(parts[4])
    except ValueError:
        raise InvalidContinuation("malformed cursor") from None
    if rank not in (_AUTH, _STAFF) or at < 0:
        raise InvalidContinuation("malformed cursor")
    return at, rank, own


def _bound_order(bound: audit_keys.Bound) -> tuple[int, int, int]:
    # Keys below (at,) come before keys below (at, id): the first is the tighter bound.
    event = bound.event_id
    return (bound.at_micros, 0 if event is None else 1, event.int if event else 0)


@dataclass(frozen=True, kw_only=True)
class _Query:
    """What a page asks of each source: the filters both apply, the position the page
    starts after, and how many entries a source may give at most."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    position: tuple[int, int, Any] | None
    after_micros: int | None
    before_micros: int | None
    limit: int


def _auth_entries(db: Any, query: _Query, *, type: str | None) -> list[AuditEntry]:
    tenant_id = query.tenant_id
    upper: audit_keys.Bound | None = None
    if query.before_micros is not None:
        upper = audit_keys.Bound(query.before_micros)
    if query.position is not None:
        at, rank, own = query.position
        # After a staff entry at ``at``, the auth events left are those strictly older.
        cursor = audit_keys.Bound(at, own if rank == _AUTH else None)
        upper = cursor if upper is None else min(upper, cursor, key=_bound_order)

    @fdb_backend.transactional
    def read(tr: Any) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = audit_keys.events_page(
            tr.snapshot,
            tenant_id=tenant_id,
            user_id=query.user_id,
            type=type,
            upper=upper,
            after_micros=query.after_micros,
            limit=query.limit,
        )
        return found

    entries = []
    for key, value in read(db):
        event = auth_event_decode(tenant_id, key, value)
        entries.append(
            AuditEntry(
                source="auth",
                id=str(event.id),
                kind=event.type,
                at=event.at,
                user_id=event.user_id,
                ip=event.ip,
                user_agent=event.user_agent,
                data=event.data,
                position=(epoch_micros(event.at), _AUTH, event.id),
            )
        )
    return entries


def _staff_entries(query: _Query, *, action: str | None) -> list[AuditEntry]:
    found = StaffAuditEntry.objects.filter(tenant_id=query.tenant_id)
    if query.user_id is not None:
        found = found.filter(user_id=query.user_id)
    if action is not None:
        found = found.filter(action=action)
    if query.after_micros is not None:
        found = found.filter(created_at__gt=_of_micros(query.after_micros))
    if query.before_micros is not None:
        found = found.filter(created_at__lt=_of_micros(query.before_micros))
    if query.position is not None:
        at, rank, own = query.position
        moment = _of_micros(at)
        if rank == _AUTH:  # staff entries at that microsecond come after auth events
            found = found.filter(created_at__lte=moment)
        else:
            found = found.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=own))
    try:
        rows = list(found.order_by("-created_at", "-id")[: query.limit])
    except DatabaseError:
        # The staff database is down or refusing: no half list that looks whole.
        raise AccountError(*AUDIT_UNAVAILABLE, retry_after=RETRY_AFTER_S) from None
    return [
        AuditEntry(
            source="staff",
            # A UUID whose integer is the entry's number, as the support admin shows it.
            id=str(uuid.UUID(int=row.pk)),
            kind=STAFF_PREFIX + row.action,
            at=row.created_at,
            user_id=row.user_id,
            ip=None,
            user_agent=None,
            data={
                "target_type": row.target_type,
                "target_id": row.target_id,
                "reason": row.reason,
            },
            position=(epoch_micros(row.created_at), _STAFF, row.pk),
        )
        for row in rows
    ]


def audit_list(
    *,
    db: Any,
    principal: Principal,
    user_id: uuid.UUID | None = None,
    kind: str | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
    limit: int = 50,
    continuation: str | None = None,
) -> AuditPage:
    """One page of the caller's tenant's audit log, newest first. Owners and admins only
    (AccountError 403); a bad filter is 400 ``invalid``, a cursor of another list raises
    InvalidContinuation, and an unreachable staff database is 503 ``audit_unavailable``."""
    principal_require_manager(principal=principal)
    if kind is not None and not KIND_RE.fullmatch(kind):
        raise _invalid("kind", "kind is an auth event type or staff.<action>.")
    if not 1 <= limit <= 200:
        raise _invalid("limit", "limit must be an integer from 1 to 200.")
    before_micros = _micros(before, "before")
    after_micros = _micros(after, "after")
    tenant_id = principal.tenant_id
    binding = _binding(tenant_id, (user_id, kind, before_micros, after_micros))
    query = _Query(
        tenant_id=tenant_id,
        user_id=user_id,
        position=_position(continuation, binding),
        after_micros=after_micros,
        before_micros=before_micros,
        # One more than the page: whether more exist.
        limit=limit + 1,
    )
    is_staff_kind = kind is not None and kind.startswith(STAFF_PREFIX)
    entries: list[AuditEntry] = []
    if not is_staff_kind:
        entries += _auth_entries(db, query, type=kind)
    if kind is None or is_staff_kind:
        entries += _staff_entries(
            query, action=kind[len(STAFF_PREFIX) :] if kind is not None else None
        )
    entries.sort(key=lambda e: e.position, reverse=True)
    page = entries[:limit]
    more = len(entries) > limit
    return AuditPage(page, _continuation(binding, page[-1].position) if more else None)

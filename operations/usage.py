"""Quota usage counters against a recount of what a tenant stores (``storage check``,
``tenants import``).

The counters (accounts/services/quotas.py) are kept exact by every write; these functions
recount from the data itself: the tenant's workspace session heads, its API token records,
and the stored size of its session states and events (their chunks' values), plus each
session head's ``event_bytes`` against its event log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import fdb_backend
from accounts.records import QUOTA_KINDS, api_tokens
from accounts.services.quotas import quota_usage, quota_used_get, quota_used_set
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from workspaces.records import events_range, heads

_ATTEMPTS = 3  # recounts of a busy tenant before its counters are compared anyway


@dataclass
class Recount:
    used: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUOTA_KINDS, 0))
    # Per session: its head's event_bytes, and the stored size of its events as walked.
    head_event_bytes: dict[uuid.UUID, int] = field(default_factory=dict)
    event_bytes: dict[uuid.UUID, int] = field(default_factory=dict)


def _walk_sizes(db: Any, tenant_id: uuid.UUID, name: str) -> Iterator[tuple[uuid.UUID, int]]:
    keys = keyspace.tenant(tenant_id).collection(name)
    for batch in storage.walk(db, keys.range()):
        for kv in batch:
            yield keys.records.unpack(kv.key)[0], len(kv.value)


def usage_recount(*, db: Any, tenant_id: uuid.UUID) -> Recount:
    """What the tenant's counters should hold, counted from its data (walks in bounded
    transactions: exact for a tenant nobody writes to meanwhile)."""
    found = Recount()
    for head in heads(tenant_id).scan(db, batch_size=200, include_expired=True):
        found.used["sessions"] += 1
        found.head_event_bytes[head.id] = head.event_bytes
    found.used["api_tokens"] = sum(
        1 for _ in api_tokens(tenant_id).scan(db, batch_size=200, include_expired=True)
    )
    for _, size in _walk_sizes(db, tenant_id, "workspace_states"):
        found.used["bytes"] += size
    for session_id, size in _walk_sizes(db, tenant_id, "events"):
        found.used["bytes"] += size
        found.event_bytes[session_id] = found.event_bytes.get(session_id, 0) + size
    return found


@dataclass(frozen=True)
class UsageIssue:
    """A counter that disagrees with the recount: ``what`` is ``usage.<kind>`` or
    ``workspace_sessions.event_bytes`` (``key``: the session)."""

    what: str
    key: str
    stored: int
    counted: int
    repaired: bool = False


@fdb_backend.transactional
def _event_bytes_fix(
    tr: Any, tenant_id: uuid.UUID, session_id: uuid.UUID, write: bool
) -> tuple[int, int] | None:
    """(stored, counted) when the head's ``event_bytes`` is not its log's size, counted in
    this one transaction (so a concurrent append is never undone); with ``write``, set it."""
    collection = heads(tenant_id)
    head = collection.get(tr, session_id)
    if head is None:
        return None
    counted = sum(len(kv.value) for kv in tr.get_range(*events_range(tenant_id, session_id)))
    if counted == head.event_bytes:
        return None
    if write:
        collection.save(tr, replace(head, event_bytes=counted))
    return head.event_bytes, counted


@fdb_backend.transactional
def _counter_set_if(tr: Any, tenant_id: uuid.UUID, kind: str, expected: int, value: int) -> bool:
    """Set a usage counter to ``value`` if it still holds ``expected`` (no write since);
    True when it holds ``value`` already: a retry after a commit_unknown_result (1021) whose
    first attempt did commit finds the repair done."""
    current = quota_used_get(tr, tenant_id=tenant_id, kind=kind)
    if current == value:
        return True
    if current != expected:
        return False
    quota_used_set(tr, tenant_id=tenant_id, kind=kind, value=value)
    return True


def usage_check(*, db: Any, tenant_id: uuid.UUID, repair: bool = False) -> list[UsageIssue]:
    """The tenant's usage counters and its sessions' ``event_bytes`` against a recount; with
    ``repair``, set them to it.

    A session's ``event_bytes`` is recounted and fixed in one transaction. The recount walks
    in many transactions, so a tenant counter is compared only with a recount during which
    that counter did not move (the same value before and after it; a busy tenant is
    recounted up to three times, each counter settling on the first recount that held it
    still); a counter that moved during every recount is not compared, since a write landing
    mid-walk would make any verdict, and any repair, wrong. A repair applies only if the
    counter still holds the value it was compared with: a write landing in between makes it
    a no-op, reported unrepaired.
    """
    issues: list[UsageIssue] = []
    settled: dict[str, tuple[int, int]] = {}  # kind -> (stored, counted), from a still recount
    for _ in range(_ATTEMPTS):
        before = {k: q.used for k, q in quota_usage(db, tenant_id=tenant_id).items()}
        counted = usage_recount(db=db, tenant_id=tenant_id)
        after = {k: q.used for k, q in quota_usage(db, tenant_id=tenant_id).items()}
        for kind in QUOTA_KINDS:
            if kind not in settled and before[kind] == after[kind]:
                settled[kind] = (after[kind], counted.used[kind])
        if len(settled) == len(QUOTA_KINDS):
            break
    for kind, (stored, recounted) in settled.items():
        if stored != recounted:
            fixed = repair and _counter_set_if(db, tenant_id, kind, stored, recounted)
            issues.append(UsageIssue(f"usage.{kind}", kind, stored, recounted, bool(fixed)))
    for session_id, stored in counted.head_event_bytes.items():
        if stored == counted.event_bytes.get(session_id, 0):
            continue
        found = _event_bytes_fix(db, tenant_id, session_id, repair)
        if found is not None:
            issues.append(
                UsageIssue(
                    "workspace_sessions.event_bytes", str(session_id), found[0], found[1], repair
                )
            )
    return issues


def usage_reset(*, db: Any, tenant_id: uuid.UUID) -> None:
    """Set every counter of the tenant (and every session's ``event_bytes``) to the recount:
    for a tenant nobody can reach yet (``tenants import``, before its record is written)."""
    counted = usage_recount(db=db, tenant_id=tenant_id)
    for session_id, stored in counted.head_event_bytes.items():
        if stored != counted.event_bytes.get(session_id, 0):
            _event_bytes_fix(db, tenant_id, session_id, True)

    @fdb_backend.transactional
    def write(tr: Any) -> None:
        for kind in QUOTA_KINDS:  # only where they differ: a round trip stays byte for byte
            if quota_used_get(tr, tenant_id=tenant_id, kind=kind) != counted.used[kind]:
                quota_used_set(tr, tenant_id=tenant_id, kind=kind, value=counted.used[kind])

    write(db)

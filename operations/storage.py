"""Storage-wide checks, statistics and purges over every tenant (``manage.py storage``).

What the platform stores and how its parts refer to each other is known here, by name: the
global collections, each tenant's collections, the login index, and what hangs off a
workspace session or a user. The walking itself is ``fdb_backend.maintenance``'s, in
bounded transactions (docs/operations.md).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError

import fdb_backend
from accounts import audit_keys
from accounts.models import StaffAuditEntry
from accounts.records import (
    ApiToken,
    AuthSession,
    api_tokens,
    auth_sessions,
    invitations,
    tenants,
    users,
)
from accounts.services.quotas import quota_charge
from accounts.throttle import throttle_purge
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from fdb_backend.records import Collection, CorruptRecord, epoch_micros, utcnow
from operations.errors import MaintenanceError
from operations.export_check import tenant_collections
from operations.usage import usage_check
from realtime.records import Connection, Lock, connections, locks
from workspaces.errors import WorkspaceError
from workspaces.records import SessionEvent, events, heads
from workspaces.services import session_delete_by_staff, session_events_removed

# Revoked auth sessions stay this long (support sees recent sign-outs), then purge takes them.
REVOKED_SESSIONS_KEPT = timedelta(days=7)
# Expired locks and stale connections are the realtime services' to release (they tell the
# session's sockets); purge takes only those left this long after, with nobody to notice.
REALTIME_LEFTOVERS_AFTER = timedelta(hours=1)
# Expired API tokens stay listed this long (their owner sees that they lapsed), then go.
EXPIRED_API_TOKENS_KEPT = timedelta(days=7)


def _tenant_ids(db: Any) -> Iterator[uuid.UUID]:
    for tenant in tenants().scan(db, batch_size=200, include_expired=True):
        yield tenant.id


@dataclass(frozen=True)
class Problem:
    """One inconsistency: an index entry (``missing``/``dangling``/``stale``, see
    ``fdb_backend.maintenance.IndexIssue``), an ``orphan`` (data whose owner is gone) or a
    ``counter`` that disagrees with a recount (quota usage, a session's ``event_bytes``)."""

    kind: str
    what: str  # "users.user_by_email", "tenant data", "events of a deleted session", ...
    tenant_id: uuid.UUID | None
    key: str  # the record or range concerned, printable
    repaired: bool = False


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    tenants: int = 0

    @property
    def repaired(self) -> int:
        return sum(1 for p in self.problems if p.repaired)


def _index_problem(issue: storage.IndexIssue, repaired: bool) -> Problem:
    return Problem(
        issue.kind,
        f"{issue.collection}.{issue.index}" if issue.index else issue.collection,
        issue.tenant_id,
        ", ".join(str(part) for part in issue.key) or repr(issue.entry),
        repaired,
    )


def _repair_order(issue: storage.IndexIssue) -> int:
    # Clear wrong entries first, so that a missing unique entry finds its key free.
    return 0 if issue.kind in ("dangling", "stale") else 1


@dataclass(frozen=True)
class _Orphan:
    what: str
    tenant_id: uuid.UUID
    key: str
    repair: Callable[[], bool]


def _orphans_of_tenant(db: Any, tenant_id: uuid.UUID) -> Iterator[_Orphan]:
    """Workspace data without its session head; auth sessions, API tokens and workspace
    sessions without their user."""
    scope = keyspace.tenant(tenant_id)
    session_heads = heads(tenant_id)

    @fdb_backend.transactional
    def missing_heads(tr: Any, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return [i for i in ids if session_heads.get(tr.snapshot, i) is None]

    def bytes_cleared(tr: Any, kvs: list[fdb_backend.KeyValue]) -> None:
        # States and events count against the bytes quota: their chunks' values.
        quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=-sum(len(kv.value) for kv in kvs))

    def clear(keys: Any, session_id: uuid.UUID) -> Callable[[], bool]:
        counted = keys.name in ("workspace_states", "events")

        def run() -> bool:
            if session_heads.get(db, session_id) is not None:
                return False  # created since the check
            cleared = storage.clear_prefix(
                db, keys, (session_id,), on_cleared=bytes_cleared if counted else None
            )
            return cleared > 0

        return run

    for name in ("workspace_states", "events", "locks", "connections"):
        keys = scope.collection(name)
        prefixes = storage.key_prefixes(db, keys)
        while batch := [prefix[0] for prefix in itertools.islice(prefixes, 100)]:
            for session_id in missing_heads(db, batch):
                yield _Orphan(
                    f"{name} of a missing workspace session",
                    tenant_id,
                    str(session_id),
                    clear(keys, session_id),
                )

    people = users(tenant_id)
    owners: dict[uuid.UUID, bool] = {}

    def drop(records: Any, record: AuthSession | ApiToken) -> Callable[[], bool]:
        @fdb_backend.transactional
        def run(tr: Any) -> bool:
            if people.get(tr, record.user_id) is not None:
                return False
            # Gone, live or expired: the orphan is repaired.
            if records.delete_sized(tr, record.id)[1] and isinstance(record, ApiToken):
                quota_charge(tr, tenant_id=tenant_id, kind="api_tokens", delta=-1)
            return True

        return lambda: bool(run(db))

    for what, records in (
        ("auth session", auth_sessions(tenant_id)),
        ("API token", api_tokens(tenant_id)),
    ):
        for record in records.scan(db, batch_size=200, include_expired=True):
            if record.user_id not in owners:
                owners[record.user_id] = people.get(db, record.user_id) is not None
            if not owners[record.user_id]:
                yield _Orphan(
                    f"{what} of a missing user", tenant_id, str(record.id), drop(records, record)
                )

    def erase(session_id: uuid.UUID, owner_id: uuid.UUID) -> Callable[[], bool]:
        def run() -> bool:
            if people.get(db, owner_id) is not None:
                return False  # pragma: no cover - a user id is never reused
            try:
                session_delete_by_staff(db=db, tenant_id=tenant_id, session_id=session_id)
            except WorkspaceError:
                return False  # deleted since the check
            return True

        return run

    # An erasure interrupted after its user was deleted, or a session created by a request
    # that authenticated just before it, leaves sessions whose owner is gone.
    for head in session_heads.scan(db, batch_size=200):
        if head.owner_id not in owners:
            owners[head.owner_id] = people.get(db, head.owner_id) is not None
        if not owners[head.owner_id]:
            yield _Orphan(
                "workspace session of a missing user",
                tenant_id,
                str(head.id),
                erase(head.id, head.owner_id),
            )


def _orphan_tenant_data(db: Any, known: set[uuid.UUID]) -> Iterator[_Orphan]:
    def clear(tenant_id: uuid.UUID) -> Callable[[], bool]:
        def run() -> bool:
            if tenants().get(db, tenant_id) is not None:
                return False  # created (or imported) since the check
            return (
                sum(len(b) for b in storage.clear_walk(db, keyspace.tenant(tenant_id).range())) > 0
            )

        return run

    for tenant_id in storage.tenant_ids_with_data(db):
        if tenant_id not in known:
            yield _Orphan("data of a missing tenant", tenant_id, str(tenant_id), clear(tenant_id))


def storage_check(*, db: Any, repair: bool = False) -> CheckReport:
    """Check every index entry against its record in both directions, look for data whose
    owner is gone, and check each tenant's quota usage counters against a recount
    (operations/usage.py); with ``repair``, fix what can be fixed (each fix re-checks its
    problem in the transaction that makes it, so a concurrent change is never undone; index
    fixes of one collection go ``maintenance.REPAIR_BATCH`` to a transaction, so a new
    index is built on a large tenant in bounded commits).

    Not to be run with ``repair`` while a tenant is being imported: its range, written
    before its tenant record, looks orphaned until the import ends.
    """
    report = CheckReport()
    # Each issue with the collection that repairs it (None: the root login index's own).
    found: list[tuple[storage.IndexIssue, Collection[Any] | None]] = []
    global_tenants = tenants()
    for issue in storage.check_collection(global_tenants, db):
        found.append((issue, global_tenants))
    known: set[uuid.UUID] = set()
    for tenant_id in _tenant_ids(db):
        known.add(tenant_id)
        for collection in tenant_collections(tenant_id):
            for issue in storage.check_collection(collection, db):
                found.append((issue, collection))
    for issue in storage.check_root_index(db, "user_by_email", users):
        found.append((issue, None))
    report.tenants = len(known)
    found.sort(key=lambda pair: _repair_order(pair[0]))
    # Consecutive issues of one collection are repaired in batches (a new index over a
    # large tenant is every record's entry missing); the order above is kept.
    for (_, collection), run in itertools.groupby(found, key=lambda p: (_repair_order(p[0]), p[1])):
        issues = [issue for issue, _ in run]
        done_each: list[bool]
        if not repair:
            done_each = [False] * len(issues)
        elif collection is None:
            done_each = [bool(storage.repair_root_issue(db, i, users)) for i in issues]
        else:
            done_each = storage.repair_issues(db, collection, issues)
        for issue, done in zip(issues, done_each, strict=True):
            report.problems.append(_index_problem(issue, done))
    # The auth event log's indexes (a raw space, not a collection): events written before
    # the indexes existed show here as missing entries, which --repair writes.
    for tenant_id in sorted(known):
        for entry_issue in list(audit_keys.check_indexes(db, tenant_id)):
            fixed = repair and bool(audit_keys.repair(db, entry_issue))
            report.problems.append(
                Problem(
                    entry_issue.kind,
                    f"auth_events.{entry_issue.index}",
                    tenant_id,
                    f"{entry_issue.at_micros}, {entry_issue.event_id}",
                    fixed,
                )
            )
    orphans = list(_orphan_tenant_data(db, known))
    for tenant_id in sorted(known):
        orphans.extend(_orphans_of_tenant(db, tenant_id))
    for orphan in orphans:
        fixed = repair and orphan.repair()
        report.problems.append(Problem("orphan", orphan.what, orphan.tenant_id, orphan.key, fixed))
    for tenant_id in sorted(known):  # after the orphans, whose repair gives their bytes back
        for wrong in usage_check(db=db, tenant_id=tenant_id, repair=repair):
            report.problems.append(
                Problem(
                    "counter",
                    wrong.what,
                    tenant_id,
                    f"{wrong.key}: stored {wrong.stored}, counted {wrong.counted}",
                    wrong.repaired,
                )
            )
    return report


# --- statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageStats:
    spaces: dict[str, storage.SpaceStats]
    tenants: dict[uuid.UUID, storage.SpaceStats]
    slugs: dict[uuid.UUID, str]  # tenants without a record have none


def storage_stats(*, db: Any) -> StorageStats:
    """Keys and bytes per top-level space and per tenant (one walk over the store)."""
    found = storage.store_stats(db)
    slugs = {t.id: t.slug for t in tenants().scan(db, batch_size=200, include_expired=True)}
    return StorageStats(found.spaces, found.tenants, slugs)


# --- purge -----------------------------------------------------------------------------

# A purge task: (db, tenant_id, now, dry_run) -> records removed (or that would be).
PurgeTask = Callable[[Any, uuid.UUID, datetime, bool], int]


def _auth_session_over(session: AuthSession, now: datetime) -> bool:
    if session.revoked_at is not None and session.revoked_at <= now - REVOKED_SESSIONS_KEPT:
        return True
    return session.refresh_expires_at <= now or session.absolute_expires_at <= now


def _api_tokens_removed(tenant_id: uuid.UUID) -> storage.OnRemoved[ApiToken]:
    def removed(tr: Any, found: list[tuple[ApiToken, int]]) -> None:
        quota_charge(tr, tenant_id=tenant_id, kind="api_tokens", delta=-len(found))

    return removed


def _events_removed(tenant_id: uuid.UUID) -> storage.OnRemoved[SessionEvent]:
    def removed(tr: Any, found: list[tuple[SessionEvent, int]]) -> None:
        session_events_removed(tr, tenant_id=tenant_id, removed=found)

    return removed


def _api_token_over(token: ApiToken, now: datetime) -> bool:
    return token.expires_at is not None and token.expires_at <= now - EXPIRED_API_TOKENS_KEPT


def _lock_over(lock: Lock, now: datetime) -> bool:
    return lock.expires_at <= now - REALTIME_LEFTOVERS_AFTER


def _connection_over(connection: Connection, now: datetime) -> bool:
    timeout = timedelta(seconds=settings.CODITECT_WS_PRESENCE_TIMEOUT_S)
    return connection.last_seen <= now - timeout - REALTIME_LEFTOVERS_AFTER


def _audit_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=settings.CODITECT_AUDIT_RETENTION_DAYS)


def _purge(
    factory: Callable[[uuid.UUID], Collection[Any]],
    *,
    over: Callable[[Any, datetime], bool] | None = None,
    batch: int = 100,
    removed: Callable[[uuid.UUID], storage.OnRemoved[Any]] | None = None,
) -> PurgeTask:
    """A task that removes a tenant's records of one collection for which ``over(record,
    now)`` holds (by default: those past their expiry), ``batch`` per transaction, and
    runs ``removed(tenant_id)`` on each batch in its transaction."""

    def task(db: Any, tenant_id: uuid.UUID, now: datetime, dry_run: bool) -> int:
        collection = factory(tenant_id)
        return storage.purge_where(
            collection,
            db,
            over or storage.expired(collection),
            batch_size=batch,
            now=now,
            dry_run=dry_run,
            on_removed=None if removed is None else removed(tenant_id),
        )

    return task


def _purge_auth_events(db: Any, tenant_id: uuid.UUID, now: datetime, dry_run: bool) -> int:
    return audit_keys.purge_before(
        db, tenant_id=tenant_id, before_micros=epoch_micros(_audit_cutoff(now)), dry_run=dry_run
    )


def _purge_staff_audit(now: datetime, dry_run: bool) -> int:
    """Staff audit entries past the retention (the ORM's, every tenant's and none's)."""
    old = StaffAuditEntry.objects.filter(created_at__lt=_audit_cutoff(now))
    try:
        if dry_run:
            return old.count()
        return old.delete()[0]
    except DatabaseError as error:
        raise MaintenanceError(f"the staff database cannot be read ({error})") from None


_PURGE_TASKS: dict[str, PurgeTask] = {
    "auth_sessions": _purge(auth_sessions, over=_auth_session_over),
    # The audit log's retention (CODITECT_AUDIT_RETENTION_DAYS), index entries included.
    "auth_events": _purge_auth_events,
    "invitations": _purge(invitations),
    "api_tokens": _purge(api_tokens, over=_api_token_over, removed=_api_tokens_removed),
    # Events may carry a whole state change: fewer of them per transaction.
    "events": _purge(events, batch=25, removed=_events_removed),
    "locks": _purge(locks, over=_lock_over),
    "connections": _purge(connections, over=_connection_over),
}


def purge_task_names() -> list[str]:
    return [*_PURGE_TASKS, "throttle", "staff_audit"]


@dataclass
class PurgeReport:
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)
    tenants: int = 0


def storage_purge(
    *, db: Any, dry_run: bool = False, only: list[str] | None = None, now: datetime | None = None
) -> PurgeReport:
    """Remove, tenant by tenant and in batches, auth sessions that can no longer be used
    (refresh expired, or revoked more than 7 days ago), auth events past the audit log's
    retention (``CODITECT_AUDIT_RETENTION_DAYS``), expired invitations, API tokens
    expired more than 7 days ago, events past
    the log's retention, locks expired and connections stale for an hour, and what other
    apps registered; then ended throttle windows and staff audit entries past the audit
    retention. ``dry_run`` counts without removing."""
    moment = now or utcnow()
    tasks = {name: task for name, task in _PURGE_TASKS.items() if only is None or name in only}
    report = PurgeReport(dry_run, dict.fromkeys(tasks, 0))
    for tenant_id in _tenant_ids(db):
        report.tenants += 1
        for name, task in tasks.items():
            try:
                report.removed[name] += task(db, tenant_id, moment, dry_run)
            except CorruptRecord as error:
                raise MaintenanceError(
                    f"a record that does not decode stops the purge ({error.collection} "
                    f"{error.key} of tenant {tenant_id}); see storage check"
                ) from None
    if only is None or "throttle" in only:
        report.removed["throttle"] = throttle_purge(db=db, now=moment.timestamp(), dry_run=dry_run)
    if only is None or "staff_audit" in only:
        report.removed["staff_audit"] = _purge_staff_audit(moment, dry_run)
    return report

"""Storage-wide checks, statistics and purges over every tenant (``manage.py storage``).

What the platform stores and how its parts refer to each other is known here, by name: the
global collections, each tenant's collections, the login index, and what hangs off a
workspace session or a user. The walking itself is ``fdb_backend.maintenance``'s, in
bounded transactions (docs/operations.md).
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.records import AuthSession, Tenant, auth_sessions, invitations, tenants, users
from accounts.services.maintenance import MaintenanceError
from accounts.throttle import throttle_purge
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from fdb_backend.records import Collection, CorruptRecord, utcnow
from fdb_backend.records.reader import Chunks, assemble
from realtime.records import Connection, Lock, connections, locks
from workspaces.records import events, heads, states

# Revoked auth sessions stay this long (support sees recent sign-outs), then purge takes them.
REVOKED_SESSIONS_KEPT = timedelta(days=7)
# Expired locks and stale connections are the realtime services' to release (they tell the
# session's sockets); purge takes only those left this long after, with nobody to notice.
REALTIME_LEFTOVERS_AFTER = timedelta(hours=1)


def _tenant_collections(tenant_id: uuid.UUID) -> list[Collection[Any]]:
    return [
        users(tenant_id),
        invitations(tenant_id),
        auth_sessions(tenant_id),
        heads(tenant_id),
        states(tenant_id),
        events(tenant_id),
        locks(tenant_id),
        connections(tenant_id),
    ]


def _tenant_ids(db: Any) -> Iterator[uuid.UUID]:
    for tenant in tenants().scan(db, batch_size=200, include_expired=True):
        yield tenant.id


# --- what a tenant export may hold (tenants import) --------------------------------------


class ExportChecker:
    """Checks the keys of one tenant's export against what the platform stores, line by
    line, before ``tenants import`` writes any of them (accounts.services.maintenance).

    Every record (the tenant's record and each record of its range, chunks reassembled) is
    decoded by its record type's schema and must sit under its own primary key and name no
    other tenant; the raw spaces must hold what their writers write (8-byte counters, auth
    events as JSON); any other key is refused. Index entries, inside the range and outside
    it (the tenant's slug, its users' emails), must be exactly those that the file's records
    make: an entry that points anywhere else is refused at ``finish``. Entries that are
    missing are not refused (``storage check`` reports them). Refusals raise
    MaintenanceError naming the line.
    """

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self._scope = keyspace.tenant(tenant_id)
        self._collections = {c.schema.collection: c for c in _tenant_collections(tenant_id)}
        self._indexes = {
            name
            for c in self._collections.values()
            for name, keys in c.keys.indexes.items()
            if not keys.cross_scope
        }
        self._expected: dict[bytes, bytes] = {}  # index entry key -> value, from the records
        self._entries: list[tuple[int, bytes, bytes]] = []  # (line, key, value) of the file
        # The record being read: (collection, primary key, chunks, its first line).
        self._pending: tuple[Collection[Any], tuple[Any, ...], Chunks, int] | None = None

    @staticmethod
    def _refuse(number: int, reason: str) -> MaintenanceError:
        return MaintenanceError(f"malformed export, line {number}: {reason}")

    def global_record(self, number: int, key: bytes, value: bytes) -> None:
        """A key of the tenant's own record (``tenants``), in the global scope."""
        collection = tenants()
        pk = collection.keys.records.unpack(key)
        self._add_chunk(number, collection, pk[:-1], pk[-1], value)

    def global_entry(self, number: int, key: bytes, value: bytes) -> None:
        """The tenant's slug entry or one of its users' email entries."""
        self._flush()
        self._entries.append((number, key, value))

    def tenant_key(self, number: int, key: bytes, value: bytes) -> None:
        """A key of the tenant's range."""
        try:
            name, *rest = self._scope.subspace.unpack(key)
        except (ValueError, TypeError):
            raise self._refuse(number, "a key that is not a tuple") from None
        collection = self._collections.get(name)
        if collection is not None:
            self._add_chunk(number, collection, tuple(rest[:-1]), rest[-1] if rest else None, value)
            return
        self._flush()
        if name in self._indexes:
            self._entries.append((number, key, value))
        elif name == "counters":
            if len(value) != 8:
                raise self._refuse(number, "a counter that is not 8 bytes")
        elif name == "auth_events":
            self._auth_event(number, rest, value)
        else:
            raise self._refuse(number, f"a key of no known collection or space: {name!r}")

    def _auth_event(self, number: int, rest: list[Any], value: bytes) -> None:
        shape = len(rest) == 2 and isinstance(rest[0], int) and isinstance(rest[1], uuid.UUID)
        try:
            body = json.loads(value)
            fields_ok = (
                isinstance(body, dict)
                and isinstance(body.get("type"), str)
                and isinstance(body.get("at"), str)
                and (body.get("user_id") is None or uuid.UUID(body["user_id"]) is not None)
                and isinstance(body.get("ip"), str)
                and isinstance(body.get("user_agent"), str)
                and isinstance(body.get("data"), dict)
            )
            datetime.fromisoformat(body["at"])
        except (ValueError, TypeError, KeyError, AttributeError):
            fields_ok = False
        if not (shape and fields_ok):
            raise self._refuse(number, "an auth event that is not one")

    def _add_chunk(
        self,
        number: int,
        collection: Collection[Any],
        pk: tuple[Any, ...],
        chunk: Any,
        value: bytes,
    ) -> None:
        if not isinstance(chunk, int) or not pk:
            name = collection.schema.collection
            raise self._refuse(number, f"a {name} key that is not a record key")
        pending = self._pending
        if pending is not None and (pending[0] is not collection or pending[1] != pk):
            self._flush()
            pending = None
        if pending is None:
            self._pending = pending = (collection, pk, [], number)
        pending[2].append((chunk, value))
        if chunk == 0:
            self._flush()

    def _flush(self) -> None:
        """Decode the record being read and note the index entries it makes."""
        if self._pending is None:
            return
        collection, pk, chunks, number = self._pending
        self._pending = None
        name = collection.schema.collection
        payload = assemble(chunks)
        if payload is None:
            raise self._refuse(number, f"a {name} record whose chunks are not whole")
        if len(payload) > collection.max_record_size:
            raise self._refuse(number, f"a {name} record larger than its collection allows")
        try:
            record = collection.schema.decode(payload)
        except (ValueError, TypeError, UnicodeDecodeError, KeyError) as error:
            raise self._refuse(
                number,
                f"a {name} record that does not decode ({error.args[0] if error.args else error})",
            ) from None
        if collection.key_of(record) != pk:
            raise self._refuse(number, f"a {name} record stored under another record's key")
        owner = record.id if isinstance(record, Tenant) else getattr(record, "tenant_id", None)
        if owner not in (None, self.tenant_id):
            raise self._refuse(number, f"a {name} record of another tenant")
        # The index entries the record makes, as the storage layer writes them (its own
        # computation, so that the two can never disagree).
        for key, (_, _, value) in collection._entries(record).items():
            self._expected[key] = value

    def finish(self) -> None:
        """After the last key: every index entry of the file must be one its records make."""
        self._flush()
        for number, key, value in self._entries:
            if self._expected.get(key) != value:
                raise self._refuse(number, "an index entry that no record of the file makes")


# --- check and repair ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One inconsistency: an index entry (``missing``/``dangling``/``stale``, see
    ``fdb_backend.maintenance.IndexIssue``) or an ``orphan``, data whose owner is gone."""

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
    """Workspace data without its session head; auth sessions without their user."""
    scope = keyspace.tenant(tenant_id)
    session_heads = heads(tenant_id)

    @fdb_backend.transactional
    def missing_heads(tr: Any, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return [i for i in ids if session_heads.get(tr.snapshot, i) is None]

    def clear(keys: Any, session_id: uuid.UUID) -> Callable[[], bool]:
        def run() -> bool:
            if session_heads.get(db, session_id) is not None:
                return False  # created since the check
            return storage.clear_prefix(db, keys, (session_id,)) > 0

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
    sessions = auth_sessions(tenant_id)

    def drop_session(session: AuthSession) -> Callable[[], bool]:
        def run() -> bool:
            if people.get(db, session.user_id) is not None:
                return False
            sessions.delete(db, session.id)
            return True

        return run

    owners: dict[uuid.UUID, bool] = {}
    for session in sessions.scan(db, batch_size=200, include_expired=True):
        if session.user_id not in owners:
            owners[session.user_id] = people.get(db, session.user_id) is not None
        if not owners[session.user_id]:
            yield _Orphan(
                "auth session of a missing user", tenant_id, str(session.id), drop_session(session)
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
    """Check every index entry against its record in both directions, and look for data
    whose owner is gone; with ``repair``, fix what can be fixed (each fix re-checks its
    problem in its own transaction first, so a concurrent change is never undone).

    Not to be run with ``repair`` while a tenant is being imported: its range, written
    before its tenant record, looks orphaned until the import ends.
    """
    report = CheckReport()
    found: list[tuple[storage.IndexIssue, Callable[[], bool]]] = []

    def fix(collection: Collection[Any], issue: storage.IndexIssue) -> Callable[[], bool]:
        return lambda: bool(storage.repair_issue(db, collection, issue))

    global_tenants = tenants()
    for issue in storage.check_collection(global_tenants, db):
        found.append((issue, fix(global_tenants, issue)))
    known: set[uuid.UUID] = set()
    for tenant_id in _tenant_ids(db):
        known.add(tenant_id)
        for collection in _tenant_collections(tenant_id):
            for issue in storage.check_collection(collection, db):
                found.append((issue, fix(collection, issue)))
    for issue in storage.check_root_index(db, "user_by_email", users):
        found.append((issue, functools.partial(storage.repair_root_issue, db, issue, users)))
    report.tenants = len(known)
    found.sort(key=lambda pair: _repair_order(pair[0]))
    for issue, repair_one in found:
        report.problems.append(_index_problem(issue, repair and repair_one()))
    orphans = list(_orphan_tenant_data(db, known))
    for tenant_id in sorted(known):
        orphans.extend(_orphans_of_tenant(db, tenant_id))
    for orphan in orphans:
        fixed = repair and orphan.repair()
        report.problems.append(Problem("orphan", orphan.what, orphan.tenant_id, orphan.key, fixed))
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


def _purge_auth_sessions(db: Any, tenant_id: uuid.UUID, now: datetime, dry_run: bool) -> int:
    return storage.purge_where(
        auth_sessions(tenant_id), db, _auth_session_over, now=now, dry_run=dry_run
    )


def _purge_expired(factory: Callable[[uuid.UUID], Collection[Any]], batch: int) -> PurgeTask:
    def task(db: Any, tenant_id: uuid.UUID, now: datetime, dry_run: bool) -> int:
        collection = factory(tenant_id)
        return storage.purge_where(
            collection,
            db,
            storage.expired(collection),
            batch_size=batch,
            now=now,
            dry_run=dry_run,
        )

    return task


def _lock_over(lock: Lock, now: datetime) -> bool:
    return lock.expires_at <= now - REALTIME_LEFTOVERS_AFTER


def _connection_over(connection: Connection, now: datetime) -> bool:
    timeout = timedelta(seconds=settings.CODITECT_WS_PRESENCE_TIMEOUT_S)
    return connection.last_seen <= now - timeout - REALTIME_LEFTOVERS_AFTER


def _purge_matching(
    factory: Callable[[uuid.UUID], Collection[Any]], predicate: Callable[[Any, datetime], bool]
) -> PurgeTask:
    def task(db: Any, tenant_id: uuid.UUID, now: datetime, dry_run: bool) -> int:
        return storage.purge_where(factory(tenant_id), db, predicate, now=now, dry_run=dry_run)

    return task


_PURGE_TASKS: dict[str, PurgeTask] = {
    "auth_sessions": _purge_auth_sessions,
    "invitations": _purge_expired(invitations, 100),
    # Events may carry a whole state change: fewer of them per transaction.
    "events": _purge_expired(events, 25),
    "locks": _purge_matching(locks, _lock_over),
    "connections": _purge_matching(connections, _connection_over),
}


def purge_task_register(name: str, task: PurgeTask) -> None:
    """Add a purge of another app's records (the realtime app's expired locks and stale
    connections), run for every tenant by ``storage purge``."""
    _PURGE_TASKS[name] = task


def purge_task_names() -> list[str]:
    return [*_PURGE_TASKS, "throttle"]


@dataclass
class PurgeReport:
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)
    tenants: int = 0


def storage_purge(
    *, db: Any, dry_run: bool = False, only: list[str] | None = None, now: datetime | None = None
) -> PurgeReport:
    """Remove, tenant by tenant and in batches, auth sessions that can no longer be used
    (refresh expired, or revoked more than 7 days ago), expired invitations, events past
    the log's retention, locks expired and connections stale for an hour, and what other
    apps registered. ``dry_run`` counts without removing."""
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
    return report

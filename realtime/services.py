"""What the realtime app does: presence, locks and their events (DESIGN §2).

Each function is one transaction that changes connections or locks and appends the events
that say so to the session's log; the events are broadcast after commit, never inside.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.records import users
from accounts.services import Principal, caller_key, session_writer_require, writer_check
from core.errors import ServiceError
from core.time import rfc3339
from fdb_backend.records import get_together
from realtime.records import Connection, Lock, connections, locks
from workspaces import broadcast
from workspaces.errors import WorkspaceError
from workspaces.services import (
    SessionView,
    session_events_append,
    session_events_naming,
    session_events_scrub,
    session_exists,
    session_read,
)

Events = list[dict[str, Any]]

# A lock path is part of a storage key (FoundationDB allows 10,000 bytes per key) and comes
# back in every lock.changed; 1 KiB of UTF-8 is far more than any file path needs.
LOCK_PATH_MAX_BYTES = 1024
# C0 and C1 control characters and DEL: no file name needs them, and a newline or NUL in a
# path shown to another user or written to a log is a forgery waiting to happen.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LOCK_PATH_RULES = (
    "path must be an absolute, normalised path (no '.' or '..' segments, no '//', no "
    "trailing '/'), without control characters, of at most 1024 bytes of UTF-8."
)


class LockError(ServiceError):
    """A lock refused (409, core/errors.py): ``lock_held`` carries the current lease's
    ``holder`` and ``expires_at`` as context, which the socket sends beside the error."""

    def __init__(self, code: str, detail: str, lock: Lock | None = None) -> None:
        context = {} if lock is None else {k: v for k, v in lock_json(lock).items() if k != "path"}
        super().__init__(409, code, detail, **context)


# A session with at least CODITECT_WS_PRESENCE_BATCH_MIN live connections, before or after a
# change, announces presence changes as one ``presence.batch`` per transaction, not a
# ``presence.join`` or ``presence.leave`` each; a welcome or resync lists at most
# CODITECT_WS_PRESENCE_PAGE connections and ``presence.list`` pages through the rest, at most
# this many a page (docs/protocol.md, "Large rooms").
PRESENCE_PAGE_MAX = 500


@dataclass(frozen=True)
class Welcome:
    """What a welcome (or resync) shows: the session, its seq, the first page of presence
    (``presence_next`` continues it, None when it is whole), the count, and the locks."""

    session: SessionView
    seq: int
    presence: list[dict[str, Any]]
    presence_count: int
    presence_next: str | None
    locks: list[dict[str, Any]]


@dataclass(frozen=True)
class PresenceChanged:
    """What connections_change did: the welcome of the connections it opened (None when
    none opened, or the session is gone) and the session's live connections after it."""

    welcome: Welcome | None
    count: int
    # Joiners whose user is gone (erased meanwhile): not written; each is refused.
    refused: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PresencePage:
    presence: list[dict[str, Any]]
    next: str | None
    count: int
    seq: int


def presence_json(connection: Connection) -> dict[str, Any]:
    return {
        "connection_id": connection.connection_id,
        "user_id": str(connection.user_id),
        "display_name": connection.display_name,
        "connected_at": rfc3339(connection.connected_at),
    }


def lock_json(lock: Lock) -> dict[str, Any]:
    return {
        "path": lock.path,
        "holder": {"connection_id": lock.connection_id, "user_id": str(lock.user_id)},
        "expires_at": rfc3339(lock.expires_at),
    }


def _released(path: str) -> tuple[str, dict[str, Any]]:
    return ("lock.changed", {"path": path, "holder": None, "expires_at": None})


def _timeout() -> timedelta:
    return timedelta(seconds=settings.CODITECT_WS_PRESENCE_TIMEOUT_S)


def _live(tr: Any, tenant_id: uuid.UUID, session_id: uuid.UUID, now: datetime) -> tuple[
    list[Connection], list[Connection], list[Lock], list[Lock]
]:  # fmt: skip
    """(live connections, stale connections, live locks, expired locks) of a session."""
    found = connections(tenant_id).list_by_key(tr, (session_id,)).records
    seen_since = now - _timeout()
    alive = [c for c in found if c.last_seen >= seen_since]
    stale = [c for c in found if c.last_seen < seen_since]
    held = locks(tenant_id).list_by_key(tr, (session_id,)).records
    live_ids = {c.connection_id for c in alive}
    valid = [lk for lk in held if lk.expires_at > now and lk.connection_id in live_ids]
    gone = [lk for lk in held if lk not in valid]
    return alive, stale, valid, gone


def _send(session_id: uuid.UUID, events: Events) -> None:
    broadcast.session_events_send(session_id=session_id, events=events)


def _who(connection: Connection) -> dict[str, Any]:
    return {
        "connection_id": connection.connection_id,
        "user_id": str(connection.user_id),
        "display_name": connection.display_name,
    }


def _presence_items(
    changes: list[tuple[str, Connection]], before: int, after: int
) -> tuple[list[tuple[str, Any]], list[str]]:
    """The events announcing ``changes`` ("join" or "leave", in order) and each one's origin:
    a ``presence.join``/``presence.leave`` per connection (its own id as origin) in a room
    under CODITECT_WS_PRESENCE_BATCH_MIN live connections both before and after, else one
    ``presence.batch`` with the ``connections`` in order and the ``count`` after."""
    if not changes:
        return [], []
    if max(before, after) < settings.CODITECT_WS_PRESENCE_BATCH_MIN:
        items = [(f"presence.{change}", _who(c)) for change, c in changes]
        return items, [c.connection_id for _, c in changes]
    connections_list = [{**_who(c), "change": change} for change, c in changes]
    return [("presence.batch", {"connections": connections_list, "count": after})], [""]


def _page(
    alive: list[Connection], after: str | None, limit: int
) -> tuple[list[Connection], str | None]:
    """Up to ``limit`` of ``alive`` in connection id order after ``after``; and the id to
    continue after (None: nothing follows)."""
    ordered = sorted(alive, key=lambda c: c.connection_id)
    if after is not None:
        ordered = [c for c in ordered if c.connection_id > after]
    page = ordered[:limit]
    return page, (page[-1].connection_id if len(ordered) > limit else None)


def _welcome(
    tr: Any,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    alive: list[Connection],
    valid: list[Lock],
) -> Welcome:
    """The full state: the session read in ``tr`` (snapshot reads, its own writes included),
    with the live connections and locks the caller read."""
    view = session_read(tr, tenant_id=tenant_id, session_id=session_id)
    page, following = _page(alive, None, settings.CODITECT_WS_PRESENCE_PAGE)
    return Welcome(
        session=view,
        seq=view.head.seq,
        presence=[presence_json(c) for c in page],
        presence_count=len(alive),
        presence_next=following,
        locks=[lock_json(lk) for lk in valid],
    )


def connection_new(
    *, principal: Principal, session_id: uuid.UUID, connection_id: str
) -> Connection:
    """The record of a connection opening now (for connections_change)."""
    now = datetime.now(UTC)
    return Connection(
        session_id=session_id,
        connection_id=connection_id,
        user_id=principal.user_id,
        display_name=principal.user.display_name or principal.user.email,
        connected_at=now,
        last_seen=now,
    )


def connections_change(
    *,
    db: Any,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    changes: list[Connection | str],
) -> PresenceChanged:
    """Open connections (a Connection record) and close others (a connection id) of one
    session, in order, in one transaction; announce them (see _presence_items) with the
    release of the closing connections' locks. Returns what a welcome of the opened ones
    shows (its seq covers their own joins; None when nothing opened) and the live count.

    Raises WorkspaceError 404, writing nothing, when the session is gone (or another
    tenant's) and something opens; closing on a gone session does nothing.
    """
    now, batch = datetime.now(UTC), uuid.uuid4()
    opening = any(isinstance(c, Connection) for c in changes)

    @fdb_backend.transactional
    def apply(tr: Any) -> tuple[Events, PresenceChanged]:
        if not session_exists(tr, tenant_id=tenant_id, session_id=session_id):
            if opening:
                raise WorkspaceError(404, "not_found", "Not found.")
            return [], PresenceChanged(None, 0)
        # Read to conflict, so an erasure of a user (which deletes the record, then their
        # connections) either sees a connection opened here or makes it refused.
        opened = {c.user_id for c in changes if isinstance(c, Connection)}
        known = dict(zip(opened, users(tenant_id).get_many(tr, list(opened)), strict=True))
        refused = frozenset(
            c.connection_id
            for c in changes
            if isinstance(c, Connection) and known[c.user_id] is None
        )
        # Snapshot reads: joins through other servers must not make this commit conflict. Read
        # once: the welcome's presence and locks are these with the changes applied.
        alive, _, valid, _ = _live(tr.snapshot, tenant_id, session_id, now)
        present = {c.connection_id: c for c in alive}
        before = len(present)
        released: set[str] = set()
        held: list[Lock] | None = None
        announced: list[tuple[str, Connection]] = []
        items: list[tuple[str, Any]] = []
        origins: list[str] = []
        for change in changes:
            if isinstance(change, Connection):
                if change.connection_id in refused:
                    continue
                connections(tenant_id).save(tr, change)
                present[change.connection_id] = change
                announced.append(("join", change))
                continue
            mine = connections(tenant_id).get(tr, (session_id, change))
            if mine is None:
                continue
            connections(tenant_id).delete(tr, (session_id, change))
            present.pop(change, None)
            if held is None:  # read to conflict: a lock taken meanwhile is released too
                held = locks(tenant_id).list_by_key(tr, (session_id,)).records
            for lock in held:
                if lock.connection_id == change and lock.path not in released:
                    locks(tenant_id).delete(tr, (session_id, lock.path))
                    released.add(lock.path)
                    items.append(_released(lock.path))
                    origins.append(change)
            announced.append(("leave", mine))
        presence_items, presence_origins = _presence_items(announced, before, len(present))
        sent = session_events_append(
            tr, tenant_id=tenant_id, session_id=session_id,
            items=items + presence_items, origins=origins + presence_origins,
            origin="", batch_id=batch, now=now,
        )  # fmt: skip
        welcome = None
        if opening:
            held = [lk for lk in valid if lk.path not in released]
            welcome = _welcome(tr, tenant_id, session_id, list(present.values()), held)
        return sent, PresenceChanged(welcome, len(present), refused)

    sent, changed = apply(db)
    _send(session_id, sent)
    return changed


def connection_heartbeat(
    *, db: Any, tenant_id: uuid.UUID, session_id: uuid.UUID, connection_id: str
) -> None:
    """Refresh one connection's ``last_seen``, sweeping the session (see connections_heartbeat)."""
    connections_heartbeat(
        db=db, tenant_id=tenant_id, session_id=session_id, connection_ids=[connection_id]
    )


def connections_heartbeat(
    *,
    db: Any,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    connection_ids: list[str],
    sweep: bool = True,
) -> None:
    """Refresh ``last_seen`` of a server's connections to one session; drop connections whose
    server stopped beating (no ghosts) and release their locks and any expired lease,
    announcing each. One transaction for all of them: a server beats once per session, not
    once per socket. ``sweep=False`` only refreshes (a server beating for many sockets in
    several transactions sweeps in the last one)."""
    now, batch = datetime.now(UTC), uuid.uuid4()
    ours = set(connection_ids)

    @fdb_backend.transactional
    def beat(tr: Any) -> Events:
        for connection_id in connection_ids:
            mine = connections(tenant_id).get(tr, (session_id, connection_id))
            if mine is not None:
                connections(tenant_id).save(tr, dataclasses.replace(mine, last_seen=now))
        if not sweep:
            return []
        # Scan without conflicts (every server of the session beats), then re-read just what
        # is removed, so two sweepers of one ghost still conflict and only one announces it.
        alive, stale, _, gone = _live(tr.snapshot, tenant_id, session_id, now)
        stale = [c for c in stale if c.connection_id not in ours]
        items: list[tuple[str, Any]] = []
        for lock in gone:
            if lock.connection_id in ours and lock.expires_at > now:
                continue  # our own lock, our own connection is alive
            if locks(tenant_id).get(tr, (session_id, lock.path)) != lock:
                continue
            locks(tenant_id).delete(tr, (session_id, lock.path))
            items.append(_released(lock.path))
        ghosts: list[tuple[str, Connection]] = []
        for ghost in stale:
            if connections(tenant_id).get(tr, (session_id, ghost.connection_id)) != ghost:
                continue
            connections(tenant_id).delete(tr, (session_id, ghost.connection_id))
            ghosts.append(("leave", ghost))
        # A ghost was already out of the live count: the room's size is the same before and
        # after its removal, and so is the form of the announcement.
        presence_items, _ = _presence_items(ghosts, len(alive), len(alive))
        return session_events_append(
            tr, tenant_id=tenant_id, session_id=session_id, items=items + presence_items,
            origin="", batch_id=batch, now=now,
        )  # fmt: skip

    _send(session_id, beat(db))


def lock_path_check(path: str) -> None:
    """Raises WorkspaceError 400 ``invalid`` (attr ``path``) unless ``path`` names one place
    one way: absolute, normalised, valid Unicode without control characters, and at most
    LOCK_PATH_MAX_BYTES of UTF-8. Two spellings of one file (``/a//b``, ``/a/./b``) would be
    two locks on it, and ``..`` would name places outside the workspace."""
    try:
        size = len(path.encode("utf-8"))  # fails exactly on lone surrogates
    except UnicodeEncodeError:
        size = -1
    segments = path[1:].split("/")
    if (
        not 0 < size <= LOCK_PATH_MAX_BYTES
        or not path.startswith("/")
        or _CONTROL.search(path)
        or (path != "/" and any(s in ("", ".", "..") for s in segments))
    ):
        raise WorkspaceError(400, "invalid", _LOCK_PATH_RULES, attr="path")


def lock_acquire(
    *,
    db: Any,
    principal: Principal,
    session_id: uuid.UUID,
    connection_id: str,
    path: str,
    ttl_s: int,
    renew: bool = False,
) -> Lock:
    """Take (or with ``renew``, extend) a lease on ``path``; atomic across processes.

    Raises LockError lock_held (another live holder) or lock_not_held (renewing a lock one
    does not hold), WorkspaceError 400 (see lock_path_check) or 404, RoleError 403
    ``forbidden`` for a viewer (read in this transaction: a demotion applies at once).
    """
    lock_path_check(path)
    tenant_id = principal.tenant_id
    now, batch = datetime.now(UTC), uuid.uuid4()
    wanted = Lock(
        session_id=session_id,
        path=path,
        connection_id=connection_id,
        user_id=principal.user_id,
        expires_at=now + timedelta(seconds=ttl_s),
    )

    @fdb_backend.transactional
    def acquire(tr: Any) -> tuple[Lock, Events]:
        current, holding, me = get_together(
            tr,
            [
                (locks(tenant_id), (session_id, path)),
                (connections(tenant_id), (session_id, connection_id)),
                caller_key(principal),
            ],
        )
        writer_check(me)  # a viewer holds no locks
        if holding is None:
            # Its connection record is gone (the person was erased, or a heartbeat took it
            # for a ghost): a lock it took now would name no live connection.
            raise LockError("connection_gone", "This connection is no longer registered.")
        live = current is not None and current.expires_at > now
        mine = live and current is not None and current.connection_id == connection_id
        if renew and not mine:
            raise LockError("lock_not_held", "This connection does not hold the lock.")
        if live and current is not None and current.connection_id != connection_id:
            holder = connections(tenant_id).get(tr, (session_id, current.connection_id))
            if holder is not None and now - holder.last_seen <= _timeout():
                raise LockError("lock_held", "Another connection holds this lock.", current)
        saved = locks(tenant_id).save(tr, wanted)
        sent = session_events_append(
            tr, tenant_id=tenant_id, session_id=session_id,
            items=[("lock.changed", lock_json(saved))],
            origin=connection_id, batch_id=batch, now=now,
        )  # fmt: skip
        if not sent:
            raise WorkspaceError(404, "not_found", "Not found.")
        return saved, sent

    lock, sent = acquire(db)
    _send(session_id, sent)
    return lock


def lock_release(
    *, db: Any, principal: Principal, session_id: uuid.UUID, connection_id: str, path: str
) -> None:
    """Release a lock this connection holds. Raises LockError lock_not_held, WorkspaceError
    400 (see lock_path_check)."""
    lock_path_check(path)
    tenant_id = principal.tenant_id
    now, batch = datetime.now(UTC), uuid.uuid4()

    @fdb_backend.transactional
    def release(tr: Any) -> Events:
        session_writer_require(tr, principal=principal)
        current = locks(tenant_id).get(tr, (session_id, path))
        if current is None or current.connection_id != connection_id:
            raise LockError("lock_not_held", "This connection does not hold the lock.")
        locks(tenant_id).delete(tr, (session_id, path))
        return session_events_append(
            tr, tenant_id=tenant_id, session_id=session_id, items=[_released(path)],
            origin=connection_id, batch_id=batch, now=now,
        )  # fmt: skip

    _send(session_id, release(db))


def session_snapshot(*, db: Any, principal: Principal, session_id: uuid.UUID) -> Welcome:
    """Full state for a ``resync``: session, latest seq, presence (first page) and locks.
    Raises WorkspaceError 404."""
    tenant_id, now = principal.tenant_id, datetime.now(UTC)

    @fdb_backend.transactional
    def read(tr: Any) -> Welcome:
        alive, _, valid, _ = _live(tr.snapshot, tenant_id, session_id, now)
        return _welcome(tr, tenant_id, session_id, alive, valid)

    found: Welcome = read(db)
    return found


def presence_list(
    *, db: Any, principal: Principal, session_id: uuid.UUID, after: str | None, limit: int
) -> PresencePage:
    """Up to ``limit`` live connections after connection id ``after`` (None: from the first),
    in connection id order, with the id to continue after, the count and the session's seq
    they were read at. Raises WorkspaceError 404."""
    tenant_id, now = principal.tenant_id, datetime.now(UTC)

    @fdb_backend.transactional
    def read(tr: Any) -> PresencePage:
        view = session_read(tr, tenant_id=tenant_id, session_id=session_id)
        alive, _, _, _ = _live(tr.snapshot, tenant_id, session_id, now)
        page, following = _page(alive, after, limit)
        return PresencePage(
            presence=[presence_json(c) for c in page],
            next=following,
            count=len(alive),
            seq=view.head.seq,
        )

    found: PresencePage = read(db)
    return found


# Up to this many connection records, counting reads the tenant's connections in one range
# (one read instead of one per session on the page); past it, one read per session.
COUNT_SCAN_MAX = 100


def connection_counts(
    *, db: Any, principal: Principal, session_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many live connections each of the tenant's sessions has (one snapshot transaction).

    Live as presence counts them: seen within the presence timeout, so the sockets of a
    crashed server stop counting before a heartbeat sweeps them. Ids of other tenants, or of
    no session, count 0.
    """
    tenant_id = principal.tenant_id
    now = datetime.now(UTC)

    @fdb_backend.transactional
    def read(tr: Any) -> dict[uuid.UUID, int]:
        found = connections(tenant_id)
        everyone = found.list_by_key(tr.snapshot, (), limit=COUNT_SCAN_MAX)
        if everyone.continuation is None:
            records = everyone.records
        else:
            records = [
                c for sid in session_ids for c in found.list_by_key(tr.snapshot, (sid,)).records
            ]
        counts = dict.fromkeys(session_ids, 0)
        seen_since = now - _timeout()
        for c in records:
            if c.session_id in counts and c.last_seen >= seen_since:
                counts[c.session_id] += 1
        return counts

    counts: dict[uuid.UUID, int] = read(db)
    return counts


# --- a person's data (accounts.hooks): their connections and locks -------------------------


def presence_of_user(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
    """The export section of ``user_id``: their connection records and locks in every session
    of the tenant, and the logged events that name them."""
    return {
        "connections": [
            {"session_id": str(c.session_id), **presence_json(c), "last_seen": rfc3339(c.last_seen)}
            for c in connections(tenant_id).scan(db, batch_size=200)
            if c.user_id == user_id
        ],
        "locks": [
            {"session_id": str(lk.session_id), **lock_json(lk)}
            for lk in locks(tenant_id).scan(db, batch_size=200)
            if lk.user_id == user_id
        ],
        "events_naming_you": session_events_naming(db=db, tenant_id=tenant_id, user_id=user_id),
    }


def presence_of_user_erase(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Erase ``user_id`` from the tenant's live sessions: drop their connections and locks,
    announced to the session (``presence.leave`` and ``lock.changed``, not naming them), then
    scrub the logged events that name them (workspaces.services.session_events_scrub).

    Runs after their credentials are gone: a socket of theirs still open takes no lock from
    then on (``lock_acquire`` needs its connection record) and leaves without an event
    (``connections_change`` finds no record), so nothing names them after the scrub.
    """
    sessions: dict[uuid.UUID, tuple[list[str], list[str]]] = {}
    for c in connections(tenant_id).scan(db, batch_size=200):
        if c.user_id == user_id:
            sessions.setdefault(c.session_id, ([], []))[0].append(c.connection_id)
    for lk in locks(tenant_id).scan(db, batch_size=200):
        if lk.user_id == user_id:
            sessions.setdefault(lk.session_id, ([], []))[1].append(lk.path)
    for session_id, (connection_ids, paths) in sessions.items():
        batch, now = uuid.uuid4(), datetime.now(UTC)
        sent = _presence_drop(db, tenant_id, session_id, user_id, connection_ids, paths, batch, now)
        _send(session_id, sent)
    session_events_scrub(db=db, tenant_id=tenant_id, user_id=user_id)


@fdb_backend.transactional
def _presence_drop(
    tr: Any,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    connection_ids: list[str],
    paths: list[str],
    batch: uuid.UUID,
    now: datetime,
) -> Events:
    items: list[tuple[str, Any]] = []
    for path in paths:
        lock = locks(tenant_id).get(tr, (session_id, path))
        if lock is not None and lock.user_id == user_id:
            locks(tenant_id).delete(tr, (session_id, path))
            items.append(_released(path))
    for connection_id in connection_ids:
        mine = connections(tenant_id).get(tr, (session_id, connection_id))
        if mine is not None and mine.user_id == user_id:
            connections(tenant_id).delete(tr, (session_id, connection_id))
            items.append(
                (
                    "presence.leave",
                    {"connection_id": connection_id, "user_id": None, "display_name": ""},
                )
            )
    return session_events_append(
        tr, tenant_id=tenant_id, session_id=session_id, items=items,
        origin="", batch_id=batch, now=now,
    )  # fmt: skip

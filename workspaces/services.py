"""What the workspaces app does (DESIGN §2): each call one transaction, broadcasts after it.

Every function takes the caller's ``Principal`` and works inside that principal's tenant:
another tenant's session id is simply not found. Every write reads the caller's user record
in its own transaction and refuses a viewer (RoleError 403 ``forbidden``,
accounts/services/roles.py): a role change applies to the very next write, REST or socket.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings

import fdb_backend
from accounts.services import Principal, caller_key, writer_check
from accounts.services.quotas import quota_charge
from fdb_backend.records import Page, VersionConflict, get_together, insert_together_sized
from workspaces import broadcast
from workspaces.errors import WorkspaceError
from workspaces.hooks import live_counts
from workspaces.paths import MAX_ACTIVE_FILES, path_problem
from workspaces.records import (
    SessionEvent,
    WorkspaceSession,
    WorkspaceState,
    events,
    heads,
    session_ranges,
    states,
)

STATE_FIELDS = ("active_files", "editor_state", "terminal_state")
HEAD_FIELDS = ("name", "workspace_path")
RELATED_MAX = 100
# Event names the platform itself broadcasts; custom events may not use them.
RESERVED_EVENT_PREFIXES = ("state.", "presence.", "lock.")
EVENT_DATA_MAX_BYTES = 64 * 1024  # an event's data, as compact JSON


@dataclass(frozen=True)
class SessionView:
    """A workspace session as clients see it: head, state and related ids."""

    head: WorkspaceSession
    state: WorkspaceState
    related_ids: list[uuid.UUID]

    @property
    def version(self) -> int:
        return self.state.version


def _not_found() -> WorkspaceError:
    return WorkspaceError(404, "not_found", "Not found.")


NOT_STORABLE = "Contains text that is not valid Unicode or an integer beyond 64 bits."
_SESSION_CHANGED = "The session changed since that version."


def _json_encoded(value: Any, attr: str) -> bytes:
    """``value`` as the records layer stores it (compact UTF-8 JSON), encoded once: the size
    check, the event record and the wire message reuse these bytes. WorkspaceError 400 for
    what cannot be stored exactly: lone surrogates (not Unicode) and integers beyond 64 bits
    (RFC 8259 §6: they would come back as floats)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        raise WorkspaceError(400, "invalid", NOT_STORABLE, attr=attr) from None


def _state_encoded(values: dict[str, Any]) -> dict[str, bytes]:
    """The state fields of ``values``, each encoded once; 413 for one over the limit."""
    limit = settings.CODITECT_SESSION_STATE_MAX_BYTES
    encoded = {}
    for name in STATE_FIELDS:
        if name in values:
            raw = _json_encoded(values[name], name)
            if len(raw) > limit:
                raise WorkspaceError(
                    413, "state_too_large", f"{name} is larger than {limit} bytes.", attr=name
                )
            encoded[name] = raw
    return encoded


def _changes_fragment(changes: dict[str, Any], encoded: dict[str, bytes]) -> orjson.Fragment:
    """``changes`` as JSON built from the bytes already encoded (the head fields, two short
    strings, are encoded here): stored in the event record and sent as is."""
    members = [
        orjson.dumps(name) + b":" + (encoded[name] if name in encoded else orjson.dumps(value))
        for name, value in changes.items()
    ]
    return orjson.Fragment(b"{" + b",".join(members) + b"}")


def _path_require(value: Any, attr: str) -> None:
    problem = path_problem(value)
    if problem is not None:
        raise WorkspaceError(400, "invalid", problem, attr=attr)


def _paths_check(values: dict[str, Any]) -> None:
    """WorkspaceError 400 ``invalid`` naming the field (``active_files.3`` for an entry) unless
    ``workspace_path`` and every entry of ``active_files`` in ``values`` are paths
    (workspaces/paths.py). Every writer and the list filter come through here: REST, the
    socket's state.patch, and any other caller of the services."""
    if "workspace_path" in values:
        _path_require(values["workspace_path"], "workspace_path")
    if "active_files" in values:
        files = values["active_files"]
        if not isinstance(files, list) or len(files) > MAX_ACTIVE_FILES:
            raise WorkspaceError(
                400,
                "invalid",
                f"Must be a list of at most {MAX_ACTIVE_FILES} paths.",
                attr="active_files",
            )
        for index, path in enumerate(files):
            _path_require(path, f"active_files.{index}")


def _event_json(event: SessionEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "event": event.event,
        "data": event.data,
        "origin": event.origin,
        "created_at": event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _append_event(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    head: WorkspaceSession,
    event: str,
    data: Any,
    origin: str,
    event_id: uuid.UUID,
    now: datetime,
    **head_changes: Any,
) -> tuple[WorkspaceSession, SessionEvent, int]:
    """Give the event the next seq, store it, trim the log, move last_active_at; also
    returns how much the log's stored size changed (kept on the head as ``event_bytes``;
    the caller charges it to the tenant's bytes quota)."""
    seq = head.seq + 1
    log = events(tenant_id)
    stored, added = log.save_sized(
        tr,
        SessionEvent(
            session_id=head.id,
            seq=seq,
            event=event,
            data=data,
            origin=origin,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.CODITECT_EVENT_LOG_MAX_AGE_S),
        ),
    )
    dropped = seq - settings.CODITECT_EVENT_LOG_MAX
    if dropped >= 1:
        added -= log.delete_sized(tr, (head.id, dropped))[1]
    new_head = heads(tenant_id).save(
        tr,
        dataclasses.replace(
            head,
            seq=seq,
            last_event_id=event_id,
            last_active_at=max(now, head.last_active_at),
            event_bytes=head.event_bytes + added,
            **head_changes,
        ),
    )
    return new_head, stored, added


def _related_many(
    tr: Any, tenant_id: uuid.UUID, found: list[WorkspaceSession]
) -> list[list[uuid.UUID]]:
    """Each session's related ids: its live parent first, then its children (from the index
    alone), each kind of read issued once for all of ``found``."""
    children = heads(tenant_id).index_keys(
        tr, "sessions_by_parent", [(head.id,) for head in found], limit=RELATED_MAX
    )
    parent_ids = sorted({h.parent_session_id for h in found if h.parent_session_id is not None})
    parents = heads(tenant_id).get_many(tr, parent_ids)
    alive = {pid for pid, parent in zip(parent_ids, parents, strict=True) if parent is not None}
    related = []
    for head, child_keys in zip(found, children, strict=True):
        ids = [key[0] for key in child_keys]
        if head.parent_session_id in alive:
            ids.insert(0, head.parent_session_id)  # a deleted parent is no longer related
        related.append(ids)
    return related


def _related(tr: Any, tenant_id: uuid.UUID, head: WorkspaceSession) -> list[uuid.UUID]:
    return _related_many(tr, tenant_id, [head])[0]


def _views(tr: Any, tenant_id: uuid.UUID, found: list[WorkspaceSession]) -> list[SessionView]:
    """The views of ``found``, their reads issued together: a page of 20 sessions is five
    reads, not eighty."""
    found_states = states(tenant_id).get_many(tr, [head.id for head in found])
    related = _related_many(tr, tenant_id, found)
    views = []
    for head, state, ids in zip(found, found_states, related, strict=True):
        if state is None:  # pragma: no cover - a head is always written with its state
            raise _not_found()
        views.append(SessionView(head=head, state=state, related_ids=ids))
    return views


def _view(tr: Any, tenant_id: uuid.UUID, head: WorkspaceSession) -> SessionView:
    return _views(tr, tenant_id, [head])[0]


# --- create, read, list ---------------------------------------------------------------


def session_create(
    *,
    db: Any,
    principal: Principal,
    name: str,
    workspace_path: str,
    active_files: list[Any] | None = None,
    editor_state: dict[str, Any] | None = None,
    terminal_state: dict[str, Any] | None = None,
    parent_session_id: uuid.UUID | None = None,
) -> SessionView:
    """Create a session owned by the caller.

    Raises WorkspaceError 400 (not a path, bad parent), 413, QuotaExceeded 403 (sessions
    or bytes).
    """
    values: dict[str, Any] = {
        "active_files": active_files or [],
        "editor_state": editor_state or {},
        "terminal_state": terminal_state or {},
    }
    _paths_check({"workspace_path": workspace_path, **values})
    _state_encoded(values)
    tenant_id = principal.tenant_id
    session_id, now = uuid.uuid4(), datetime.now(UTC)

    @fdb_backend.transactional
    def create(tr: Any) -> SessionView:
        wanted = [session_id] if parent_session_id is None else [session_id, parent_session_id]
        me, existing, *parent = get_together(
            tr, [caller_key(principal), *[(heads(tenant_id), i) for i in wanted]]
        )
        if existing is not None:  # our own commit, applied before a 1021: counted once
            return _view(tr, tenant_id, existing)
        writer_check(me)
        if parent_session_id is not None and parent[0] is None:
            raise WorkspaceError(
                400, "invalid", "No such parent session.", attr="parent_session_id"
            )
        head = WorkspaceSession(
            id=session_id,
            owner_id=principal.user_id,
            name=name,
            workspace_path=workspace_path,
            parent_session_id=parent_session_id,
            created_at=now,
            last_active_at=now,
        )
        try:
            # Both keys checked free in one read.
            (head, _), (state, state_size) = insert_together_sized(
                tr,
                [
                    (heads(tenant_id), head),
                    (states(tenant_id), WorkspaceState(id=session_id, **values)),
                ],
            )
        except VersionConflict:  # pragma: no cover - the head was absent just above
            raise _not_found() from None
        quota_charge(tr, tenant_id=tenant_id, kind="sessions", delta=1)
        quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=state_size)
        # A new session has no children yet: its related ids are its parent, if any.
        related = [] if parent_session_id is None else [parent_session_id]
        return SessionView(head=head, state=state, related_ids=related)

    created: SessionView = create(db)
    return created


def session_get(*, db: Any, principal: Principal, session_id: uuid.UUID) -> SessionView:
    return _session_read(db, principal.tenant_id, session_id)


def session_read(tr: Any, *, tenant_id: uuid.UUID, session_id: uuid.UUID) -> SessionView:
    """The session as ``session_get`` shows it, read in the caller's transaction (snapshot
    reads: it sees the transaction's own writes and adds no conflict). Raises WorkspaceError
    404."""
    return _session_read(tr, tenant_id, session_id)


def session_exists(tr: Any, *, tenant_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """Whether the session is there, read in the caller's transaction."""
    return heads(tenant_id).get(tr, session_id) is not None


@fdb_backend.transactional
def _session_read(tr: Any, tenant_id: uuid.UUID, session_id: uuid.UUID) -> SessionView:
    head = heads(tenant_id).get(tr.snapshot, session_id)
    if head is None:
        raise _not_found()
    return _view(tr.snapshot, tenant_id, head)


# Which index answers each filter of the list (owner, with a workspace_path or not): every
# combination reads only the entries that match it, newest first, so a page is full whenever
# more sessions match and costs the same in a tenant of a hundred sessions or of a million.
_LIST_INDEXES = {
    ("all", False): "recent_sessions_tenant",  # (last_active_at, id)
    ("me", False): "recent_sessions",  # (owner_id, last_active_at, id)
    ("all", True): "sessions_by_workspace",  # (workspace_path, last_active_at, id)
    ("me", True): "sessions_by_owner_workspace",  # (owner_id, workspace_path, last_active_at, id)
}
LIST_OWNERS = ("all", "me")


def session_list(
    *,
    db: Any,
    principal: Principal,
    owner: str = "all",
    workspace_path: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[Page[SessionView], dict[uuid.UUID, int]]:
    """Sessions of the tenant (or the caller's), most recently active first, optionally only
    those of one ``workspace_path``, and how many live connections each has (the
    ``live_counts`` hook; read in the same snapshot transaction rather than one more). Each
    filter reads its own index (``_LIST_INDEXES``):
    a page holds ``limit`` sessions whenever that many more match, and its continuation is
    None exactly when none follows (the read peeks one entry past the page).

    Raises WorkspaceError 400 when ``owner`` is not ``all`` or ``me``, or ``workspace_path``
    is not a path (no session has it, and a long one would not fit in an index key);
    InvalidContinuation for a cursor of another listing: another filter, owner or tenant
    reads another index range, which the continuation is bound to.
    """
    if owner not in LIST_OWNERS:
        raise WorkspaceError(400, "invalid", "owner must be me or all.", attr="owner")
    if workspace_path is not None:
        _path_require(workspace_path, "workspace_path")
    tenant_id = principal.tenant_id
    index = _LIST_INDEXES[owner, workspace_path is not None]
    values: tuple[Any, ...] = (principal.user_id,) if owner == "me" else ()
    if workspace_path is not None:
        values += (workspace_path,)

    @fdb_backend.transactional
    def read(tr: Any) -> tuple[Page[SessionView], dict[uuid.UUID, int]]:
        snap = tr.snapshot
        page = heads(tenant_id).list_by_index(
            snap, index, values, limit=limit, reverse=True, continuation=cursor
        )
        live = live_counts(db=tr, principal=principal, session_ids=[h.id for h in page.records])
        return Page(_views(snap, tenant_id, page.records), page.continuation), live

    listed: tuple[Page[SessionView], dict[uuid.UUID, int]] = read(db)
    return listed


def session_related(*, db: Any, principal: Principal, session_id: uuid.UUID) -> list[SessionView]:
    tenant_id = principal.tenant_id

    @fdb_backend.transactional
    def read(tr: Any) -> list[SessionView]:
        snap = tr.snapshot
        head = heads(tenant_id).get(snap, session_id)
        if head is None:
            raise _not_found()
        found = heads(tenant_id).get_many(snap, _related(snap, tenant_id, head))
        return _views(snap, tenant_id, [related for related in found if related is not None])

    related: list[SessionView] = read(db)
    return related


# --- changes --------------------------------------------------------------------------


def session_update(
    *,
    db: Any,
    principal: Principal,
    session_id: uuid.UUID,
    changes: dict[str, Any],
    expected_version: int | None = None,
    origin: str = "",
    related: bool = True,
) -> SessionView:
    """Replace top-level fields; version + 1; a ``state.changed`` event is logged and sent.
    Returns the session as REST answers it, its related ids read in the same transaction;
    ``related=False`` (a socket's ``state.patch``, whose ack carries only the version and
    the seq) leaves them unread and empty.

    Raises WorkspaceError 400 (nothing to change, not a path, not storable), 404, 412
    version_conflict (with the current version), 413; QuotaExceeded 403 when the change
    grows the tenant's stored bytes past its quota.
    """
    head, state, related_ids = _session_change(
        db=db,
        principal=principal,
        session_id=session_id,
        changes=changes,
        expected_version=expected_version,
        origin=origin,
        related=related,
    )
    return SessionView(head, state, related_ids)


def _session_change(
    *,
    db: Any,
    principal: Principal,
    session_id: uuid.UUID,
    changes: dict[str, Any],
    expected_version: int | None,
    origin: str,
    related: bool,
) -> tuple[WorkspaceSession, WorkspaceState, list[uuid.UUID]]:
    if not changes:
        raise WorkspaceError(400, "invalid", "Nothing to change.")
    _paths_check(changes)
    encoded = _state_encoded(changes)
    tenant_id = principal.tenant_id
    event_id, now = uuid.uuid4(), datetime.now(UTC)
    head_changes = {k: v for k, v in changes.items() if k in HEAD_FIELDS}
    state_changes = {k: v for k, v in changes.items() if k in STATE_FIELDS}
    Changed = tuple[WorkspaceSession, WorkspaceState, list[uuid.UUID], SessionEvent | None]

    @fdb_backend.transactional
    def update(tr: Any) -> Changed:
        head, state, me = get_together(
            tr,
            [
                (heads(tenant_id), session_id),
                (states(tenant_id), session_id),
                caller_key(principal),
            ],
        )
        if head is None:
            raise _not_found()
        assert state is not None
        if head.last_event_id == event_id:  # applied before a 1021: report it, once
            return head, state, _related(tr, tenant_id, head) if related else [], None
        writer_check(me)
        WorkspaceError.version_check(
            expected=expected_version, current=state.version, detail=_SESSION_CHANGED
        )
        new_state, state_added = states(tenant_id).save_sized(
            tr, dataclasses.replace(state, **state_changes)
        )
        new_head, event, event_added = _append_event(
            tr,
            tenant_id=tenant_id,
            head=head,
            event="state.changed",
            data={"version": new_state.version, "changes": _changes_fragment(changes, encoded)},
            origin=origin,
            event_id=event_id,
            now=now,
            **head_changes,
        )
        quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=state_added + event_added)
        ids = _related(tr, tenant_id, new_head) if related else []
        return new_head, new_state, ids, event

    new_head, new_state, ids, event = update(db)
    if event is not None:
        broadcast.session_events_send(session_id=session_id, events=[_event_json(event)])
    return new_head, new_state, ids


def session_delete(
    *, db: Any, principal: Principal, session_id: uuid.UUID, expected_version: int | None = None
) -> None:
    """Delete the session with its indexes, events, locks and connections.

    Only its owner or a tenant owner/admin may, never a viewer. Raises WorkspaceError 403,
    404, 412; RoleError 403.
    """
    tenant_id = principal.tenant_id
    # Found first, outside the retried transaction: a retry after commit_unknown_result
    # that finds the session already gone is our own delete, not a 404.
    session_get(db=db, principal=principal, session_id=session_id)

    @fdb_backend.transactional
    def delete(tr: Any) -> None:
        head, me = get_together(tr, [(heads(tenant_id), session_id), caller_key(principal)])
        if head is None:
            return
        me = writer_check(me)
        if head.owner_id != principal.user_id and me.role not in ("owner", "admin"):
            raise WorkspaceError(
                403, "forbidden", "Only its owner or a tenant admin may delete it."
            )
        state = states(tenant_id).get(tr, session_id)
        if state is not None:
            WorkspaceError.version_check(
                expected=expected_version, current=state.version, detail=_SESSION_CHANGED
            )
        _session_remove(tr, tenant_id, head)

    delete(db)
    broadcast.session_deleted_send(session_id=session_id)


def session_fork(
    *, db: Any, principal: Principal, session_id: uuid.UUID, name: str | None = None
) -> SessionView:
    """A new session owned by the caller with the parent's state copied; both are related.

    Raises WorkspaceError 404, QuotaExceeded 403 (sessions or bytes)."""
    tenant_id = principal.tenant_id
    child_id, now = uuid.uuid4(), datetime.now(UTC)

    @fdb_backend.transactional
    def fork(tr: Any) -> SessionView:
        existing, parent, parent_state, me = get_together(
            tr,
            [
                (heads(tenant_id), child_id),
                (heads(tenant_id), session_id),
                (states(tenant_id), session_id),
                caller_key(principal),
            ],
        )
        if existing is not None:
            return _view(tr, tenant_id, existing)
        if parent is None or parent_state is None:
            raise _not_found()
        writer_check(me)
        quota_charge(tr, tenant_id=tenant_id, kind="sessions", delta=1)
        head = heads(tenant_id).save(
            tr,
            WorkspaceSession(
                id=child_id,
                owner_id=principal.user_id,
                name=name or f"{parent.name} (fork)"[:200],
                workspace_path=parent.workspace_path,
                parent_session_id=parent.id,
                created_at=now,
                last_active_at=now,
            ),
        )
        _, state_size = states(tenant_id).save_sized(
            tr,
            WorkspaceState(
                id=child_id,
                active_files=parent_state.active_files,
                editor_state=parent_state.editor_state,
                terminal_state=parent_state.terminal_state,
            ),
        )
        quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=state_size)
        return _view(tr, tenant_id, head)

    forked: SessionView = fork(db)
    return forked


# --- the event log --------------------------------------------------------------------


def session_event_publish(
    *, db: Any, principal: Principal, session_id: uuid.UUID, event: str, data: Any, origin: str = ""
) -> int:
    """Log a custom event (agent progress, build status) and send it; returns its seq.

    Raises WorkspaceError 400 for a reserved name (``state.*``, ``presence.*``, ``lock.*``) or
    data that cannot be stored exactly, 413 ``event_too_large`` for data over
    EVENT_DATA_MAX_BYTES, QuotaExceeded 403 past the tenant's bytes quota.
    """
    if event.startswith(RESERVED_EVENT_PREFIXES):
        raise WorkspaceError(400, "invalid", "This event name is reserved.", attr="event")
    encoded = _json_encoded(data, "data")
    if len(encoded) > EVENT_DATA_MAX_BYTES:
        raise WorkspaceError(
            413, "event_too_large", "Event data is larger than 64 KiB.", attr="data"
        )
    tenant_id = principal.tenant_id
    event_id, now = uuid.uuid4(), datetime.now(UTC)

    @fdb_backend.transactional
    def publish(tr: Any) -> tuple[int, SessionEvent | None]:
        head, me = get_together(tr, [(heads(tenant_id), session_id), caller_key(principal)])
        if head is None:
            raise _not_found()
        if head.last_event_id == event_id:
            return head.seq, None
        writer_check(me)
        _, stored, added = _append_event(
            tr,
            tenant_id=tenant_id,
            head=head,
            event=event,
            data=orjson.Fragment(encoded),  # stored and sent as encoded above
            origin=origin,
            event_id=event_id,
            now=now,
        )
        quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=added)
        return stored.seq, stored

    seq, stored = publish(db)
    if stored is not None:
        broadcast.session_events_send(session_id=session_id, events=[_event_json(stored)])
    return int(seq)


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    latest_seq: int


def session_event_list(
    *, db: Any, principal: Principal, session_id: uuid.UUID, after_seq: int = 0, limit: int = 200
) -> EventPage:
    """Events with seq > ``after_seq`` in order (at most ``limit``).

    Raises WorkspaceError 404, or 410 resync_required when the log no longer reaches back
    to ``after_seq + 1`` (trimmed by count or age).
    """
    tenant_id = principal.tenant_id
    now = datetime.now(UTC)

    @fdb_backend.transactional
    def read(tr: Any) -> EventPage:
        snap = tr.snapshot
        head = heads(tenant_id).get(snap, session_id)
        if head is None:
            raise _not_found()
        last = min(head.seq, after_seq + limit)
        log = events(tenant_id)
        found = []
        for seq in range(after_seq + 1, last + 1):
            stored = log.get(snap, (session_id, seq), now=now)
            if stored is None:
                raise WorkspaceError(
                    410, "resync_required", "The event log no longer reaches back that far."
                )
            found.append(_event_json(stored))
        return EventPage(found, head.seq)

    page: EventPage = read(db)
    return page


def session_events_append(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    items: list[tuple[str, Any]],
    origin: str,
    batch_id: uuid.UUID,
    now: datetime,
    origins: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Append platform events (presence, locks) inside the caller's transaction.

    ``origins``, when given, is each item's own origin (a batch of joins, each announced as
    its connection's), else every item has ``origin``. Returns them as sent on the wire, for
    the caller to broadcast after commit; empty when the session is gone or when
    ``batch_id`` shows this batch was already applied (a retry after commit_unknown_result).
    Their bytes are counted, never refused: they record what already happened (a socket
    joined or left, a lock changed hands).
    """
    head = heads(tenant_id).get(tr, session_id)
    if head is None or head.last_event_id == batch_id or not items:
        return []
    appended = []
    added = 0
    for position, (event, data) in enumerate(items):
        last = position == len(items) - 1
        head, stored, size = _append_event(
            tr,
            tenant_id=tenant_id,
            head=head,
            event=event,
            data=data,
            origin=origin if origins is None else origins[position],
            event_id=batch_id if last else uuid.uuid4(),
            now=now,
        )
        added += size
        appended.append(_event_json(stored))
    quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=added, enforce=False)
    return appended


# --- support staff: explicit cross-tenant entry points (operations/staff.py) ----------------


def _session_remove(tr: Any, tenant_id: uuid.UUID, head: WorkspaceSession) -> None:
    """Clear a session's head, state, indexes, events, locks and connections (one commit),
    and give back what it used of the tenant's quotas: the session, and its state's and
    events' bytes (``event_bytes``: the log is cleared without being read)."""
    # Range clears cost the same whatever they cover, so this stays one small commit.
    for begin, end in session_ranges(tenant_id, head.id):
        tr.clear_range(begin, end)
    heads(tenant_id).delete(tr, head.id)
    state_size = states(tenant_id).delete_sized(tr, head.id)[1]
    quota_charge(tr, tenant_id=tenant_id, kind="sessions", delta=-1)
    quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=-(state_size + head.event_bytes))


@fdb_backend.transactional
def session_remove(tr: Any, *, tenant_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """Remove one session of a tenant inside the caller's transaction, as ``session_delete``
    does, with no owner check and nothing broadcast (maintenance and erasure, which tell
    the sockets after commit); False when it is already gone."""
    head = heads(tenant_id).get(tr, session_id)
    if head is None:
        return False
    _session_remove(tr, tenant_id, head)
    return True


def session_events_removed(
    tr: Any, *, tenant_id: uuid.UUID, removed: list[tuple[SessionEvent, int]]
) -> None:
    """Account for events removed from the log by someone else than an append (the purge
    of events past retention), inside the transaction that removed them: each session's
    ``event_bytes`` and the tenant's bytes quota go down by their stored size."""
    by_session: dict[uuid.UUID, int] = {}
    for event, size in removed:
        by_session[event.session_id] = by_session.get(event.session_id, 0) - size
    _event_bytes_changed(tr, tenant_id, by_session)


def _event_bytes_changed(tr: Any, tenant_id: uuid.UUID, deltas: dict[uuid.UUID, int]) -> None:
    """Events of these sessions changed size outside an append (a purge, an erasure's scrub):
    each head's ``event_bytes`` and the tenant's bytes usage follow, never refused."""
    collection = heads(tenant_id)
    for session_id, delta in deltas.items():
        head = collection.get(tr, session_id)
        if head is not None and delta:
            collection.save(tr, dataclasses.replace(head, event_bytes=head.event_bytes + delta))
    quota_charge(tr, tenant_id=tenant_id, kind="bytes", delta=sum(deltas.values()), enforce=False)


def session_list_by_staff(
    *, db: Any, tenant_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> Page[WorkspaceSession]:
    """A tenant's sessions (heads only), most recently active first, for support staff.

    Raises InvalidContinuation for a cursor from another listing.
    """
    page: Page[WorkspaceSession] = heads(tenant_id).list_by_index(
        db, "recent_sessions_tenant", (), limit=limit, reverse=True, continuation=cursor
    )
    return page


def session_get_by_staff(*, db: Any, tenant_id: uuid.UUID, session_id: uuid.UUID) -> SessionView:
    """One session of a tenant with its state, for support staff. Raises WorkspaceError 404."""
    return _session_read(db, tenant_id, session_id)


def session_delete_by_staff(
    *, db: Any, tenant_id: uuid.UUID, session_id: uuid.UUID
) -> WorkspaceSession:
    """Delete a session as ``session_delete`` does, without an owner check (support staff,
    audited by the caller); returns its head as it was. Open sockets are told. Raises
    WorkspaceError 404."""
    head = heads(tenant_id).get(db, session_id)
    if head is None:
        raise _not_found()

    # No 404 from inside the transaction: a retry after commit_unknown_result finds nothing
    # left and removes nothing, instead of reporting a 404 for its own deletion.
    session_remove(db, tenant_id=tenant_id, session_id=session_id)
    broadcast.session_deleted_send(session_id=session_id)
    return head


# --- a person's data (accounts.hooks): the sessions they own, the events that name them -----

# Sessions removed per transaction when their owner is erased (each may hold megabytes of
# state, which its deletion reads).
ERASE_BATCH = 10
# Events read per transaction while looking for those that name an erased person.
SCRUB_BATCH = 50


def session_ids_of_owner(
    *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID, limit: int = 0
) -> list[uuid.UUID]:
    """Ids of the sessions ``user_id`` owns (the first ``limit``; 0: all), from the index."""

    @fdb_backend.transactional
    def read(tr: Any) -> list[uuid.UUID]:
        keys = heads(tenant_id).index_keys(
            tr.snapshot, "workspace_sessions_by_user", [(user_id,)], limit=limit
        )[0]
        return [key[0] for key in keys]

    found: list[uuid.UUID] = read(db)
    return found


def session_export_read(
    *, db: Any, tenant_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[SessionView, list[dict[str, Any]]] | None:
    """One session with the events still in its log (None when it is gone), one snapshot."""

    @fdb_backend.transactional
    def read(tr: Any) -> tuple[SessionView, list[dict[str, Any]]] | None:
        snap = tr.snapshot
        head = heads(tenant_id).get(snap, session_id)
        if head is None:
            return None
        logged = events(tenant_id).list_by_key(snap, (session_id,))
        return _view(snap, tenant_id, head), [_event_json(e) for e in logged.records]

    found: tuple[SessionView, list[dict[str, Any]]] | None = read(db)
    return found


def sessions_of_owner_erase(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Delete every session ``user_id`` owns with everything attached (state, events, locks,
    connections, indexes), ERASE_BATCH per transaction; their open sockets are told (4404).
    Returns how many. Idempotent: a session already gone is skipped."""

    @fdb_backend.transactional
    def remove(tr: Any, session_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        removed = []
        for session_id, head in zip(
            session_ids, heads(tenant_id).get_many(tr, session_ids), strict=True
        ):
            if head is not None and head.owner_id == user_id:
                _session_remove(tr, tenant_id, head)  # gives back its quota usage
                removed.append(session_id)
        return removed

    count = 0
    while batch := session_ids_of_owner(
        db=db, tenant_id=tenant_id, user_id=user_id, limit=ERASE_BATCH
    ):
        removed = remove(db, batch)
        for session_id in removed:
            broadcast.session_deleted_send(session_id=session_id)
        count += len(removed)
        if not removed:  # pragma: no cover - entries without their session: storage check's
            break
    return count


def _scrubbed(value: Any, name: str) -> Any:
    """``value`` with every string equal to ``name`` replaced by None, and the
    ``display_name`` beside such a value emptied (presence and lock events name a person by
    id and display name)."""
    if isinstance(value, str):
        return None if value == name else value
    if isinstance(value, list):
        return [_scrubbed(item, name) for item in value]
    if isinstance(value, dict):
        cleaned = {key: _scrubbed(item, name) for key, item in value.items()}
        if name in value.values() and "display_name" in cleaned:
            cleaned["display_name"] = ""
        return cleaned
    return value


def _names(value: Any, name: str) -> bool:
    if isinstance(value, str):
        return value == name
    if isinstance(value, list):
        return any(_names(item, name) for item in value)
    if isinstance(value, dict):
        return any(_names(item, name) for item in value.values())
    return False


def session_events_naming(
    *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Every logged event of the tenant whose data names ``user_id`` (presence, locks, or a
    custom event carrying the id), with its session id, read SCRUB_BATCH per transaction."""
    name = str(user_id)
    return [
        {"session_id": str(e.session_id), **_event_json(e)}
        for e in events(tenant_id).scan(db, batch_size=SCRUB_BATCH, include_expired=True)
        if _names(e.data, name)
    ]


def session_events_scrub(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Remove ``user_id`` from every logged event of the tenant that names them: the id
    becomes null and the display name beside it empty; the event keeps its seq, so no
    client's resume breaks. Returns how many events changed. Idempotent."""
    name = str(user_id)
    log = events(tenant_id)

    @fdb_backend.transactional
    def scrub(tr: Any, keys: list[tuple[uuid.UUID, int]]) -> int:
        changed = 0
        resized: dict[uuid.UUID, int] = {}
        for key in keys:
            current = log.read_stored(tr, log.pk_of(key))
            if current is not None and _names(current.data, name):
                _, delta = log.save_sized(
                    tr, dataclasses.replace(current, data=_scrubbed(current.data, name))
                )
                resized[current.session_id] = resized.get(current.session_id, 0) + delta
                changed += 1
        _event_bytes_changed(tr, tenant_id, resized)
        return changed

    naming = [
        (e.session_id, e.seq)
        for e in log.scan(db, batch_size=SCRUB_BATCH, include_expired=True)
        if _names(e.data, name)
    ]
    return sum(
        scrub(db, naming[start : start + SCRUB_BATCH])
        for start in range(0, len(naming), SCRUB_BATCH)
    )

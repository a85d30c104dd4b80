"""The auth event log's indexes: their key shapes, reads by filter, checks, repairs and the
retention purge (docs/keyspace.md, docs/accounts.md "Tenant audit log").

The log itself is ``("t", tenant_id, "auth_events", at_micros, event_id) -> JSON``
(``accounts.records.auth_event_write``). Three indexes sit beside it, each entry an empty
value whose key ends with the event's own ``(at_micros, event_id)``, so that an index read
newest first is in the log's order and names the event it points at:

* ``("auth_events_by_user", user_id, at_micros, event_id)``
* ``("auth_events_by_type", type, at_micros, event_id)``
* ``("auth_events_by_user_type", user_id, type, at_micros, event_id)``

An event without a user (a failed login for an unknown email) has only its type entry. The
entries are written in the transaction that writes the event (``auth_event_write``) and
removed with it (``auth_events_purge``); ``storage check`` compares both sides and
``--repair`` writes what is missing, which is also how events written before the indexes
existed get theirs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import fdb_backend
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from fdb_backend.keyspace import KeyRange

BY_USER: Final = "auth_events_by_user"
BY_TYPE: Final = "auth_events_by_type"
BY_USER_TYPE: Final = "auth_events_by_user_type"
INDEXES: Final = (BY_USER, BY_TYPE, BY_USER_TYPE)
LOG: Final = "auth_events"


def _space(tenant_id: uuid.UUID, name: str) -> Any:
    return keyspace.tenant(tenant_id).space(name)


def _values(name: str, user_id: uuid.UUID | None, type: str) -> tuple[Any, ...] | None:
    """What an event puts before its ``(at_micros, event_id)`` in index ``name`` (None: no
    entry)."""
    if name == BY_TYPE:
        return (type,)
    if user_id is None:
        return None
    return (user_id,) if name == BY_USER else (user_id, type)


def log_key(tenant_id: uuid.UUID, at_micros: int, event_id: uuid.UUID) -> bytes:
    return bytes(_space(tenant_id, LOG).pack((at_micros, event_id)))


def entry_keys(
    tenant_id: uuid.UUID,
    *,
    at_micros: int,
    event_id: uuid.UUID,
    user_id: uuid.UUID | None,
    type: str,
) -> list[bytes]:
    """The index entries one event makes."""
    found = []
    for name in INDEXES:
        values = _values(name, user_id, type)
        if values is not None:
            found.append(bytes(_space(tenant_id, name).pack((*values, at_micros, event_id))))
    return found


def _entries_of_stored(tenant_id: uuid.UUID, key: bytes, value: bytes) -> list[bytes]:
    """The entries a stored log key-value makes; [] for one that does not decode (the
    export check refuses such an event; storage check leaves it alone)."""
    try:
        at_micros, event_id = _space(tenant_id, LOG).unpack(key)
        body = json.loads(value)
        user_id = uuid.UUID(body["user_id"]) if body.get("user_id") else None
        type = str(body["type"])
    except (ValueError, TypeError, KeyError):
        return []
    return entry_keys(tenant_id, at_micros=at_micros, event_id=event_id, user_id=user_id, type=type)


# --- reads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """Where a newest-first read stops short of: events strictly older than
    ``(at_micros, event_id)``, or than ``at_micros`` itself when ``event_id`` is None."""

    at_micros: int
    event_id: uuid.UUID | None = None


def events_page(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    type: str | None,
    limit: int,
    upper: Bound | None = None,
    after_micros: int | None = None,
) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` stored events ``(log key, value)``, newest first, of ``user_id`` and
    ``type`` when given, older than ``upper`` and newer than ``after_micros`` when given. A filtered
    read walks the matching index only, so it reads ``limit`` entries and their events
    however rare the match."""
    values: tuple[Any, ...]
    if user_id is not None and type is not None:
        name, values = BY_USER_TYPE, (user_id, type)
    elif user_id is not None:
        name, values = BY_USER, (user_id,)
    elif type is not None:
        name, values = BY_TYPE, (type,)
    else:
        name, values = LOG, ()
    space = _space(tenant_id, name).subspace(values)
    whole = space.range()
    begin = bytes(space.pack((after_micros + 1,))) if after_micros is not None else whole.start
    if upper is None:
        end = whole.stop
    elif upper.event_id is None:
        end = bytes(space.pack((upper.at_micros,)))
    else:
        end = bytes(space.pack((upper.at_micros, upper.event_id)))
    if begin >= end:
        return []
    rows = list(tr.get_range(begin, end, limit=limit, reverse=True))
    if name == LOG:
        return [(bytes(kv.key), bytes(kv.value)) for kv in rows]
    keys = [log_key(tenant_id, *space.unpack(kv.key)) for kv in rows]
    values_read = _get_together(tr, keys)
    # An entry whose event is gone (storage check: dangling) is skipped.
    return [(key, v) for key, v in zip(keys, values_read, strict=True) if v is not None]


def _get_together(tr: Any, keys: list[bytes]) -> list[bytes | None]:
    """``[tr.get(k) for k in keys]``, the reads issued together where the engine batches
    them (``get_ranges``: one statement on the embedded engine, overlapping round trips on a
    cluster)."""
    batched = getattr(tr, "get_ranges", None)
    if batched is None or len(keys) <= 1:
        return [_bytes_or_none(tr.get(key)) for key in keys]
    rows = batched([(key, key + b"\x00") for key in keys], 1)
    return [bytes(found[0].value) if found else None for found in rows]


def _bytes_or_none(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# --- check and repair (storage check) -----------------------------------------------------

IssueKind = Literal["missing", "dangling", "stale"]


@dataclass(frozen=True)
class EntryIssue:
    """``missing``: an event lacks this entry; ``dangling``: the entry names no event;
    ``stale``: it names an event that does not make it (another user or type)."""

    kind: IssueKind
    index: str
    tenant_id: uuid.UUID
    at_micros: int
    event_id: uuid.UUID
    entry: bytes


def _index_name(tenant_id: uuid.UUID, key: bytes) -> str:
    return str(keyspace.tenant(tenant_id).subspace.unpack(key)[0])


@fdb_backend.transactional
def _missing_in_batch(tr: Any, tenant_id: uuid.UUID, kvs: list[Any]) -> list[EntryIssue]:
    snap = tr.snapshot
    log = _space(tenant_id, LOG)
    wanted = [
        (kv.key, entry) for kv in kvs for entry in _entries_of_stored(tenant_id, kv.key, kv.value)
    ]
    stored = _get_together(snap, [entry for _, entry in wanted])
    found = []
    for (key, entry), value in zip(wanted, stored, strict=True):
        if value is None:
            at_micros, event_id = log.unpack(key)
            found.append(
                EntryIssue(
                    "missing", _index_name(tenant_id, entry), tenant_id, at_micros, event_id, entry
                )
            )
    return found


def _entry_issue(tr: Any, tenant_id: uuid.UUID, entry: bytes) -> EntryIssue | None:
    name = _index_name(tenant_id, entry)
    at_micros, event_id = _space(tenant_id, name).unpack(entry)[-2:]
    key = log_key(tenant_id, at_micros, event_id)
    value = tr.get(key)
    if value is None:
        return EntryIssue("dangling", name, tenant_id, at_micros, event_id, entry)
    if entry not in _entries_of_stored(tenant_id, key, bytes(value)):
        return EntryIssue("stale", name, tenant_id, at_micros, event_id, entry)
    return None


@fdb_backend.transactional
def _wrong_in_batch(tr: Any, tenant_id: uuid.UUID, kvs: list[Any]) -> list[EntryIssue]:
    found = []
    for kv in kvs:
        issue = _entry_issue(tr.snapshot, tenant_id, bytes(kv.key))
        if issue is not None:
            found.append(issue)
    return found


def check_indexes(db: Any, tenant_id: uuid.UUID) -> Iterator[EntryIssue]:
    """Every event has its entries and every entry its event, in bounded transactions."""
    for batch in storage.walk(db, _range(tenant_id, LOG)):
        yield from _missing_in_batch(db, tenant_id, batch)
    for name in INDEXES:
        for batch in storage.walk(db, _range(tenant_id, name)):
            yield from _wrong_in_batch(db, tenant_id, batch)


@fdb_backend.transactional
def repair(tr: Any, issue: EntryIssue) -> bool:
    """Fix one issue if it still holds (re-checked in this transaction)."""
    if issue.kind == "missing":
        key = log_key(issue.tenant_id, issue.at_micros, issue.event_id)
        value = tr.get(key)
        if value is None or tr.get(issue.entry) is not None:
            return False
        if issue.entry not in _entries_of_stored(issue.tenant_id, key, bytes(value)):
            return False
        tr[issue.entry] = b""
        return True
    if tr.get(issue.entry) is None or _entry_issue(tr, issue.tenant_id, issue.entry) is None:
        return False
    tr.clear(issue.entry)
    return True


def _range(tenant_id: uuid.UUID, name: str) -> KeyRange:
    r = _space(tenant_id, name).range()
    return KeyRange(r.start, r.stop)


def is_entry_key(tenant_id: uuid.UUID, key: bytes) -> bool:
    """Whether ``key`` lies in one of the tenant's auth event indexes (the export check)."""
    return any(_range(tenant_id, name).contains(key) for name in INDEXES)


def expected_entries(tenant_id: uuid.UUID, key: bytes, value: bytes) -> list[bytes]:
    """The entries an exported log key-value makes (the export check)."""
    return _entries_of_stored(tenant_id, key, value)


# --- retention (storage purge) ---------------------------------------------------------------


@fdb_backend.transactional
def _purge_batch(tr: Any, tenant_id: uuid.UUID, end: bytes, limit: int) -> int:
    begin = _space(tenant_id, LOG).range().start
    rows = list(tr.get_range(begin, end, limit=limit))
    for kv in rows:
        for entry in _entries_of_stored(tenant_id, bytes(kv.key), bytes(kv.value)):
            tr.clear(entry)
        tr.clear(kv.key)
    return len(rows)


def purge_before(
    db: Any, *, tenant_id: uuid.UUID, before_micros: int, dry_run: bool = False, batch: int = 500
) -> int:
    """Remove the tenant's auth events older than ``before_micros`` with their index entries,
    at most ``batch`` events per transaction; returns how many were (or would be) removed."""
    log = _space(tenant_id, LOG)
    end = bytes(log.pack((before_micros,)))
    if dry_run:
        return storage.count_keys(db, KeyRange(log.range().start, end), cap=2**62)
    total = 0
    while True:
        removed = _purge_batch(db, tenant_id, end, batch)
        total += removed
        if removed < batch:
            return total

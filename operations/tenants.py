"""Tenant maintenance for operators: find, list, show, create, suspend, delete, export, import.

These entry points reach into a tenant by id: they serve ``manage.py tenants`` and the
support views, never a tenant's own users (DESIGN §3.3). Long operations run in bounded
transactions (``fdb_backend.maintenance``); docs/operations.md describes the export format
and what each operation guarantees when it is interrupted.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

import fdb_backend
from accounts.records import (
    Invitation,
    Tenant,
    User,
    email_index,
    invitations,
    tenants,
    users,
)
from accounts.services.common import EventStamp, email_key, slug_for
from accounts.services.quotas import Quota, quota_override_set
from accounts.services.registration import invitation_hash
from accounts.services.tenancy import tenant_suspend
from core.time import rfc3339
from fdb_backend import keyspace
from fdb_backend import maintenance as storage
from fdb_backend.records import UniqueViolation, resolve_unique
from operations.errors import MaintenanceError
from operations.export_check import ExportChecker
from operations.usage import usage_reset

EXPORT_FORMAT = "coditect-tenant-export/1"
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
OPERATOR = uuid.UUID(int=0)  # ``created_by`` of what an operator creates
_BATCH = 200  # records per transaction where records are read one by one
_GLOBALS_BATCH = 1000  # email entries written per transaction by an import

# Called with the amount of work done since the last call (keys, or bytes of input).
Progress = Callable[[int], None]


def _nothing(_: int) -> None:
    return None


# --- finding tenants -------------------------------------------------------------------


def tenant_resolve(*, db: Any, ref: str) -> Tenant:
    """The tenant named by its id or its slug; MaintenanceError when there is none."""
    text = ref.strip()
    try:
        found = tenants().get(db, uuid.UUID(text))
    except ValueError:
        found = tenants().find_unique(db, "tenant_by_slug", (text,)) if text else None
    if found is None:
        raise MaintenanceError(f"unknown tenant: {ref!r}")
    return found


def tenant_list(*, db: Any, status: str | None = None) -> Iterator[Tenant]:
    """Every tenant in id order, read in batches (not one snapshot)."""
    for tenant in tenants().scan(db, batch_size=_BATCH):
        if status is None or tenant.status == status:
            yield tenant


@dataclass(frozen=True)
class TenantDetails:
    tenant: Tenant
    members: list[User]
    more_members: bool
    spaces: dict[str, storage.SpaceStats]  # keys, bytes and records per space of the tenant


def tenant_details(*, db: Any, tenant_id: uuid.UUID, members: int = 100) -> TenantDetails:
    """The tenant, its first ``members`` users and counts of everything it holds (a walk
    over the tenant's whole range)."""
    tenant = tenants().get(db, tenant_id)
    if tenant is None:
        raise MaintenanceError(f"unknown tenant: {tenant_id}")
    page = users(tenant_id).list_by_key(db, limit=members)
    spaces = storage.scope_stats(db, keyspace.tenant(tenant_id))
    return TenantDetails(tenant, page.records, page.continuation is not None, spaces)


# --- create and suspend ----------------------------------------------------------------


@dataclass(frozen=True)
class CreatedTenant:
    tenant: Tenant
    invitation: Invitation
    token: str  # the owner's invitation, shown once; only its hash is stored


def tenant_create(
    *, db: Any, name: str, owner_email: str, slug: str | None = None
) -> CreatedTenant:
    """A new active tenant and a single-use invitation for its owner.

    The owner registers with the invitation (``POST /api/v5/auth/register``), so no
    password passes through a command line. Raises MaintenanceError for a bad name, email
    or slug, a slug or email already taken.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise MaintenanceError("tenant name must be 1 to 200 characters")
    try:
        validate_email(owner_email)
    except ValidationError:
        raise MaintenanceError(f"not an email address: {owner_email!r}") from None
    if slug is not None and not SLUG_PATTERN.fullmatch(slug):
        raise MaintenanceError(
            "slug must be 1 to 63 lowercase letters, digits and inner hyphens: " + repr(slug)
        )
    now = datetime.now(UTC)
    tenant_id, secret, stamp = uuid.uuid4(), secrets.token_urlsafe(32), EventStamp.fresh(at=now)
    tenant = Tenant(id=tenant_id, name=name, slug=slug or slug_for(name), created_at=now)
    invitation = Invitation(
        token_hash=invitation_hash(secret),
        email=owner_email,
        role="owner",
        created_by=OPERATOR,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CODITECT_INVITATION_TTL_S),
    )
    key = email_key(owner_email)

    @fdb_backend.transactional
    def create(tr: Any) -> Tenant:
        existing = tenants().get(tr, tenant_id)
        if existing is not None:  # our own commit, applied before a 1021
            return existing
        pointer = resolve_unique(tr, email_index(), (key,))
        if pointer is not None and users(pointer[0]).get(tr, pointer[1]) is not None:
            raise MaintenanceError(f"email is taken: {owner_email}")
        saved = tenants().save(tr, tenant)
        invitations(tenant_id).save(tr, invitation)
        stamp.write(
            tr, tenant_id=tenant_id, type="tenant_created", user_id=None, owner_email=owner_email
        )
        return saved

    try:
        created = create(db)
    except UniqueViolation:
        raise MaintenanceError(f"slug is taken: {tenant.slug}") from None
    return CreatedTenant(created, invitation, f"{tenant_id.hex}.{secret}")


def tenant_status_set(*, db: Any, tenant_id: uuid.UUID, suspended: bool, reason: str) -> Tenant:
    """Suspend or resume a tenant. Suspended, its users cannot log in (403
    ``tenant_suspended``), their tokens are refused from the next request on, and open
    sockets close at their next auth check (``CODITECT_WS_AUTH_CHECK_S``, 1 s)."""
    return tenant_suspend(db=db, tenant_id=tenant_id, reason=reason, suspended=suspended)


def tenant_quota_set(
    *, db: Any, tenant_id: uuid.UUID, overrides: dict[str, int | None], reason: str = ""
) -> dict[str, Quota]:
    """Set or reset a tenant's own quotas (``accounts.services.quotas.quota_override_set``):
    the operators' and support staff's entry point."""
    return quota_override_set(db=db, tenant_id=tenant_id, overrides=overrides, reason=reason)


# --- delete ----------------------------------------------------------------------------


@dataclass
class DeleteReport:
    tenant_id: uuid.UUID
    keys: int = 0
    bytes: int = 0
    spaces: dict[str, int] = field(default_factory=dict)  # keys removed per space
    global_keys: int = 0  # tenant record, slug and email entries

    def count(self, scope: keyspace.Scope, kvs: Iterable[fdb_backend.KeyValue]) -> int:
        n = 0
        for kv in kvs:
            n += 1
            self.keys += 1
            self.bytes += len(kv.key) + len(kv.value)
            name = _space_of(scope, kv.key)
            self.spaces[name] = self.spaces.get(name, 0) + 1
        return n


def _space_of(scope: keyspace.Scope, key: bytes) -> str:
    try:
        return str(scope.subspace.unpack(key)[0])
    except (ValueError, IndexError):
        return "?"


@fdb_backend.transactional
def _clear_emails(tr: Any, tenant_id: uuid.UUID, continuation: str | None) -> tuple[int, Any]:
    people = users(tenant_id)
    page = people.list_by_key(tr, limit=_BATCH, continuation=continuation)
    cleared = 0
    for user in page.records:
        for kv in storage.outer_entries(tr, people, user):
            tr.clear(kv.key)
            cleared += 1
    return cleared, page.continuation


@fdb_backend.transactional
def _drop_tenant_record(tr: Any, tenant_id: uuid.UUID) -> int:
    removed = len(storage.record_items(tr, tenants(), tenant_id))
    tenants().delete(tr, tenant_id)
    return removed


def tenant_delete(*, db: Any, tenant_id: uuid.UUID, progress: Progress = _nothing) -> DeleteReport:
    """Remove everything of a tenant: its range and its global entries, in bounded
    transactions; returns what was removed.

    The tenant is suspended first (no request of its users passes from then on); its
    users' email entries go next (nobody can log in), then its range, and its record and
    slug last, so an interrupted delete is finished by running it again.
    """
    tenant = tenants().get(db, tenant_id)
    if tenant is None:
        raise MaintenanceError(f"unknown tenant: {tenant_id}")
    if tenant.status == "active":
        tenant_suspend(db=db, tenant_id=tenant_id, reason="deleting")
    report = DeleteReport(tenant_id)
    continuation = None
    while True:
        cleared, continuation = _clear_emails(db, tenant_id, continuation)
        report.global_keys += cleared
        if continuation is None:
            break
    scope = keyspace.tenant(tenant_id)
    for _ in range(3):  # a request admitted just before the suspension may write behind us
        for batch in storage.clear_walk(db, scope.range()):
            progress(report.count(scope, batch))
        if storage.range_is_empty(db, scope.range()):
            break
    report.global_keys += _drop_tenant_record(db, tenant_id)
    return report


# --- export ----------------------------------------------------------------------------


@dataclass
class ExportReport:
    tenant_id: uuid.UUID
    keys: int = 0
    bytes: int = 0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _line(scope: str, kv: fdb_backend.KeyValue) -> str:
    return json.dumps({"scope": scope, "key": _b64(kv.key), "value": _b64(kv.value)})


@fdb_backend.transactional
def _email_items(
    tr: Any, tenant_id: uuid.UUID, continuation: str | None
) -> tuple[list[fdb_backend.KeyValue], Any]:
    people = users(tenant_id)
    page = people.list_by_key(tr.snapshot, limit=_BATCH, continuation=continuation)
    found = [kv for user in page.records for kv in storage.outer_entries(tr.snapshot, people, user)]
    return found, page.continuation


@fdb_backend.transactional
def _tenant_items(tr: Any, tenant_id: uuid.UUID) -> list[fdb_backend.KeyValue]:
    return storage.record_items(tr.snapshot, tenants(), tenant_id)


def tenant_size(*, db: Any, tenant_id: uuid.UUID) -> int:
    """Keys in the tenant's range (a walk): the total of an export's progress bar."""
    return sum(stats.keys for stats in storage.scope_stats(db, keyspace.tenant(tenant_id)).values())


def tenant_export(
    *,
    db: Any,
    tenant_id: uuid.UUID,
    write: Callable[[str], None],
    progress: Progress = _nothing,
) -> ExportReport:
    """Write one tenant as JSON Lines (format ``coditect-tenant-export/1``, see
    docs/operations.md): a header, its global entries (its users' email entries, its slug
    entry and its record), every key of its range, and a trailer with the counts. Signing
    and verification keys are the platform's, not the tenant's: they are not exported.

    Keys and values are copied byte for byte, in batches of about 1 MB each read in its own
    short transaction: the export is consistent batch by batch, not as a whole, unless the
    tenant is quiet (suspended) while it runs.
    """
    items = _tenant_items(db, tenant_id)
    if not items:
        raise MaintenanceError(f"unknown tenant: {tenant_id}")
    report = ExportReport(tenant_id)
    header = {
        "format": EXPORT_FORMAT,
        "tenant_id": str(tenant_id),
        "exported_at": rfc3339(datetime.now(UTC)),
        "engine": storage.engine_name(db),
    }
    write(json.dumps(header))

    def emit(scope: str, kv: fdb_backend.KeyValue) -> None:
        report.keys += 1
        report.bytes += len(kv.key) + len(kv.value)
        write(_line(scope, kv))

    continuation = None
    while True:
        found, continuation = _email_items(db, tenant_id, continuation)
        for kv in found:
            emit("global", kv)
        if continuation is None:
            break
    record = keyspace.GLOBAL.collection("tenants").range()
    for kv in sorted(items, key=lambda kv: record.contains(kv.key)):  # the record last
        emit("global", kv)
    for batch in storage.walk(db, keyspace.tenant(tenant_id).range()):
        for kv in batch:
            emit("tenant", kv)
        progress(len(batch))
    write(json.dumps({"end": True, "keys": report.keys, "bytes": report.bytes}))
    return report


# --- import ----------------------------------------------------------------------------


@dataclass
class ImportReport:
    tenant_id: uuid.UUID
    keys: int = 0
    bytes: int = 0
    # Verification keys in the header of an older export: never added to this store's
    # keyring (which verifies every tenant's tokens), only counted.
    verification_keys_ignored: int = 0
    replaced: DeleteReport | None = None
    leftovers: int = 0  # keys of an interrupted import of this tenant, cleared first
    # Index entries of the tenant's range that the file's records make but the file lacks
    # (an export made before the index existed): written by the import.
    entries_rebuilt: int = 0


@dataclass(frozen=True)
class _Entry:
    kind: str  # "tenant", "tenant_by_slug", "user_by_email", "tenant_range"
    key: bytes
    value: bytes


def _malformed(number: int, reason: str) -> MaintenanceError:
    return MaintenanceError(f"malformed export, line {number}: {reason}")


def _decode_b64(number: int, obj: dict[str, Any], name: str) -> bytes:
    text = obj.get(name)
    if not isinstance(text, str):
        raise _malformed(number, f"{name} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(number, f"{name} is not base64") from None


class _Reader:
    """The lines of an export, parsed and checked one by one."""

    def __init__(self, lines: Iterable[str], progress: Progress) -> None:
        self._lines = iter(lines)
        self._progress = progress
        self.number = 0
        self._pending: dict[str, Any] | None = None

    def next(self) -> dict[str, Any] | None:
        if self._pending is not None:
            found, self._pending = self._pending, None
            return found
        for line in self._lines:
            self.number += 1
            self._progress(len(line.encode()) if isinstance(line, str) else len(line))
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise _malformed(self.number, "not JSON") from None
            if not isinstance(obj, dict):
                raise _malformed(self.number, "not a JSON object")
            return obj
        return None

    def push_back(self, obj: dict[str, Any]) -> None:
        self._pending = obj


def _header(reader: _Reader) -> tuple[uuid.UUID, list[Any]]:
    header = reader.next()
    if header is None:
        raise MaintenanceError("malformed export: the file is empty")
    if header.get("format") != EXPORT_FORMAT:
        raise _malformed(reader.number, f"format is not {EXPORT_FORMAT}")
    try:
        tenant_id = uuid.UUID(str(header.get("tenant_id")))
    except ValueError:
        raise _malformed(reader.number, "tenant_id is not a UUID") from None
    jwks = header.get("verification_keys", [])
    return tenant_id, jwks if isinstance(jwks, list) else [jwks]


def _entry(reader: _Reader, obj: dict[str, Any], tenant_id: uuid.UUID, check: Any) -> _Entry:
    """One line's key, checked for where it may go and (``check``, an ExportChecker) for
    what it holds."""
    number = reader.number
    key, value = _decode_b64(number, obj, "key"), _decode_b64(number, obj, "value")
    scope = obj.get("scope")
    if scope == "tenant":
        if not keyspace.tenant(tenant_id).contains(key):
            raise _malformed(number, "key outside the tenant's range")
        check.tenant_key(number, key, value)
        return _Entry("tenant_range", key, value)
    if scope == "global":
        owner = storage.global_key_owner(key, value)
        if owner is None or owner[1] != tenant_id:
            raise _malformed(number, "global key that does not belong to the tenant")
        if owner[0] == "tenant":
            check.global_record(number, key, value)
        else:
            check.global_entry(number, key, value)
        return _Entry(owner[0], key, value)
    raise _malformed(number, "scope is neither 'global' nor 'tenant'")


@fdb_backend.transactional
def _conflicts(tr: Any, entries: list[_Entry]) -> str | None:
    """Why writing these global entries would take something from another tenant."""
    for entry in entries:
        clash = storage.global_key_conflict(tr, entry.key, entry.value)
        if clash is not None:
            return clash
    return None


@fdb_backend.transactional
def _write_globals(tr: Any, entries: list[_Entry], new_tenant: uuid.UUID | None = None) -> None:
    clash = _conflicts(tr, entries)
    if clash is not None:
        raise MaintenanceError(f"cannot import: {clash}")
    if new_tenant is not None and tenants().get(tr, new_tenant) is not None:
        raise _exists(new_tenant)  # made by someone else while this import ran
    for entry in entries:
        tr[entry.key] = entry.value


def _write_all_globals(db: Any, tenant_id: uuid.UUID, entries: list[_Entry]) -> None:
    """Email entries in batches, then slug and tenant record together, last: until that
    final commit the tenant does not exist for logins or requests."""
    last = [entry for entry in entries if entry.kind in ("tenant", "tenant_by_slug")]
    emails = [entry for entry in entries if entry.kind == "user_by_email"]
    for start in range(0, len(emails), _GLOBALS_BATCH):
        _write_globals(db, emails[start : start + _GLOBALS_BATCH])
    _write_globals(db, last, tenant_id)


def _exists(tenant_id: uuid.UUID) -> MaintenanceError:
    return MaintenanceError(
        f"cannot import: tenant {tenant_id} exists here; import with --replace to delete it "
        "and put the file's copy in its place"
    )


def tenant_import(
    *,
    db: Any,
    lines: Callable[[], Iterable[str]],
    replace: bool = False,
    progress: Progress = _nothing,
    checking: Progress = _nothing,
) -> ImportReport:
    """Restore a tenant from an export, into an empty store or one that has other tenants.

    ``lines()`` is called twice: the whole file is read and checked first (``checking``
    counts that pass), and nothing is written unless every line is good: the format, each
    key where the tenant may write, each record by its record schema and each index entry
    against the records (``operations.export_check.ExportChecker``), the counts. Refused
    with MaintenanceError naming the first bad line; also when one of the file's global
    entries (email, slug) is held by another tenant here, and when the tenant exists here,
    unless ``replace=True``: that deletes it, then imports the file's copy in its place.

    The second pass checks again while it writes: the tenant's range first, in batches,
    its global entries (logins, slug, the tenant record) last, the record in the final
    transaction, so until then the tenant does not exist. An import that stops half-way
    (a crash, a file changed between the passes) leaves it invisible; running the import
    again clears what it left and completes it. Importing the same file again with
    ``replace=True`` ends with the same bytes. Verification keys in the header of an older
    export are ignored: the keyring is the platform's, not the tenant's.
    """
    _import_pass(db, lines(), replace=replace, write=False, progress=checking)
    return _import_pass(db, lines(), replace=replace, write=True, progress=progress)


def _import_pass(
    db: Any, lines: Iterable[str], *, replace: bool, write: bool, progress: Progress
) -> ImportReport:
    reader = _Reader(lines, progress)
    tenant_id, jwks = _header(reader)
    exists = tenants().get(db, tenant_id) is not None
    if exists and not replace:
        raise _exists(tenant_id)
    check = ExportChecker(tenant_id)
    globals_: list[_Entry] = []
    while (obj := reader.next()) is not None and obj.get("scope") == "global":
        globals_.append(_entry(reader, obj, tenant_id, check))
    if obj is not None:
        reader.push_back(obj)
    if not any(entry.kind == "tenant" for entry in globals_):
        raise MaintenanceError("malformed export: no tenant record before the tenant's keys")
    clash = _conflicts(db, globals_)
    if clash is not None:
        raise MaintenanceError(f"cannot import: {clash}")
    report = ImportReport(tenant_id, verification_keys_ignored=len(jwks))
    if write and exists:
        report.replaced = tenant_delete(db=db, tenant_id=tenant_id)
    elif write:
        # What an interrupted import of this tenant left (no tenant record: nobody uses it).
        scope = keyspace.tenant(tenant_id)
        report.leftovers = sum(len(batch) for batch in storage.clear_walk(db, scope.range()))
    trailer: dict[str, Any] = {}

    def range_items() -> Iterator[tuple[bytes, bytes]]:
        while (obj := reader.next()) is not None:
            if obj.get("end") is True:
                trailer.update(obj)
                if reader.next() is not None:
                    raise _malformed(reader.number, "content after the end line")
                return
            entry = _entry(reader, obj, tenant_id, check)
            if entry.kind != "tenant_range":
                raise _malformed(reader.number, "global key after the tenant's keys")
            report.keys += 1
            report.bytes += len(entry.key) + len(entry.value)
            yield entry.key, entry.value

    if write:
        collections.deque(storage.write_batches(db, range_items()), maxlen=0)
        # An export is consistent batch by batch only: the quota counters it carries may
        # not match its data. The tenant cannot be reached yet, so a recount is exact.
        usage_reset(db=db, tenant_id=tenant_id)
    else:
        collections.deque(range_items(), maxlen=0)
    if not trailer:
        raise MaintenanceError("malformed export: truncated (no end line); the tenant stays hidden")
    for entry in globals_:
        report.keys += 1
        report.bytes += len(entry.key) + len(entry.value)
    if trailer.get("keys") != report.keys or trailer.get("bytes") != report.bytes:
        raise MaintenanceError("malformed export: the end line's counts do not match the file")
    check.finish()
    missing = check.entries_missing()
    report.entries_rebuilt = len(missing)
    if write:
        # Before the tenant record (the last write), so the tenant appears with every entry.
        collections.deque(storage.write_batches(db, missing), maxlen=0)
        _write_all_globals(db, tenant_id, globals_)
    return report

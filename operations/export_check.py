"""What a tenant's data is made of, and the check of an export against it (``tenants
import`` checks every line before it writes any)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from accounts import audit_keys
from accounts.records import Tenant, api_tokens, auth_sessions, invitations, tenants, users
from fdb_backend import keyspace
from fdb_backend.records import Collection
from fdb_backend.records.reader import Chunks, assemble
from operations.errors import MaintenanceError
from realtime.records import connections, locks
from workspaces.records import events, heads, states


def tenant_collections(tenant_id: uuid.UUID) -> list[Collection[Any]]:
    return [
        users(tenant_id),
        invitations(tenant_id),
        auth_sessions(tenant_id),
        api_tokens(tenant_id),
        heads(tenant_id),
        states(tenant_id),
        events(tenant_id),
        locks(tenant_id),
        connections(tenant_id),
    ]


# --- what a tenant export may hold (tenants import) --------------------------------------


class ExportChecker:
    """Checks the keys of one tenant's export against what the platform stores, line by
    line, before ``tenants import`` writes any of them (operations.tenants).

    Every record (the tenant's record and each record of its range, chunks reassembled) is
    decoded by its record type's schema and must sit under its own primary key and name no
    other tenant; the raw spaces must hold what their writers write (8-byte counters, auth
    events as JSON); any other key is refused. Index entries, inside the range and outside
    it (the tenant's slug, its users' emails), must be exactly those that the file's records
    make: an entry that points anywhere else is refused at ``finish``. Entries of the range
    that are missing are not refused: ``entries_missing`` lists them for the import to write
    (an export older than an index). Refusals raise
    MaintenanceError naming the line.
    """

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self._scope = keyspace.tenant(tenant_id)
        self._collections = {c.schema.collection: c for c in tenant_collections(tenant_id)}
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
        if name in self._indexes or name in audit_keys.INDEXES:
            self._entries.append((number, key, value))
        elif name in ("counters", "quotas"):
            if len(value) != 8:
                raise self._refuse(number, "a counter that is not 8 bytes")
        elif name == "auth_events":
            self._auth_event(number, rest, value)
            for entry in audit_keys.expected_entries(self.tenant_id, key, value):
                self._expected[entry] = b""
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
        for key, (_, _, value) in collection.entries_of(record).items():
            self._expected[key] = value

    def finish(self) -> None:
        """After the last key: every index entry of the file must be one its records make."""
        self._flush()
        for number, key, value in self._entries:
            if self._expected.get(key) != value:
                raise self._refuse(number, "an index entry that no record of the file makes")

    def entries_missing(self) -> list[tuple[bytes, bytes]]:
        """After ``finish``: the entries of the tenant's range that its records make and the
        file lacks, in key order; an export made before an index existed has none of that
        index's, and the import writes them with the records (a missing unique entry outside
        the range, a login, is left to ``storage check``)."""
        in_file = {key for _, key, _ in self._entries}
        scope = self._scope.range()
        return sorted(
            (key, value)
            for key, value in self._expected.items()
            if key not in in_file and scope.contains(key)
        )


# --- check and repair ------------------------------------------------------------------

"""Every key shape the platform stores, in one place (mirrored by docs/keyspace.md).

Keys are tuples packed with FoundationDB's tuple layer under one root prefix, ``("cdt",)``.
The prefix is short because it is repeated in every key and index entry, and every byte
counts against the 10,000-byte key limit, the 10 MB transaction limit and storage. It
exists at all so that the platform's data is one contiguous range: a shared cluster (or a
test keyspace such as ``("conformance", ...)``) can hold other data beside it, and an
export or a wipe of the platform is one range.

Two kinds of scope hold the names:

* ``GLOBAL``: tenants, the slug index and the login index (``user_by_email``).
* ``tenant(tenant_id)``: everything a tenant owns, under ``("t", tenant_id)``. There is no
  other way to build a tenant key, so code that holds a ``TenantKeys`` can only ever reach
  that tenant's data (the isolation rule of DESIGN §3.3).

A scope hands out *collections* (record subspaces plus the subspaces of their declared
indexes, laid out by ``fdb_backend.records``) and raw *spaces* (counters, logs). Names are
registered below; asking for an unregistered one raises ``KeyError``, so a typo cannot
silently create a new key shape and this file stays the complete list.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from fdb_backend.tuples import Space

ROOT: Final = Space(("cdt",))

_TENANTS_PREFIX: Final = ROOT["t"]

# Tenant collections and the indexes of their records. Index entries sit beside the
# collection, under the tenant (``("t", tenant_id, index_name, ...)``), except those named
# in _TENANT_INDEXES_AT_ROOT, which must be unique across tenants and so live at the root.
_TENANT_COLLECTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "users": ("user_by_email",),
        "invitations": ("invitations_by_id",),
        "auth_sessions": ("auth_sessions_by_user", "auth_sessions_by_family"),
        "api_tokens": ("api_tokens_by_user",),
        "workspace_sessions": (
            "workspace_sessions_by_user",
            "sessions_by_workspace",
            "recent_sessions",
            "recent_sessions_tenant",
            "sessions_by_owner_workspace",
            "sessions_by_parent",
        ),
        # The heavy part of a workspace session (files, editor and terminal state), apart
        # from its small head so that activity does not rewrite megabytes.
        "workspace_states": (),
        "events": (),
        "locks": (),
        "connections": (),
    }
)
_TENANT_INDEXES_AT_ROOT: Final = frozenset({"user_by_email"})
# Raw tenant spaces that hold no records: atomic counters, the auth event log and the log's
# indexes (by user, by type, by both: accounts/audit_keys.py lays them out), and the
# tenant's quotas (usage counters and overrides, accounts/records.py).
_TENANT_SPACES: Final = (
    "counters",
    "auth_events",
    "auth_events_by_user",
    "auth_events_by_type",
    "auth_events_by_user_type",
    "quotas",
)

_GLOBAL_COLLECTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"tenants": ("tenant_by_slug",), "signing_keys": ()}
)
# Raw global spaces: throttling counts for subjects that have no tenant (an unknown email,
# a client address).
_GLOBAL_SPACES: Final = ("throttle",)


class KeyRange(NamedTuple):
    """A half-open key range ``[begin, end)``: ``tr.clear_range(*r)``, ``tr.get_range(*r)``."""

    begin: bytes
    end: bytes

    def contains(self, key: bytes) -> bool:
        return self.begin <= key < self.end


def _range_of(space: Space) -> KeyRange:
    r = space.range()
    return KeyRange(r.start, r.stop)


@dataclass(frozen=True)
class IndexKeys:
    """Where one index's entries live, and how an entry names its record.

    ``pointer_prefix`` is what an entry puts before the record's primary key: empty when
    the index lives in the record's own scope, ``(tenant_id,)`` when a tenant's record is
    indexed at the root (``user_by_email``), so that the entry says which tenant it is in.
    """

    name: str
    subspace: Space
    pointer_prefix: tuple[Any, ...] = ()

    @property
    def cross_scope(self) -> bool:
        return bool(self.pointer_prefix)

    def range(self) -> KeyRange:
        return _range_of(self.subspace)


@dataclass(frozen=True)
class CollectionKeys:
    """The subspaces of one collection: its records and each of its indexes."""

    name: str
    records: Space
    indexes: Mapping[str, IndexKeys]

    def index(self, name: str) -> IndexKeys:
        try:
            return self.indexes[name]
        except KeyError:
            raise KeyError("index is not registered for this collection", self.name, name) from None

    def range(self) -> KeyRange:
        return _range_of(self.records)


@dataclass(frozen=True)
class Layout:
    """The names a scope knows: collections with their index names, and raw spaces.

    ``outer_indexes`` maps an index name to a subspace outside the scope (see
    ``IndexKeys.pointer_prefix``).
    """

    collections: Mapping[str, tuple[str, ...]]
    spaces: tuple[str, ...] = ()
    outer_indexes: Mapping[str, Space] = field(default_factory=dict)


class Scope:
    """A subspace with registered names: the global scope, a tenant, or a test's own.

    Production code gets its scopes from ``GLOBAL`` and ``tenant()``; tests may build one
    over a private subspace with their own ``Layout``.
    """

    def __init__(
        self, subspace: Space, layout: Layout, *, pointer_prefix: tuple[Any, ...] = ()
    ) -> None:
        self.subspace = subspace
        self.layout = layout
        self._pointer_prefix = pointer_prefix
        self._collections: dict[str, CollectionKeys] = {}

    def collection(self, name: str) -> CollectionKeys:
        """The keys of collection ``name``; raises KeyError for an unregistered name."""
        found = self._collections.get(name)
        if found is not None:
            return found
        try:
            index_names = self.layout.collections[name]
        except KeyError:
            raise KeyError("collection is not registered in this scope", name) from None
        indexes = {}
        for index_name in index_names:
            outer = self.layout.outer_indexes.get(index_name)
            if outer is None:
                indexes[index_name] = IndexKeys(index_name, self.subspace[index_name])
            else:
                indexes[index_name] = IndexKeys(index_name, outer, self._pointer_prefix)
        found = CollectionKeys(name, self.subspace[name], MappingProxyType(indexes))
        self._collections[name] = found
        return found

    def space(self, name: str) -> Space:
        """A raw subspace registered in this scope (``counters``, ``throttle``, ...)."""
        if name not in self.layout.spaces:
            raise KeyError("space is not registered in this scope", name)
        return self.subspace[name]

    def range(self) -> KeyRange:
        """Every key under this scope's subspace."""
        return _range_of(self.subspace)

    def contains(self, key: bytes) -> bool:
        return self.range().contains(key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.subspace.key()!r}>"


class TenantKeys(Scope):
    """Everything one tenant owns: ``("t", tenant_id, ...)``. Get one from ``tenant()``."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("tenant id must be a uuid.UUID", type(tenant_id).__name__)
        super().__init__(_TENANTS_PREFIX[tenant_id], _TENANT_LAYOUT, pointer_prefix=(tenant_id,))
        self.tenant_id = tenant_id

    @property
    def counters(self) -> Space:
        return self.space("counters")


_GLOBAL_INDEXES_OF_TENANT_RECORDS: Final = MappingProxyType(
    {name: ROOT[name] for name in _TENANT_INDEXES_AT_ROOT}
)
_TENANT_LAYOUT: Final = Layout(
    _TENANT_COLLECTIONS, _TENANT_SPACES, _GLOBAL_INDEXES_OF_TENANT_RECORDS
)


class GlobalKeys(Scope):
    """The root scope: tenants, their slugs, and the login index."""

    def __init__(self) -> None:
        super().__init__(ROOT, Layout(_GLOBAL_COLLECTIONS, _GLOBAL_SPACES))

    def index(self, name: str) -> Space:
        """A root index of tenant records (``user_by_email``), for lookups with no tenant yet.

        Its entries point at ``(tenant_id, primary key...)``; read them with
        ``fdb_backend.records.resolve_unique``.
        """
        try:
            return _GLOBAL_INDEXES_OF_TENANT_RECORDS[name]
        except KeyError:
            raise KeyError("index is not registered at the root", name) from None

    def range(self) -> KeyRange:
        """All of the platform's keys, every tenant included (exports, wipes)."""
        return _range_of(ROOT)


GLOBAL: Final = GlobalKeys()


def tenant(tenant_id: uuid.UUID) -> TenantKeys:
    """The only way to build a tenant's keys: take ``tenant_id`` from the principal."""
    return _tenant_keys(tenant_id)


@functools.lru_cache(maxsize=4096)
def _tenant_keys(tenant_id: uuid.UUID) -> TenantKeys:
    # Cached: the keys pack every prefix once (and cache their collections), and a request
    # asks for a tenant's keys dozens of times.
    return TenantKeys(tenant_id)


# --- maintenance: walking every tenant (operators' commands, `storage check`) ----------------


def tenants_range() -> KeyRange:
    """The range that holds every tenant's keys, ``("t", ...)``.

    For storage-wide maintenance only (stats, orphan checks): application code reaches a
    tenant through ``tenant()``, never through this range.
    """
    return _range_of(_TENANTS_PREFIX)


def tenant_of_key(key: bytes) -> uuid.UUID | None:
    """The tenant whose range holds ``key``, or None for a key outside every tenant."""
    if not tenants_range().contains(key):
        return None
    try:
        first = _TENANTS_PREFIX.unpack(key)[0]
    except (ValueError, IndexError, TypeError):
        return None
    return first if isinstance(first, uuid.UUID) else None

"""Per-tenant quotas (CONTRACT §1, docs/accounts.md "Quotas"): workspace sessions, stored
bytes of session state and events, API tokens.

Each quota is two keys (accounts/records.py): a usage counter that every write changes by
an atomic add *in its own transaction*, and an optional per-tenant override of the
setting's default. A write that grows a usage reads the counter (and the override) first,
a read that conflicts with every other grower's add, so racing writers are serialised at
commit and never take the tenant past its quota: the one that would gets 403
``quota_exceeded`` and writes nothing. Writes that shrink a usage only add, without a read,
so they never conflict on the counter. Deltas are computed inside the transaction from what
it read, so a retried transaction adds exactly once.
"""

from __future__ import annotations

import functools
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.records import (
    QUOTA_KINDS,
    quota_key_parts,
    quota_limit_key,
    quota_range,
    quota_used_key,
    quotas_range,
    tenants,
)
from accounts.services.common import EventStamp, existing
from core.errors import ServiceError

_COUNTER = struct.Struct("<q")
# The largest quota an override may set (a signed 64-bit counter holds it).
QUOTA_MAX = 2**62

_EXCEEDED = {
    "sessions": "The organisation's quota of workspace sessions is used up.",
    "bytes": "The organisation's quota of stored bytes is used up.",
    "api_tokens": "The organisation's quota of API tokens is used up.",
}


class QuotaExceeded(ServiceError):
    """403 ``quota_exceeded``: the write would take the tenant past one of its quotas.
    ``quota`` (the kind) rides beside the socket's error. Not an AccountError: the socket
    answers it with an error and stays open."""

    def __init__(self, kind: str) -> None:
        super().__init__(403, "quota_exceeded", _EXCEEDED[kind], quota=kind)


@dataclass(frozen=True)
class Quota:
    """One quota of a tenant: what is used, the limit in force (None: unlimited) and the
    tenant's own override of the default (None: the default applies)."""

    kind: str
    used: int
    limit: int | None
    override: int | None


def quota_default(kind: str) -> int:
    """The setting's quota of ``kind`` (0: unlimited)."""
    value: int = {
        "sessions": settings.CODITECT_QUOTA_SESSIONS,
        "bytes": settings.CODITECT_QUOTA_BYTES,
        "api_tokens": settings.CODITECT_QUOTA_API_TOKENS,
    }[kind]
    return value


def _decode(value: bytes | None) -> int:
    return _COUNTER.unpack(value)[0] if value else 0


def _in_force(kind: str, override: int | None) -> int | None:
    """The quota in force (None: unlimited): the override, else the default; 0 is none."""
    limit = quota_default(kind) if override is None else override
    return limit or None


def quota_charge(
    tr: Any, *, tenant_id: uuid.UUID, kind: str, delta: int, enforce: bool = True
) -> None:
    """Change the tenant's usage of ``kind`` by ``delta`` inside ``tr`` (the write's own
    transaction). Growth reads the counter and the override (conflicting reads) and raises
    QuotaExceeded, before anything is added, when the usage would pass the quota.
    ``enforce=False`` only counts: for what the platform records of something that already
    happened (presence and lock events), which a quota must not refuse."""
    if delta == 0:
        return
    begin, end, used_key, limit_key = _keys(tenant_id, kind)
    if delta > 0 and enforce:
        used, override = 0, None
        for kv in tr.get_range(begin, end):
            if kv.key == used_key:
                used = _decode(kv.value)
            elif kv.key == limit_key:
                override = _decode(kv.value)
        limit = _in_force(kind, override)
        if limit is not None and used + delta > limit:
            raise QuotaExceeded(kind)
    tr.add(used_key, _COUNTER.pack(delta))


@functools.lru_cache(maxsize=4096)
def _keys(tenant_id: uuid.UUID, kind: str) -> tuple[bytes, bytes, bytes, bytes]:
    """One quota's range and its two keys, packed once per tenant and kind (hot path)."""
    r = quota_range(tenant_id, kind)
    return r.begin, r.end, quota_used_key(tenant_id, kind), quota_limit_key(tenant_id, kind)


def quotas_read(tr: Any, *, tenant_id: uuid.UUID) -> dict[str, Quota]:
    """Every quota of the tenant, read without conflicts (one range)."""
    used: dict[str, int] = {}
    overrides: dict[str, int] = {}
    begin, end = quotas_range(tenant_id)
    for kv in tr.snapshot.get_range(begin, end):
        kind, part = quota_key_parts(tenant_id, kv.key)
        (used if part == "used" else overrides)[kind] = _decode(kv.value)
    return {
        kind: Quota(
            kind=kind,
            used=used.get(kind, 0),
            limit=_in_force(kind, overrides.get(kind)),
            override=overrides.get(kind),
        )
        for kind in QUOTA_KINDS
    }


@fdb_backend.transactional
def quota_usage(tr: Any, *, tenant_id: uuid.UUID) -> dict[str, Quota]:
    """``quotas_read`` in a transaction of its own (``db``) or the caller's."""
    return quotas_read(tr, tenant_id=tenant_id)


def quota_override_set(
    *, db: Any, tenant_id: uuid.UUID, overrides: dict[str, int | None], reason: str = ""
) -> dict[str, Quota]:
    """Set (a whole number; 0: unlimited) or reset (None: back to the default) the tenant's own
    quotas; returns them all. A quota set below the current usage refuses further growth
    and removes nothing. The change is an auth event of the tenant (``quota_changed``).
    For operators and support staff (who audit who called it). AccountError 404 for an
    unknown tenant, 400 for a bad value."""
    for kind, value in overrides.items():
        if kind not in QUOTA_KINDS:
            raise AccountError(400, "invalid", "Unknown quota.", attr=kind)
        if value is not None and not 0 <= value <= QUOTA_MAX:
            raise AccountError(400, "invalid", "A quota is a whole number from 0.", attr=kind)

    stamp = EventStamp.fresh()

    @fdb_backend.transactional
    def write(tr: Any) -> dict[str, Quota]:
        existing(tenants().get(tr, tenant_id))
        for kind, value in overrides.items():
            key = quota_limit_key(tenant_id, kind)
            if value is None:
                tr.clear(key)
            else:
                tr[key] = _COUNTER.pack(value)
        stamp.write(
            tr,
            tenant_id=tenant_id,
            type="quota_changed",
            user_id=None,
            overrides=overrides,
            reason=reason,
        )
        return quotas_read(tr, tenant_id=tenant_id)

    found: dict[str, Quota] = write(db)
    return found


def quota_used_set(tr: Any, *, tenant_id: uuid.UUID, kind: str, value: int) -> None:
    """Set a usage counter outright (``storage check --repair``, ``tenants import``)."""
    tr[quota_used_key(tenant_id, kind)] = _COUNTER.pack(value)


def quota_used_get(tr: Any, *, tenant_id: uuid.UUID, kind: str) -> int:
    """A usage counter, read with a conflict (repairs compare and set it)."""
    return _decode(tr.get(quota_used_key(tenant_id, kind)))

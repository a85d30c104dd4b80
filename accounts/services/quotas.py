"""Per-tenant quotas (CONTRACT §1, docs/accounts.md "Quotas"): workspace sessions, stored
bytes of session state and events, API tokens.

Each quota is a usage counter that every write changes by an atomic add *in its own
transaction*, and an optional per-tenant override of the setting's default
(accounts/records.py). Usage never passes the quota: a write that would gets 403
``quota_exceeded`` and writes nothing.

Growing writes do not read the counter. Each holder (a thread of a process) *leases* room
under the quota and spends it in its writes: a write that grows a usage reads its own lease
(a read only a take-back of that lease conflicts with) and moves what it uses from the lease
to the counter. The leases and the counter together never pass the quota, and spending keeps
their sum, so growers of one tenant no longer conflict with each other (they did on the
counter's read, and retried with growing back-off: one tenant's creates were serialised). A
write whose lease is short takes a new one in its own transaction, reading the quota's keys
as they were (a snapshot: spends since do not change the sum) and conflicting only with other
grants, take-backs and quota changes (the ``gate`` and the override). When the room left
cannot cover it, it takes every other lease back and decides on the counter alone, with
conflicting reads, exactly as without leases. Changing the quota or setting the counter
takes every lease back.

Writes that shrink a usage only add, without a read, so they never conflict. Deltas are
computed inside the transaction from what it read, so a retried transaction adds exactly
once.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import AccountError
from accounts.records import (
    QUOTA_KINDS,
    quota_gate_key,
    quota_key_parts,
    quota_lease_key,
    quota_leases_range,
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
    transaction). Growth is spent from this thread's lease, which is topped up (in ``tr``)
    when short; QuotaExceeded, before anything is added, when the usage would pass the
    quota. ``enforce=False`` only counts: for what the platform records of something that
    already happened (presence and lock events), which a quota must not refuse."""
    if delta == 0:
        return
    if delta > 0 and enforce:
        _spend(tr, tenant_id, kind, delta)
    tr.add(_keys(tenant_id, kind)[2], _COUNTER.pack(delta))


# Room a lease takes beyond the write that asks for it (at most a quarter of what is free).
LEASE_UNITS = {"sessions": 16, "bytes": 1 << 20, "api_tokens": 4}
# Past this many leases of one quota (holders that ended leave theirs), a grant takes the
# others back.
MAX_LEASES = 32

_holder = threading.local()


def _holder_id() -> uuid.UUID:
    """This thread's lease holder: one per thread and process (a forked child, which has the
    parent's thread-local, gets its own). Made once and kept, so a retried transaction uses
    the same one."""
    pid = os.getpid()
    found: tuple[int, uuid.UUID] | None = getattr(_holder, "id", None)
    if found is None or found[0] != pid:
        found = _holder.id = (pid, uuid.uuid4())
    return found[1]


def _spend(tr: Any, tenant_id: uuid.UUID, kind: str, delta: int) -> None:
    limit_key = _keys(tenant_id, kind)[3]
    # Conflicting reads, of keys no other grower writes: the override (a quota change
    # committed meanwhile makes this retry) and this holder's lease under the quota in force
    # (its take-back does). A lease is spendable only under the quota it was granted under:
    # one granted before the quota was lowered (the override, or the default, which changes
    # with the settings and no transaction) lies under another key.
    override = tr.get(limit_key)
    limit = _in_force(kind, None if override is None else _decode(override))
    if limit is None:
        return  # unlimited: nothing to lease
    mine = quota_lease_key(tenant_id, kind, limit, _holder_id())
    have = _decode(tr.get(mine))
    if have >= delta:
        tr[mine] = _COUNTER.pack(have - delta)
    else:
        _grant(tr, tenant_id, kind, limit, mine, have, delta)


def _grant(
    tr: Any, tenant_id: uuid.UUID, kind: str, limit: int, mine: bytes, have: int, delta: int
) -> None:
    """Top this holder's lease up by at least ``delta - have`` and spend ``delta`` of it, or
    take every other lease back and decide on the usage alone; QuotaExceeded when even
    that leaves no room."""
    begin, end, used_key, limit_key = _keys(tenant_id, kind)
    gate = quota_gate_key(tenant_id, kind)
    used, leases = 0, {}
    for kv in tr.snapshot.get_range(begin, end):
        if kv.key == used_key:
            used = _decode(kv.value)
        elif kv.key not in (limit_key, gate, mine):
            leases[kv.key] = _decode(kv.value)  # under any quota: each holds room
    # Another grant or take-back since this snapshot: retry.
    tr.add_read_conflict_key(gate)
    need = delta - have
    free = limit - used - have - sum(leases.values())
    tr.add(gate, _COUNTER.pack(1))
    if need <= free and len(leases) < MAX_LEASES:
        grant = max(need, min(need + LEASE_UNITS[kind], free // 4))
        tr[mine] = _COUNTER.pack(have + grant - delta)
        return
    # Near the quota: every lease comes back and the counter decides, read with a conflict.
    used = _decode(tr.get(used_key))
    for key in leases:
        tr.add_read_conflict_key(key)  # a spend of that lease meanwhile: retry
        tr.clear(key)
    if used + delta > limit:
        raise QuotaExceeded(kind)
    tr.clear(mine)


def _leases_take_back(tr: Any, tenant_id: uuid.UUID, kind: str) -> None:
    """Every lease of ``kind`` cleared (their holders' next spends conflict and lease anew)."""
    leases = quota_leases_range(tenant_id, kind)
    tr.clear_range(leases.begin, leases.end)
    tr.add(quota_gate_key(tenant_id, kind), _COUNTER.pack(1))


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
        if part in ("used", "limit"):
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
            # Leases granted under the old quota would let growth pass a lowered one.
            _leases_take_back(tr, tenant_id, kind)
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
    """Set a usage counter outright (``storage check --repair``, ``tenants import``); every
    lease is taken back (they were granted against the old count)."""
    tr[quota_used_key(tenant_id, kind)] = _COUNTER.pack(value)
    _leases_take_back(tr, tenant_id, kind)


def quota_used_get(tr: Any, *, tenant_id: uuid.UUID, kind: str) -> int:
    """A usage counter, read with a conflict (repairs compare and set it)."""
    return _decode(tr.get(quota_used_key(tenant_id, kind)))

"""Rate limits of the authenticated API (CONTRACT §1): per principal and per tenant, reads and
writes apart, counted in storage so that they hold across processes.

Each request spends one unit of two fixed one-minute windows: its principal's (the user's
access tokens share one; each API token has its own) and its tenant's, of its kind (reads are
GET, HEAD and OPTIONS; everything else is a write). The windows are the login throttle's
counters (``("throttle", scope, digest(subject), 60, window)``, accounts/throttle.py), swept
by the same purge.

A commit per request would halve the throughput of a cheap read, so a process *leases*
units: one transaction reads a counter (a conflicting read: two processes leasing at once
serialise) and adds the lease to it, never past the limit; the process then spends the lease
in memory. The sum of every process's leases never exceeds the limit, so no more requests
than the limit pass in a window, across any number of processes. Leases start at one unit in
each window and double while they are spent, up to ``CODITECT_RATE_LEASE_MAX`` and to a
quarter of what the window has left, so a process holds little of a window that is nearly
used up. A unit leased and not spent (the window ends, the process stops, or its other window
refused the request) is lost: the error is towards refusing, never towards allowing.

The per-request work is in memory (a dictionary look-up and two locks); the limits are read
from settings once per window (and again when a test changes them).

``RateLimit-Remaining`` is this process's view: the window's units not yet leased by anyone
when it last leased, plus its own unspent lease. Across processes it is approximate (others
may have leased since; their unspent leases count as used). ``RateLimit-Limit`` and
``RateLimit-Reset`` are exact.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
import time
import uuid
from typing import Any, NamedTuple

from django.conf import settings
from django.test.signals import setting_changed

import fdb_backend
from accounts.records import throttle_key
from accounts.services import Principal
from core.metrics import throttle_hits

WINDOW_S = 60
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimit(NamedTuple):
    """What a request's answer says about its limits (the closest to exhaustion of the two)."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window ends (Retry-After when refused)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class _Bucket:
    """This process's share of one window's counter."""

    __slots__ = ("count", "exhausted", "left", "lock", "size", "subject")

    def __init__(self, subject: str) -> None:
        self.lock = threading.Lock()
        # "user:<id>", "token:<id>" or "tenant:<id>", digested as the throttles' subjects are.
        self.subject = hashlib.sha256(subject.encode()).hexdigest()[:32]
        self.left = 0  # leased, not yet spent
        self.count = 0  # the counter after this process's last lease (every process's leases)
        self.size = 1  # the next lease asks for this many
        self.exhausted = False  # the counter reached the limit: refuse until the window ends


class _Table:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.db: Any = None
        self.window = -1
        self.buckets: dict[tuple[bool, str, uuid.UUID], _Bucket] = {}
        # (principal, tenant) limits of writes (True) and reads (False), scaled.
        self.limits: dict[bool, tuple[int, int]] = {}

    def get(
        self, db: Any, now: float, write: bool, who: tuple[str, uuid.UUID], tenant: uuid.UUID
    ) -> tuple[int, tuple[int, int], _Bucket, _Bucket]:
        """The current window, the limits and the principal's and the tenant's bucket of the
        kind; a new window (or another store, or changed settings) starts afresh."""
        window = int(now // WINDOW_S)
        with self.lock:
            if db is not self.db or window > self.window:
                self.db, self.window, self.buckets = db, window, {}
                self.limits = {
                    True: (
                        _scaled(settings.CODITECT_RATE_WRITE_PER_MIN),
                        _scaled(settings.CODITECT_RATE_TENANT_WRITE_PER_MIN),
                    ),
                    False: (
                        _scaled(settings.CODITECT_RATE_READ_PER_MIN),
                        _scaled(settings.CODITECT_RATE_TENANT_READ_PER_MIN),
                    ),
                }
            buckets = self.buckets
            mine = buckets.get((write, *who))
            if mine is None:
                mine = buckets[(write, *who)] = _Bucket(f"{who[0]}:{who[1]}")
            theirs = buckets.get((write, "tenant", tenant))
            if theirs is None:
                theirs = buckets[(write, "tenant", tenant)] = _Bucket(f"tenant:{tenant}")
            return self.window, self.limits[write], mine, theirs

    def forget(self, **kwargs: Any) -> None:
        """Start afresh at the next request (the settings changed: tests)."""
        if str(kwargs.get("setting", "")).startswith(_SETTINGS):
            with self.lock:
                self.db = None


_SETTINGS = ("CODITECT_RATE_", "CODITECT_THROTTLE_SCALE")
_table = _Table()
setting_changed.connect(_table.forget)


def _scaled(limit: int) -> int:
    return max(1, math.floor(limit * settings.CODITECT_THROTTLE_SCALE))


def _count(value: bytes | None) -> int:
    return struct.unpack("<q", value)[0] if value else 0


def rate_limit_spend(
    *, db: Any, principal: Principal, write: bool, now: float | None = None
) -> RateLimit:
    """Spend one unit of the principal's and the tenant's window of the request's kind;
    ``allowed`` is False (and nothing is spent) when either is used up.

    Takes a lease from storage only when this process's lease of a window is spent (one
    transaction for both windows, retried on conflict, never past either limit).
    """
    moment = time.time() if now is None else now
    token = principal.api_token
    who = ("user", principal.user_id) if token is None else ("token", token.id)
    window, limits, mine, theirs = _table.get(db, moment, write, who, principal.tenant_id)
    reset = max(1, math.ceil((window + 1) * WINDOW_S - moment))
    pairs = ((mine, limits[0]), (theirs, limits[1]))
    wanted: list[tuple[_Bucket, int]] = []
    granted: list[tuple[int, int]] = []
    while True:
        # Always principal, then tenant: every request takes the locks in one order.
        with mine.lock, theirs.lock:
            _credit(wanted, granted)
            # The usual case, both buckets holding units, asks nothing more of _wanted.
            wanted = [] if mine.left and theirs.left else _wanted(pairs)
            if not wanted:
                spent = _spend(pairs)
                break
        # The lease's transaction runs outside the locks: it may wait for storage (a commit,
        # a storage turn) while the thread it waits for wants these locks, and the tenant's
        # lock is every member's. Threads may lease at once (every lease counts in storage);
        # when others spent this one's units first, it leases again until a window is used up.
        granted = _lease(db, write, window, wanted)
    allowed, refused_by, remaining, limit = spent
    if not allowed:
        throttle_hits.labels("rate_limit", f"{refused_by}_{'write' if write else 'read'}").inc()
    return RateLimit(allowed=allowed, limit=limit, remaining=remaining, reset=reset)


_Pairs = tuple[tuple[_Bucket, int], tuple[_Bucket, int]]


def _wanted(pairs: _Pairs) -> list[tuple[_Bucket, int]]:
    """The buckets to lease for before spending: none when both hold units, or when a window
    with nothing left is used up (the request is refused without asking storage)."""
    if any(bucket.exhausted and not bucket.left for bucket, _ in pairs):
        return []
    return [(bucket, limit) for bucket, limit in pairs if not bucket.left]


def _spend(pairs: _Pairs) -> tuple[bool, str, int, int]:
    """Spend a unit of both buckets if both hold one (the caller holds both locks): whether it
    was allowed, the limit that refused (for the metric), and the remaining units and limit of
    the bucket closest to exhaustion (0 remaining when refused)."""
    (mine, mine_limit), (theirs, their_limit) = pairs
    allowed = bool(mine.left and theirs.left)
    remaining, limit = min(_remaining(mine, mine_limit), _remaining(theirs, their_limit))
    if allowed:
        mine.left -= 1
        theirs.left -= 1
        return True, "", remaining - 1, limit
    # The principal's limit refused when its window is used up (whatever the tenant's).
    return False, "tenant" if mine.left else "principal", 0, limit


def _remaining(bucket: _Bucket, limit: int) -> tuple[int, int]:
    if bucket.exhausted:
        return bucket.left, limit
    return max(0, limit - bucket.count + bucket.left), limit


def _credit(wanted: list[tuple[_Bucket, int]], granted: list[tuple[int, int]]) -> None:
    """Add a lease's grants to their buckets (the caller holds their locks)."""
    for (bucket, _), (grant, count) in zip(wanted, granted, strict=True):
        bucket.left += grant
        # Another thread's lease may have committed after this one and seen a higher count.
        bucket.count = max(bucket.count, count)
        if grant:
            bucket.size = min(bucket.size * 2, max(1, int(settings.CODITECT_RATE_LEASE_MAX)))
        else:
            bucket.exhausted = True


def _lease(
    db: Any, write: bool, window: int, wanted: list[tuple[_Bucket, int]]
) -> list[tuple[int, int]]:
    """Lease units of each bucket's window in one transaction: per bucket, the units granted
    and the counter after the grant (retried on conflict, never past the limit)."""
    lease_max = max(1, int(settings.CODITECT_RATE_LEASE_MAX))
    scope = "rate_write" if write else "rate_read"
    keys = [
        throttle_key(scope=scope, subject_digest=b.subject, window_s=WINDOW_S, window=window)
        for b, _ in wanted
    ]

    @fdb_backend.transactional
    def lease(tr: Any) -> list[tuple[int, int]]:
        granted = []
        for key, (bucket, limit) in zip(keys, wanted, strict=True):
            # A conflicting read: leases racing on one counter serialise, so together they
            # never pass the limit.
            count = _count(tr.get(key))
            free = limit - count
            grant = max(0, min(bucket.size, lease_max, max(1, free // 4), free))
            if grant:
                tr.add(key, struct.pack("<q", grant))
            granted.append((grant, count + grant))
        return granted

    return lease(db)

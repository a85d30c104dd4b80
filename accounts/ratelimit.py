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
from dataclasses import dataclass
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.records import throttle_key
from accounts.services import Principal
from core.metrics import throttle_hits

WINDOW_S = 60
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RateLimit:
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
        self.subject = subject  # digest of "user:<id>", "token:<id>", "tenant:<id>"
        self.left = 0  # leased, not yet spent
        self.count = 0  # the counter after this process's last lease (every process's leases)
        self.size = 1  # the next lease asks for this many
        self.exhausted = False  # the counter reached the limit: refuse until the window ends


class _Table:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.db: Any = None
        self.window = -1
        self.buckets: dict[tuple[str, str], _Bucket] = {}

    def get(self, db: Any, now: float, wanted: list[tuple[str, str]]) -> tuple[int, list[_Bucket]]:
        """The current window and a bucket for each ``(scope, subject)``; a new window (or
        another store) starts every bucket afresh."""
        window = int(now // WINDOW_S)
        with self.lock:
            if db is not self.db or window > self.window:
                self.db, self.window, self.buckets = db, window, {}
            found = []
            for scope, subject in wanted:
                bucket = self.buckets.get((scope, subject))
                if bucket is None:
                    bucket = self.buckets[(scope, subject)] = _Bucket(_digest(subject))
                found.append(bucket)
            return self.window, found


_table = _Table()


def _digest(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


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
    kind = "write" if write else "read"
    scope = "rate_" + kind
    limits = (
        _scaled(getattr(settings, f"CODITECT_RATE_{kind.upper()}_PER_MIN")),
        _scaled(getattr(settings, f"CODITECT_RATE_TENANT_{kind.upper()}_PER_MIN")),
    )
    who = (
        f"user:{principal.user_id}"
        if principal.api_token is None
        else f"token:{principal.api_token.id}"
    )
    window, buckets = _table.get(
        db, moment, [(scope, who), (scope, f"tenant:{principal.tenant_id}")]
    )
    reset = max(1, math.ceil((window + 1) * WINDOW_S - moment))
    # Always principal, then tenant: every request takes the locks in one order.
    with buckets[0].lock, buckets[1].lock:
        pairs = list(zip(buckets, limits, strict=True))
        allowed = not any(bucket.exhausted for bucket in buckets)
        if allowed and any(bucket.left == 0 for bucket in buckets):
            _lease(db, scope, window, [(b, limit) for b, limit in pairs if b.left == 0])
            allowed = all(bucket.left > 0 for bucket in buckets)
        if allowed:
            for bucket in buckets:
                bucket.left -= 1
        remaining, limit = min(
            (0 if b.exhausted else max(0, lim - b.count + b.left), lim) for b, lim in pairs
        )
    if not allowed:
        throttle_hits.labels(scope).inc()
        remaining = 0
    return RateLimit(allowed=allowed, limit=limit, remaining=remaining, reset=reset)


def _lease(db: Any, scope: str, window: int, wanted: list[tuple[_Bucket, int]]) -> None:
    """Lease units of each bucket's window in one transaction (the caller holds its lock)."""
    lease_max = max(1, int(settings.CODITECT_RATE_LEASE_MAX))
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

    for (bucket, _), (grant, count) in zip(wanted, lease(db), strict=True):
        bucket.left += grant
        bucket.count = count
        if grant:
            bucket.size = min(lease_max, bucket.size * 2)
        else:
            bucket.exhausted = True

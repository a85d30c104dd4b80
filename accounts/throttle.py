"""Fixed-window throttles counted in the storage layer, so every process sees one count.

Each hit is an atomic ADD on ``("throttle", scope, digest(subject), window)`` read back in
the same transaction; hits on one subject that race conflict and retry, so no more than the
limit ever pass, across processes. Subjects (emails, client addresses) are stored as
digests.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.records import throttle_ended, throttle_key
from core.metrics import throttle_hits

_ONE = struct.pack("<q", 1)


@dataclass(frozen=True)
class Bucket:
    scope: str  # "login_email", "login_address", "login_failures", "register_address"
    subject: str
    limit: int  # before CODITECT_THROTTLE_SCALE
    window_s: int


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(retry_after)


def _digest(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


def _limit(bucket: Bucket) -> int:
    return max(1, math.floor(bucket.limit * settings.CODITECT_THROTTLE_SCALE))


def _key(bucket: Bucket, now: float) -> tuple[bytes, int]:
    window = int(now // bucket.window_s)
    retry_after = max(1, math.ceil((window + 1) * bucket.window_s - now))
    key = throttle_key(
        scope=bucket.scope,
        subject_digest=_digest(bucket.subject),
        window_s=bucket.window_s,
        window=window,
    )
    return key, retry_after


def _count(value: bytes | None) -> int:
    return struct.unpack("<q", value)[0] if value else 0


def throttle_hit(*, db: Any, buckets: list[Bucket], now: float | None = None) -> None:
    """Count one attempt in every bucket; raise Throttled if any is over its limit.

    The hit is counted even when refused, so hammering keeps a subject throttled.
    """

    def over(tr: Any, key: bytes, limit: int) -> bool:
        tr.add(key, _ONE)
        # A conflicting read: two hits racing on one subject serialise, so the limit is
        # exact across processes (a snapshot read would let both see the old count).
        return _count(tr.get(key)) > limit

    _refuse_over(db=db, buckets=buckets, now=now, over=over)


def throttle_check(*, db: Any, buckets: list[Bucket], now: float | None = None) -> None:
    """Raise Throttled if any bucket is already at its limit (counting nothing)."""

    def over(tr: Any, key: bytes, limit: int) -> bool:
        return _count(tr.snapshot.get(key)) >= limit

    _refuse_over(db=db, buckets=buckets, now=now, over=over)


def _refuse_over(
    *,
    db: Any,
    buckets: list[Bucket],
    now: float | None,
    over: Callable[[Any, bytes, int], bool],
) -> None:
    """Raise Throttled with the longest wait of the buckets ``over`` finds full, in one
    transaction (hit and check differ only in how they read a bucket)."""
    moment = time.time() if now is None else now
    keys = [(_key(b, moment), _limit(b)) for b in buckets]

    @fdb_backend.transactional
    def worst(tr: Any) -> tuple[int, str]:
        found, scope = 0, ""
        for bucket, ((key, retry_after), limit) in zip(buckets, keys, strict=True):
            if over(tr, key, limit) and retry_after > found:
                found, scope = retry_after, bucket.scope
        return found, scope

    retry_after, scope = worst(db)
    if retry_after:
        _count_hit(scope)
        raise Throttled(retry_after)


def _count_hit(scope: str) -> None:
    # One count per refusal, labelled by the scope that refused it: of several over their
    # limits, the one whose window ends last (it decided Retry-After). Scopes are a small
    # fixed set of names (login_email, login_address, register_address...).
    throttle_hits.labels("throttle", scope).inc()


def throttle_record(*, db: Any, buckets: list[Bucket], now: float | None = None) -> None:
    """Count one event (a failed login) without refusing anything."""
    moment = time.time() if now is None else now
    keys = [_key(b, moment)[0] for b in buckets]

    @fdb_backend.transactional
    def record(tr: Any) -> None:
        for key in keys:
            tr.add(key, _ONE)

    record(db)


def throttle_purge(
    *, db: Any, now: float | None = None, dry_run: bool = False, batch: int = 500
) -> int:
    """Remove counters of windows that have ended, ``batch`` keys per transaction."""
    moment = time.time() if now is None else now
    removed = 0
    after: bytes | None = None
    while True:

        @fdb_backend.transactional
        def sweep(tr: Any, start: bytes | None) -> tuple[int, bytes | None]:
            ended, resume = throttle_ended(tr, now=moment, after=start, limit=batch)
            if not dry_run:
                for key in ended:
                    tr.clear(key)
            return len(ended), resume

        count, after = sweep(db, after)
        removed += count
        if after is None:
            return removed

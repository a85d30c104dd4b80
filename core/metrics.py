"""The platform's Prometheus metrics, defined once here so that every layer may count.

``GET /metrics`` (coditect/metrics.py) exposes them with the storage layer's own
(fdb_backend/metrics.py). Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` makes each worker write
its values to files there, summed at scrape time (docs/operations.md, "Metrics and logs").
Label values are bounded sets: route templates, status codes, message types, error codes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from core.errors import ServiceError

P = ParamSpec("P")
R = TypeVar("R")

# Prometheus' default buckets, with finer ones below 5 ms: most API requests end there.
_FAST_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5),
    *(0.75, 1.0, 2.5, 5.0, 10.0),
)

http_requests = Counter(
    "coditect_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
http_request_seconds = Histogram(
    "coditect_http_request_duration_seconds",
    "Time from the request reaching the middleware to its response, by route and status.",
    ["method", "route", "status"],
    buckets=_FAST_BUCKETS,
)
open_sockets = Gauge(
    "coditect_websocket_open",
    "WebSocket connections open now.",
    multiprocess_mode="livesum",
)
socket_messages = Counter(
    "coditect_websocket_messages",
    "WebSocket messages, by direction (in, out) and type (live: a fan-out event).",
    ["direction", "type"],
)
socket_closes = Counter(
    "coditect_websocket_closes",
    "WebSocket connections ended, by close code.",
    ["code"],
)
broadcast_lag = Histogram(
    "coditect_broadcast_lag_seconds",
    "Time from an event's commit to its sending to this process's sockets.",
    buckets=_FAST_BUCKETS,
)
throttle_hits = Counter(
    "coditect_throttle_hits",
    "Requests refused by a throttle (kind throttle, by the scope over its limit: login_email,"
    " register_address...) or a rate limit (kind rate_limit: principal_read, principal_write,"
    " tenant_read, tenant_write for the API, ws_rate for a socket's messages).",
    ["kind", "scope"],
)
logins = Counter(
    "coditect_logins",
    "Login attempts by method (password, mfa) and outcome (success or the error code).",
    ["method", "outcome"],
)
argon2_queue_seconds = Histogram(
    "coditect_argon2_queue_wait_seconds",
    "Time a password hash waited for one of the process's hashing slots.",
    buckets=(0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@functools.lru_cache(maxsize=256)
def socket_message(direction: str, kind: str) -> Any:
    """The counter of one direction and message type; cached, since ``labels()`` takes a lock
    and checks its arguments, and a live event is counted once per socket it reaches."""
    return socket_messages.labels(direction, kind)


def counts_outcomes(method: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count each call of a login service in ``coditect_logins``: ``success``, or the code of
    the ServiceError it raised (``mfa_required``, ``invalid_credentials``, ``throttled``...)."""

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = func(*args, **kwargs)
            except ServiceError as error:
                logins.labels(method, error.code).inc()
                raise
            logins.labels(method, "success").inc()
            return result

        return wrapper

    return decorator

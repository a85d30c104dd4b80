"""Each request counted, timed and logged in one access line; ``GET /metrics`` for Prometheus.

``observe_middleware`` is first in MIDDLEWARE: it times everything the others do, and labels
the request with its route template (``/api/v5/sessions/<uuid:session_id>``, one label for
both slash spellings of core/routes.py), never its path, so a label's values stay few.
The access line (logger ``coditect.access``) has the method, route, status, duration, and the
tenant and user (or API token) of an authenticated caller; its request id comes from the
context (coditect/logging_setup.py).

``metrics_view`` answers only clients in ``CODITECT_METRICS_ALLOW`` (the address after
coditect/proxies.py's trusted-proxy handling); others get a 404, as if there were nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from accounts.services import Principal
from core.metrics import http_request_seconds, http_requests

access_log = logging.getLogger("coditect.access")

GetResponse = Callable[[HttpRequest], Any]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@sync_and_async_middleware
def observe_middleware(get_response: GetResponse) -> GetResponse:
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            response: HttpResponseBase = await get_response(request)
            observed(request, response, time.perf_counter() - started)
            return response

        return async_middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        # Under daphne or uvicorn, from when the API lane (coditect/api_lane.py) handed the
        # request to a pool: its wait for a thread and a storage turn counts.
        started = request.__dict__.get("arrived") or time.perf_counter()
        response: HttpResponseBase = get_response(request)
        observed(request, response, time.perf_counter() - started)
        return response

    return sync_middleware


def observed(request: HttpRequest, response: HttpResponseBase, seconds: float) -> None:
    """Count and time the request, and write its access line."""
    method = request.method if request.method in _METHODS else "other"
    route = route_of(request)
    status = response.status_code
    count, timing = _children(method, route, status)
    count.inc()
    timing.observe(seconds)
    if not access_log.isEnabledFor(logging.INFO):
        return
    tenant_id = user_id = token_id = None
    # The DRF view's caller; a page's lazy Django user is not looked at (type(), unlike
    # isinstance, does not load it).
    user = request.__dict__.get("user")
    if type(user) is Principal:
        tenant_id, user_id = str(user.tenant_id), str(user.user_id)
        token_id = None if user.api_token_id is None else str(user.api_token_id)
    milliseconds = round(seconds * 1000, 3)
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": milliseconds,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "token_id": token_id,
    }
    args = (method, route, status, milliseconds, tenant_id or "-", user_id or "-", token_id or "-")
    # Made here and handed over: Logger.info would walk the stack for the caller's file and
    # line, a third of the line's cost, for a line that always comes from here.
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, _ACCESS_LINE, args, None, extra=fields
    )
    access_log.handle(record)


_ACCESS_LINE = "%s %s %d %.1fms tenant=%s user=%s token=%s"


@functools.lru_cache(maxsize=4096)
def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The request counter and histogram of one label set (labels() costs a lock and checks
    per call; the label sets are few: methods, route templates, statuses)."""
    labels = (method, route, str(status))
    return http_requests.labels(*labels), http_request_seconds.labels(*labels)


def route_of(request: HttpRequest) -> str:
    """The template of the route that answered; ``unmatched`` for paths no route serves."""
    match = getattr(request, "resolver_match", None)
    if match is None:  # answered before the URL was resolved (a 413, a bad Host)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return "unmatched"
    return _template(str(match.route))


@functools.lru_cache(maxsize=1024)
def _template(route: str) -> str:
    return "/" + route.rstrip("/")


@functools.lru_cache(maxsize=8)
def _allowed(entries: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def metrics_allowed(address: str) -> bool:
    try:
        client = ip_address(address)
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in network for network in _allowed(tuple(settings.CODITECT_METRICS_ALLOW)))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this process, or of every worker of the server
    when PROMETHEUS_MULTIPROC_DIR is set."""
    if request.method not in ("GET", "HEAD") or not metrics_allowed(
        str(request.META.get("REMOTE_ADDR", ""))
    ):
        raise Http404
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

"""Probes for load balancers and orchestrators.

``/healthz``: the process answers (restart it if not). ``/readyz``: it can serve, because the
storage layer and the channel layer both answer (send it no traffic if not).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

import fdb_backend
from core.problems import FieldError, problem_response

logger = logging.getLogger(__name__)

# Below the one-second default timeout of Kubernetes probes, so a slow dependency reports
# itself instead of the probe timing out.
CHECK_TIMEOUT_S = 0.8


# csrf_exempt: the probes change nothing, and a POST should meet require_safe's 405, not a
# CSRF 403.
@csrf_exempt
@never_cache
@require_safe
async def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _read_version() -> None:
    tr = fdb_backend.get_database().create_transaction()
    # The cluster client retries an unreachable cluster forever; the timeout frees the thread.
    tr.options.set_timeout(int(CHECK_TIMEOUT_S * 1000))
    try:
        tr.get_read_version().wait()
    finally:
        tr.cancel()


async def _check_storage() -> None:
    await sync_to_async(_read_version, thread_sensitive=False)()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise LookupError("no channel layer is configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "readyz.ping"})
    await layer.receive(channel)


CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "storage": _check_storage,
    "channel_layer": _check_channel_layer,
}


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> FieldError | None:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        logger.warning("readiness check timed out", extra={"check": name})
        return {"attr": name, "code": "timeout", "detail": f"{name} did not answer in time"}
    except Exception as exc:
        # A probe reports every failure of a dependency; it must not turn one into a 500.
        logger.warning("readiness check failed", extra={"check": name}, exc_info=True)
        reason = type(exc).__name__
        if isinstance(exc, fdb_backend.FDBError):
            reason += f" {exc.code}"
        return {"attr": name, "code": "unavailable", "detail": f"{name} failed ({reason})"}
    return None


# Where fdb: without a path looks for its cluster file when FDB_CLUSTER_FILE is unset.
DEFAULT_CLUSTER_FILE = "/etc/foundationdb/fdb.cluster"


def storage_engine() -> dict[str, str]:
    """Which engine serves the store (embedded, memory or fdb), and for fdb the cluster file,
    read from the configured URL: an operator sees which store an instance really uses."""
    parts = urlsplit(settings.CODITECT_STORAGE_URL)
    engine = {"engine": parts.scheme.lower()}
    if engine["engine"] == "fdb":
        engine["cluster_file"] = (
            unquote(parts.path) or os.environ.get("FDB_CLUSTER_FILE") or DEFAULT_CLUSTER_FILE
        )
    return engine


@csrf_exempt
@never_cache
@require_safe
async def readyz(request: HttpRequest) -> HttpResponse:
    results = await asyncio.gather(*(_run(name, check) for name, check in CHECKS.items()))
    checks = {name: "error" if error else "ok" for name, error in zip(CHECKS, results, strict=True)}
    errors = [error for error in results if error is not None]
    if not errors:
        return JsonResponse({"status": "ready", "checks": checks, "storage": storage_engine()})
    return problem_response(
        request,
        status=503,
        code="not_ready",
        detail="Not ready: " + "; ".join(error["detail"] for error in errors) + ".",
        errors=errors,
        extra={"checks": checks, "storage": storage_engine()},
    )

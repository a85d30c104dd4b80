"""Hot API operations: under ASGI the view and its rendering in one pool thread, not three
hops; on either path, a bounded number of them at once per process.

Under daphne, Django runs a sync view through ``sync_to_async(thread_sensitive=True)`` (a hop
to the request's one thread-sensitive thread), renders a DRF response in a second such hop,
and runs the view middleware (CSRF's ``process_view``) in a third. A DRF view lists the methods
that need none of that in ``lean_methods``; for those, this middleware, last in MIDDLEWARE,
resolves the path, then calls the view and renders its response in a single
``sync_to_async(thread_sensitive=False)`` call (a pool thread; no thread-sensitive context is
needed because these views use the storage layer, which is thread-safe, and never the ORM).
Under WSGI it calls the view and renders it in the request's thread the same way, so the path
is resolved once, not again by Django's handler.
The view itself is unchanged, so are its answers, errors and schema.

How many lean requests a process runs at once is ``CODITECT_API_THREADS``: by default one
under the embedded engine and eight under the cluster engine. The embedded engine's reads are
CPU work in this process that releases the GIL at every SQLite step: a second thread does not
add CPU, it adds a GIL hand-off per step, and one daphne process served 27% fewer session
lists per second with six threads than with one (docs/benchmarks.md). The cluster engine's
reads wait on the network, which threads overlap. On both paths a lean request holds one of
that many storage turns (fdb_backend/turns.py) while it computes, in the storage pool under
daphne, in the request's thread under WSGI (a gthread worker's threads: the others wait for a
turn outside the GIL, while the rest, logins hashing a password and pages, run beside them).
A durable commit gives its turn back when it starts waiting for the disk, so the next request
computes meanwhile, and the request finishes without one (fdb_backend/turns.py says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve
from django.utils.decorators import sync_and_async_middleware

from core.problems import is_api_path
from fdb_backend.pool import in_turn, made_once, storage_executor, storage_turns

GetResponse = Callable[[HttpRequest], Any]


@sync_and_async_middleware
def lean_middleware(get_response: GetResponse) -> GetResponse:
    if not iscoroutinefunction(get_response):

        def sync_middleware(request: HttpRequest) -> HttpResponseBase:
            # The API lane (coditect/api_lane.py) resolved the path already to pick a thread,
            # lean or not (None); only a request from elsewhere (WSGI) is resolved here.
            found = request.__dict__
            match = found["lean_match"] if "lean_match" in found else _lean_route(request)
            if match is None:
                response: HttpResponseBase = get_response(request)
                return response
            # The view is called here, as on the ASGI path: handing the request on would have
            # Django resolve the path a second time (a tenth of a GET's CPU) to find the view
            # this middleware already found, and run view middleware lean views never need.
            request.resolver_match = match
            with storage_turns().turn():
                response = _view_and_render(request, match)
            return response

        return sync_middleware

    async def middleware(request: HttpRequest) -> HttpResponseBase:
        match = _lean_route(request)
        if match is None:
            response: HttpResponseBase = await get_response(request)
            return response
        request.resolver_match = match
        response = await _pooled_view_and_render()(request, match)
        return response

    return middleware


def _lean_route(request: HttpRequest) -> ResolverMatch | None:
    return lean_route(request.path_info, request.method or "", getattr(request, "urlconf", None))


def lean_route(path: str, method: str, urlconf: str | None = None) -> ResolverMatch | None:
    """The route of a request whose view declares its method lean, else None."""
    if not is_api_path(path):
        return None
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return None
    view_class = getattr(match.func, "cls", None)
    if method.lower() not in getattr(view_class, "lean_methods", ()):
        return None
    return match


def _view_and_render(request: HttpRequest, match: ResolverMatch) -> HttpResponseBase:
    response: HttpResponseBase = match.func(request, *match.args, **match.kwargs)
    render = getattr(response, "render", None)
    if callable(render):
        response = render()
    return response


_pooled_view_and_render = made_once(
    lambda: sync_to_async(
        in_turn(_view_and_render), thread_sensitive=False, executor=storage_executor()
    )
)

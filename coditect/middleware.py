"""The project's middleware: request ids, and problem+json for every error on an API path.

Each is built from plain functions and runs natively in both the sync and the async request
path: under daphne a sync-only middleware would cost a thread hop on every request.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import IO, Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.decorators import sync_and_async_middleware

from accounts.authentication import rate_limit_of
from core.problems import as_problem, is_api_path, problem_response
from core.request_id import assign_request_id, echo_request_id

security_log = logging.getLogger("django.security.DisallowedHost")

Before = Callable[[HttpRequest], HttpResponseBase | None]
After = Callable[[HttpRequest, HttpResponseBase], HttpResponseBase]
GetResponse = Callable[[HttpRequest], Any]


def _nothing(request: HttpRequest) -> None:
    return None


def _middleware(before: Before, after: After) -> Callable[[GetResponse], GetResponse]:
    """A middleware that calls ``before`` (which may answer instead of the view), then ``after``."""

    @sync_and_async_middleware
    def factory(get_response: GetResponse) -> GetResponse:
        if iscoroutinefunction(get_response):

            async def async_middleware(request: HttpRequest) -> HttpResponseBase:
                response = before(request)
                if response is None:
                    response = await get_response(request)
                return after(request, response)

            return async_middleware

        def sync_middleware(request: HttpRequest) -> HttpResponseBase:
            response = before(request)
            if response is None:
                response = get_response(request)
            return after(request, response)

        return sync_middleware

    return factory


def reject_large_body(request: HttpRequest) -> HttpResponseBase | None:
    """413 before any view reads an API body above CODITECT_MAX_BODY_BYTES.

    DRF reads request bodies from the stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check,
    so the limit is enforced here, on the declared length; a body sent without one (chunked,
    or over HTTP/2 under ASGI) is read here up to the limit (``_read_unmeasured_body``).
    """
    if not is_api_path(request.path_info):
        return None
    # CommonMiddleware, which checks the Host header on pages, is skipped on API paths
    # (coditect/pages_only.py): check it here.
    try:
        request.get_host()
    except DisallowedHost:
        security_log.warning("disallowed host", extra={"host": request.META.get("HTTP_HOST")})
        return problem_response(
            request, status=400, code="bad_request", detail="This host is not served here."
        )
    limit: int = settings.CODITECT_MAX_BODY_BYTES
    if not request.META.get("CONTENT_LENGTH") and (
        # Under ASGI the body comes in messages whatever its framing: an HTTP/2 server
        # (hypercorn, daphne with h2) sends one with neither header.
        "HTTP_TRANSFER_ENCODING" in request.META or not isinstance(request, WSGIRequest)
    ):
        return _read_unmeasured_body(request, limit)
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        length = -1
    if length < 0:
        return problem_response(
            request, status=400, code="bad_request", detail="Content-Length is not a number."
        )
    if length > limit:
        return problem_response(
            request,
            status=413,
            code="body_too_large",
            detail=f"The request body is {length} bytes; the limit is {limit}.",
        )
    return None


def _read_unmeasured_body(request: HttpRequest, limit: int) -> HttpResponseBase | None:
    """Read a body sent without a length (``Transfer-Encoding: chunked``, or any body of an
    HTTP/2 request under ASGI), at most ``limit`` bytes of it, and give the request that body
    and its length.

    Django and DRF take a request without CONTENT_LENGTH for one without a body: a chunked
    create would be answered 400 about missing fields, a chunked PATCH would change nothing.
    The server has decoded the chunks or frames: under ASGI the request's stream is the whole
    body (coditect/api_lane.py reads no more than ``limit + 1`` bytes of it), often none (a
    GET); under WSGI it is ``wsgi.input``, which may be read to its end only where the server
    says it ends there (gunicorn does); elsewhere Django's stream is empty, so the answer is
    411 rather than a request taken for bodiless.
    """
    if isinstance(request, WSGIRequest):
        if not request.environ.get("wsgi.input_terminated"):
            return problem_response(
                request,
                status=411,
                code="length_required",
                detail="This server cannot read a body without a Content-Length.",
            )
        stream: IO[bytes] = request.environ["wsgi.input"]
    else:
        stream = request._stream  # the ASGI request's body file, whole
    body = stream.read(limit + 1)
    if not body:
        return None  # a request without a body, as it was taken: nothing to give it
    if len(body) > limit:
        return problem_response(
            request,
            status=413,
            code="body_too_large",
            detail=f"The request body is over {limit} bytes, the limit.",
        )
    # What a body with its Content-Length gives: the view reads the same bytes, as long.
    request._stream = io.BytesIO(body)
    request.META["CONTENT_LENGTH"] = str(len(body))
    return None


def rate_limit_headers(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` on every answer to a request that
    spent a rate limit (accounts/ratelimit.py), success or error alike."""
    limit = rate_limit_of(request)
    if limit is not None:
        for name, value in limit.headers().items():
            response[name] = value
    return response


request_id_middleware = _middleware(assign_request_id, echo_request_id)
api_problem_middleware = _middleware(reject_large_body, as_problem)
rate_limit_middleware = _middleware(_nothing, rate_limit_headers)


def _inline(middleware_class: type[Any]) -> Callable[[GetResponse], GetResponse]:
    """One of Django's header-only middlewares with its hooks called inline.

    Installed as Django's class it would cost a thread hop per hook under ASGI
    (MiddlewareMixin runs hooks through sync_to_async); its hooks only read settings and set
    headers, so they are safe on the event loop. Instantiated when the handler loads its
    middleware, as Django does, so it reads the settings of that moment.
    """

    @sync_and_async_middleware
    def factory(get_response: GetResponse) -> GetResponse:
        instance = middleware_class(get_response)
        before = getattr(instance, "process_request", _nothing)
        return _middleware(before, instance.process_response)(get_response)

    factory.__name__ = factory.__qualname__ = middleware_class.__name__
    return factory


# Django's SecurityMiddleware (HSTS, nosniff, referrer and opener policies, the HTTPS redirect)
# and XFrameOptionsMiddleware; coditect/checks.py keeps Django's deploy checks of their
# settings working with these in MIDDLEWARE instead of Django's class paths.
security_middleware = _inline(SecurityMiddleware)
frame_options_middleware = _inline(XFrameOptionsMiddleware)

"""RFC 9457 problem details: the one shape of every error the API returns.

``{"type", "title", "status", "detail", "code", "errors": [{"attr", "code", "detail"}],
"request_id"}`` with ``Content-Type: application/problem+json``. ``code`` is the stable word
clients branch on; ``errors`` lists each invalid field (empty for other problems).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from http.client import responses
from typing import Any, TypedDict

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from core.errors import ServiceError
from core.request_id import request_id_of
from fdb_backend.records import InvalidContinuation, RecordTooLarge

CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:coditect:problem:"

_API_PATH = re.compile(r"/(?:api|healthz|readyz|\.well-known)(?:/|$)")
_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}
_STATUS_DETAILS = {
    400: "The request could not be understood.",
    403: "You may not do this.",
    404: "Nothing is served at this path.",
    405: "This method is not allowed on this path.",
    500: "The server failed to handle the request; quote its request_id when reporting it.",
}
# Headers of the replaced response that tell the client what to do next.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class FieldError(TypedDict):
    attr: str | None
    code: str
    detail: str


def field_errors(attr: str | None, code: str, detail: str) -> list[FieldError]:
    """The ``errors`` list of a problem about one field (empty when it names none)."""
    return [] if attr is None else [{"attr": attr, "code": code, "detail": detail}]


class ApiError(exceptions.APIException):
    """An error a service or view raises to answer with a given status and code.

    ``raise ApiError(409, "email_taken", "An account with this email exists.")``
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: Sequence[FieldError] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.code = code
        self.errors = list(errors or ())
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # members of the body beyond the standard ones


def api_error(error: ServiceError) -> ApiError:
    """The REST form of a service's error (core/errors.py): the one translation of every
    view's, authenticator's and permission's ``ServiceError``.

    A 401 carries its Bearer challenge (RFC 6750, naming the code), a 429 its Retry-After, a
    ``version_conflict`` the current version as ETag; ``attr`` becomes the one field error.
    """
    headers: dict[str, str] = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="coditect", error="{error.code}"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if "current_version" in error.context:
        headers["ETag"] = f'"{error.context["current_version"]}"'
    return ApiError(
        error.status,
        error.code,
        error.detail,
        field_errors(error.attr, error.code, error.detail),
        headers=headers,
        extra=error.problem_members(),
    )


def problem_response(
    request: HttpRequest,
    *,
    status: int,
    code: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> HttpResponse:
    body = {
        "type": TYPE_PREFIX + code,
        "title": responses.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": list(errors),
        "request_id": request_id_of(request),
        **(extra or {}),
    }
    content = json.dumps(body).encode()
    response = HttpResponse(content, status=status, content_type=CONTENT_TYPE, headers=headers)
    # Set here because problems made by the middleware are past CommonMiddleware, which sets it.
    response["Content-Length"] = str(len(content))
    return response


def is_api_path(path: str) -> bool:
    """Paths whose clients are programs, so every error there is a problem, never HTML."""
    return _API_PATH.match(path) is not None


def as_problem(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Replace an error page on an API path with the same status as a problem.

    Django answers some errors before or around any DRF view: no route (404), a crash (500,
    also under DEBUG, where the traceback still goes to the log), a CSRF or host failure, a
    decorator's 405. Their HTML or empty bodies would break clients that parse errors.
    """
    if (
        response.status_code < 400
        or response.get("Content-Type", "").startswith(CONTENT_TYPE)
        or not is_api_path(request.path_info)
    ):
        return response
    status = response.status_code
    headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
    return problem_response(
        request,
        status=status,
        code=_STATUS_CODES.get(status, f"http_{status}"),
        detail=_STATUS_DETAILS.get(status, responses.get(status, "Error") + "."),
        headers=headers,
    )


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> HttpResponse | None:
    """DRF's EXCEPTION_HANDLER: every APIException (and Http404, PermissionDenied), every
    service's error and the storage layer's refusals of client input, as a problem.

    Anything else returns None, so DRF re-raises it and it becomes a logged 500.
    """
    if isinstance(exc, ServiceError):
        exc = api_error(exc)
    elif isinstance(exc, InvalidContinuation):  # a cursor of another list, or altered
        exc = ApiError(400, "invalid_cursor", "The cursor is not valid for this list.")
    elif isinstance(exc, RecordTooLarge):  # only a session's state grows to the limit
        exc = ApiError(413, "state_too_large", "The session's state is too large.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if not isinstance(exc, exceptions.APIException):
        return None
    set_rollback()
    status, code, headers, extra = exc.status_code, _code_of(exc), {}, {}
    errors = problem_field_errors(exc.detail) if isinstance(exc.detail, (list, dict)) else []
    detail = _summary(errors) if errors else str(exc.detail)
    if isinstance(exc, ApiError):
        errors, headers, extra = exc.errors, exc.headers, exc.extra
    elif isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    elif isinstance(exc, exceptions.ParseError):
        code = "malformed_json"
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # DRF turns these into 403 when no authenticator names a scheme; for a bearer-token
        # API a missing or bad token is always 401 with a challenge (RFC 6750).
        status = 401
        headers = {"WWW-Authenticate": getattr(exc, "auth_header", None) or "Bearer"}
    elif isinstance(exc, exceptions.Throttled):
        wait = getattr(exc, "wait", None) or 1
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return problem_response(
        context["request"],
        status=status,
        code=code,
        detail=detail,
        errors=errors,
        headers=headers,
        extra=extra,
    )


def _code_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, ApiError):
        return exc.code
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else str(exc.default_code)


def problem_field_errors(detail: Any) -> list[FieldError]:
    """The ``errors`` of a DRF ValidationError's ``detail``, one entry for each field error."""
    return list(_field_errors(detail))


def _field_errors(detail: Any, attr: str | None = None) -> Iterator[FieldError]:
    """Flatten DRF's nested error details; ``attr`` is a dotted path, None for the whole body."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                yield from _field_errors(value, attr)
            else:
                yield from _field_errors(value, f"{attr}.{key}" if attr else str(key))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (list, dict)):
                yield from _field_errors(item, f"{attr}.{index}" if attr else str(index))
            else:
                yield from _field_errors(item, attr)
    else:
        yield {
            "attr": attr,
            "code": str(getattr(detail, "code", None) or "invalid"),
            "detail": str(detail),
        }


def _summary(errors: Sequence[FieldError]) -> str:
    first = errors[0]
    text = f"{first['attr']}: {first['detail']}" if first["attr"] else first["detail"]
    more = len(errors) - 1
    return text if not more else f"{text} (and {more} more; see errors)"

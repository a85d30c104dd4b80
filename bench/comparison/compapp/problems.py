"""DRF's exception handler, with the body reshaped into RFC 9457 problem details.

The comparison app keeps DRF's usual error handling; only the envelope follows the platform's
contract, so that a benchmark or smoke client can read ``status`` and ``code`` the same way
from both servers.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record has changed since the version given in If-Match."
    default_code = "version_conflict"


def _flatten(detail: Any, attr: str | None = None) -> list[dict[str, Any]]:
    """Turn DRF's nested ``{field: [ErrorDetail, ...]}`` into ``[{attr, code, detail}]``."""
    if isinstance(detail, dict):
        out: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = key if attr is None else f"{attr}.{key}"
            out.extend(_flatten(value, None if key == "non_field_errors" else name))
        return out
    if isinstance(detail, list):
        return [item for value in detail for item in _flatten(value, attr)]
    return [{"attr": attr, "code": getattr(detail, "code", "invalid"), "detail": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # The same mapping DRF's handler does internally, done here so ``exc.detail`` exists.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # not an API error: Django's 500 handling applies
    errors = _flatten(exc.detail) if isinstance(exc.detail, dict | list) else []
    if errors:
        code = "invalid" if isinstance(exc, exceptions.ValidationError) else errors[0]["code"]
        detail = errors[0]["detail"]
    else:
        code = getattr(exc.detail, "code", exc.default_code)
        detail = str(exc.detail)
    # simplejwt reports its errors as {"detail", "code", "messages"}; keep its machine code.
    if isinstance(exc.detail, dict) and "code" in exc.detail and "detail" in exc.detail:
        code, detail, errors = str(exc.detail["code"]), str(exc.detail["detail"]), []
    response.data = {
        "type": "about:blank",
        "title": response.status_text,
        "status": response.status_code,
        "detail": detail,
        "code": code,
        "errors": errors,
    }
    response.content_type = "application/problem+json"
    return response

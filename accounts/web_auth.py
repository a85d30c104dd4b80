"""Sign-in for the platform's own pages: the refresh token in a cookie page script cannot read.

The API hands both tokens to its client. A page must not hold its refresh token where script
can read it (one injected script would walk away with a credential that lives for weeks), so
these endpoints keep it in an HttpOnly, SameSite=Strict cookie scoped to ``/web/auth/`` and
answer only the short-lived access token, which the page keeps in memory (docs/web.md).

They live outside ``/api/`` on purpose: a browser sends that cookie by itself, so every POST
here goes through Django's CsrfViewMiddleware (``csrftoken`` cookie plus ``X-CSRFToken``
header, and the Origin check), which the API, authenticated by header only, skips. Each view
parses, calls the same services as the REST views, and renders; refused input is a problem
body whose ``errors[].attr`` names the field, so the page shows it next to that field.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token, rotate_token
from django.views import csrf
from rest_framework.exceptions import ValidationError

import fdb_backend
from accounts import serializers
from accounts.api import client_of, tenant_json, user_json
from accounts.errors import AccountError
from accounts.records import Tenant, User
from accounts.services import (
    Principal,
    TokenPair,
    auth_session_logout,
    auth_session_logout_all,
    principal_authenticate,
    token_refresh,
    user_login,
    user_login_mfa,
    user_register,
)
from core.parsers import validated
from core.problems import FieldError, field_errors, problem_field_errors, problem_response
from core.strict_json import strict_loads

REFRESH_COOKIE = "coditect_refresh"
# Every endpoint that reads or replaces the cookie is under this path; pages and the API never
# receive it.
COOKIE_PATH = "/web/auth/"

View = Callable[[HttpRequest], HttpResponse]


class BadRequest(Exception):
    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


def json_post(view: View) -> View:
    """POST only; JSON in and out; services' errors and bad input as problem bodies."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return problem_response(
                request,
                status=405,
                code="method_not_allowed",
                detail="Use POST.",
                headers={"Allow": "POST"},
            )
        try:
            response = view(request)
        except AccountError as error:
            response = account_problem(request, error)
        except BadRequest as error:
            response = problem_response(
                request,
                status=400,
                code="invalid" if error.errors else "malformed_json",
                detail=error.detail,
                errors=error.errors,
            )
        except RequestDataTooBig:
            response = problem_response(
                request, status=413, code="body_too_large", detail="The request body is too large."
            )
        # Token responses must never be stored by a cache on the way.
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def account_problem(request: HttpRequest, error: AccountError) -> HttpResponse:
    """The pages' one translation of a service's error (core/errors.py): the REST problem
    without the Bearer challenge, since these endpoints authenticate by cookie."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return problem_response(
        request,
        status=error.status,
        code=error.code,
        detail=error.detail,
        errors=field_errors(error.attr, error.code, error.detail),
        headers=headers,
        extra=error.problem_members(),
    )


def parsed(serializer_class: type[serializers.Strict], request: HttpRequest) -> dict[str, Any]:
    """The body, validated by the same serializer as the REST endpoint's."""
    raw = request.body
    try:
        data = strict_loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    try:
        return validated(serializer_class, data)
    except ValidationError as error:
        # Every field is named here (the serializers are flat, the body an object); the
        # detail names the first, as the page shows one message.
        errors = problem_field_errors(error.detail)
        first = errors[0]
        raise BadRequest(f"{first['attr']}: {first['detail']}", errors) from None


def set_refresh_cookie(response: HttpResponse, pair: TokenPair) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh,
        max_age=pair.refresh_expires_in,
        path=COOKIE_PATH,
        secure=settings.CODITECT_WEB_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def clear_refresh_cookie(response: HttpResponse) -> None:
    # The same flags as when it was set: a browser matches on name and path, and a Secure
    # cookie is only replaced by a Secure one.
    response.set_cookie(
        REFRESH_COOKIE,
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        path=COOKIE_PATH,
        secure=settings.CODITECT_WEB_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def _signed_in(
    request: HttpRequest, pair: TokenPair, user: User, tenant: Tenant, *, status: int = 200
) -> HttpResponse:
    """The access token for the page, the refresh token for the cookie jar only."""
    # A new identity gets a new CSRF secret (Django's own login does the same), so a token
    # planted before sign-in is worthless after it; the page takes the new one from here.
    rotate_token(request)
    response = JsonResponse(
        {
            "access": pair.access,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "user": user_json(user),
            "tenant": tenant_json(tenant),
            "csrf_token": get_token(request),
        },
        status=status,
    )
    set_refresh_cookie(response, pair)
    return response


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _principal(request: HttpRequest) -> Principal | None:
    """Who is signing out: the page's access token, else the refresh cookie, else nobody.

    The cookie path lets a page sign out even when it holds no access token (it was just
    opened, or its token expired): the refresh rotates first, which revocation then ends.
    """
    token = _bearer(request)
    if token is not None:
        try:
            return principal_authenticate(db=fdb_backend.get_database(), token=token)
        except AccountError:
            pass
    refresh = request.COOKIES.get(REFRESH_COOKIE)
    if refresh:
        try:
            pair = token_refresh(
                db=fdb_backend.get_database(), token=refresh, client=client_of(request)
            )
            return principal_authenticate(db=fdb_backend.get_database(), token=pair.access)
        except AccountError:
            pass
    return None


# --- the endpoints ----------------------------------------------------------------------


@json_post
def login(request: HttpRequest) -> HttpResponse:
    body = parsed(serializers.LoginIn, request)
    done = user_login(db=fdb_backend.get_database(), client=client_of(request), **body)
    return _signed_in(request, done.tokens, done.user, done.tenant)


@json_post
def login_mfa(request: HttpRequest) -> HttpResponse:
    body = parsed(serializers.LoginMfaIn, request)
    done = user_login_mfa(db=fdb_backend.get_database(), client=client_of(request), **body)
    return _signed_in(request, done.tokens, done.user, done.tenant)


@json_post
def register(request: HttpRequest) -> HttpResponse:
    body = parsed(serializers.RegisterIn, request)
    done = user_register(db=fdb_backend.get_database(), client=client_of(request), **body)
    return _signed_in(request, done.tokens, done.user, done.tenant, status=201)


@json_post
def refresh(request: HttpRequest) -> HttpResponse:
    """Rotate the cookie's refresh token; reuse and grace are the service's (docs/accounts.md)."""
    parsed(serializers.EmptyIn, request)
    token = request.COOKIES.get(REFRESH_COOKIE)
    if not token:
        return problem_response(
            request, status=401, code="not_authenticated", detail="You are not signed in."
        )
    try:
        pair = token_refresh(db=fdb_backend.get_database(), token=token, client=client_of(request))
        principal = principal_authenticate(db=fdb_backend.get_database(), token=pair.access)
    except AccountError as error:
        response = account_problem(request, error)
        if error.status == 401:  # revoked, reused or expired: the cookie is of no more use
            clear_refresh_cookie(response)
        return response
    response = JsonResponse(
        {
            "access": pair.access,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "user": user_json(principal.user),
            "tenant": tenant_json(principal.tenant),
        }
    )
    if not pair.grace:
        # A grace answer hands back the spent token this request sent; the racing request
        # that rotated sets the live one, and overwriting it here would leave the browser
        # holding a spent token (and its next refresh would revoke the session as reuse).
        set_refresh_cookie(response, pair)
    return response


@json_post
def logout(request: HttpRequest) -> HttpResponse:
    """Sign this browser out: its auth session is revoked and the cookie cleared.

    Idempotent: without a live token or cookie there is nothing to revoke, and it still
    answers 204 with the cookie cleared.
    """
    parsed(serializers.EmptyIn, request)
    principal = _principal(request)
    if principal is not None:
        auth_session_logout(
            db=fdb_backend.get_database(), principal=principal, client=client_of(request)
        )
    response = HttpResponse(status=204)
    clear_refresh_cookie(response)
    return response


@json_post
def logout_all(request: HttpRequest) -> HttpResponse:
    """Sign out every device of the user: all auth sessions revoked, open sockets closed."""
    parsed(serializers.EmptyIn, request)
    principal = _principal(request)
    if principal is None:
        return problem_response(
            request, status=401, code="not_authenticated", detail="You are not signed in."
        )
    auth_session_logout_all(
        db=fdb_backend.get_database(), principal=principal, client=client_of(request)
    )
    response = HttpResponse(status=204)
    clear_refresh_cookie(response)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a problem body on the JSON endpoints, Django's page elsewhere."""
    if request.path_info.startswith(COOKIE_PATH):
        return problem_response(
            request,
            status=403,
            code="csrf_failed",
            detail=f"CSRF check failed: {reason} Reload the page and try again.",
        )
    return csrf.csrf_failure(request, reason)

"""DRF authentication by ``Authorization: Bearer <access token or API token>``, and the rate
limit every authenticated request spends (accounts/ratelimit.py) before anything else runs."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

import fdb_backend
from accounts.errors import AccountError, rate_limited
from accounts.ratelimit import READ_METHODS, RateLimit, rate_limit_spend
from accounts.services import Client, Principal, bearer_authenticate

CHALLENGE = 'Bearer realm="coditect"'
RATE_LIMIT_ATTRIBUTE = "coditect_rate_limit"


def rate_limit_of(request: Any) -> RateLimit | None:
    """The rate limit a request spent (None when it was not authenticated)."""
    found: RateLimit | None = getattr(request, RATE_LIMIT_ATTRIBUTE, None)
    return found


class BearerAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        # Imported here: DRF loads this class while core.problems is still importing DRF.
        # An APIException, not the AccountError itself: DRF's Request marks the request
        # unauthenticated only for those, so request.user is never authenticated twice.
        from core.problems import api_error

        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise api_error(
                AccountError(401, "invalid_token", "Use Authorization: Bearer <token>.")
            )
        db = fdb_backend.get_database()
        try:
            principal = bearer_authenticate(
                db=db,
                token=token,
                client=Client(ip=str(request.META.get("REMOTE_ADDR", ""))[:64]),
            )
        except AccountError as error:
            raise api_error(error) from None
        limit = rate_limit_spend(
            db=db, principal=principal, write=request.method not in READ_METHODS
        )
        # On the Django request, where the middleware that writes the headers finds it
        # (coditect/middleware.py), whatever answers: the view, an error, this refusal.
        setattr(request._request, RATE_LIMIT_ATTRIBUTE, limit)
        if not limit.allowed:
            raise api_error(rate_limited(limit.reset))
        return principal, token

    def authenticate_header(self, request: Any) -> str:
        return CHALLENGE

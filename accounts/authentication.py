"""DRF authentication by ``Authorization: Bearer <access token or API token>``."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

import fdb_backend
from accounts.errors import AccountError
from accounts.services import Client, Principal, bearer_authenticate

CHALLENGE = 'Bearer realm="coditect"'


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
        try:
            principal = bearer_authenticate(
                db=fdb_backend.get_database(),
                token=token,
                client=Client(ip=str(request.META.get("REMOTE_ADDR", ""))[:64]),
            )
        except AccountError as error:
            raise api_error(error) from None
        return principal, token

    def authenticate_header(self, request: Any) -> str:
        return CHALLENGE

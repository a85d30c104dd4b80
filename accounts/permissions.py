"""Who may call a REST operation: the one place API-token scopes are enforced (CONTRACT §7).

Every API view runs ``ScopedAccess`` (the default permission). A user's access token passes
wherever it is signed in. An API token passes only where the view declares the method in
``required_scopes`` (``{"get": "sessions:read", ...}``; ``None``: any API token) and the
token holds that scope; everywhere else, including whatever a new view forgets to declare,
it is 403 ``insufficient_scope``: closed by default, so tokens never reach the routes that
manage accounts, members, tokens, MFA or passwords.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.errors import INSUFFICIENT_SCOPE, USER_ONLY, fail
from accounts.services import Principal

# The view attribute that lists the methods an API token may call, with their scope.
ATTRIBUTE = "required_scopes"
USER_ONLY_RULE = "user"  # what api_token_rule answers for a method tokens may not call


def token_scopes(**rules: str | None) -> Mapping[str, str | None]:
    """A view's ``required_scopes``: ``token_scopes(get="sessions:read", post=None)``."""
    return MappingProxyType(rules)


def api_token_rule(view: Any, method: str) -> str | None:
    """The scope an API token needs for ``method`` on ``view``: a scope name, None (any API
    token), or USER_ONLY_RULE (users only)."""
    method = method.lower()
    if method == "head":
        method = "get"
    rules: Mapping[str, str | None] = getattr(view, ATTRIBUTE, {})
    return rules.get(method, USER_ONLY_RULE)


class ScopedAccess(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        # Imported here: DRF loads this class while core.problems is still importing DRF.
        # Raised translated: DRF's callers of permissions expect its APIException.
        from core.problems import api_error

        principal = request.user
        if not isinstance(principal, Principal):
            return False  # not signed in: DRF answers 401 with the Bearer challenge
        if principal.api_token is None:
            return True
        rule = api_token_rule(view, request.method or "")
        if rule == USER_ONLY_RULE:
            raise api_error(fail(USER_ONLY))
        if rule is not None and rule not in principal.scopes:
            raise api_error(fail(INSUFFICIENT_SCOPE))
        return True


class SignedOutOrUser(BasePermission):
    """For views open to anyone that act on the signed-in user when there is one (resending
    the verification email): an API token is refused there like on any account route."""

    def has_permission(self, request: Request, view: Any) -> bool:
        from core.problems import api_error

        principal = request.user
        if isinstance(principal, Principal) and principal.api_token is not None:
            raise api_error(fail(USER_ONLY))
        return True

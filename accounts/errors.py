"""The one error type of account flows: a stable ``code`` and the HTTP status it maps to."""

from __future__ import annotations


class AccountError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        attr: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.attr = attr
        self.retry_after = retry_after
        super().__init__(code)


INVALID_CREDENTIALS = (401, "invalid_credentials", "Email or password is incorrect.")
INVALID_TOKEN = (401, "invalid_token", "The token is invalid.")
TOKEN_EXPIRED = (401, "token_expired", "The token has expired.")
SESSION_REVOKED = (401, "session_revoked", "This session has been signed out.")
TOKEN_REUSED = (
    401,
    "token_reused",
    "This refresh token was already used; every token of its session is now revoked.",
)
ACCOUNT_LOCKED = (403, "account_locked", "This account is locked.")
TENANT_SUSPENDED = (403, "tenant_suspended", "This organisation is suspended.")


def fail(spec: tuple[int, str, str], *, attr: str | None = None) -> AccountError:
    status, code, detail = spec
    return AccountError(status, code, detail, attr=attr)

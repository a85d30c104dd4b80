"""The one error type of account flows: a stable ``code`` and the HTTP status it maps to."""

from __future__ import annotations

from core.errors import ServiceError


class AccountError(ServiceError):
    """A refusal of an account flow (core/errors.py); a 401 is a refused credential."""


class RoleError(ServiceError):
    """A write the caller's role does not allow (403 ``forbidden``): a viewer writing, a
    member managing the tenant. Not an AccountError: the credential is fine, so a socket
    answers it with an ``error`` and stays open instead of closing."""


INVALID_CREDENTIALS = (401, "invalid_credentials", "Email or password is incorrect.")
INVALID_TOKEN = (401, "invalid_token", "The token is invalid.")
TOKEN_EXPIRED = (401, "token_expired", "The token has expired.")
SESSION_REVOKED = (401, "session_revoked", "This session has been signed out.")
TOKEN_REUSED = (
    401,
    "token_reused",
    "This refresh token was already used; every token of its session is now revoked.",
)
NOT_FOUND = (404, "not_found", "Not found.")
MANAGERS_ONLY = (403, "forbidden", "Only owners and admins can do this.")
VIEWER_READ_ONLY = (403, "forbidden", "Viewers can read and join, not change anything.")
OWNERS_ONLY = (403, "forbidden", "Only an owner can grant, remove or invite an owner.")
ABOVE_OWN_ROLE = (403, "forbidden", "You cannot grant a role above your own.")
LAST_OWNER = (409, "last_owner", "A tenant needs at least one owner.")
ACCOUNT_LOCKED = (403, "account_locked", "This account is locked.")
TENANT_SUSPENDED = (403, "tenant_suspended", "This organisation is suspended.")


def fail(spec: tuple[int, str, str], *, attr: str | None = None) -> AccountError:
    status, code, detail = spec
    return AccountError(status, code, detail, attr=attr)


def refuse(spec: tuple[int, str, str]) -> RoleError:
    status, code, detail = spec
    return RoleError(status, code, detail)


# --- account recovery and the second factor (docs/accounts.md) ----------------------------
EMAIL_NOT_VERIFIED = (403, "email_not_verified", "Confirm your email address first.")
EMAIL_ALREADY_VERIFIED = (409, "email_already_verified", "This email address is already verified.")
INVALID_VERIFICATION_TOKEN = (
    400,
    "invalid_verification_token",
    "The verification token is invalid or was already used.",
)
VERIFICATION_TOKEN_EXPIRED = (
    400,
    "verification_token_expired",
    "The verification token has expired; ask for a new one.",
)
INVALID_RESET_TOKEN = (
    400,
    "invalid_reset_token",
    "The password reset token is invalid or was already used.",
)
RESET_TOKEN_EXPIRED = (
    400,
    "reset_token_expired",
    "The password reset token has expired; ask for a new one.",
)
INVALID_MFA_CHALLENGE = (
    401,
    "invalid_mfa_challenge",
    "The sign-in attempt is invalid or already completed; sign in again.",
)
MFA_CHALLENGE_EXPIRED = (
    401,
    "mfa_challenge_expired",
    "The sign-in attempt expired; sign in again.",
)
# 401 when completing a login, 400 elsewhere (the caller is signed in): see mfa_code_error.
INVALID_MFA_CODE = (400, "invalid_mfa_code", "The code is incorrect.")
MFA_CODE_REQUIRED = (400, "mfa_code_required", "Two-factor authentication is on: enter a code.")
MFA_CODE_REUSED = (400, "mfa_code_reused", "This code was already used; wait for the next one.")
MFA_ALREADY_ENABLED = (409, "mfa_already_enabled", "Two-factor authentication is already on.")
MFA_NOT_ENABLED = (409, "mfa_not_enabled", "Two-factor authentication is not on.")
MFA_NOT_ENROLLING = (409, "mfa_not_enrolling", "Start a two-factor enrolment first.")
WRONG_PASSWORD = (400, "wrong_password", "The password is incorrect.")


class MfaRequired(AccountError):
    """The password was right and the user has a second factor: finish with
    ``POST login/mfa`` and this challenge (shown once; only its digest is stored)."""

    def __init__(self, *, challenge: str, expires_in: int) -> None:
        super().__init__(401, "mfa_required", "Enter a code from your authenticator app.")
        self.challenge = challenge
        self.expires_in = expires_in

    def problem_members(self) -> dict[str, object]:
        return {
            "mfa_challenge": self.challenge,
            "mfa_challenge_expires_in": self.expires_in,
            "mfa_methods": ["totp", "recovery_code"],
        }


def throttled(retry_after: int) -> AccountError:
    return AccountError(
        429, "throttled", "Too many attempts; try again later.", retry_after=retry_after
    )


def rate_limited(retry_after: int) -> AccountError:
    return AccountError(
        429,
        "rate_limited",
        "Too many requests; wait Retry-After seconds.",
        retry_after=retry_after,
    )


def mfa_code_error(spec: tuple[int, str, str], *, login: bool) -> AccountError:
    """A refused code: 401 while completing a login (no one is signed in yet), else 400."""
    _, code, detail = spec
    return AccountError(401 if login else 400, code, detail, attr="code")


# --- API tokens (CONTRACT §7, docs/accounts.md "API tokens") -------------------------------
INSUFFICIENT_SCOPE = (403, "insufficient_scope", "This API token's scopes do not allow this.")
USER_ONLY = (
    403,
    "insufficient_scope",
    "API tokens cannot manage accounts, members, tokens, MFA or passwords; sign in instead.",
)

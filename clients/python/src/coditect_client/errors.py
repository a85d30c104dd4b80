"""Typed errors: RFC 9457 problems of the REST API, error messages and closes of the socket.

Every error the platform returns carries a stable ``code``; the class says what an agent can do
about it. ``ProblemError.from_problem`` picks the class from the code first (``version_conflict``
is a ``VersionConflict`` whether it came as a 412 or as a socket ``error``), then the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CoditectError(Exception):
    """Base class of everything this package raises."""


class TransportError(CoditectError):
    """The server could not be reached, or the connection broke before an answer."""


class ProblemError(CoditectError):
    """An error answer of the platform: a problem+json body, or a socket ``error`` message.

    ``status`` is the HTTP status (None for a socket error); ``errors`` lists the invalid
    fields (``{"attr", "code", "detail"}``); ``body`` is the whole problem or message.
    """

    def __init__(
        self,
        *,
        code: str,
        detail: str,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if status is None else f"{status} {code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.errors = list(errors or [])
        self.request_id = request_id
        self.body: dict[str, Any] = dict(body or {})
        self.headers: dict[str, str] = dict(headers or {})

    @staticmethod
    def from_problem(
        status: int | None, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> ProblemError:
        """The typed error of a problem+json body (or a socket ``error`` message)."""
        code = body.get("code")
        detail = body.get("detail")
        errors = body.get("errors")
        request_id = body.get("request_id")
        code = code if isinstance(code, str) and code else _STATUS_CODE.get(status or 0, "error")
        kind = _BY_CODE.get(code) or _BY_STATUS.get(status or 0)
        if kind is None:
            kind = ServerError if status is not None and status >= 500 else ProblemError
        return kind(
            code=code,
            detail=detail if isinstance(detail, str) else "",
            status=status,
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            request_id=request_id if isinstance(request_id, str) else None,
            body=body,
            headers=headers,
        )


class BadRequest(ProblemError):
    """400: the request is malformed or a field is invalid (see ``errors``)."""


class Unauthorized(ProblemError):
    """401: no valid credentials (bad, expired after a failed refresh, or revoked token)."""


class TokenExpired(Unauthorized):
    """401 ``token_expired``: the access token ran out; the client refreshes when it can."""


class Forbidden(ProblemError):
    """403: authenticated, but not allowed (a viewer writing, a quota, a token's scopes)."""


class NotFound(ProblemError):
    """404: no such record, or one of another tenant (never told apart)."""


class Conflict(ProblemError):
    """409: the request does not fit the current state (``email_taken``, ``last_owner``...)."""


class ResyncRequired(ProblemError):
    """410 ``resync_required``: the event log no longer reaches back to the asked seq;
    read the session's full state instead."""


class VersionConflict(ProblemError):
    """412 / socket ``version_conflict``: the record changed since the version you sent.

    ``current_version`` is the version now (from the ETag or the socket error), if known.
    """

    @property
    def current_version(self) -> int | None:
        value = self.body.get("current_version")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        etag = self.headers.get("etag", self.headers.get("ETag", "")).strip('W/"')
        return int(etag) if etag.isdigit() else None


class PayloadTooLarge(ProblemError):
    """413: the body, the state or the event data is over its limit."""


class RateLimited(ProblemError):
    """429: throttled; ``retry_after`` is the wait in seconds the server asked for."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after", self.headers.get("Retry-After"))
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ProblemError):
    """5xx: the server failed; quote ``request_id`` when reporting it."""


class LockHeld(ProblemError):
    """Socket ``lock_held``: another connection holds the lease (``holder``, ``expires_at``)."""

    @property
    def holder(self) -> dict[str, Any] | None:
        holder = self.body.get("holder")
        return holder if isinstance(holder, dict) else None


class LockNotHeld(ProblemError):
    """Socket ``lock_not_held``: renewing or releasing a lease this connection does not hold."""


class SocketError(CoditectError):
    """The socket cannot go on; ``close_code`` is the server's close code, when it sent one."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class SessionGone(SocketError):
    """Close 4404 (or a 404 at the handshake): the session does not exist, or was deleted."""


class SocketForbidden(SocketError):
    """Close 4403 (or 403 at the handshake): not allowed in, e.g. a refused ``Origin``."""


class AuthLost(SocketError):
    """Close 4401 and no fresh token to be had: the sign-in is gone (revoked, logged out)."""


class Disconnected(CoditectError):
    """The socket dropped before the answer came; the request may or may not have been
    applied (``publish`` is the exception: it finds out, see SessionSocket.publish)."""


class RequestTimeout(CoditectError):
    """No answer to a socket request within its timeout."""


class LockLost(CoditectError):
    """A lease this client held is gone: another connection took it after a drop, or it
    could not be renewed or re-acquired in time."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"lost the lock on {path}: {reason}")
        self.path = path
        self.reason = reason


_BY_CODE: dict[str, type[ProblemError]] = {
    "token_expired": TokenExpired,
    "resync_required": ResyncRequired,
    "version_conflict": VersionConflict,
    "rate_limited": RateLimited,
    "throttled": RateLimited,
    "lock_held": LockHeld,
    "lock_not_held": LockNotHeld,
    "not_found": NotFound,
    "forbidden": Forbidden,
}
_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: ResyncRequired,
    412: VersionConflict,
    413: PayloadTooLarge,
    429: RateLimited,
}
_STATUS_CODE = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    429: "throttled",
}

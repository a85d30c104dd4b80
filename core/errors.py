"""The one error model of services: what went wrong, as data each interface translates.

A service raises a ``ServiceError`` subclass of its app (``AccountError``,
``WorkspaceError``, ``LockError``) with the HTTP status it means, a stable ``code``, a static
``detail``, the field at fault (``attr``) and any context as data. It never builds a
response: each interface kind translates it in one place (docs/architecture.md, "Errors") —
REST in ``core.problems.exception_handler``, the socket in ``SessionConsumer.answer``, the
web sign-in endpoints in ``accounts.web_auth.account_problem``, the support admin in
``operations.admin_site``'s ``_StoreErrors``.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """``status`` (HTTP), ``code`` (stable), ``detail`` (static text), ``attr`` (the field at
    fault, None for the whole request), ``retry_after`` (seconds, for 429s) and ``context``:
    data the client may act on (``current_version`` of a ``version_conflict``, a lock's
    holder), sent beside the error on the socket; REST sends ``current_version`` as ETag."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        attr: str | None = None,
        retry_after: int | None = None,
        **context: Any,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.attr = attr
        self.retry_after = retry_after
        self.context = context
        super().__init__(code)

    @classmethod
    def version_check(cls, *, expected: int | None, current: int, detail: str) -> None:
        """Raise 412 ``version_conflict`` (with ``current_version``) when the client named
        a version (``If-Match``, a socket's ``base_version``) that is not ``current``."""
        if expected is not None and expected != current:
            raise cls(412, "version_conflict", detail, current_version=current)

    def problem_members(self) -> dict[str, object]:
        """Members a problem body carries beyond the standard ones (none by default)."""
        return {}

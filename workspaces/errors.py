"""The one error type of workspace services: a stable ``code`` and its HTTP status."""

from __future__ import annotations

from typing import Any


class WorkspaceError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, *, attr: str | None = None, **context: Any
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.attr = attr
        self.context = context  # e.g. current_version for a version_conflict
        super().__init__(code)

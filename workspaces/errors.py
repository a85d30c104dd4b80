"""The one error type of workspace services: a stable ``code`` and its HTTP status."""

from __future__ import annotations

from core.errors import ServiceError


class WorkspaceError(ServiceError):
    """A refusal of a workspace service (core/errors.py); ``context`` may carry the
    ``current_version`` of a ``version_conflict``."""

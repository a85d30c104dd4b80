"""The error of operations: what cannot be done, in one line for the operator."""

from __future__ import annotations


class MaintenanceError(Exception):
    """An operation that cannot be done; ``str(error)`` is one line for the operator."""

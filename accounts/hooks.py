"""What higher layers plug into accounts: the export and the erasure of one person.

A person's data is not all the accounts app's: the workspace sessions they own are the
workspaces app's, their sockets' connections and locks the realtime app's. Accounts cannot
import those apps (docs/architecture.md), so each registers, in its ``AppConfig.ready``, an
*export section* (what it stores about a user, as JSON) and an *erasure step* (remove it).
``accounts.services.erasure`` runs the accounts part itself, then every registered step, in
the order the apps registered them (the order of ``INSTALLED_APPS``).

A step is called after the user record is gone: it must be idempotent (an erasure that
stopped half way is finished by running it again, or by ``storage check --repair``) and
work in bounded transactions of its own.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class ExportSection(Protocol):
    def __call__(self, *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Any: ...


class ErasureStep(Protocol):
    def __call__(self, *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None: ...


_sections: dict[str, ExportSection] = {}
_steps: dict[str, ErasureStep] = {}


def export_section_register(name: str, section: ExportSection) -> None:
    """Add ``section`` to every export under the key ``name`` (registering a name again
    replaces it: ``ready`` may run more than once in tests)."""
    _sections[name] = section


def erasure_step_register(name: str, step: ErasureStep) -> None:
    """Run ``step`` in every erasure of a user (a name registered again is replaced)."""
    _steps[name] = step


def export_sections() -> list[tuple[str, ExportSection]]:
    return list(_sections.items())


def erasure_steps() -> list[tuple[str, ErasureStep]]:
    return list(_steps.items())

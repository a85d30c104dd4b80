"""The workspaces app's part of a person's export and erasure (accounts.hooks)."""

from __future__ import annotations

import uuid
from typing import Any

from core.time import rfc3339
from workspaces.services import (
    session_export_read,
    session_ids_of_owner,
    sessions_of_owner_erase,
)


def owned_sessions_export(
    *, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The sessions ``user_id`` owns, each with its state and the events still logged (one
    snapshot per session)."""
    exported = []
    for session_id in session_ids_of_owner(db=db, tenant_id=tenant_id, user_id=user_id):
        found = session_export_read(db=db, tenant_id=tenant_id, session_id=session_id)
        if found is None:
            continue  # deleted since the ids were read
        view, logged = found
        head, state = view.head, view.state
        exported.append(
            {
                "id": str(head.id),
                "name": head.name,
                "workspace_path": head.workspace_path,
                "active_files": state.active_files,
                "editor_state": state.editor_state,
                "terminal_state": state.terminal_state,
                "parent_session_id": str(head.parent_session_id)
                if head.parent_session_id
                else None,
                "related_session_ids": [str(i) for i in view.related_ids],
                "created_at": rfc3339(head.created_at),
                "last_active_at": rfc3339(head.last_active_at),
                "version": state.version,
                "seq": head.seq,
                "events": logged,
            }
        )
    return exported


def owned_sessions_erase(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    sessions_of_owner_erase(db=db, tenant_id=tenant_id, user_id=user_id)

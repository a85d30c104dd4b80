"""How workspace sessions look to clients: one presentation for REST and the socket."""

from __future__ import annotations

from typing import Any

from accounts.services import Principal
from core.time import rfc3339
from workspaces.services import SessionView


def session_json(view: SessionView, principal: Principal) -> dict[str, Any]:
    head, state = view.head, view.state
    return {
        "id": str(head.id),
        "tenant_id": str(principal.tenant_id),
        "owner_id": str(head.owner_id),
        "name": head.name,
        "workspace_path": head.workspace_path,
        "active_files": state.active_files,
        "editor_state": state.editor_state,
        "terminal_state": state.terminal_state,
        "parent_session_id": str(head.parent_session_id) if head.parent_session_id else None,
        "related_session_ids": [str(i) for i in view.related_ids],
        "created_at": rfc3339(head.created_at),
        "last_active_at": rfc3339(head.last_active_at),
        "version": state.version,
        "seq": head.seq,
    }

"""Support views over workspace sessions: list a tenant's, view one (its deletion, audited,
is one of the reason-only actions of operations/admin.py).

Registered on the admin site through ``operations.admin_site``; see docs/operations.md.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse

import fdb_backend
from accounts.records import Tenant
from operations import staff
from operations.admin_site import render, support_route, support_view, tenant_page
from workspaces.services import session_get_by_staff, session_list_by_staff

STATE_PREVIEW_CHARS = 20_000


@tenant_page(
    "workspace-sessions",
    "workspace_sessions",
    "Workspace sessions",
    "admin/support/workspace_sessions.html",
)
def _sessions(request: HttpRequest, db: Any, tenant: Tenant) -> dict[str, Any]:
    cursor = request.GET.get("cursor") or None
    page = session_list_by_staff(db=db, tenant_id=tenant.id, cursor=cursor)
    return {"rows": page.records, "next_cursor": page.continuation}


def _preview(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    if len(text) > STATE_PREVIEW_CHARS:
        return text[:STATE_PREVIEW_CHARS] + f"\n… ({len(text):,} characters in all)"
    return text


@support_view
def session_view(request: HttpRequest, tenant_id: uuid.UUID, session_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    tenant = staff.tenant_get(db=db, tenant_id=tenant_id)
    view = session_get_by_staff(db=db, tenant_id=tenant_id, session_id=session_id)
    return render(
        request,
        "admin/support/workspace_session.html",
        f"Workspace session {view.head.name}",
        {
            "tenant": tenant,
            "view": view,
            "head": view.head,
            "active_files": _preview(view.state.active_files),
            "editor_state": _preview(view.state.editor_state),
            "terminal_state": _preview(view.state.terminal_state),
            "can_delete": staff.can(request.user, "accounts.delete_workspace_session"),
        },
    )


support_route(
    "tenants/<uuid:tenant_id>/workspace-sessions/<uuid:session_id>/",
    session_view,
    "workspace_session",
)

"""Support views over workspace sessions: list a tenant's, view one, delete one (audited).

Registered on the admin site through ``operations.admin_site``; see docs/operations.md.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse

import fdb_backend
from operations import staff
from operations.admin_site import action, pick_tenant, render, support_route, support_view, url
from workspaces.services import session_get_by_staff, session_list_by_staff

STATE_PREVIEW_CHARS = 20_000


@support_view
def sessions_pick_view(request: HttpRequest) -> HttpResponse:
    return pick_tenant(request, "workspace_sessions", "Workspace sessions")


@support_view
def sessions_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    tenant = staff.tenant_overview(db=db, tenant_id=tenant_id, members=0).tenant
    page = session_list_by_staff(
        db=db, tenant_id=tenant_id, cursor=request.GET.get("cursor") or None
    )
    return render(
        request,
        "admin/support/workspace_sessions.html",
        f"Workspace sessions of {tenant.name}",
        {"tenant": tenant, "sessions": page.records, "next_cursor": page.continuation},
    )


def _preview(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    if len(text) > STATE_PREVIEW_CHARS:
        return text[:STATE_PREVIEW_CHARS] + f"\n… ({len(text):,} characters in all)"
    return text


@support_view
def session_view(request: HttpRequest, tenant_id: uuid.UUID, session_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    tenant = staff.tenant_overview(db=db, tenant_id=tenant_id, members=0).tenant
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


@support_view
def session_delete_view(
    request: HttpRequest, tenant_id: uuid.UUID, session_id: uuid.UUID
) -> HttpResponse:
    db = fdb_backend.get_database()
    head = session_get_by_staff(db=db, tenant_id=tenant_id, session_id=session_id).head

    def perform(reason: str) -> str:
        staff.staff_workspace_session_delete(
            db=db, staff=request.user, tenant_id=tenant_id, session_id=session_id, reason=reason
        )
        return f"Workspace session {head.name} deleted."

    return action(
        request,
        permission="accounts.delete_workspace_session",
        title=f"Delete workspace session {head.name}",
        target=f"workspace session {head.name} ({head.id}) at {head.workspace_path}",
        back=url("workspace_sessions", tenant_id),
        perform=perform,
        danger=True,
    )


support_route("workspace-sessions/", sessions_pick_view, "workspace_sessions_pick")
support_route("tenants/<uuid:tenant_id>/workspace-sessions/", sessions_view, "workspace_sessions")
support_route(
    "tenants/<uuid:tenant_id>/workspace-sessions/<uuid:session_id>/",
    session_view,
    "workspace_session",
)
support_route(
    "tenants/<uuid:tenant_id>/workspace-sessions/<uuid:session_id>/delete/",
    session_delete_view,
    "workspace_session_delete",
)

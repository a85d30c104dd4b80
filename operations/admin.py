"""The admin for support staff: the staff audit log, support views over tenants, users and
auth events (the pages of workspace sessions: operations/admin_sessions.py), and every action
that needs only a reason (``_ACTIONS``). Views parse, call a service in ``operations.staff``
and render; see docs/operations.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

import fdb_backend
from accounts.models import StaffAuditEntry
from accounts.records import Tenant
from accounts.services.quotas import QUOTA_MAX, quota_usage
from operations import staff
from operations.admin_site import (
    ReasonForm,
    View,
    action,
    render,
    staff_change,
    support_route,
    support_view,
    tenant_page,
    url,
)
from workspaces.services import session_get_by_staff


@admin.register(StaffAuditEntry)
class StaffAuditEntryAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the support actions and never changed."""

    list_display = ("created_at", "staff_username", "action", "target_type", "target_id", "reason")
    list_filter = ("action", "target_type")
    search_fields = ("staff_username", "target_id", "reason", "=tenant_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "staff",
        "staff_username",
        "action",
        "target_type",
        "target_id",
        "tenant_id",
        "reason",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- tenants ---------------------------------------------------------------------------


@support_view
def support_home(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(url("tenants"))


@support_view
def tenants_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")
    page = staff.tenant_search(
        db=fdb_backend.get_database(), query=query, cursor=request.GET.get("cursor") or None
    )
    return render(
        request,
        "admin/support/tenants.html",
        "Tenants",
        {"query": query, "rows": page.records, "next_cursor": page.continuation},
    )


@support_view
def tenant_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    overview = staff.tenant_overview(db=fdb_backend.get_database(), tenant_id=tenant_id)
    return render(
        request,
        "admin/support/tenant.html",
        f"Tenant {overview.tenant.name}",
        {
            "overview": overview,
            "tenant": overview.tenant,
            "can_suspend": staff.can(request.user, "accounts.suspend_tenant"),
            "can_change_quota": staff.can(request.user, QUOTA_PERMISSION),
        },
    )


QUOTA_PERMISSION = "accounts.change_tenant_quota"
_QUOTA_HELP = "Blank: the platform's default. 0: unlimited."


class QuotaForm(ReasonForm):
    """A tenant's own quotas (blank: the default, 0: unlimited) and the reason."""

    field_order = ("sessions", "bytes", "api_tokens", "reason")
    sessions = forms.IntegerField(
        required=False, min_value=0, max_value=QUOTA_MAX, label="Workspace sessions",
        help_text=_QUOTA_HELP,
    )  # fmt: skip
    bytes = forms.IntegerField(
        required=False, min_value=0, max_value=QUOTA_MAX, label="Stored bytes",
        help_text=_QUOTA_HELP,
    )  # fmt: skip
    api_tokens = forms.IntegerField(
        required=False, min_value=0, max_value=QUOTA_MAX, label="API tokens",
        help_text=_QUOTA_HELP,
    )  # fmt: skip


# --- users -----------------------------------------------------------------------------


@support_view
def users_view(request: HttpRequest) -> HttpResponse:
    email = request.GET.get("email", "")
    hits = staff.user_search(db=fdb_backend.get_database(), email=email) if email.strip() else []
    return render(request, "admin/support/users.html", "Users", {"email": email, "hits": hits})


@support_view
def user_view(request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID) -> HttpResponse:
    overview = staff.user_overview(
        db=fdb_backend.get_database(), tenant_id=tenant_id, user_id=user_id
    )
    member = overview.user
    return render(
        request,
        "admin/support/user_tokens.html",
        f"User {member.email}",
        {
            "overview": overview,
            "tenant": overview.tenant,
            "member": member,
            "can_lock": staff.can(request.user, "accounts.lock_user"),
            "can_revoke": staff.can(request.user, "accounts.revoke_sessions"),
            "mfa_on": member.totp_enabled_at is not None,
            "mfa_pending": member.totp_enabled_at is None and bool(member.totp_secret),
            "recovery_codes_left": len(member.recovery_codes),
            "api_tokens": staff.user_api_tokens(
                db=fdb_backend.get_database(), tenant_id=tenant_id, user_id=user_id
            ),
        },
    )


# --- actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:  # what an action page is about
    name: str  # in the page's title
    target: str  # what the page says it acts on
    back: str  # the page it goes back to


def _tenant_subject(db: Any, *, tenant_id: uuid.UUID, **_: uuid.UUID) -> _Subject:
    tenant = staff.tenant_get(db=db, tenant_id=tenant_id)
    return _Subject(
        f"tenant {tenant.name}",
        f"tenant {tenant.name} ({tenant.slug}, {tenant.id})",
        url("tenant", tenant_id),
    )


def _user_subject(db: Any, *, tenant_id: uuid.UUID, user_id: uuid.UUID, **_: uuid.UUID) -> _Subject:
    overview = staff.user_overview(db=db, tenant_id=tenant_id, user_id=user_id, events=0)
    user = overview.user
    return _Subject(
        user.email,
        f"user {user.email} ({user.id}) of tenant {overview.tenant.name}",
        url("user", tenant_id, user_id),
    )


def _session_subject(
    db: Any, *, tenant_id: uuid.UUID, session_id: uuid.UUID, **_: uuid.UUID
) -> _Subject:
    head = session_get_by_staff(db=db, tenant_id=tenant_id, session_id=session_id).head
    return _Subject(
        f"workspace session {head.name}",
        f"workspace session {head.name} ({head.id}) at {head.workspace_path}",
        url("workspace_sessions", tenant_id),
    )


@support_view
def tenant_quota_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    about = _tenant_subject(db, tenant_id=tenant_id)
    quotas = quota_usage(db, tenant_id=tenant_id)

    def perform(reason: str, **overrides: int | None) -> str:
        staff.staff_tenant_quota_set(
            db=db, staff=request.user, tenant_id=tenant_id, overrides=overrides, reason=reason
        )
        return f"Quotas of {about.name} changed."

    return action(
        request,
        permission=QUOTA_PERMISSION,
        title=f"Change the quotas of {about.name}",
        target=about.target,
        back=about.back,
        perform=perform,
        form_class=QuotaForm,
        initial={kind: quota.override for kind, quota in quotas.items()},
    )


@dataclass(frozen=True)
class _Action:
    """A support action that needs only a reason, as data: what it is about, the staff
    service it calls (with the route's ids and ``args``), its permission, the start of its
    page's title, and the success message made of what the service returned."""

    path: str  # its ids go to ``about``, to the service and to ``target``
    about: Callable[..., _Subject]
    change: Callable[..., Any]
    permission: str
    title: str
    done: Callable[[Any], str]
    args: dict[str, Any] = field(default_factory=dict)
    danger: bool = True
    target: str = ""  # what it acts on, formatted with the route's ids; default: ``about``'s


def _status_done(tenant: Tenant) -> str:
    return f"Tenant {tenant.name} is now {tenant.status}."


_TENANT = "tenants/<uuid:tenant_id>/"
_USER = _TENANT + "users/<uuid:user_id>/"
# One row a page: path, what it is about, the staff service, its permission, the title's
# start, the success message (of what the service returned), then the service's own args.
_ACTIONS = {
    "tenant_suspend": _Action(
        _TENANT + "suspend/", _tenant_subject, staff.staff_tenant_suspend,
        "accounts.suspend_tenant", "Suspend", _status_done, args={"suspended": True},
    ),
    "tenant_resume": _Action(
        _TENANT + "resume/", _tenant_subject, staff.staff_tenant_suspend,
        "accounts.suspend_tenant", "Resume", _status_done, args={"suspended": False},
        danger=False,
    ),
    "user_lock": _Action(
        _USER + "lock/", _user_subject, staff.staff_user_lock, "accounts.lock_user", "Lock",
        lambda _: "The user is locked; every session of theirs is revoked.",
    ),
    "user_unlock": _Action(
        _USER + "unlock/", _user_subject, staff.staff_user_lock, "accounts.lock_user", "Unlock",
        lambda _: "The user is unlocked; they can sign in again.",
        args={"locked": False}, danger=False,
    ),
    "user_revoke_all": _Action(
        _USER + "revoke-all/", _user_subject, staff.staff_sessions_revoke_all,
        "accounts.revoke_sessions", "Revoke every session of",
        lambda count: f"{count} sessions revoked.",
    ),
    "user_mfa_reset": _Action(
        _USER + "mfa-reset/", _user_subject, staff.staff_mfa_reset,
        "accounts.lock_user", "Reset two-factor authentication of",
        lambda _: "Two-factor authentication is off; the user signs in with the password alone.",
    ),
    "session_revoke": _Action(
        _USER + "sessions/<uuid:session_id>/revoke/", _user_subject, staff.staff_session_revoke,
        "accounts.revoke_sessions", "Revoke a session of",
        lambda done: "Session revoked." if done else "That session was already revoked.",
        target="auth session {session_id}",
    ),
    "api_token_revoke": _Action(
        _USER + "api-tokens/<uuid:token_id>/revoke/", _user_subject,
        staff.staff_api_token_revoke, "accounts.revoke_sessions", "Revoke an API token of",
        lambda token: f"API token {token.name} revoked.", target="API token {token_id}",
    ),
    "workspace_session_delete": _Action(
        _TENANT + "workspace-sessions/<uuid:session_id>/delete/", _session_subject,
        staff.staff_workspace_session_delete, "accounts.delete_workspace_session", "Delete",
        lambda head: f"Workspace session {head.name} deleted.",
    ),
}  # fmt: skip


def _action_view(spec: _Action) -> View:
    @support_view
    def view(request: HttpRequest, **ids: uuid.UUID) -> HttpResponse:
        about = spec.about(fdb_backend.get_database(), **ids)
        return action(
            request,
            permission=spec.permission,
            title=f"{spec.title} {about.name}",
            target=spec.target.format(**ids) or about.target,
            back=about.back,
            perform=staff_change(request, spec.change, spec.done, **ids, **spec.args),
            danger=spec.danger,
        )

    return view


# --- auth events -----------------------------------------------------------------------


@tenant_page("auth-events", "auth_events", "Auth events", "admin/support/auth_events.html")
def _auth_events(request: HttpRequest, db: Any, tenant: Tenant) -> dict[str, Any]:
    kind = request.GET.get("type", "")
    return {"events": staff.auth_events(db=db, tenant_id=tenant.id, type=kind), "type": kind}


support_route("", support_home, "home")
support_route("tenants/", tenants_view, "tenants")
support_route("tenants/<uuid:tenant_id>/", tenant_view, "tenant")
support_route("tenants/<uuid:tenant_id>/quota/", tenant_quota_view, "tenant_quota")
support_route("users/", users_view, "users")
support_route("tenants/<uuid:tenant_id>/users/<uuid:user_id>/", user_view, "user")
for name, spec in _ACTIONS.items():
    support_route(spec.path, _action_view(spec), name)

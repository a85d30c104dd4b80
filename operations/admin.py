"""The admin for support staff: the staff audit log, and support views over tenants, users
and auth events (workspace sessions: operations/admin_sessions.py). Views parse, call a service in
``operations.staff`` and render; see docs/operations.md.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

import fdb_backend
from accounts.models import StaffAuditEntry
from accounts.services.quotas import QUOTA_MAX
from operations import staff
from operations.admin_site import (
    ReasonForm,
    action,
    pick_tenant,
    render,
    support_route,
    support_view,
    url,
)


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
        {"query": query, "tenants": page.records, "next_cursor": page.continuation},
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


@support_view
def tenant_quota_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    overview = staff.tenant_overview(db=db, tenant_id=tenant_id, members=0)
    tenant = overview.tenant

    def perform(reason: str, **overrides: int | None) -> str:
        staff.staff_tenant_quota_set(
            db=db, staff=request.user, tenant_id=tenant_id, overrides=overrides, reason=reason
        )
        return f"Quotas of tenant {tenant.name} changed."

    return action(
        request,
        permission=QUOTA_PERMISSION,
        title=f"Change the quotas of tenant {tenant.name}",
        target=f"tenant {tenant.name} ({tenant.slug}, {tenant.id})",
        back=url("tenant", tenant_id),
        perform=perform,
        form_class=QuotaForm,
        initial={kind: quota.override for kind, quota in overview.quotas.items()},
    )


def _tenant_status(request: HttpRequest, tenant_id: uuid.UUID, *, suspended: bool) -> HttpResponse:
    db = fdb_backend.get_database()
    tenant = staff.tenant_overview(db=db, tenant_id=tenant_id, members=0).tenant
    verb = "Suspend" if suspended else "Resume"

    def perform(reason: str) -> str:
        changed = staff.staff_tenant_suspend(
            db=db, staff=request.user, tenant_id=tenant_id, reason=reason, suspended=suspended
        )
        return f"Tenant {changed.name} is now {changed.status}."

    return action(
        request,
        permission="accounts.suspend_tenant",
        title=f"{verb} tenant {tenant.name}",
        target=f"tenant {tenant.name} ({tenant.slug}, {tenant.id})",
        back=url("tenant", tenant_id),
        perform=perform,
        danger=suspended,
    )


@support_view
def tenant_suspend_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    return _tenant_status(request, tenant_id, suspended=True)


@support_view
def tenant_resume_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    return _tenant_status(request, tenant_id, suspended=False)


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


def _user_action(
    request: HttpRequest,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    permission: str,
    title: str,
    perform: Any,
    target: str = "",
    danger: bool = True,
) -> HttpResponse:
    overview = staff.user_overview(
        db=fdb_backend.get_database(), tenant_id=tenant_id, user_id=user_id, events=0
    )
    user = overview.user
    return action(
        request,
        permission=permission,
        title=f"{title} {user.email}",
        target=target or f"user {user.email} ({user.id}) of tenant {overview.tenant.name}",
        back=url("user", tenant_id, user_id),
        perform=perform,
        danger=danger,
    )


@support_view
def user_lock_view(request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID) -> HttpResponse:
    def perform(reason: str) -> str:
        staff.staff_user_lock(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            reason=reason,
        )
        return "The user is locked; every session of theirs is revoked."

    return _user_action(
        request, tenant_id, user_id, permission="accounts.lock_user", title="Lock", perform=perform
    )


@support_view
def user_unlock_view(
    request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> HttpResponse:
    def perform(reason: str) -> str:
        staff.staff_user_lock(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            reason=reason,
            locked=False,
        )
        return "The user is unlocked; they can sign in again."

    return _user_action(
        request,
        tenant_id,
        user_id,
        permission="accounts.lock_user",
        title="Unlock",
        perform=perform,
        danger=False,
    )


@support_view
def user_revoke_all_view(
    request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> HttpResponse:
    def perform(reason: str) -> str:
        count = staff.staff_sessions_revoke_all(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            reason=reason,
        )
        return f"{count} sessions revoked."

    return _user_action(
        request,
        tenant_id,
        user_id,
        permission="accounts.revoke_sessions",
        title="Revoke every session of",
        perform=perform,
    )


@support_view
def user_mfa_reset_view(
    request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> HttpResponse:
    def perform(reason: str) -> str:
        staff.staff_mfa_reset(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            reason=reason,
        )
        return "Two-factor authentication is off; the user signs in with the password alone."

    return _user_action(
        request,
        tenant_id,
        user_id,
        permission="accounts.lock_user",
        title="Reset two-factor authentication of",
        perform=perform,
    )


@support_view
def session_revoke_view(
    request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID
) -> HttpResponse:
    def perform(reason: str) -> str:
        done = staff.staff_session_revoke(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            reason=reason,
        )
        return "Session revoked." if done else "That session was already revoked."

    return _user_action(
        request,
        tenant_id,
        user_id,
        permission="accounts.revoke_sessions",
        title="Revoke a session of",
        target=f"auth session {session_id}",
        perform=perform,
    )


@support_view
def api_token_revoke_view(
    request: HttpRequest, tenant_id: uuid.UUID, user_id: uuid.UUID, token_id: uuid.UUID
) -> HttpResponse:
    def perform(reason: str) -> str:
        revoked = staff.staff_api_token_revoke(
            db=fdb_backend.get_database(),
            staff=request.user,
            tenant_id=tenant_id,
            user_id=user_id,
            token_id=token_id,
            reason=reason,
        )
        return f"API token {revoked.name} revoked."

    return _user_action(
        request,
        tenant_id,
        user_id,
        permission="accounts.revoke_sessions",
        title="Revoke an API token of",
        target=f"API token {token_id}",
        perform=perform,
    )


# --- auth events -----------------------------------------------------------------------


@support_view
def auth_events_pick_view(request: HttpRequest) -> HttpResponse:
    return pick_tenant(request, "auth_events", "Auth events")


@support_view
def auth_events_view(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    db = fdb_backend.get_database()
    tenant = staff.tenant_overview(db=db, tenant_id=tenant_id, members=0).tenant
    kind = request.GET.get("type", "")
    found = staff.auth_events(db=db, tenant_id=tenant_id, type=kind)
    return render(
        request,
        "admin/support/auth_events.html",
        f"Auth events of {tenant.name}",
        {"tenant": tenant, "events": found, "type": kind},
    )


support_route("", support_home, "home")
support_route("tenants/", tenants_view, "tenants")
support_route("tenants/<uuid:tenant_id>/", tenant_view, "tenant")
support_route("tenants/<uuid:tenant_id>/suspend/", tenant_suspend_view, "tenant_suspend")
support_route("tenants/<uuid:tenant_id>/quota/", tenant_quota_view, "tenant_quota")
support_route("tenants/<uuid:tenant_id>/resume/", tenant_resume_view, "tenant_resume")
support_route("users/", users_view, "users")
support_route("tenants/<uuid:tenant_id>/users/<uuid:user_id>/", user_view, "user")
support_route("tenants/<uuid:tenant_id>/users/<uuid:user_id>/lock/", user_lock_view, "user_lock")
support_route(
    "tenants/<uuid:tenant_id>/users/<uuid:user_id>/unlock/", user_unlock_view, "user_unlock"
)
support_route(
    "tenants/<uuid:tenant_id>/users/<uuid:user_id>/revoke-all/",
    user_revoke_all_view,
    "user_revoke_all",
)
support_route(
    "tenants/<uuid:tenant_id>/users/<uuid:user_id>/mfa-reset/",
    user_mfa_reset_view,
    "user_mfa_reset",
)
support_route(
    "tenants/<uuid:tenant_id>/users/<uuid:user_id>/sessions/<uuid:session_id>/revoke/",
    session_revoke_view,
    "session_revoke",
)
support_route(
    "tenants/<uuid:tenant_id>/users/<uuid:user_id>/api-tokens/<uuid:token_id>/revoke/",
    api_token_revoke_view,
    "api_token_revoke",
)
support_route("auth-events/", auth_events_pick_view, "auth_events_pick")
support_route("tenants/<uuid:tenant_id>/auth-events/", auth_events_view, "auth_events")

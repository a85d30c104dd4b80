"""Staff-side data in the ORM: the audit log of support staff actions (docs/operations.md).

Tenants, users and sessions are not here: they live in the storage layer. Staff accounts are
Django's own users; what they may do is Django permissions, declared on this model.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# Permissions of the support views (codename, name). ``view_support`` opens the pages; each
# action needs its own permission too, so a read-only support role holds only the first.
SUPPORT_PERMISSIONS = (
    ("view_support", "Can view tenants, users and sessions in the support views"),
    ("suspend_tenant", "Can suspend and resume tenants"),
    ("lock_user", "Can lock and unlock tenant users"),
    ("revoke_sessions", "Can revoke tenant users' auth sessions"),
    ("delete_workspace_session", "Can delete workspace sessions"),
    ("change_tenant_quota", "Can change tenants' quotas"),
)


class StaffAuditEntry(models.Model):
    """One action of a staff member: who, what, on which target, why, when. Never edited."""

    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
    )
    # Kept apart from the foreign key, so an entry still names its author after the staff
    # account is deleted.
    staff_username = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, db_index=True)
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    # The tenant user the action was about (locked, signed out, a token revoked), when there
    # is one: the tenant audit log's ``?user_id=`` (GET /api/v5/tenant/audit).
    user_id = models.UUIDField(null=True, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")
        # The tenant audit log reads a tenant's entries newest first, all of them or one
        # user's or one action's, from the matching index.
        indexes = (
            models.Index(fields=("tenant_id", "-created_at", "-id"), name="staff_audit_tenant"),
            models.Index(
                fields=("tenant_id", "user_id", "-created_at", "-id"), name="staff_audit_user"
            ),
            models.Index(
                fields=("tenant_id", "action", "-created_at", "-id"), name="staff_audit_action"
            ),
        )
        verbose_name = "staff audit entry"
        verbose_name_plural = "staff audit log"
        # Entries are written by the support views only: no add, change or delete.
        default_permissions = ("view",)
        permissions = SUPPORT_PERMISSIONS

    def __str__(self) -> str:
        return f"{self.staff_username} {self.action} {self.target_type} {self.target_id}"

"""Staff audit entries name the tenant user they were about (``user_id``) and are indexed for
the tenant audit log (GET /api/v5/tenant/audit): by tenant, tenant and user, tenant and
action, each newest first. Existing entries about a user get their ``user_id`` from their
target; those about an auth session or token keep none (the entry never said whose).
"""

from typing import Any

from django.conf import settings
from django.db import migrations, models


def fill_user_ids(apps: Any, schema_editor: Any) -> None:
    entries = apps.get_model("accounts", "StaffAuditEntry")
    for entry in entries.objects.filter(target_type="user", user_id__isnull=True).iterator():
        entry.user_id = entry.target_id
        entry.save(update_fields=["user_id"])


class Migration(migrations.Migration):
    dependencies = (
        ("accounts", "0002_support_groups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    )

    operations = (
        migrations.AddField(
            model_name="staffauditentry",
            name="user_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.RunPython(fill_user_ids, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="staffauditentry",
            index=models.Index(
                fields=["tenant_id", "-created_at", "-id"], name="staff_audit_tenant"
            ),
        ),
        migrations.AddIndex(
            model_name="staffauditentry",
            index=models.Index(
                fields=["tenant_id", "user_id", "-created_at", "-id"], name="staff_audit_user"
            ),
        ),
        migrations.AddIndex(
            model_name="staffauditentry",
            index=models.Index(
                fields=["tenant_id", "action", "-created_at", "-id"], name="staff_audit_action"
            ),
        ),
    )

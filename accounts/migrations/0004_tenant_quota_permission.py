"""The support action of issue 16 part 5: changing a tenant's quotas, held by "Support"."""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = (
    ("view_support", "Can view tenants, users and sessions in the support views"),
    ("suspend_tenant", "Can suspend and resume tenants"),
    ("lock_user", "Can lock and unlock tenant users"),
    ("revoke_sessions", "Can revoke tenant users' auth sessions"),
    ("delete_workspace_session", "Can delete workspace sessions"),
    ("change_tenant_quota", "Can change tenants' quotas"),
)


def grant(apps: Any, schema_editor: Any) -> None:
    config = apps.get_app_config("accounts")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name="Support")
    group.permissions.add(
        *apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="accounts", codename="change_tenant_quota"
        )
    )


class Migration(migrations.Migration):
    dependencies = (("accounts", "0003_staff_audit_user"),)

    operations = (
        migrations.AlterModelOptions(
            name="staffauditentry",
            options={
                "default_permissions": ("view",),
                "ordering": ("-created_at", "-id"),
                "permissions": PERMISSIONS,
                "verbose_name": "staff audit entry",
                "verbose_name_plural": "staff audit log",
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    )

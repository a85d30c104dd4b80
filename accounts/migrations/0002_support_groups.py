"""The two support roles as groups: "Support (read-only)" views, "Support" also acts.

Permissions are normally created after all migrations ran (post_migrate); they are created
here first so that the groups can hold them on a fresh database.
"""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ_ONLY = ("view_support", "view_staffauditentry")
ACTIONS = ("suspend_tenant", "lock_user", "revoke_sessions", "delete_workspace_session")
GROUPS = {"Support (read-only)": READ_ONLY, "Support": READ_ONLY + ACTIONS}


def create_groups(apps: Any, schema_editor: Any) -> None:
    config = apps.get_app_config("accounts")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label="accounts", codename__in=codenames
            )
        )


def remove_groups(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    )

    operations = (migrations.RunPython(create_groups, remove_groups),)

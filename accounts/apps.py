from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Registers the OpenAPI description of bearer authentication.
        from accounts import schema  # noqa: F401 - imported for its registration


class SupportAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, whose default site also serves the support views (named in
    INSTALLED_APPS in admin's place; never the accounts app's own config)."""

    default = False

    default_site = "accounts.admin_support.SupportAdminSite"

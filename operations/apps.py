from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        # The workspace sessions pages register their support routes on import; the
        # admin's autodiscovery (operations.admin) has run by now.
        from operations import admin_sessions  # noqa: F401


class SupportAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, whose default site also serves the support views (named in
    INSTALLED_APPS in admin's place; never the operations app's own config)."""

    default = False

    default_site = "operations.admin_site.SupportAdminSite"

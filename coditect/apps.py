from django.apps import AppConfig


class CoditectConfig(AppConfig):
    """The project package as an app, so its system checks are registered at startup."""

    name = "coditect"
    verbose_name = "Coditect"

    def ready(self) -> None:
        from coditect import checks  # noqa: F401  (registers the checks on import)

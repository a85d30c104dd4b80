from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        # Workspaces' session list shows live connection counts, which only this app knows.
        from realtime.services import connection_counts
        from workspaces.hooks import live_counts_register

        live_counts_register(connection_counts)

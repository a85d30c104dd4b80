from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"

    def ready(self) -> None:
        # Workspaces' session list shows live connection counts, which only this app knows.
        from realtime.services import connection_counts
        from workspaces.hooks import live_counts_register

        live_counts_register(connection_counts)

        # A person's export and erasure (accounts.hooks): their connections, locks and the
        # events that name them. Registered after workspaces' step (INSTALLED_APPS order), so
        # their own sessions are gone before the tenant's events are scrubbed.
        from accounts.hooks import erasure_step_register, export_section_register
        from realtime.services import presence_of_user, presence_of_user_erase

        export_section_register("presence", presence_of_user)
        erasure_step_register("presence", presence_of_user_erase)

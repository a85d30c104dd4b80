from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspace sessions"

    def ready(self) -> None:
        # A person's export and erasure (accounts.hooks): the sessions they own.
        from accounts.hooks import erasure_step_register, export_section_register
        from workspaces.data_rights import owned_sessions_erase, owned_sessions_export

        export_section_register("workspace_sessions", owned_sessions_export)
        erasure_step_register("workspace_sessions", owned_sessions_erase)

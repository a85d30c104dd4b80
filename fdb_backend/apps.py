from django.apps import AppConfig


class FdbBackendConfig(AppConfig):
    name = "fdb_backend"
    label = "fdb_backend"
    verbose_name = "Storage"

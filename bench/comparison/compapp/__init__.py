"""Django project and app of the conventional comparison build (see ../README.md)."""

"""Fixtures shared by every app's tests.

pytest-django imports the settings before any conftest, so environment variables set here
come too late for them: a test that needs another setting uses the ``settings`` fixture
(``fdb_backend.get_database()`` follows ``settings.CODITECT_STORAGE_URL`` when it changes).
"""

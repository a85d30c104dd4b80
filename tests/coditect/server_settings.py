"""The project's settings with the test routes of tests/coditect/urls.py, for a real server
that a test starts (``DJANGO_SETTINGS_MODULE=tests.coditect.server_settings``)."""

from coditect.settings import *  # noqa: F403 - every project setting; only the routes differ

ROOT_URLCONF = "tests.coditect.urls"

"""WSGI entry point for gunicorn: ``compapp.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compapp.settings")

application = get_wsgi_application()

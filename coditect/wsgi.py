"""The WSGI entry point, for deployments that serve REST from sync workers.

WebSocket needs the ASGI application (coditect.asgi) under daphne.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")

application = get_wsgi_application()

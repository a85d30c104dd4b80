"""The WSGI entry point, for deployments that serve REST from sync workers.

WebSocket needs the ASGI application (coditect.asgi) under daphne.
"""

import os

from django.core.wsgi import get_wsgi_application

from coditect.proxies import trusted_proxies_wsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")

# The client's address and scheme: a trusted proxy's X-Forwarded-* headers, or the TCP peer's.
application = trusted_proxies_wsgi(get_wsgi_application())

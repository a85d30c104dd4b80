"""ASGI entry point for daphne: ``compapp.asgi:application``.

Plain Django ASGI (no Channels): every view is sync and runs in Django's thread-sensitive
executor, which is how a conventional DRF app behaves under an ASGI server.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compapp.settings")

application = get_asgi_application()

"""ASGI application of the stock consumer: WebSocket only, on the platform's socket path."""

from __future__ import annotations

import os

import django
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.stock_consumer.settings")
django.setup()

from bench.stock_consumer.consumers import StockConsumer

application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [re_path(r"^ws/sessions/(?P<session_id>[^/]+)/?$", StockConsumer.as_asgi())]
        ),
    }
)

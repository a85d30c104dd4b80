"""WebSocket routes, mounted by coditect.asgi behind the allowed-hosts origin check."""

from django.urls import URLPattern, URLResolver

websocket_urlpatterns: list[URLPattern | URLResolver] = []

"""WebSocket routes, mounted by coditect.asgi behind the allowed-hosts origin check."""

from django.urls import URLPattern, URLResolver, re_path

from realtime.consumers import SessionConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^ws/sessions/(?P<session_id>[^/]+)/?$", SessionConsumer.as_asgi()),
]

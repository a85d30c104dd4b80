"""The ASGI entry point: HTTP to Django (with the static files of the admin), WebSocket to Channels.

`make start` serves it with daphne and the platform's WebSocket options (coditect/serve.py);
plain ``daphne coditect.asgi:application`` works too (docs/operations.md says what it lacks).
"""

import gc
import os
from collections.abc import Awaitable, Callable
from typing import Any, cast

from channels.routing import ProtocolTypeRouter, URLRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application
from django.urls import re_path

from coditect.api_lane import ApiLane
from coditect.origins import SocketOriginCheck
from coditect.proxies import TrustedProxies
from coditect.request_threads import ReusedRequestThreads

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")

# Set up Django before importing the routes: consumers import code that needs the app registry.
# One daphne process is a whole deployment by default, so it serves the admin's static files
# itself; a proxy in front may serve `collectstatic`'s output instead.
# API paths through the sync handler in one thread hop (coditect/api_lane.py); pages, the
# admin and static files through Django's ASGI handler.
_http = ApiLane(ReusedRequestThreads(ASGIStaticFilesHandler(get_asgi_application())))


async def _no_such_route(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    # Refuse the handshake (HTTP 403) instead of letting URLRouter raise, which daphne turns
    # into a 500 and a logged traceback for every scanner that probes a path.
    await receive()
    await send({"type": "websocket.close"})


def _websocket_routes() -> URLRouter:
    from realtime.routing import websocket_urlpatterns

    # Channels routes ASGI apps with Django's patterns; django-stubs only knows views there.
    catch_all = re_path(r"", cast(Any, _no_such_route))
    return URLRouter([*websocket_urlpatterns, catch_all])


# The client's address and scheme: a trusted proxy's X-Forwarded-* headers, or the TCP peer's.
application = TrustedProxies(
    ProtocolTypeRouter(
        {
            "http": _http,
            # Browsers send any site's cookies and tokens on a cross-site WebSocket; only pages
            # from an allowed host or CORS origin may open one (coditect/origins.py).
            "websocket": SocketOriginCheck(_websocket_routes()),
        }
    )
)

# Everything loaded so far (Django, the apps, the URL conf) lives as long as the process: out
# of the collector's sight, a full collection no longer walks it, which took tens of
# milliseconds of a busy server's event loop at a time.
gc.freeze()

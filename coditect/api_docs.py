"""The API's browsable docs: Swagger UI at /api/v5/docs/ and Redoc at /api/v5/redoc/.

Both are drf-spectacular's views with drf-spectacular-sidecar's builds of Swagger UI and Redoc,
served as this server's static files: nothing is fetched from another site. Swagger UI's
initializer is served as a script of its own (``?script``, drf-spectacular's split view), so
the pages run no inline script; their Content-Security-Policy (below) allows scripts from this
origin only. "Try it out" sends its requests to this origin with the token given under
"Authorize".

The views are wrapped in plain functions: the schema documents the API, not its docs pages,
and the route sweeps of tests/reliability (which list DRF views) leave them out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

View = Callable[..., HttpResponseBase]

_COMMON = [
    "default-src 'none'",
    "script-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
]
# Swagger UI sets styles through the DOM (not inline), so its page needs nothing more.
SWAGGER_CSP = "; ".join([*_COMMON, "style-src 'self'"])
# Redoc's styled-components adds <style> elements, and its search index is built in a worker
# made from a blob: URL; scripts stay this origin's only (checked in Chromium:
# tests/coditect/test_api_docs_browser.py).
REDOC_CSP = "; ".join([*_COMMON, "style-src 'self' 'unsafe-inline'", "worker-src blob:"])


def _with_policy(view: View, policy: str) -> View:
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = policy
        # The page and its initializer change with each deployment's schema URL and settings.
        response["Cache-Control"] = "no-cache"
        return response

    page.__name__ = getattr(view, "__name__", "page")
    return csrf_exempt(page)


swagger_ui = _with_policy(
    SpectacularSwaggerSplitView.as_view(
        url_name="schema", template_name="api_docs/swagger_ui.html"
    ),
    SWAGGER_CSP,
)
redoc = _with_policy(
    SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html"),
    REDOC_CSP,
)

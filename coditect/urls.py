"""The project's routes. Every API route is served with and without its trailing slash."""

from pathlib import Path

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView

from accounts import api as accounts_api
from accounts import urls as accounts_urls
from coditect.api_docs import redoc, swagger_ui
from coditect.health import healthz, readyz
from coditect.metrics import metrics_view
from core.routes import optional_slash
from workspaces import api as workspaces_api
from workspaces import urls as workspaces_urls

# Browsers ask for /favicon.ico whatever the page says; an SVG answers it (every current
# browser takes one there) instead of a 404 in every log.
FAVICON = (Path(__file__).parent / "static" / "coditect" / "favicon.svg").read_bytes()


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON, content_type="image/svg+xml")


urlpatterns = [
    # The hot API routes first: Django tries the patterns in order on every request, and no
    # other route shares their prefixes, so the order changes nothing but the work.
    *optional_slash("api/v5/sessions", workspaces_api.SessionsView.as_view(), name="sessions"),
    path("api/v5/sessions/", include(workspaces_urls.urlpatterns)),
    path("api/v5/auth/", include(accounts_urls.auth)),
    *optional_slash("api/v5/tenant/", accounts_api.TenantView.as_view(), name="tenant"),
    path("api/v5/tenant/", include(accounts_urls.tenant)),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    *optional_slash("healthz", healthz, name="healthz"),
    *optional_slash("readyz", readyz, name="readyz"),
    # Prometheus' scrape, for CODITECT_METRICS_ALLOW only (coditect/metrics.py).
    *optional_slash("metrics", metrics_view, name="metrics"),
    *optional_slash("api/v5/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and Redoc, from this server's static files (coditect/api_docs.py).
    *optional_slash("api/v5/docs/", swagger_ui, name="api-docs"),
    *optional_slash("api/v5/redoc/", redoc, name="api-redoc"),
    *optional_slash(".well-known/jwks.json", accounts_api.JwksView.as_view(), name="jwks"),
    path("", include("coditect.page_urls")),
]

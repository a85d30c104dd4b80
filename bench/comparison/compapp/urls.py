"""Routes under /api/v5/, each matched with and without a trailing slash (no redirects)."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, re_path

from . import views

_UUID = r"(?P<pk>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"


def route(path: str, view: Any, name: str) -> URLPattern:
    """One pattern for ``path`` and ``path/``: POSTs must not be redirected."""
    return re_path(rf"^{path}/?$", view, name=name)


urlpatterns = [
    route("healthz", views.healthz, "healthz"),
    route("api/v5/auth/register", views.RegisterView.as_view(), "register"),
    route("api/v5/auth/login", views.LoginView.as_view(), "login"),
    route("api/v5/auth/refresh", views.RefreshView.as_view(), "refresh"),
    route("api/v5/auth/logout", views.LogoutView.as_view(), "logout"),
    route("api/v5/auth/logout-all", views.LogoutAllView.as_view(), "logout-all"),
    route("api/v5/auth/me", views.MeView.as_view(), "me"),
    route("api/v5/sessions", views.SessionListCreateView.as_view(), "sessions"),
    route(f"api/v5/sessions/{_UUID}", views.SessionDetailView.as_view(), "session"),
]

handler404 = "compapp.views.not_found"

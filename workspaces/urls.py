"""Routes of CONTRACT §3, each with and without its trailing slash."""

from django.urls import URLPattern

from core.routes import optional_slash
from workspaces import api

urlpatterns: list[URLPattern] = [
    *optional_slash("<str:session_id>", api.SessionDetailView.as_view(), name="session"),
    *optional_slash("<str:session_id>/fork", api.ForkView.as_view(), name="session-fork"),
    *optional_slash("<str:session_id>/related", api.RelatedView.as_view(), name="session-related"),
    *optional_slash("<str:session_id>/events", api.EventsView.as_view(), name="session-events"),
]

"""The sessions dashboard page (docs/web.md): a shell its script fills from the REST API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from accounts.pages import render_page


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/dashboard.html", {"nav": "sessions"})

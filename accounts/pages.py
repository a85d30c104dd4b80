"""The platform's web pages for accounts (sign in, register, sign out, account, email
verification, password reset); docs/web.md.

Every page is a shell: a template with forms and empty regions, and a script that fills them
from the REST API and the WebSocket with the access token it holds in memory. A shell carries
no tenant's data, so rendering one needs no sign-in; the API decides what its script may see.
``render_page`` is the one way pages are rendered: it adds a strict Content-Security-Policy
(scripts and styles from this origin only, no inline code) and keeps shells out of caches.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_safe

INVITATION_MAX = 300


def content_security_policy(request: HttpRequest) -> str:
    socket = ("wss://" if request.is_secure() else "ws://") + request.get_host()
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            # Browsers disagree on whether 'self' covers ws: and wss:, so the socket is named.
            f"connect-src 'self' {socket}",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def render_page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None
) -> HttpResponse:
    response = render(request, template, context or {})
    response["Content-Security-Policy"] = content_security_policy(request)
    # The shell embeds a CSRF token: a shared cache must not hand it to someone else.
    response["Cache-Control"] = "no-store"
    return response


def safe_next(request: HttpRequest) -> str:
    """Where to go after signing in: ``?next=`` when it is a path on this site."""
    wanted = request.GET.get("next", "")
    if wanted.startswith("/") and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("web-dashboard")


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(reverse("web-dashboard"))


@require_safe
def signin(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/signin.html", {"next": safe_next(request)})


@require_safe
def register(request: HttpRequest) -> HttpResponse:
    invitation = request.GET.get("invitation", "")[:INVITATION_MAX]
    return render_page(request, "web/register.html", {"invitation": invitation})


@require_safe
def signout(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/signout.html")


@require_safe
def account(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/account.html", {"nav": "account"})


@require_safe
def audit(request: HttpRequest) -> HttpResponse:
    """The team's audit log (owners and admins: GET /api/v5/tenant/audit decides)."""
    return render_page(request, "web/audit.html", {"nav": "account"})


# The pages the account mail links to (accounts/mail.py ``mail_link``): the token is in the
# URL's fragment, which the browser keeps to itself; the script reads it and POSTs it.


@require_safe
def verify_email(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/verify_email.html")


@require_safe
def forgot_password(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/forgot_password.html")


@require_safe
def reset_password(request: HttpRequest) -> HttpResponse:
    return render_page(request, "web/reset_password.html")

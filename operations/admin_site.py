"""The support views' plumbing: their URLs on the admin site, access, the reason form.

Support views are admin pages over the storage layer (docs/operations.md). Each app adds
its own with ``support_route`` from its ``admin.py``; ``SupportAdminSite`` serves them
under ``/admin/support/``, behind ``AdminSite.admin_view`` (staff status, CSRF, no
caching). Every view also needs ``accounts.view_support``; every action its own
permission, checked again by the service that performs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.errors import AccountError
from fdb_backend.records import InvalidContinuation
from operations.staff import REASON_MAX, StaffForbidden, StaffInvalid, can
from operations.tenants import MaintenanceError, tenant_resolve
from workspaces.errors import WorkspaceError

VIEW_PERMISSION = "accounts.view_support"

View = Callable[..., HttpResponse]
_routes: list[tuple[str, View, str]] = []


def support_route(route: str, view: View, name: str) -> None:
    """Serve ``view`` at ``/admin/support/<route>`` as ``admin:support_<name>``."""
    _routes.append((route, view, name))


class SupportAdminSite(AdminSite):
    """The admin site, with the support routes ahead of its own (accounts.apps makes it the
    default site, as Django's docs describe for overriding the admin site)."""

    def get_urls(self) -> list[URLPattern | Any]:
        support = [
            path(f"support/{route}", self.admin_view(view), name=f"support_{name}")
            for route, view, name in _routes
        ]
        return support + super().get_urls()


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:support_{name}", args=args)


class _StoreErrors:
    """Map the services' refusals to HTTP: 404 for what does not exist, 403, bad cursors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is None:
            return
        status = getattr(error, "status", None)
        if isinstance(error, AccountError | WorkspaceError) and status == 404:
            raise Http404("not found") from None
        if isinstance(error, StaffForbidden):
            raise PermissionDenied from None
        if isinstance(error, InvalidContinuation):
            raise Http404("invalid cursor") from None


def support_view(view: View) -> View:
    """A support page: needs ``accounts.view_support`` (403 without); the services'
    not-found errors become 404."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can(request.user, VIEW_PERMISSION):
            raise PermissionDenied
        with _StoreErrors():
            return view(request, *args, **kwargs)

    return wrapper


def render(
    request: HttpRequest, template: str, title: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """A page inside the admin's look (navigation, breadcrumbs, messages)."""
    return TemplateResponse(
        request,
        template,
        {**admin.site.each_context(request), "title": title, **context},
        status=status,
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Written to the staff audit log with your name and the time.",
    )


def action(
    request: HttpRequest,
    *,
    permission: str,
    title: str,
    target: str,
    back: str,
    perform: Callable[[str], str],
    danger: bool = False,
) -> HttpResponse:
    """A staff action: GET asks for a reason, POST (with CSRF) calls ``perform(reason)``,
    which returns the success message, and goes back to ``back``.

    Without ``permission`` both are 403; a missing reason shows the form again (400).
    """
    if not can(request.user, VIEW_PERMISSION) or not can(request.user, permission):
        raise PermissionDenied
    status = 200
    form = ReasonForm()
    if request.method == "POST":
        form = ReasonForm(request.POST)
        if form.is_valid():
            try:
                with _StoreErrors():
                    message = perform(form.cleaned_data["reason"])
            except StaffInvalid as error:
                form.add_error("reason", error.detail)
            else:
                messages.success(request, message)
                return HttpResponseRedirect(back)
        status = 400
    return render(
        request,
        "admin/support/confirm.html",
        title,
        {"form": form, "target": target, "back": back, "danger": danger},
        status=status,
    )


def pick_tenant(request: HttpRequest, name: str, title: str) -> HttpResponse:
    """A page that asks for a tenant (id or slug) and goes on to its ``name`` page."""
    import fdb_backend

    ref = request.GET.get("tenant", "").strip()
    error = ""
    if ref:
        try:
            tenant = tenant_resolve(db=fdb_backend.get_database(), ref=ref)
        except MaintenanceError:
            error = f"No tenant with id or slug {ref!r}."
        else:
            return HttpResponseRedirect(url(name, tenant.id))
    return render(
        request,
        "admin/support/pick_tenant.html",
        title,
        {"ref": ref, "error": error, "target": name},
        status=404 if error else 200,
    )

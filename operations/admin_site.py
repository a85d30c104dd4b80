"""The support views' plumbing: their URLs on the admin site, access, the reason form.

Support views are admin pages over the storage layer (docs/operations.md). Each app adds
its own with ``support_route`` from its ``admin.py``; ``SupportAdminSite`` serves them
under ``/admin/support/``, behind ``AdminSite.admin_view`` (staff status, CSRF, no
caching). Every view also needs ``accounts.view_support``; every action its own
permission, checked again by the service that performs it.

Staff can read every tenant, so the site's sign-in is guarded too: a TOTP second factor
(django-otp; ``CODITECT_STAFF_OTP_REQUIRED``, on by default) on top of the password, a
lockout after repeated failures per username and per client address (HTTP 429), and every
sign-in, refusal, lockout and sign-out in the staff audit log (docs/operations.md).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

import fdb_backend
from accounts.records import Tenant
from core.errors import ServiceError
from fdb_backend.records import InvalidContinuation
from operations.errors import MaintenanceError
from operations.staff import (
    REASON_MAX,
    StaffForbidden,
    StaffInvalid,
    StaffLoginLocked,
    can,
    staff_login_check,
    staff_login_fail,
    staff_login_record,
    staff_logout_record,
    tenant_get,
)
from operations.tenants import tenant_resolve

VIEW_PERMISSION = "accounts.view_support"

View = Callable[..., HttpResponse]
_routes: list[tuple[str, View, str]] = []


def support_route(route: str, view: View, name: str) -> None:
    """Serve ``view`` at ``/admin/support/<route>`` as ``admin:support_<name>``."""
    _routes.append((route, view, name))


def client_address(request: HttpRequest | None) -> str:
    return str(request.META.get("REMOTE_ADDR", "") if request is not None else "")[:64]


NO_DEVICE = (
    "This staff account has no second-factor device, and staff without one cannot sign in: "
    "they could read every tenant with a password alone. Ask an operator to enrol one with "
    "'manage.py staff_otp add %(username)s'."
)
LOCKED = (
    "Too many failed sign-ins for this username or from this address. "
    "Try again in %(minutes)d minutes."
)


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Django's admin login form with django-otp's token fields, throttled and audited.

    A locked username or address is refused before the password is checked (code
    ``locked``); with ``CODITECT_STAFF_OTP_REQUIRED`` a staff member also needs a TOTP token
    of one of their confirmed devices (code ``no_device`` when they have none).
    """

    locked_for = 0  # seconds, once the form refused a locked sign-in

    def clean(self) -> dict[str, Any]:
        db = fdb_backend.get_database()
        username = str(self.data.get("username", ""))
        address = client_address(self.request)
        try:
            staff_login_check(db=db, username=username, address=address)
        except StaffLoginLocked as locked:
            self.locked_for = locked.retry_after
            raise ValidationError(
                LOCKED, code="locked", params={"minutes": -(-locked.retry_after // 60)}
            ) from None
        try:
            self.cleaned_data = AdminAuthenticationForm.clean(self)
            if settings.CODITECT_STAFF_OTP_REQUIRED:
                self._second_factor()
        except ValidationError as error:
            codes = sorted({e.code or "invalid" for e in error.error_list})
            staff_login_fail(db=db, username=username, address=address, reason=", ".join(codes))
            raise
        return self.cleaned_data

    def _second_factor(self) -> None:
        user = self.get_user()
        if user is None:
            return  # a field is missing: its own error says so
        devices = list(devices_for_user(user, confirmed=True))
        if not devices:
            raise ValidationError(
                NO_DEVICE, code="no_device", params={"username": user.get_username()}
            )
        # Only the user's own devices are looked up (a made-up id never reaches the device
        # tables); with one device, the staff member need not pick it first.
        chosen = self.cleaned_data.get("otp_device")
        if chosen not in {device.persistent_id for device in devices}:
            self.cleaned_data["otp_device"] = devices[0].persistent_id if len(devices) == 1 else ""
        self.clean_otp(user)


class SupportAdminSite(AdminSite):
    """The admin site, with the support routes ahead of its own (accounts.apps makes it the
    default site, as Django's docs describe for overriding the admin site).

    Only staff verified by a TOTP device may use it (as django-otp's ``OTPAdminSite``),
    unless ``CODITECT_STAFF_OTP_REQUIRED`` is off.
    """

    # Not Django's "Django administration": staff should know which site they are signed in to.
    site_header = "Coditect support"
    site_title = "Coditect support"
    index_title = "Support and administration"
    login_form = StaffLoginForm
    login_template = "admin/staff_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if not settings.CODITECT_STAFF_OTP_REQUIRED:
            return True
        # Set by django_otp's OTPMiddleware (coditect.pages_only.Otp); absent, nobody is verified.
        verified = getattr(request.user, "is_verified", None)
        return bool(verified is not None and verified())

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "otp_required": settings.CODITECT_STAFF_OTP_REQUIRED}
        response = super().login(request, context)
        if request.method != "POST":
            return response
        if response.status_code == 302 and request.user.is_authenticated:
            device = getattr(request.user, "otp_device", None)
            how = f"password and TOTP device {device.name!r}" if device else "password"
            staff_login_record(staff=request.user, address=client_address(request), reason=how)
            return response
        form = (getattr(response, "context_data", None) or {}).get("form")
        if isinstance(form, StaffLoginForm) and form.locked_for:
            response.status_code = 429
            response["Retry-After"] = str(form.locked_for)
        return response

    def logout(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "POST" and request.user.is_authenticated:
            staff_logout_record(staff=request.user, address=client_address(request))
        return super().logout(request, extra_context)

    def get_urls(self) -> list[URLPattern | Any]:
        support = [
            path(f"support/{route}", self.admin_view(view), name=f"support_{name}")
            for route, view, name in _routes
        ]
        return support + super().get_urls()


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:support_{name}", args=args)


class _StoreErrors:
    """The support pages' one translation of the services' refusals (core/errors.py): 404
    for what does not exist and for bad cursors, 403 for a staff permission missing. Others
    propagate: a StaffInvalid is the action form's, the rest are bugs."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is None:
            return
        if isinstance(error, ServiceError) and error.status == 404:
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
        help_text=(
            "Required. Written to the staff audit log with your name and the time; the "
            "tenant's owners and admins see it, without your name, in their audit log."
        ),
    )


def action(
    request: HttpRequest,
    *,
    permission: str,
    title: str,
    target: str,
    back: str,
    perform: Callable[..., str],
    danger: bool = False,
    form_class: type[ReasonForm] = ReasonForm,
    initial: dict[str, Any] | None = None,
) -> HttpResponse:
    """A staff action: GET asks for a reason, POST (with CSRF) calls ``perform(reason)``,
    which returns the success message, and goes back to ``back``. A ``form_class`` with
    more fields than the reason passes their cleaned values to ``perform`` by name.

    Without ``permission`` both are 403; a missing reason shows the form again (400).
    """
    if not can(request.user, VIEW_PERMISSION) or not can(request.user, permission):
        raise PermissionDenied
    status = 200
    form = form_class(initial=initial)
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            fields = dict(form.cleaned_data)
            try:
                with _StoreErrors():
                    message = perform(fields.pop("reason"), **fields)
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


def staff_change(
    request: HttpRequest, change: Callable[..., Any], done: Callable[[Any], str], **args: Any
) -> Callable[..., str]:
    """The ``perform`` of an ``action`` that calls a staff service (``operations.staff``):
    ``change`` gets the database, this request's staff member, ``args``, the reason and the
    form's other fields; ``done`` makes the success message of what it returned."""

    def perform(reason: str, **fields: Any) -> str:
        db = fdb_backend.get_database()
        return done(change(db=db, staff=request.user, reason=reason, **args, **fields))

    return perform


def pick_tenant(request: HttpRequest, name: str, title: str) -> HttpResponse:
    """A page that asks for a tenant (id or slug) and goes on to its ``name`` page."""
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


TenantContext = Callable[[HttpRequest, Any, Tenant], dict[str, Any]]


def tenant_page(
    slug: str, name: str, title: str, template: str
) -> Callable[[TenantContext], TenantContext]:
    """Register a page of one tenant's things at ``tenants/<id>/<slug>/`` (``name``, titled
    "<title> of <tenant>") and, at ``<slug>/``, the page that asks which tenant
    (``<name>_pick``). The decorated function reads what the page shows: its context beside
    ``tenant``."""

    def register(context: TenantContext) -> TenantContext:
        @support_view
        def pick(request: HttpRequest) -> HttpResponse:
            return pick_tenant(request, name, title)

        @support_view
        def page(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
            db = fdb_backend.get_database()
            tenant = tenant_get(db=db, tenant_id=tenant_id)
            shown = {"tenant": tenant, **context(request, db, tenant)}
            return render(request, template, f"{title} of {tenant.name}", shown)

        support_route(f"{slug}/", pick, f"{name}_pick")
        support_route(f"tenants/<uuid:tenant_id>/{slug}/", page, name)
        return context

    return register

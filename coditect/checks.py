"""Django's deploy checks for the security middlewares we install in another form.

`coditect.middleware` runs SecurityMiddleware and XFrameOptionsMiddleware natively and
`coditect.pages_only` runs CsrfViewMiddleware for pages only, so their class paths are not in
MIDDLEWARE. Django finds its middlewares by class path: it would warn that they are missing
(security.W001, security.W002, security.W003; silenced in settings) and, worse, skip every check of
their settings (HSTS, nosniff, the HTTPS redirect, X-Frame-Options, Secure CSRF cookies,
referrer and opener policies). This module warns when one of ours is missing instead, and runs
Django's own checks of those settings with ours counted as installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.checks.security import base, csrf

OURS = {
    "coditect.middleware.security_middleware": "django.middleware.security.SecurityMiddleware",
    "coditect.middleware.frame_options_middleware": (
        "django.middleware.clickjacking.XFrameOptionsMiddleware"
    ),
    "coditect.pages_only.Csrf": "django.middleware.csrf.CsrfViewMiddleware",
}
MISSING = "coditect.W001"

_SETTINGS_CHECKS: Sequence[Callable[..., list[checks.CheckMessage]]] = (
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf.check_csrf_cookie_secure,
)


@checks.register(checks.Tags.security, deploy=True)
def security_middleware_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = [
        checks.Warning(
            "A security middleware of the project is not in MIDDLEWARE.",
            hint=f"Add {ours!r} (it stands in for {django!r}).",
            id=MISSING,
        )
        for ours, django in OURS.items()
        if ours not in settings.MIDDLEWARE and django not in settings.MIDDLEWARE
    ]
    with _installed_as_django_sees_it():
        for check in _SETTINGS_CHECKS:
            messages.extend(check(app_configs))
    return messages


@contextmanager
def _installed_as_django_sees_it() -> Iterator[None]:
    """Django's checks with each of our stand-ins counted as the class it stands in for."""
    installed = [OURS.get(path, path) for path in settings.MIDDLEWARE]
    found = {
        (base, "_security_middleware"): OURS["coditect.middleware.security_middleware"],
        (base, "_xframe_middleware"): OURS["coditect.middleware.frame_options_middleware"],
        (csrf, "_csrf_middleware"): OURS["coditect.pages_only.Csrf"],
    }
    saved = {key: getattr(*key) for key in found}
    try:
        for (module, name), django_path in found.items():
            # Bound now: each predicate answers for this check run's MIDDLEWARE.
            setattr(module, name, lambda path=django_path: path in installed)
        yield
    finally:
        for (module, name), predicate in saved.items():
            setattr(module, name, predicate)


PROTO_FROM_NOBODY = "coditect.W002"


@checks.register(checks.Tags.security)
def trusted_proxies_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """X-Forwarded-Proto is removed from requests of untrusted peers (coditect/proxies.py):
    trusting it with no proxy trusted would see every request as plain HTTP, and with the
    HTTPS redirect on, redirect every request forever."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not settings.CODITECT_TRUSTED_PROXIES:
        return [
            checks.Warning(
                "DJANGO_TRUST_X_FORWARDED_PROTO is on but CODITECT_TRUSTED_PROXIES is empty: "
                "X-Forwarded-Proto is only read from trusted proxies, so no request is HTTPS.",
                hint="Set CODITECT_TRUSTED_PROXIES to the addresses of the proxy.",
                id=PROTO_FROM_NOBODY,
            )
        ]
    return []

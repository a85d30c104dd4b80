"""Account mail: plain text plus HTML from ``templates/accounts/email/``, sent off the request.

Services call ``mail_send`` after their transaction committed. Delivery runs on one
background thread of the process, so a slow or failing mail server never slows or fails a
request, and a password-reset request for a known email answers as fast as one for an
unknown email. A failed delivery is logged (logger ``accounts.mail``) and not retried: the
user asks again. The locmem backend (tests) delivers at once, so a test reads
``django.core.mail.outbox`` right after the response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string

from accounts.records import Tenant, User
from fdb_backend.pool import made_once

logger = logging.getLogger("accounts.mail")

_LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
_executor = made_once(lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="accounts-mail"))


def delivered_at_once() -> bool:
    """Whether mail (and the accounts' background jobs) run at once, in the caller's thread:
    with the locmem backend of tests, so a test reads the outbox right after a response."""
    return bool(settings.EMAIL_BACKEND == _LOCMEM)


def mail_link(path: str, token: str) -> str:
    """A link to a web page of the platform carrying ``token`` in its fragment, which
    browsers never send to a server (so it stays out of access logs and Referer headers)."""
    return f"{settings.CODITECT_PUBLIC_URL}{path}#token={token}"


def duration_text(seconds: int) -> str:
    """``259200`` -> ``"3 days"``: the largest whole unit, never more than ``seconds``."""
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def mail_render(*, template: str, to: str, context: Mapping[str, Any]) -> EmailMultiAlternatives:
    """``<template>_subject.txt`` (first line), ``<template>.txt`` and ``<template>.html``."""
    values = {"product": "Coditect", **context}
    base = f"accounts/email/{template}"
    subject = render_to_string(f"{base}_subject.txt", values).strip().splitlines()[0]
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{base}.txt", values),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(render_to_string(f"{base}.html", values), "text/html")
    return message


def mail_send(*, template: str, to: str, context: Mapping[str, Any]) -> None:
    """Render now (a template error shows up at once), deliver in the background."""
    message = mail_render(template=template, to=to, context=context)
    # The backend is the one configured now, whenever the worker gets to the message.
    message.connection = get_connection()
    if delivered_at_once():
        _deliver(message, template)
    else:
        _executor().submit(_deliver, message, template)


def token_mail_send(
    *, template: str, user: User, tenant: Tenant, token: str, page: str, valid_for_s: int
) -> None:
    """Mail ``user`` a one-time ``token`` (and a link to ``page`` carrying it) that stays
    valid ``valid_for_s`` seconds: the context every token mail's template reads."""
    mail_send(
        template=template,
        to=user.email,
        context={
            "display_name": user.display_name,
            "email": user.email,
            "tenant_name": tenant.name,
            "token": token,
            "link": mail_link(page, token),
            "valid_for": duration_text(valid_for_s),
        },
    )


def _deliver(message: EmailMultiAlternatives, template: str) -> None:
    try:
        message.send()
    except Exception:
        # The address stays out of the log: it is personal data, and the template says which
        # flow failed.
        logger.exception("account mail not sent", extra={"template": template})

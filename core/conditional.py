"""Conditional requests (RFC 9110 §13): the version a client names in ``If-Match``."""

from __future__ import annotations

import re

from django.http import HttpRequest

_IF_MATCH = re.compile(r'\s*(?:W/)?"?(\d{1,18})"?\s*')


def if_match(request: HttpRequest) -> int | None:
    """The version named by ``If-Match`` (None when absent or ``*``)."""
    raw = request.META.get("HTTP_IF_MATCH")
    if raw is None or raw.strip() == "*":
        return None
    found = _IF_MATCH.fullmatch(raw)
    # An entity tag we never issued matches no version: the precondition fails (RFC 9110).
    return int(found.group(1)) if found else -1

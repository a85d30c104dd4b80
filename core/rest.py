"""What every app's REST views read from a request's path and query, and the list shape they
answer, so a bad parameter gets the same problem from each of them.

A path id that cannot be one is a 404 (as a well-formed id of no record is), never a 400: a
client learns nothing from the difference. A query parameter out of range is a 400 ``invalid``
naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from rest_framework.request import Request

from core.cursors import cursor_open, cursor_seal
from core.problems import ApiError
from fdb_backend.records import Page

R = TypeVar("R")


def id_or_404(value: str) -> uuid.UUID:
    """The record id of a URL path segment; 404 ``not_found`` when it is not a UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", "Not found.") from None


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an integer from ``low`` to ``high`` (``default`` when
    absent); anything else is a 400 ``invalid`` naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "invalid",
            f"{name} must be an integer from {low} to {high}.",
            [{"attr": name, "code": "invalid", "detail": f"{low}..{high}"}],
        )
    return value


def list_limit(request: Request) -> int:
    """``limit`` of a cursor-paged list (CONTRACT §1): 1..200, default 50."""
    return int_param(request, "limit", default=50, low=1, high=200)


class PageArgs(TypedDict):
    """A listing service's paging arguments, as the request asks for them."""

    limit: int
    cursor: str | None


def page_args(request: Request) -> PageArgs:
    """``limit`` and the continuation of ``cursor`` (400 ``invalid_cursor`` if altered)."""
    return {"limit": list_limit(request), "cursor": cursor_open(request.query_params.get("cursor"))}


def page_json(page: Page[R], item_json: Callable[[R], dict[str, Any]]) -> dict[str, Any]:
    """The contract's list shape: ``{"results": [...], "next_cursor": str | null}``."""
    return {
        "results": [item_json(record) for record in page.records],
        "next_cursor": cursor_seal(page.continuation),
    }


# The headers of an answer that shows a secret once (a new token, TOTP secret, recovery codes):
# no cache or proxy may keep it.
NO_STORE = {"Cache-Control": "no-store"}


def etag_header(version: int) -> dict[str, str]:
    """The ``ETag`` header of a record at ``version``: what ``If-Match`` sends back."""
    return {"ETag": f'"{version}"'}

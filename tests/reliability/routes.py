"""Every REST operation the project serves, read from Django's URL resolver.

The sweeps enumerate routes from here, so a route added tomorrow is in them (and fails them
until someone says what it should do). A route is a REST operation when its view is a DRF
``APIView`` (``callback.cls``); ``core.routes.optional_slash`` serves a second spelling of
each through a plain wrapper, so each operation is listed once, in its canonical spelling, as
the OpenAPI schema lists it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

METHODS = ("get", "post", "put", "patch", "delete")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Route:
    method: str  # "GET"
    path: str  # "/api/v5/sessions/{session_id}" (OpenAPI style)
    params: tuple[str, ...]  # ("session_id",)
    view: Any

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, **values: str) -> str:
        url = self.path
        for name in self.params:
            url = url.replace("{" + name + "}", values[name])
        return url


def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def rest_routes() -> list[Route]:
    """Every (method, path) whose view is a DRF APIView, in URLconf order."""
    routes: list[Route] = []
    for pattern, callback in walk(get_resolver().url_patterns, "/"):
        view = getattr(callback, "cls", None)
        if view is None or pattern.startswith("/admin/"):
            continue
        path = _CONVERTER.sub(r"{\1}", pattern.lstrip("^").rstrip("$"))
        params = tuple(_CONVERTER.findall(pattern))
        for method in METHODS:
            if hasattr(view, method):
                routes.append(Route(method.upper(), path, params, view))
    return routes


def api_operations() -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in rest_routes()}

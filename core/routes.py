"""URL helpers shared by the apps' url modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

View = Callable[..., Any]


def optional_slash(route: str, view: View, *, name: str) -> list[URLPattern]:
    """Serve ``route`` with and without its trailing slash.

    The contract promises both spellings, and APPEND_SLASH's redirect would drop a POST body
    (under DEBUG it raises instead). ``name`` reverses to the spelling given in ``route``, and
    only that spelling appears in the OpenAPI schema.
    """
    bare = route.rstrip("/")
    canonical, other = (bare + "/", bare) if route.endswith("/") else (bare, bare + "/")
    return [path(canonical, view, name=name), path(other, _alias(view))]


def _alias(view: View) -> View:
    # The schema generator lists every route whose callback has DRF's `.cls`; a plain wrapper
    # has none, so the second spelling is served but not documented twice.
    alias: View
    if iscoroutinefunction(view):

        async def alias(request: Any, *args: Any, **kwargs: Any) -> Any:
            return await view(request, *args, **kwargs)

    else:

        def alias(request: Any, *args: Any, **kwargs: Any) -> Any:
            return view(request, *args, **kwargs)

    return csrf_exempt(alias) if getattr(view, "csrf_exempt", False) else alias

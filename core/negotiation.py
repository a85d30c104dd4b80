"""DRF's content negotiation, answered without parsing for the Accept headers clients send.

The API has one renderer. DRF's negotiation parses the Accept header into media types, orders
them by precedence and matches each against each renderer on every request: 4% of a GET's
CPU. For the two Accept values nearly every client sends (none, which DRF reads as ``*/*``,
and ``application/json``) the answer is known, and is the same pair DRF returns; anything
else (other types, parameters, q-values, a ``format`` query parameter) goes to DRF.
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

_PLAIN = frozenset({"*/*", "application/json"})


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        renderers = list(renderers)
        if (
            format_suffix is None
            and accept in _PLAIN
            and len(renderers) == 1
            and renderers[0].media_type == "application/json"
            and "format" not in request.META.get("QUERY_STRING", "")
        ):
            # What DRF answers too: the renderer and its own media type (more precise than
            # ``*/*``, as precise as ``application/json``).
            return renderers[0], renderers[0].media_type
        selected: tuple[BaseRenderer, str] = super().select_renderer(
            request, renderers, format_suffix
        )
        return selected

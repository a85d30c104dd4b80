"""DRF's JSON renderer, encoding with orjson what orjson encodes exactly as DRF would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework import renderers

# Characters DRF escapes (JavaScript line terminators); orjson leaves them raw.
_LINE_SEPARATORS = ("\u2028".encode(), "\u2029".encode())


class JSONRenderer(renderers.JSONRenderer):
    """The API's responses are plain dicts, lists, strings and numbers: orjson encodes them
    several times faster than json.dumps, in the same compact UTF-8 form (DRF's COMPACT_JSON
    and UNICODE_JSON). Anything else (datetimes, Decimals, lazy strings), indented output and
    text with the line separators DRF escapes go to DRF's own renderer, so the bytes never
    differ."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None or self.get_indent(accepted_media_type or "", renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            encoded = orjson.dumps(data, option=orjson.OPT_PASSTHROUGH_DATETIME, default=_refuse)
        except TypeError:
            return super().render(data, accepted_media_type, renderer_context)
        if any(separator in encoded for separator in _LINE_SEPARATORS):
            return super().render(data, accepted_media_type, renderer_context)
        return encoded


def _refuse(value: Any) -> Any:
    raise TypeError("not plain JSON", type(value).__name__)

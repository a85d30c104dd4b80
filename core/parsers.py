"""DRF's JSON parser with strict JSON (core/strict_json.py): bad input is a 400, never a 500.

JSON between systems is UTF-8 (RFC 8259 §8.1): a body declared in any other charset is a 415,
whether Python knows the charset (``latin-1``), knows it only as a codec that does not decode
bytes to text (``rot13``, ``base64``, ``hex``, ``zlib``: a LookupError, once a 500) or not at all.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import IO, Any

from django.utils.http import parse_header_parameters
from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.serializers import Serializer

from core.strict_json import strict_loads


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        _charset_require_utf8(media_type or "")
        try:
            return strict_loads(stream.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(f"JSON parse error - {error}") from None


def _charset_require_utf8(media_type: str) -> None:
    """Raise UnsupportedMediaType unless the declared charset, if any, is UTF-8."""
    _, params = parse_header_parameters(media_type)
    charset = params.get("charset")
    if charset is None:
        return
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        name = ""
    if name != "utf-8":
        raise UnsupportedMediaType(
            media_type, detail="JSON bodies must be UTF-8; send charset=utf-8 or no charset."
        )


def validated(serializer_class: type[Serializer[Any]], data: Any) -> dict[str, Any]:
    """``data`` (a request's parsed body) as ``serializer_class`` validates it; raises DRF's
    ValidationError, which every interface turns into a 400 ``invalid`` naming the fields."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)

"""Request bodies of the workspaces API: strict, typed, bounded."""

from __future__ import annotations

import re
from typing import Any

import orjson
from rest_framework import serializers

from accounts.serializers import Strict, Text
from workspaces.paths import MAX_ACTIVE_FILES, MAX_PATH_BYTES

# Paths are checked by the services (workspaces/paths.py), for every caller; this bound only
# stops a long string early (a path of more characters than that has more bytes too).
MAX_PATH = MAX_PATH_BYTES
PATH_HELP = (
    "An absolute, normalised path: starts with '/', no '.', '..' or empty segments, no "
    "trailing '/' (except '/' itself), no control characters, at most 1024 bytes of UTF-8."
)
_EVENT_NAME = re.compile(r"[A-Za-z0-9._:\-]{1,100}")


def storable_json(value: Any) -> None:
    """Refuse JSON the records layer cannot store exactly: text that is not valid Unicode
    (lone surrogates arrive as \\ud800) and integers beyond 64 bits (RFC 8259 §6; they would
    come back as floats)."""
    try:
        orjson.dumps(value)
    except TypeError:
        raise serializers.ValidationError(
            "Contains text that is not valid Unicode or an integer beyond 64 bits."
        ) from None


class ObjectField(serializers.JSONField):
    """A JSON object (not a list, string or number) that can be stored.

    DRF's JSONField would check the value with json.dumps first; storable_json's orjson.dumps
    refuses all that does and more, in a fraction of the time."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.", code="invalid")
        storable_json(data)
        return data


class SessionCreateIn(Strict):
    name = Text(min_length=1, max_length=200)
    workspace_path = Text(max_length=MAX_PATH, trim_whitespace=False, help_text=PATH_HELP)
    active_files = serializers.ListField(
        child=Text(max_length=MAX_PATH, trim_whitespace=False, help_text=PATH_HELP),
        max_length=MAX_ACTIVE_FILES,
        required=False,
    )
    editor_state = ObjectField(required=False)
    terminal_state = ObjectField(required=False)
    parent_session_id = serializers.UUIDField(required=False, allow_null=True)


class SessionPatchIn(Strict):
    name = Text(min_length=1, max_length=200, required=False)
    workspace_path = Text(
        max_length=MAX_PATH, trim_whitespace=False, required=False, help_text=PATH_HELP
    )
    active_files = serializers.ListField(
        child=Text(max_length=MAX_PATH, trim_whitespace=False, help_text=PATH_HELP),
        max_length=MAX_ACTIVE_FILES,
        required=False,
    )
    editor_state = ObjectField(required=False)
    terminal_state = ObjectField(required=False)


class ForkIn(Strict):
    name = Text(min_length=1, max_length=200, required=False)


def event_name_check(value: str) -> None:
    if not _EVENT_NAME.fullmatch(value):
        raise serializers.ValidationError(
            "1 to 100 letters, digits, '.', '_', ':' or '-'.", code="invalid"
        )


class EventIn(Strict):
    event = Text(max_length=100, trim_whitespace=False, validators=[event_name_check])

    def get_fields(self) -> dict[str, Any]:
        # A field named "data" cannot be a class attribute: it would hide Serializer.data.
        fields = super().get_fields()
        fields["data"] = serializers.JSONField(
            required=False, allow_null=True, validators=[storable_json]
        )
        return fields

"""Request bodies of the workspaces API: strict, typed, bounded."""

from __future__ import annotations

import re
from typing import Any

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


class JSONValue(serializers.JSONField):
    """Any JSON value, as the parser made it.

    Whether it can be stored exactly (valid Unicode, integers within 64 bits) and its size
    are the services' to check, once, as they encode it (workspaces/services.py): DRF's
    JSONField would encode it with json.dumps first, only to check."""

    def to_internal_value(self, data: Any) -> Any:
        return data


class ObjectField(JSONValue):
    """A JSON object (not a list, string or number); storable and small enough is the
    services' to say (see JSONValue)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.", code="invalid")
        return data


def _path(**kwargs: Any) -> Text:
    return Text(max_length=MAX_PATH, trim_whitespace=False, help_text=PATH_HELP, **kwargs)


# A change of a session: only the fields it names. (No docstrings on request bodies: the
# schema shows Strict's.)
class SessionPatchIn(Strict):
    name = Text(min_length=1, max_length=200, required=False)
    workspace_path = _path(required=False)
    active_files = serializers.ListField(child=_path(), max_length=MAX_ACTIVE_FILES, required=False)
    editor_state = ObjectField(required=False)
    terminal_state = ObjectField(required=False)


# A new session: a patch's fields with the name and path required, and its parent. DRF keeps
# a base's field order and puts a redeclared field's new definition in its place, so the
# documented order stays name, workspace_path, ..., terminal_state, parent_session_id.
class SessionCreateIn(SessionPatchIn):
    name = Text(min_length=1, max_length=200)
    workspace_path = _path()
    parent_session_id = serializers.UUIDField(required=False, allow_null=True)


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
        fields["data"] = JSONValue(required=False, allow_null=True)
        return fields

"""OpenAPI shapes of the workspaces API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

_SESSION: dict[str, Any] = {
    "id": serializers.UUIDField(),
    "tenant_id": serializers.UUIDField(),
    "owner_id": serializers.UUIDField(),
    "name": serializers.CharField(),
    "workspace_path": serializers.CharField(),
    "active_files": serializers.ListField(child=serializers.CharField()),
    "editor_state": serializers.DictField(),
    "terminal_state": serializers.DictField(),
    "parent_session_id": serializers.UUIDField(allow_null=True),
    "related_session_ids": serializers.ListField(child=serializers.UUIDField()),
    "created_at": serializers.DateTimeField(),
    "last_active_at": serializers.DateTimeField(),
    "version": serializers.IntegerField(),
    "seq": serializers.IntegerField(),
}
SessionOut = inline_serializer("WorkspaceSession", _SESSION)
SessionListOut = inline_serializer(
    "WorkspaceSessionList",
    {
        "results": inline_serializer("WorkspaceSession", _SESSION, many=True),
        "next_cursor": serializers.CharField(allow_null=True),
    },
)
_EVENT: dict[str, Any] = {
    "seq": serializers.IntegerField(),
    "event": serializers.CharField(),
    "data": serializers.JSONField(allow_null=True),
    "origin": serializers.CharField(),
    "created_at": serializers.DateTimeField(),
}
EventListOut = inline_serializer(
    "SessionEventList",
    {
        "results": inline_serializer("SessionEvent", _EVENT, many=True),
        "next_cursor": serializers.CharField(allow_null=True),
        "latest_seq": serializers.IntegerField(),
    },
)
EventAcceptedOut = inline_serializer("EventAccepted", {"seq": serializers.IntegerField()})

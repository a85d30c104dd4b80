"""OpenAPI shapes of the workspaces API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


def _session_fields() -> dict[str, Any]:
    # New field instances for each use: DRF's serializer metaclass takes the fields out of the
    # dict that inline_serializer hands it, so a shared dict is empty after its first use.
    return {
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


SessionOut = inline_serializer("WorkspaceSession", _session_fields())
SessionListOut = inline_serializer(
    "WorkspaceSessionList",
    {
        # The very class of SessionOut: one component, whichever operation is read first.
        "results": type(SessionOut)(many=True),
        "next_cursor": serializers.CharField(allow_null=True),
    },
)
# Entries of GET /api/v5/sessions also say how many sockets are in each session right now.
SessionPageOut = inline_serializer(
    "WorkspaceSessionPage",
    {
        "results": inline_serializer(
            "WorkspaceSessionListed",
            {
                **_session_fields(),
                "live_connections": serializers.IntegerField(
                    help_text="WebSocket connections open on the session now (its presence)."
                ),
            },
            many=True,
        ),
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

"""OpenAPI shapes of the workspaces API (the helpers are accounts/schema.py's)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from accounts.schema import QUOTA_EXCEEDED, VIEWER_403, etag, location


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
        "editor_state": serializers.DictField(help_text="Any JSON object the editor keeps."),
        "terminal_state": serializers.DictField(help_text="Any JSON object the terminal keeps."),
        "parent_session_id": serializers.UUIDField(allow_null=True),
        "related_session_ids": serializers.ListField(child=serializers.UUIDField()),
        "created_at": serializers.DateTimeField(),
        "last_active_at": serializers.DateTimeField(),
        "version": serializers.IntegerField(help_text="Also the ETag; +1 on each change."),
        "seq": serializers.IntegerField(help_text="The last event's sequence number."),
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
EventListOut = inline_serializer(
    "SessionEventList",
    {
        "results": inline_serializer(
            "SessionEvent",
            {
                "seq": serializers.IntegerField(),
                "event": serializers.CharField(),
                "data": serializers.JSONField(allow_null=True),
                "origin": serializers.CharField(),
                "created_at": serializers.DateTimeField(),
            },
            many=True,
        ),
        "next_cursor": serializers.CharField(
            allow_null=True, help_text="More events: pass it as after_seq. Null: none."
        ),
        "latest_seq": serializers.IntegerField(),
    },
)
EventAcceptedOut = inline_serializer("EventAccepted", {"seq": serializers.IntegerField()})

NOT_FOUND = {"not_found": "No such session in your organisation (another's is a 404 too)."}
# A write that adds to what the tenant stores (a session, its state, an event): refused over a
# quota, and to a viewer as every write is.
GROWING_WRITE_403 = {**QUOTA_EXCEEDED, **VIEWER_403}
STATE_TOO_LARGE = {"state_too_large": "A state field (errors names it) is over its size limit."}
# A write of state into a session that exists (a change of it, a fork from it).
STATE_WRITE_ERRORS = {403: GROWING_WRITE_403, 404: NOT_FOUND, 413: STATE_TOO_LARGE}
VERSION_CONFLICT = {
    "version_conflict": "`If-Match` names an older version; the ETag header has the current one."
}
# A new session's version and path; a read or change's version; a conflict's current version.
CREATED = [etag(201), location(201)]
READ = [etag(200)]

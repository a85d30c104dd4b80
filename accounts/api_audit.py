"""The tenant audit log's REST view (GET /api/v5/tenant/audit): parse, call, render."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import fdb_backend
from accounts import schema
from accounts.api import LIST_PARAMETERS, principal_of
from accounts.services.audit import AuditEntry, audit_list
from core.cursors import cursor_open, cursor_seal
from core.problems import ApiError
from core.rest import list_limit
from core.time import rfc3339

AuditListOut = schema.listing(
    "AuditList",
    "AuditEntry",
    {
        "id": serializers.UUIDField(
            help_text="The auth event's id; for a staff entry, a UUID holding its number."
        ),
        "source": serializers.ChoiceField(
            choices=["auth", "staff"], help_text="An auth event, or a support staff action."
        ),
        "kind": serializers.CharField(
            help_text="The auth event's type (`login`, `login_failed`...), or `staff.<action>`."
        ),
        "at": serializers.DateTimeField(),
        "user_id": serializers.UUIDField(
            allow_null=True,
            help_text="Who acted (auth events) or who the staff action was about; null: none.",
        ),
        "ip": serializers.CharField(allow_null=True, help_text="null for staff actions."),
        "user_agent": serializers.CharField(allow_null=True, help_text="null for staff actions."),
        "data": serializers.DictField(
            help_text=(
                "What else the event records; for staff actions `target_type`, `target_id` "
                "and `reason`."
            )
        ),
    },
)
AUDIT_PARAMETERS = [
    *LIST_PARAMETERS,
    OpenApiParameter("user_id", uuid.UUID, description="Only this member's entries."),
    OpenApiParameter(
        "kind", str, description="Only this auth event type, or `staff.<action>` staff actions."
    ),
    OpenApiParameter(
        "before", datetime, description="RFC 3339 with a zone: only entries strictly older."
    ),
    OpenApiParameter(
        "after", datetime, description="RFC 3339 with a zone: only entries strictly newer."
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        response=[503],
        required=True,
        description="Seconds to wait before asking again.",
    ),
]
AUDIT_400 = {
    **schema.LIST_400,
    "invalid": "`limit` is not 1..200, or `user_id`, `kind`, `before` or `after` is malformed.",
}


def _bad(attr: str, detail: str) -> ApiError:
    return ApiError(400, "invalid", detail, [{"attr": attr, "code": "invalid", "detail": detail}])


def _uuid_param(request: Request, name: str) -> uuid.UUID | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise _bad(name, f"{name} is not a UUID.") from None


def _time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise _bad(name, f"{name} is not an RFC 3339 time with a zone (2026-01-31T12:00:00Z).")
    return value


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "source": entry.source,
        "kind": entry.kind,
        "at": rfc3339(entry.at),
        "user_id": str(entry.user_id) if entry.user_id else None,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "data": entry.data,
    }


class TenantAuditView(APIView):
    # No required_scopes: API tokens never read the audit log (accounts/permissions.py).

    @schema.operation(
        operation_id="tenant_audit_list",
        ok={200: AuditListOut},
        parameters=AUDIT_PARAMETERS,
        errors={
            400: AUDIT_400,
            403: schema.MANAGERS_ONLY,
            503: {"audit_unavailable": "The staff audit database cannot be read; retry later."},
        },
        description=(
            "The organisation's audit log, newest first: its auth events (sign-ins, failures, "
            "sign-outs, invitations, token and MFA changes...) and the support staff's "
            "actions on it. Owners and admins only; not for API tokens."
        ),
    )
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind")
        page = audit_list(
            db=fdb_backend.get_database(),
            principal=principal_of(request),
            user_id=_uuid_param(request, "user_id"),
            kind=kind,
            before=_time_param(request, "before"),
            after=_time_param(request, "after"),
            limit=list_limit(request),
            continuation=cursor_open(request.query_params.get("cursor")),
        )
        return Response(
            {
                "results": [audit_entry_json(e) for e in page.entries],
                "next_cursor": cursor_seal(page.continuation),
            }
        )

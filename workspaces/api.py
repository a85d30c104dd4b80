"""REST views of CONTRACT §3: parse, call a service, render. No business logic here."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import fdb_backend
from accounts import schema as account_schema
from accounts.api import LIST_PARAMETERS, principal_of
from accounts.permissions import token_scopes
from core.conditional import if_match
from core.cursors import cursor_open, cursor_seal
from core.problems import ApiError, field_errors
from fdb_backend.records import InvalidContinuation, RecordTooLarge
from workspaces import schema, serializers, services
from workspaces.errors import WorkspaceError
from workspaces.hooks import live_counts
from workspaces.presenters import session_json

View = Callable[..., Response]


def workspace_errors(view: View) -> View:
    """Turn services' errors into the API's problem responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except WorkspaceError as error:
            headers = {}
            if "current_version" in error.context:
                headers["ETag"] = f'"{error.context["current_version"]}"'
            errors = field_errors(error.attr, error.code, error.detail)
            raise ApiError(
                error.status, error.code, error.detail, errors, headers=headers
            ) from None
        except InvalidContinuation:
            raise ApiError(
                400, "invalid_cursor", "The cursor is not valid for this list."
            ) from None
        except RecordTooLarge:
            raise ApiError(413, "state_too_large", "The session's state is too large.") from None

    return wrapper


def db() -> Any:
    return fdb_backend.get_database()


def _etag(view: services.SessionView) -> dict[str, str]:
    return {"ETag": f'"{view.version}"'}


def session_id_of(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", "Not found.") from None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "invalid",
            f"{name} must be an integer from {low} to {high}.",
            [{"attr": name, "code": "invalid", "detail": f"{low}..{high}"}],
        )
    return value


def _body(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# What an API token needs for each operation (CONTRACT §7; accounts/permissions.py).
READ, WRITE, PUBLISH = "sessions:read", "sessions:write", "events:publish"


class SessionsView(APIView):
    lean_methods = frozenset({"get", "post"})
    required_scopes = token_scopes(get=READ, post=WRITE)

    @account_schema.operation(
        operation_id="sessions_list",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("workspace_path", str, description=serializers.PATH_HELP),
            OpenApiParameter("owner", str, enum=["me", "all"], description="Default all."),
        ],
        ok={200: schema.SessionPageOut},
        errors={
            400: {
                **account_schema.LIST_400,
                "invalid": "`limit`, `owner` or `workspace_path` (not a valid path) is invalid.",
            }
        },
    )
    @workspace_errors
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        owner = request.query_params.get("owner", "all")
        if owner not in ("me", "all"):
            raise ApiError(400, "invalid", "owner must be me or all.")
        page = services.session_list(
            db=db(),
            principal=principal,
            owner=owner,
            workspace_path=request.query_params.get("workspace_path"),
            limit=_int_param(request, "limit", 50, 1, 200),
            cursor=cursor_open(request.query_params.get("cursor")),
        )
        # The dashboard shows who is in each session: one more snapshot transaction a page.
        live = live_counts(
            db=db(), principal=principal, session_ids=[v.head.id for v in page.records]
        )
        return Response(
            {
                "results": [
                    {**session_json(v, principal), "live_connections": live.get(v.head.id, 0)}
                    for v in page.records
                ],
                "next_cursor": cursor_seal(page.continuation),
            }
        )

    @account_schema.operation(
        request=serializers.SessionCreateIn,
        ok={201: schema.SessionOut},
        parameters=schema.CREATED,
        errors={
            400: {"invalid": "Also no such parent_session_id."},
            413: schema.STATE_TOO_LARGE,
        },
    )
    @workspace_errors
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        view = services.session_create(
            db=db(), principal=principal, **_body(serializers.SessionCreateIn, request)
        )
        return Response(
            session_json(view, principal),
            status=201,
            headers={**_etag(view), "Location": f"/api/v5/sessions/{view.head.id}"},
        )


class SessionDetailView(APIView):
    lean_methods = frozenset({"get", "patch", "delete"})
    required_scopes = token_scopes(get=READ, patch=WRITE, delete=WRITE)

    @account_schema.operation(
        operation_id="sessions_retrieve",
        ok={200: schema.SessionOut},
        parameters=schema.READ,
        errors={404: schema.NOT_FOUND},
    )
    @workspace_errors
    def get(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        view = services.session_get(
            db=db(), principal=principal, session_id=session_id_of(session_id)
        )
        return Response(session_json(view, principal), headers=_etag(view))

    @account_schema.operation(
        request=serializers.SessionPatchIn,
        ok={200: schema.SessionOut},
        parameters=[account_schema.IF_MATCH, account_schema.etag(200, 412)],
        errors={
            400: {"invalid": "Also an empty change."},
            404: schema.NOT_FOUND,
            412: schema.VERSION_CONFLICT,
            413: schema.STATE_TOO_LARGE,
        },
    )
    @workspace_errors
    def patch(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        sid = session_id_of(session_id)
        expected = if_match(request)
        changes = _body(serializers.SessionPatchIn, request)
        view = services.session_update(
            db=db(), principal=principal, session_id=sid, changes=changes, expected_version=expected
        )
        return Response(session_json(view, principal), headers=_etag(view))

    @account_schema.operation(
        ok={204: account_schema.NO_CONTENT},
        parameters=[account_schema.IF_MATCH, account_schema.etag(412)],
        errors={
            403: {"forbidden": "Only its owner or a tenant admin may delete it."},
            404: schema.NOT_FOUND,
            412: schema.VERSION_CONFLICT,
        },
    )
    @workspace_errors
    def delete(self, request: Request, session_id: str) -> Response:
        services.session_delete(
            db=db(),
            principal=principal_of(request),
            session_id=session_id_of(session_id),
            expected_version=if_match(request),
        )
        return Response(status=204)


class ForkView(APIView):
    lean_methods = frozenset({"post"})
    required_scopes = token_scopes(post=WRITE)

    @account_schema.operation(
        request=serializers.ForkIn,
        ok={201: schema.SessionOut},
        parameters=schema.CREATED,
        errors={404: schema.NOT_FOUND, 413: schema.STATE_TOO_LARGE},
    )
    @workspace_errors
    def post(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        sid = session_id_of(session_id)
        body = _body(serializers.ForkIn, request)
        view = services.session_fork(db=db(), principal=principal, session_id=sid, **body)
        return Response(
            session_json(view, principal),
            status=201,
            headers={**_etag(view), "Location": f"/api/v5/sessions/{view.head.id}"},
        )


class RelatedView(APIView):
    lean_methods = frozenset({"get"})
    required_scopes = token_scopes(get=READ)

    @account_schema.operation(
        operation_id="sessions_related",
        ok={200: schema.SessionListOut},
        errors={404: schema.NOT_FOUND},
    )
    @workspace_errors
    def get(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        views = services.session_related(
            db=db(), principal=principal, session_id=session_id_of(session_id)
        )
        return Response(
            {"results": [session_json(v, principal) for v in views], "next_cursor": None}
        )


class EventsView(APIView):
    lean_methods = frozenset({"get", "post"})
    required_scopes = token_scopes(get=READ, post=PUBLISH)

    @account_schema.operation(
        parameters=[
            OpenApiParameter("after_seq", int, description="Events after this seq; default 0."),
            OpenApiParameter("limit", int, description="1..1000, default 200."),
        ],
        ok={200: schema.EventListOut},
        errors={
            400: {"invalid": "`after_seq` or `limit` is out of range."},
            404: schema.NOT_FOUND,
            410: {"resync_required": "The log no longer reaches back to after_seq: re-read."},
        },
    )
    @workspace_errors
    def get(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        sid = session_id_of(session_id)
        after = _int_param(request, "after_seq", 0, 0, 2**62)
        limit = _int_param(request, "limit", 200, 1, 1000)
        page = services.session_event_list(
            db=db(), principal=principal, session_id=sid, after_seq=after, limit=limit
        )
        more = page.events and page.events[-1]["seq"] < page.latest_seq
        return Response(
            {
                "results": page.events,
                "next_cursor": str(page.events[-1]["seq"]) if more else None,
                "latest_seq": page.latest_seq,
            }
        )

    @account_schema.operation(
        request=serializers.EventIn,
        ok={202: schema.EventAcceptedOut},
        errors={
            400: {"invalid": "Also a reserved event name."},
            404: schema.NOT_FOUND,
            413: {"event_too_large": "`data` is larger than 64 KiB."},
        },
    )
    @workspace_errors
    def post(self, request: Request, session_id: str) -> Response:
        principal = principal_of(request)
        sid = session_id_of(session_id)
        body = _body(serializers.EventIn, request)
        seq = services.session_event_publish(
            db=db(), principal=principal, session_id=sid, event=body["event"], data=body.get("data")
        )
        return Response({"seq": seq}, status=202)

"""REST views of CONTRACT §3: parse, call a service, render. No business logic here."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import schema as account_schema
from accounts.api import LIST_PARAMETERS, principal_args
from accounts.permissions import token_scopes
from accounts.services import Principal
from core.conditional import if_match
from core.parsers import validated
from core.rest import etag_header, id_or_404, int_param, page_args, page_json
from workspaces import schema, serializers, services
from workspaces.presenters import session_json


def _answer(view: services.SessionView, principal: Principal, status: int = 200) -> Response:
    """A session as the contract shows it, with its version as the ETag; a new one (201)
    also with its path."""
    headers = etag_header(view.version)
    if status == 201:
        headers["Location"] = f"/api/v5/sessions/{view.head.id}"
    return Response(session_json(view, principal), status=status, headers=headers)


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
    def get(self, request: Request) -> Response:
        asker = principal_args(request)
        principal = asker["principal"]
        # The dashboard shows who is in each session: the live counts come with the page.
        page, live = services.session_list(
            **asker,
            owner=request.query_params.get("owner", "all"),
            workspace_path=request.query_params.get("workspace_path"),
            **page_args(request),
        )
        return Response(
            page_json(
                page,
                lambda v: {
                    **session_json(v, principal),
                    "live_connections": live.get(v.head.id, 0),
                },
            )
        )

    @account_schema.operation(
        request=serializers.SessionCreateIn,
        ok={201: schema.SessionOut},
        parameters=schema.CREATED,
        errors={
            400: {"invalid": "Also no such parent_session_id."},
            403: schema.GROWING_WRITE_403,
            413: schema.STATE_TOO_LARGE,
        },
    )
    def post(self, request: Request) -> Response:
        asker = principal_args(request)
        body = validated(serializers.SessionCreateIn, request.data)
        return _answer(services.session_create(**asker, **body), asker["principal"], 201)


class SessionDetailView(APIView):
    lean_methods = frozenset({"get", "patch", "delete"})
    required_scopes = token_scopes(get=READ, patch=WRITE, delete=WRITE)

    @account_schema.operation(
        operation_id="sessions_retrieve",
        ok={200: schema.SessionOut},
        parameters=schema.READ,
        errors={404: schema.NOT_FOUND},
    )
    def get(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        view = services.session_get(**asker, session_id=id_or_404(session_id))
        return _answer(view, asker["principal"])

    @account_schema.operation(
        request=serializers.SessionPatchIn,
        ok={200: schema.SessionOut},
        parameters=[account_schema.IF_MATCH, account_schema.etag(200, 412)],
        errors={
            **schema.STATE_WRITE_ERRORS,
            400: {"invalid": "Also an empty change."},
            412: schema.VERSION_CONFLICT,
        },
    )
    def patch(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        sid = id_or_404(session_id)
        expected = if_match(request)
        changes = validated(serializers.SessionPatchIn, request.data)
        view = services.session_update(
            **asker, session_id=sid, changes=changes, expected_version=expected
        )
        return _answer(view, asker["principal"])

    @account_schema.operation(
        ok={204: account_schema.NO_CONTENT},
        parameters=[account_schema.IF_MATCH, account_schema.etag(412)],
        errors={
            403: {
                "forbidden": (
                    "Only its owner or a tenant owner or admin may delete it; never a viewer."
                )
            },
            404: schema.NOT_FOUND,
            412: schema.VERSION_CONFLICT,
        },
    )
    def delete(self, request: Request, session_id: str) -> Response:
        services.session_delete(
            **principal_args(request),
            session_id=id_or_404(session_id),
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
        errors=schema.STATE_WRITE_ERRORS,
    )
    def post(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        sid = id_or_404(session_id)
        body = validated(serializers.ForkIn, request.data)
        view = services.session_fork(**asker, session_id=sid, **body)
        return _answer(view, asker["principal"], 201)


class RelatedView(APIView):
    lean_methods = frozenset({"get"})
    required_scopes = token_scopes(get=READ)

    @account_schema.operation(
        operation_id="sessions_related",
        ok={200: schema.SessionListOut},
        errors={404: schema.NOT_FOUND},
    )
    def get(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        principal = asker["principal"]
        views = services.session_related(**asker, session_id=id_or_404(session_id))
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
    def get(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        sid = id_or_404(session_id)
        after = int_param(request, "after_seq", default=0, low=0, high=2**62)
        limit = int_param(request, "limit", default=200, low=1, high=1000)
        page = services.session_event_list(**asker, session_id=sid, after_seq=after, limit=limit)
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
            403: schema.GROWING_WRITE_403,
            404: schema.NOT_FOUND,
            413: {"event_too_large": "`data` is larger than 64 KiB."},
        },
    )
    def post(self, request: Request, session_id: str) -> Response:
        asker = principal_args(request)
        sid = id_or_404(session_id)
        body = validated(serializers.EventIn, request.data)
        seq = services.session_event_publish(
            **asker, session_id=sid, event=body["event"], data=body.get("data")
        )
        return Response({"seq": seq}, status=202)

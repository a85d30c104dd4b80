"""DRF views for accounts and workspace sessions, written the way a DRF project usually is."""

from __future__ import annotations

from base64 import b64encode
from typing import Any
from urllib import parse

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework import exceptions, generics, status
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, TokenError
from rest_framework_simplejwt.views import TokenRefreshView

from .models import User, WorkspaceSession
from .problems import PreconditionFailed
from .serializers import (
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    RefreshSerializer,
    RegisterSerializer,
    TenantSerializer,
    UserSerializer,
    WorkspaceSessionSerializer,
    pair_for_user,
)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness only: touches no database, so wait_ready() does not depend on migrations."""
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """JSON 404 for unknown paths and malformed ids (the URL patterns only match UUIDs)."""
    body = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not found.",
        "code": "not_found",
        "errors": [],
    }
    return JsonResponse(body, status=404, content_type="application/problem+json")


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)  # IsAuthenticated ran before any caller of this
    return user


# --- accounts -------------------------------------------------------------------------------


class RegisterView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.save()
        body = pair_for_user(user)
        body["user"] = UserSerializer(user).data
        body["tenant"] = TenantSerializer(user.tenant).data
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get_authenticate_header(self, request: Request) -> str:
        # Without an authenticator DRF turns 401 into 403; bad credentials are a 401.
        return 'Bearer realm="api"'

    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        body = pair_for_user(user)
        body["user"] = UserSerializer(user).data
        return Response(body)


class RefreshView(TokenRefreshView):
    serializer_class = RefreshSerializer

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # One transaction (IMMEDIATE: write lock first) around check-blacklist-then-blacklist,
        # so two concurrent uses of the same refresh token cannot both rotate it.
        with transaction.atomic():
            return super().post(request, *args, **kwargs)


class MeView(APIView):
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(_user(request)).data)


def _blacklist_all(user: User) -> None:
    outstanding = OutstandingToken.objects.filter(
        user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


class LogoutView(APIView):
    """Blacklists the refresh token in the body (``{"refresh": ...}``), or, without one, every
    outstanding refresh token of the caller. simplejwt's access tokens are stateless: those
    already issued keep working until they expire (ACCESS_TOKEN_LIFETIME)."""

    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = _user(request)
        raw = serializer.validated_data.get("refresh")
        with transaction.atomic():
            if raw is None:
                _blacklist_all(user)
            else:
                try:
                    token = RefreshToken(raw)
                except TokenError as exc:
                    raise exceptions.AuthenticationFailed(str(exc), "token_not_valid") from exc
                if token.payload.get("user_id") != str(user.pk):
                    raise exceptions.ValidationError(
                        {"refresh": ["This token belongs to another account."]}
                    )
                token.blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    def post(self, request: Request) -> Response:
        with transaction.atomic():
            _blacklist_all(_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- workspace sessions ---------------------------------------------------------------------


class SessionCursorPagination(CursorPagination):
    """DRF's cursor pagination, answering ``{"results", "next_cursor"}`` with the bare opaque
    cursor rather than a next-page URL."""

    ordering = ("-last_active_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def encode_cursor(self, cursor: Cursor) -> str:
        # DRF's own encoding, minus building a URL around it.
        tokens: dict[str, str] = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = str(cursor.position)  # the stubs say int; DRF stores a str
        return b64encode(parse.urlencode(tokens).encode("ascii")).decode("ascii")

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:  # DRF answers a bad cursor with 404
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from exc

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next_cursor": self.get_next_link()})


def _etag(version: int) -> str:
    return f'"{version}"'


def _check_if_match(request: Request, current: int) -> None:
    """412 when If-Match names another version; no header (or ``*``) means "current"."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    if "*" not in tags and str(current) not in tags:
        raise PreconditionFailed()


class SessionListCreateView(generics.ListCreateAPIView[WorkspaceSession]):
    serializer_class = WorkspaceSessionSerializer
    pagination_class = SessionCursorPagination

    def get_queryset(self) -> QuerySet[WorkspaceSession]:
        user = _user(self.request)
        queryset = WorkspaceSession.objects.filter(tenant_id=user.tenant_id)
        params = self.request.query_params
        if path := params.get("workspace_path"):
            queryset = queryset.filter(workspace_path=path)
        owner = params.get("owner", "all")
        if owner == "me":
            queryset = queryset.filter(owner_id=user.pk)
        elif owner != "all":
            raise exceptions.ValidationError({"owner": ['Use "me" or "all".']})
        return queryset

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = _user(request)
        session = serializer.save(tenant_id=user.tenant_id, owner=user)
        headers = {"Location": f"/api/v5/sessions/{session.pk}", "ETag": _etag(session.version)}
        return Response(serializer.data, status=status.HTTP_201_CREATED, headers=headers)


class SessionDetailView(generics.RetrieveUpdateDestroyAPIView[WorkspaceSession]):
    serializer_class = WorkspaceSessionSerializer
    http_method_names = ("get", "patch", "delete", "head", "options")  # no PUT in the contract

    def get_queryset(self) -> QuerySet[WorkspaceSession]:
        # Another tenant's session is simply not in the queryset: 404, never 403.
        return WorkspaceSession.objects.filter(tenant_id=_user(self.request).tenant_id)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = self.get_object()
        data = self.get_serializer(session).data
        return Response(data, headers={"ETag": _etag(session.version)})

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Read, compare versions and write under one write lock (IMMEDIATE transaction), so a
        # concurrent PATCH in another worker cannot slip between the check and the write.
        with transaction.atomic():
            session = self.get_object()
            _check_if_match(request, session.version)
            serializer = self.get_serializer(session, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            session = serializer.save(version=session.version + 1, last_active_at=timezone.now())
        return Response(serializer.data, headers={"ETag": _etag(session.version)})

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = _user(request)
        with transaction.atomic():
            session = self.get_object()
            if session.owner_id != user.pk and user.role == User.Role.MEMBER:
                raise exceptions.PermissionDenied(
                    "Only the owner or a tenant admin deletes a session."
                )
            _check_if_match(request, session.version)
            session.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

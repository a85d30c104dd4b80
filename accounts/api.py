"""REST views of CONTRACT §2: parse, call a service, render. No business logic here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypedDict, TypeVar

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

import fdb_backend
from accounts import schema, selectors, serializers
from accounts.permissions import token_scopes
from accounts.records import ApiToken, AuthSession, Invitation, Tenant, User
from accounts.services import (
    Client,
    LoggedIn,
    Principal,
    Registered,
    api_token_create,
    api_token_list,
    api_token_revoke,
    api_tokens_of_tenant,
    auth_session_logout,
    auth_session_logout_all,
    auth_session_revoke,
    invitation_create,
    invitation_list,
    invitation_revoke,
    member_remove,
    member_role_set,
    principal_require_user,
    token_refresh,
    user_erase,
    user_export,
    user_password_change,
    user_register,
)
from accounts.services.quotas import quota_usage
from accounts.signing_keys import jwk_of, keyring
from core.conditional import if_match
from core.parsers import validated
from core.problems import ApiError
from core.rest import NO_STORE, etag_header, id_or_404, page_args, page_json
from core.time import rfc3339
from fdb_backend.records import Page

R = TypeVar("R")

LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="1..200, default 50"),
    OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
]


def client_of(request: HttpRequest | Request) -> Client:
    meta = request.META
    return Client(
        ip=str(meta.get("REMOTE_ADDR", ""))[:64],
        user_agent=str(meta.get("HTTP_USER_AGENT", ""))[:512],
    )


def principal_of(request: Request) -> Principal:
    user = request.user
    assert isinstance(user, Principal)
    return user


# What the views hand a service beside the body: services take these keyword arguments, so a
# view spreads them (``service(**caller_args(request), ...)``) instead of naming each again.
class ClientArgs(TypedDict):
    """A signed-out use case's: the store, and where the request came from (its auth event)."""

    db: Any
    client: Client


class PrincipalArgs(TypedDict):
    """A signed-in use case that logs no auth event: the store and who asks."""

    db: Any
    principal: Principal


class CallerArgs(PrincipalArgs):
    """A signed-in use case that logs an auth event: also where the request came from."""

    client: Client


def client_args(request: HttpRequest | Request) -> ClientArgs:
    return {"db": fdb_backend.get_database(), "client": client_of(request)}


def principal_args(request: Request) -> PrincipalArgs:
    return {"db": fdb_backend.get_database(), "principal": principal_of(request)}


def caller_args(request: Request) -> CallerArgs:
    return {
        "db": fdb_backend.get_database(),
        "principal": principal_of(request),
        "client": client_of(request),
    }


def _person_json(user: User) -> dict[str, Any]:
    # Who a user is, first in each document of one: the API's user and a tenant's member.
    return {"id": str(user.id), "email": user.email, "display_name": user.display_name}


def user_json(user: User) -> dict[str, Any]:
    return {
        **_person_json(user),
        "tenant_id": str(user.tenant_id),
        "role": user.role,
        "email_verified": user.email_verified_at is not None,
    }


def signed_in_json(done: LoggedIn | Registered) -> dict[str, Any]:
    """The answer of a sign-in (login, its second factor, registering): the token pair and
    the user."""
    return {**done.tokens.as_json(), "user": user_json(done.user)}


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {"id": str(tenant.id), "name": tenant.name, "slug": tenant.slug, "status": tenant.status}


def session_json(session: AuthSession, current: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(session.id),
        "created_at": rfc3339(session.created_at),
        "last_used_at": rfc3339(session.last_used_at),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "current": session.id == current,
    }


def service_handler(
    service: Callable[..., object],
    *,
    ok: Mapping[int, Any],
    request: type[Serializer[Any]] | None = None,
    **operation: Any,
) -> Callable[..., Response]:
    """A view method that only calls ``service`` and answers ``ok``'s one status with no body.

    The service is called with ``caller_args`` of the request (``client_args`` when the
    operation takes no credential, ``auth="none"``), the ids the URL path names (each
    ``id_or_404``, under the path's own name) and the body ``request`` validates, if the
    operation takes one; ``operation`` is the rest of its ``schema.operation``."""
    (status,) = ok
    args: Callable[[Request], Mapping[str, Any]] = (
        client_args if operation.get("auth") == "none" else caller_args
    )

    @schema.operation(ok=ok, request=request, **operation)
    def handle(view: APIView, http: Request, **path: str) -> Response:
        body = validated(request, http.data) if request is not None else {}
        ids = {name: id_or_404(value) for name, value in path.items()}
        service(**args(http), **ids, **body)
        return Response(status=status)

    return handle


def page_handler(
    service: Callable[..., Page[R]],
    item_json: Callable[[R], dict[str, Any]],
    *,
    ok: Mapping[int, Any],
    errors: Mapping[int, schema.Codes] | None = None,
    **operation: Any,
) -> Callable[..., Response]:
    """A view method answering one page (``limit``, ``cursor``) of what ``service`` lists for
    the caller, each record as ``item_json``: the contract's list shape. ``errors`` are the
    operation's own, beside the bad ``limit`` or cursor of every list."""

    @schema.operation(
        ok=ok,
        parameters=LIST_PARAMETERS,
        errors={400: schema.LIST_400, **(errors or {})},
        **operation,
    )
    def handle(view: APIView, http: Request) -> Response:
        page = service(**principal_args(http), **page_args(http))
        return Response(page_json(page, item_json))

    return handle


class Public(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class RegisterView(Public):
    @schema.operation(
        request=serializers.RegisterIn,
        ok={201: schema.RegisterOut},
        **schema.SIGNED_OUT,
        errors={
            400: {
                "invalid": "Also a weak or common password (errors names `password`).",
                "invalid_invitation": "The invitation is invalid, used or expired.",
            },
            403: {
                "email_not_verified": (
                    "The organisation requires verified emails: the account is made and a "
                    "mail sent; confirm it, then sign in."
                )
            },
            409: {"email_taken": "An account with this email exists."},
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(serializers.RegisterIn, request.data)
        done = user_register(**client_args(request), **body)
        return Response({**signed_in_json(done), "tenant": tenant_json(done.tenant)}, status=201)


class RefreshView(Public):
    lean_methods = frozenset({"post"})

    @schema.operation(
        request=serializers.RefreshIn,
        ok={200: schema.TokenPairOut},
        auth="none",
        errors={
            401: {
                "token_reused": "Already used: every token of its sign-in is now revoked.",
                "invalid_token": "Not a refresh token of this server.",
                "token_expired": "The refresh token has expired: sign in again.",
                "session_revoked": "The sign-in was signed out.",
            },
            403: schema.BEARER_403,
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(serializers.RefreshIn, request.data)
        pair = token_refresh(**client_args(request), token=body["refresh"])
        return Response(pair.as_json())


class LogoutView(APIView):
    lean_methods = frozenset({"post"})
    post = service_handler(auth_session_logout, ok={204: schema.NO_CONTENT})


class LogoutAllView(APIView):
    lean_methods = frozenset({"post"})
    post = service_handler(auth_session_logout_all, ok={204: schema.NO_CONTENT})


class MeView(APIView):
    lean_methods = frozenset({"get"})
    required_scopes = token_scopes(get=None)  # any API token may ask whom it acts for

    @schema.operation(ok={200: schema.MeOut})
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        return Response({**user_json(principal.user), "tenant": tenant_json(principal.tenant)})

    delete = service_handler(
        user_erase,
        request=serializers.EraseIn,
        ok={204: schema.NO_CONTENT},
        throttled=True,
        errors={
            400: {
                "wrong_password": "The password is incorrect.",
                "mfa_code_required": "Two-factor authentication is on: send `code`.",
                **schema.MFA_CODE,
            },
            409: {"last_owner": "The tenant's last owner: make someone else owner first."},
        },
        description=(
            "Erase the caller: auth sessions and API tokens revoked at once and sockets "
            "closed, the workspace sessions they own deleted with everything attached, "
            "their connections, locks and mentions in session events removed, and their "
            "auth events kept for the tenant's audit without IP address or user agent."
        ),
    )


class MeExportView(APIView):
    # No required_scopes: a person's data is theirs to take, never an API token's.

    @schema.operation(
        ok={200: schema.ExportOut},
        description=(
            'Everything stored about the caller, as readable JSON (CONTRACT §2 "Your '
            'data"): profile, tenant and role, second factor (never its secret), auth '
            "sessions, auth events, API tokens (never their secret or digest), invitations "
            "sent, the workspace sessions they own with state and events, their live "
            "connections and locks, and the logged events that name them."
        ),
    )
    def get(self, request: Request) -> Response:
        exported = user_export(**principal_args(request))
        return Response(
            exported,
            headers={
                "Content-Disposition": 'attachment; filename="coditect-export.json"',
                **NO_STORE,
            },
        )


class SessionsView(APIView):
    lean_methods = frozenset({"get"})

    @schema.operation(
        ok={200: schema.AuthSessionListOut},
        parameters=LIST_PARAMETERS,
        errors={400: schema.LIST_400},
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        current = principal_require_user(principal=principal)
        page = selectors.auth_session_list(
            db=fdb_backend.get_database(),
            tenant_id=principal.tenant_id,
            user_id=principal.user_id,
            **page_args(request),
        )
        return Response(page_json(page, lambda s: session_json(s, current.id)))


class SessionDetailView(APIView):
    lean_methods = frozenset({"delete"})

    @schema.operation(ok={204: schema.NO_CONTENT}, errors={404: schema.NOT_FOUND})
    def delete(self, request: Request, session_id: str) -> Response:
        found = auth_session_revoke(**caller_args(request), session_id=id_or_404(session_id))
        if not found:
            raise ApiError(404, "not_found", "Not found.")
        return Response(status=204)


class PasswordView(APIView):
    post = service_handler(
        user_password_change,
        request=serializers.PasswordIn,
        ok={204: schema.NO_CONTENT},
        errors={
            400: {
                "wrong_password": "current_password is not the password.",
                **schema.WEAK_PASSWORD,
            }
        },
    )


class JwksView(Public):
    lean_methods = frozenset({"get"})

    @schema.operation(ok={200: schema.JwksOut}, auth="none")
    def get(self, request: Request) -> Response:
        keys = keyring(db=fdb_backend.get_database())
        return Response(
            {"keys": [jwk_of(kid, key) for kid, key in sorted(keys.public_keys.items())]},
            headers={"Cache-Control": "public, max-age=300"},
        )


class TenantView(APIView):
    lean_methods = frozenset({"get"})
    required_scopes = token_scopes(get=None)

    @schema.operation(ok={200: schema.TenantDetailOut})
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        quotas = quota_usage(fdb_backend.get_database(), tenant_id=principal.tenant_id)
        return Response(
            {
                **tenant_json(principal.tenant),
                "role": principal.user.role,
                "created_at": rfc3339(principal.tenant.created_at),
                "usage": {kind: quota.used for kind, quota in quotas.items()},
                "quotas": {kind: quota.limit for kind, quota in quotas.items()},
            }
        )


def member_json(user: User) -> dict[str, Any]:
    return {**_person_json(user), "role": user.role, "created_at": rfc3339(user.created_at)}


def invitation_json(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": str(invitation.id),
        "email": invitation.email,
        "role": invitation.role,
        "created_by": str(invitation.created_by),
        "created_at": rfc3339(invitation.created_at),
        "expires_at": rfc3339(invitation.expires_at),
    }


class MembersView(APIView):
    lean_methods = frozenset({"get"})

    @schema.operation(
        ok={200: schema.MemberListOut}, parameters=LIST_PARAMETERS, errors={400: schema.LIST_400}
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        page = selectors.member_list(
            db=fdb_backend.get_database(), tenant_id=principal.tenant_id, **page_args(request)
        )
        return Response(page_json(page, member_json))


class MemberDetailView(APIView):
    lean_methods = frozenset({"patch", "delete"})

    @schema.operation(
        request=serializers.MemberRoleIn,
        ok={200: schema.MemberOut},
        parameters=[schema.IF_MATCH, schema.etag(200)],
        errors={
            403: {
                "forbidden": (
                    "Only owners and admins change roles, each up to their own; only an owner "
                    "grants or removes `owner`."
                )
            },
            404: schema.NOT_FOUND,
            409: {"last_owner": "The member is the tenant's last owner."},
            412: schema.VERSION_CONFLICT,
        },
    )
    def patch(self, request: Request, user_id: str) -> Response:
        member = id_or_404(user_id)
        body = validated(serializers.MemberRoleIn, request.data)
        changed = member_role_set(
            **caller_args(request),
            user_id=member,
            role=body["role"],
            expected_version=if_match(request),
        )
        return Response(member_json(changed), headers=etag_header(changed.version))

    delete = service_handler(
        member_remove,
        ok={204: schema.NO_CONTENT},
        errors={
            403: {"forbidden": "Only owners and admins remove members; only an owner an owner."},
            404: schema.NOT_FOUND,
            409: {"last_owner": "A tenant needs at least one owner."},
        },
    )


class InvitationsView(APIView):
    lean_methods = frozenset({"get", "post"})

    get = page_handler(
        invitation_list,
        invitation_json,
        ok={200: schema.InvitationListOut},
        errors={403: schema.MANAGERS_ONLY},
    )

    @schema.operation(
        request=serializers.InvitationIn,
        ok={201: schema.InvitationOut},
        errors={
            400: {"invalid": "Also a role that is not owner, admin, member or viewer."},
            403: {
                "forbidden": (
                    "Only owners and admins invite, each as a role up to their own; only an "
                    "owner invites an owner."
                )
            },
        },
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        if principal.user.role not in ("owner", "admin"):
            raise ApiError(403, "forbidden", "Only owners and admins can invite.")
        body = validated(serializers.InvitationIn, request.data)
        issued = invitation_create(**caller_args(request), **body)
        return Response(
            {
                "id": str(issued.invitation.id),
                "token": issued.token,
                "email": issued.invitation.email,
                "role": issued.invitation.role,
                "expires_at": rfc3339(issued.invitation.expires_at),
            },
            status=201,
            headers=NO_STORE,
        )


class InvitationDetailView(APIView):
    lean_methods = frozenset({"delete"})
    delete = service_handler(
        invitation_revoke,
        ok={204: schema.NO_CONTENT},
        errors={
            403: {
                "forbidden": (
                    "Only owners and admins revoke invitations; only an owner an owner's."
                )
            },
            404: schema.NOT_FOUND,
        },
    )


# --- API tokens (CONTRACT §7) ----------------------------------------------------------------


def api_token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": str(token.id),
        "user_id": str(token.user_id),
        "name": token.name,
        "scopes": list(token.scopes),
        "created_at": rfc3339(token.created_at),
        "expires_at": rfc3339(token.expires_at) if token.expires_at else None,
        "last_used_at": rfc3339(token.last_used_at) if token.last_used_at else None,
    }


class ApiTokensView(APIView):
    # No required_scopes: API tokens never list or make tokens (accounts/permissions.py).

    get = page_handler(api_token_list, api_token_json, ok={200: schema.ApiTokenListOut})

    @schema.operation(
        request=serializers.ApiTokenIn,
        ok={201: schema.ApiTokenCreatedOut},
        errors={403: schema.QUOTA_EXCEEDED},
    )
    def post(self, request: Request) -> Response:
        body = validated(serializers.ApiTokenIn, request.data)
        issued = api_token_create(**caller_args(request), **body)
        return Response(
            {**api_token_json(issued.record), "token": issued.token},
            status=201,
            headers=NO_STORE,
        )


class ApiTokenDetailView(APIView):
    delete = service_handler(
        api_token_revoke, ok={204: schema.NO_CONTENT}, errors={404: schema.NOT_FOUND}
    )


class TenantApiTokensView(APIView):
    get = page_handler(
        api_tokens_of_tenant,
        api_token_json,
        operation_id="tenant_api_tokens_list",
        ok={200: schema.ApiTokenListOut},
        errors={403: schema.MANAGERS_ONLY},
    )


class TenantApiTokenDetailView(APIView):
    delete = service_handler(
        partial(api_token_revoke, any_user=True),
        operation_id="tenant_api_tokens_destroy",
        ok={204: schema.NO_CONTENT},
        errors={403: schema.MANAGERS_ONLY, 404: schema.NOT_FOUND},
    )

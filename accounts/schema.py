"""OpenAPI descriptions of the accounts API (request and response shapes, security)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


UserOut = inline_serializer(
    "User",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "display_name": serializers.CharField(),
        "tenant_id": serializers.UUIDField(),
        "role": serializers.ChoiceField(choices=["owner", "admin", "member"]),
    },
)
TenantOut = inline_serializer(
    "Tenant",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "slug": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["active", "suspended"]),
    },
)
_PAIR: dict[str, Any] = {
    "access": serializers.CharField(),
    "refresh": serializers.CharField(),
    "token_type": serializers.CharField(),
    "expires_in": serializers.IntegerField(),
    "refresh_expires_in": serializers.IntegerField(),
}
TokenPairOut = inline_serializer("TokenPair", _PAIR)
LoginOut = inline_serializer("LoginResult", {**_PAIR, "user": UserOut})
RegisterOut = inline_serializer("RegisterResult", {**_PAIR, "user": UserOut, "tenant": TenantOut})
MeOut = inline_serializer(
    "Me",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "display_name": serializers.CharField(),
        "tenant_id": serializers.UUIDField(),
        "role": serializers.CharField(),
        "tenant": TenantOut,
    },
)


def listing(name: str, item: str, fields: dict[str, serializers.Field[Any, Any, Any, Any]]) -> Any:
    """``{"results": [item, ...], "next_cursor": str | null}``, the contract's list shape."""
    return inline_serializer(
        name,
        {
            "results": inline_serializer(item, fields, many=True),
            "next_cursor": serializers.CharField(allow_null=True),
        },
    )


AuthSessionListOut = listing(
    "AuthSessionList",
    "AuthSession",
    {
        "id": serializers.UUIDField(),
        "created_at": serializers.DateTimeField(),
        "last_used_at": serializers.DateTimeField(),
        "ip": serializers.CharField(),
        "user_agent": serializers.CharField(),
        "current": serializers.BooleanField(),
    },
)
MemberListOut = listing(
    "MemberList",
    "Member",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "display_name": serializers.CharField(),
        "role": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
    },
)
TenantDetailOut = inline_serializer(
    "TenantDetail",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "slug": serializers.CharField(),
        "status": serializers.CharField(),
        "role": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
    },
)
InvitationOut = inline_serializer(
    "Invitation",
    {
        "token": serializers.CharField(),
        "email": serializers.EmailField(),
        "role": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
    },
)
JwksOut = inline_serializer(
    "Jwks",
    {"keys": serializers.ListField(child=serializers.DictField(child=serializers.CharField()))},
)
NO_CONTENT = {204: OpenApiResponse(description="Done.")}

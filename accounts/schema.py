"""OpenAPI descriptions of the accounts API (request and response shapes, security)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class StrictBody(OpenApiSerializerExtension):
    """Request bodies refuse fields they do not declare (``serializers.Strict``): say so, so
    clients and fuzzers (tests/reliability/test_schema_fuzz.py) know an extra field is a 400."""

    target_class = "accounts.serializers.Strict"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        return schema


UserOut = inline_serializer(
    "User",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "display_name": serializers.CharField(),
        "tenant_id": serializers.UUIDField(),
        "role": serializers.ChoiceField(choices=["owner", "admin", "member"]),
        "email_verified": serializers.BooleanField(),
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
        "email_verified": serializers.BooleanField(),
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


# --- account recovery and the second factor -----------------------------------------------

_PROBLEM: dict[str, Any] = {
    "type": serializers.CharField(),
    "title": serializers.CharField(),
    "status": serializers.IntegerField(),
    "detail": serializers.CharField(),
    "code": serializers.CharField(),
    "errors": serializers.ListField(child=serializers.DictField()),
    "request_id": serializers.CharField(),
}
MfaRequiredOut = OpenApiResponse(
    response=inline_serializer(
        "MfaRequired",
        {
            **_PROBLEM,
            # Present with code mfa_required only.
            "mfa_challenge": serializers.CharField(required=False),
            "mfa_challenge_expires_in": serializers.IntegerField(required=False),
            "mfa_methods": serializers.ListField(child=serializers.CharField(), required=False),
        },
    ),
    description=(
        "code mfa_required: the password was right and the account has a second factor; "
        "POST mfa_challenge and a code to login/mfa. code invalid_credentials: unknown email "
        "or wrong password."
    ),
)
MfaStatusOut = inline_serializer(
    "MfaStatus",
    {
        "totp_enabled": serializers.BooleanField(),
        "totp_enabled_at": serializers.DateTimeField(allow_null=True),
        "enrollment_pending": serializers.BooleanField(),
        "recovery_codes_left": serializers.IntegerField(),
    },
)
TotpEnrollmentOut = inline_serializer(
    "TotpEnrollment",
    {
        "secret": serializers.CharField(help_text="Base32; shown this once."),
        "otpauth_uri": serializers.CharField(help_text="otpauth://totp/... for a QR code."),
        "digits": serializers.IntegerField(),
        "period": serializers.IntegerField(),
        "algorithm": serializers.CharField(),
    },
)
RecoveryCodesOut = inline_serializer(
    "RecoveryCodes",
    {
        "recovery_codes": serializers.ListField(
            child=serializers.CharField(), help_text="Each works once; shown this once."
        )
    },
)
TenantSettingsOut = inline_serializer(
    "TenantSettings", {"require_email_verification": serializers.BooleanField()}
)
ACCEPTED = {
    202: OpenApiResponse(
        description="Accepted: the same answer whether or not an account has this email."
    )
}


# --- API tokens (CONTRACT §7) --------------------------------------------------------------

_API_TOKEN: dict[str, Any] = {
    "id": serializers.UUIDField(),
    "user_id": serializers.UUIDField(),
    "name": serializers.CharField(),
    "scopes": serializers.ListField(child=serializers.CharField()),
    "created_at": serializers.DateTimeField(),
    "expires_at": serializers.DateTimeField(allow_null=True),
    "last_used_at": serializers.DateTimeField(allow_null=True),
}
ApiTokenCreatedOut = inline_serializer(
    "ApiTokenCreated",
    {
        **_API_TOKEN,
        "token": serializers.CharField(
            help_text="cdt_...: shown this once; only its digest is stored."
        ),
    },
)
ApiTokenListOut = listing("ApiTokenList", "ApiToken", _API_TOKEN)


class ScopedAutoSchema(AutoSchema):
    """Each operation says what an API token needs for it, ``x-api-token-scope``: a scope
    name, ``any`` (every API token) or ``forbidden`` (users only); absent on the public
    operations. Read from the same rules ``accounts.permissions`` enforces."""

    def get_auth(self) -> Any:
        from accounts.permissions import SignedOutOrUser

        auths = super().get_auth()
        if any(isinstance(p, SignedOutOrUser) for p in self.view.get_permissions()):
            auths.append({})  # open to anyone, as AllowAny is
        return auths

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        from accounts.permissions import USER_ONLY_RULE, ScopedAccess, api_token_rule

        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        permissions = self.view.get_permissions()
        if any(isinstance(p, ScopedAccess) for p in permissions):
            rule = api_token_rule(self.view, self.method)
            operation["x-api-token-scope"] = {None: "any", USER_ONLY_RULE: "forbidden"}.get(
                rule, rule
            )
        elif self.view.get_authenticators():
            # Open to anyone, acting on the signed-in user when there is one.
            operation["x-api-token-scope"] = "forbidden"
        return operation

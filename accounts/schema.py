"""OpenAPI descriptions of the API (request and response shapes, errors, headers, security).

Each view documents itself with ``@schema.operation(...)``: its success responses, the
problem+json errors it can answer (each code with an example), the headers it sends or honours,
and whether it takes a bearer token. The errors every operation of a kind shares (a bad token,
a malformed body, a throttle) are added here, from what the operation is, so no view has to
repeat them. tests/reliability/test_openapi_responses.py checks real answers against this,
strictly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http.client import responses as reasons
from typing import Any, Literal, TypedDict

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers

from accounts.records import ROLES
from core.problems import CONTENT_TYPE as PROBLEM_JSON
from core.problems import TYPE_PREFIX

Auth = Literal["required", "optional", "none"]
Codes = Mapping[str, str]  # code -> when it is answered


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        # No bearerFormat: the token is opaque to clients, whichever kind it is.
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>`. The token is the `access` token of "
                "register, login, login/mfa or refresh (short-lived; refresh it with the "
                "`refresh` token), or an API token (`cdt_...`), which is sent the same way. "
                "A missing, malformed, expired or revoked token is a 401 problem with a "
                "`WWW-Authenticate: Bearer` challenge."
            ),
        }


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


# --- problems (CONTRACT §1) ----------------------------------------------------------------


def _problem_fields() -> dict[str, Any]:
    # New field instances for each serializer: DRF's serializer metaclass takes the fields out
    # of the dict that inline_serializer hands it, so a shared dict is empty after its first use.
    return {
        "type": serializers.CharField(help_text=f"`{TYPE_PREFIX}<code>`."),
        "title": serializers.CharField(help_text="The HTTP reason phrase of `status`."),
        "status": serializers.IntegerField(help_text="The HTTP status code."),
        "detail": serializers.CharField(help_text="What went wrong, for people."),
        "code": serializers.CharField(
            help_text=(
                "Stable machine word to branch on; each response lists its codes (and has an "
                "example of each). Treat a code you do not know as the status's generic case."
            )
        ),
        "errors": type(FieldErrorOut)(many=True, help_text="Each invalid field; empty otherwise."),
        "request_id": serializers.CharField(help_text="Also in the X-Request-ID header."),
    }


FieldErrorOut = inline_serializer(
    "FieldError",
    {
        "attr": serializers.CharField(
            allow_null=True, help_text="Dotted path of the field; null for the whole body."
        ),
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
    },
)
ProblemOut = inline_serializer("Problem", _problem_fields())
MfaRequiredProblemOut = inline_serializer(
    "MfaRequiredProblem",
    {
        **_problem_fields(),
        # Present with code mfa_required only.
        "mfa_challenge": serializers.CharField(
            required=False, help_text="code mfa_required: POST it with a code to login/mfa."
        ),
        "mfa_challenge_expires_in": serializers.IntegerField(
            required=False, help_text="code mfa_required: seconds the challenge stays valid."
        ),
        "mfa_methods": serializers.ListField(
            child=serializers.ChoiceField(choices=["totp", "recovery_code"]), required=False
        ),
    },
)

# The errors operations share, by what the operation is.
BEARER_401: dict[str, str] = {
    "invalid_token": "The token is malformed, forged, or not `Bearer <token>`.",
    "token_expired": "The access token has expired: refresh it.",
    "session_revoked": "This sign-in was signed out (logout, password change, revocation).",
}
NOT_AUTHENTICATED = {"not_authenticated": "No Authorization header."}
BEARER_403 = {
    "account_locked": "The account is locked.",
    "tenant_suspended": "The organisation is suspended.",
    "insufficient_scope": "An API token whose scopes do not allow this (see x-api-token-scope).",
}
# A sign-in's refusals once the password (or the second factor) was right.
SIGN_IN_403 = {
    **BEARER_403,
    "email_not_verified": "The organisation requires a verified email first.",
}


class Kind(TypedDict, total=False):
    """What kind of operation it is, as ``operation`` takes it."""

    auth: Auth
    throttled: bool


# A signed-out account flow (register, login and its second factor, the mailed-token steps):
# no credential, and throttled, since anyone may try it against any address.
SIGNED_OUT: Kind = {"auth": "none", "throttled": True}
BODY_400 = {
    "malformed_json": "The body is not JSON (or nested too deeply, or has non-finite numbers).",
    "invalid": (
        "A field is missing, of the wrong type or out of range, or unknown (errors[].code "
        "`unknown_field`); `errors` names each."
    ),
}
BODY_411 = {
    "length_required": (
        "The body came without a `Content-Length` (`Transfer-Encoding: chunked`) to a server "
        "that cannot read it so (a WSGI server that does not mark where the body ends); "
        "send it with its length."
    )
}
BODY_413 = {"body_too_large": "The body is larger than the server's limit."}
BODY_415 = {"unsupported_media_type": "The body is not `application/json`."}
THROTTLED = {"throttled": "Too many attempts; wait `Retry-After` seconds."}
RATE_LIMITED = {
    "rate_limited": (
        "Over this principal's or this tenant's rate limit for reads or writes; nothing was "
        "done. Wait `Retry-After` seconds."
    )
}
NOT_FOUND = {"not_found": "No such id, or not in your organisation (never a 403)."}
QUOTA_EXCEEDED = {
    "quota_exceeded": "The write would take the organisation past one of its quotas "
    "(workspace sessions, stored bytes, API tokens; `GET /api/v5/tenant/` shows them); "
    "nothing was written."
}
MANAGERS_ONLY = {"forbidden": "Only owners and admins can do this."}
EMAIL_UNVERIFIED = {
    "email_not_verified": "Confirm your email address first: a second factor needs it."
}
# The challenge of login's mfa_required, refused when login/mfa completes it.
MFA_CHALLENGE = {
    "invalid_mfa_challenge": "The challenge is invalid or used: sign in again.",
    "mfa_challenge_expired": "The challenge expired: sign in again.",
}
MFA_CODE = {
    "invalid_mfa_code": "The code is incorrect.",
    "mfa_code_reused": "This code was already used; wait for the next one.",
}


def one_time_token(kind: str) -> dict[str, str]:
    """The refusals of a mailed one-time token of ``kind`` (``verification``, ``reset``)."""
    return {
        f"invalid_{kind}_token": "The token is invalid or was already used.",
        f"{kind}_token_expired": "The token has expired; ask for a new one.",
    }


# A new password the policy refuses (a field error names it).
WEAK_PASSWORD = {"invalid": "Also a weak or common new password (errors names it)."}
# A change of a record of the tenant whose If-Match names an older version.
VERSION_CONFLICT = {"version_conflict": "`If-Match` names a version that is not the current one."}
# What a viewer gets for any write (docs/accounts.md "Roles").
VIEWER_403 = {"forbidden": "The caller is a viewer: viewers read and join, never write."}
LIST_400 = {"invalid": "`limit` is not 1..200.", "invalid_cursor": "The cursor is not this list's."}


def _sent(
    name: str, description: str, statuses: Iterable[int], *, kind: type = str, required: bool = True
) -> OpenApiParameter:
    """A header the responses of ``statuses`` carry."""
    return OpenApiParameter(
        name,
        kind,
        OpenApiParameter.HEADER,
        response=list(statuses),
        required=required,
        description=description,
    )


WWW_AUTHENTICATE = _sent(
    "WWW-Authenticate",
    'The bearer challenge (RFC 6750), e.g. `Bearer realm="coditect", error="token_expired"`.',
    [401],
)
RETRY_AFTER = _sent("Retry-After", "Seconds to wait before trying again.", [429], kind=int)


_RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": (
        "Requests of this kind (reads: GET, HEAD; writes: the rest) allowed per minute by the "
        "limit closest to exhaustion: the caller's (a user's access tokens together, or one "
        "API token) or the tenant's."
    ),
    "RateLimit-Remaining": (
        "Requests of this kind left in the current minute under that limit (0 when refused). "
        "With several server processes it is approximate; the limit itself is exact."
    ),
    "RateLimit-Reset": "Seconds until the current minute's window ends and the count restarts.",
}
# Answers that may come before the request spent its rate limit (an authentication failure,
# a body refused on its declared size or for want of one): the headers are there only when
# it was counted.
_BEFORE_RATE_LIMIT = (401, 403, 411, 413)


def rate_limit_headers(statuses: Iterable[int], auth: Auth) -> list[OpenApiParameter]:
    """The RateLimit-* headers of an authenticated operation's answers: required on every
    answer to a counted request, optional where the answer may come before counting (and on
    every answer of an operation whose token is optional)."""
    counted = [s for s in statuses if s not in _BEFORE_RATE_LIMIT and auth == "required"]
    maybe = [s for s in statuses if s != 401 and s not in counted]
    return [
        _sent(name, description, which, kind=int, required=required)
        for which, required in ((counted, True), (maybe, False))
        if which
        for name, description in _RATE_LIMIT_HEADERS.items()
    ]


def etag(*statuses: int) -> OpenApiParameter:
    return _sent(
        "ETag", '`"<version>"`: the record\'s version, to send back in `If-Match`.', statuses
    )


def location(*statuses: int) -> OpenApiParameter:
    return _sent("Location", "The path of the record made.", statuses)


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        '`"<version>"` (the ETag read): change only that version, else 412 '
        "`version_conflict`. Absent or `*`: change the current version."
    ),
)


def _example(status: int, code: str, detail: str) -> OpenApiExample:
    return OpenApiExample(
        code,
        summary=code,
        description=detail,
        value={
            "type": TYPE_PREFIX + code,
            "title": reasons.get(status, "Error"),
            "status": status,
            "detail": detail,
            "code": code,
            "errors": [],
            "request_id": "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99",
        },
    )


def problem(status: int, codes: Codes, body: Any = None) -> OpenApiResponse:
    """A problem+json response listing ``codes`` (each also an example)."""
    listed = "\n".join(f"- `{code}`: {when}" for code, when in codes.items())
    return OpenApiResponse(
        response=body or ProblemOut,
        description=f"{reasons.get(status, 'Error')}, `application/problem+json`:\n\n{listed}",
        examples=[_example(status, code, when) for code, when in codes.items()],
    )


def operation(
    *,
    ok: Mapping[int, Any],
    request: Any = None,
    auth: Auth = "required",
    errors: Mapping[int, Codes] | None = None,
    throttled: bool = False,
    parameters: Iterable[OpenApiParameter] = (),
    bodies: Mapping[int, Any] | None = None,
    operation_id: str | None = None,
    description: str | None = None,
) -> Callable[[Any], Any]:
    """``extend_schema`` with the operation's errors and headers filled in.

    ``ok``: success status -> serializer (None: no body). ``errors``: status -> {code: when}
    for this operation's own errors; the shared ones (bearer token, request body, throttle,
    the rate limit of authenticated operations with its RateLimit-* headers) are added from
    ``auth``, ``request`` and ``throttled``. ``bodies``: status -> a problem
    serializer other than Problem (login's 401 carries its MFA challenge).
    """
    table: dict[int, dict[str, str]] = {}

    def add(status: int, codes: Codes) -> None:
        table.setdefault(status, {}).update(codes)

    if request is not None:
        add(400, BODY_400)
        add(411, BODY_411)
        add(413, BODY_413)
        add(415, BODY_415)
    if auth != "none":
        add(401, {**(NOT_AUTHENTICATED if auth == "required" else {}), **BEARER_401})
        add(403, BEARER_403)
    if throttled:
        add(429, THROTTLED)
    if auth != "none":
        add(429, RATE_LIMITED)
    for status, codes in (errors or {}).items():
        add(status, codes)
    responses: dict[Any, Any] = dict(ok)
    for status, codes in sorted(table.items()):
        responses[(status, PROBLEM_JSON)] = problem(status, codes, (bodies or {}).get(status))
    headers = [*parameters]
    if 401 in table:
        headers.append(WWW_AUTHENTICATE)
    if 429 in table:
        headers.append(RETRY_AFTER)
    if auth != "none":
        headers += rate_limit_headers([*ok, *table], auth)
    kwargs: dict[str, Any] = {}
    if operation_id is not None:
        kwargs["operation_id"] = operation_id
    if description is not None:
        kwargs["description"] = description
    return extend_schema(request=request, responses=responses, parameters=headers or None, **kwargs)


# --- response bodies ---------------------------------------------------------------------------

_KINDS: dict[str, Callable[..., serializers.Field[Any, Any, Any, Any]]] = {
    "str": serializers.CharField,
    "email": serializers.EmailField,
    "uuid": serializers.UUIDField,
    "time": serializers.DateTimeField,
    "bool": serializers.BooleanField,
    "int": serializers.IntegerField,
    "dict": serializers.DictField,
    "json": serializers.JSONField,  # free-form JSON the person stored (states, event data)
    "strs": lambda **kw: serializers.ListField(child=serializers.CharField(), **kw),
    "uuids": lambda **kw: serializers.ListField(child=serializers.UUIDField(), **kw),
}


def fields(spec: str, **given: str | Callable[[], Any]) -> dict[str, Any]:
    """The fields of a plain shape, in ``spec``'s order: space-separated ``name:kind`` words,
    a kind of ``_KINDS`` (``str`` when left out; a trailing ``?`` allows null). ``given``
    holds a field's help text, or what makes a field no kind describes (a nested shape).
    The fields are made here, in order, and new each call: DRF's serializer metaclass
    orders fields by when they were made and takes over the ones it is handed."""
    made: dict[str, Any] = {}
    for word in spec.split():
        name, _, kind = word.partition(":")
        extra = given.get(name)
        if callable(extra):
            made[name] = extra()
            continue
        options: dict[str, Any] = {"help_text": extra} if extra is not None else {}
        if kind.endswith("?"):
            options["allow_null"] = True
        made[name] = _KINDS[kind.rstrip("?") or "str"](**options)
    return made


def _person_fields() -> dict[str, Any]:
    # Who a user is, first in each document of one (accounts/api.py _person_json).
    return {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "display_name": serializers.CharField(),
    }


def _user_fields() -> dict[str, Any]:
    return {
        **_person_fields(),
        "tenant_id": serializers.UUIDField(),
        "role": serializers.ChoiceField(choices=list(ROLES)),
        "email_verified": serializers.BooleanField(),
    }


def _tenant_fields() -> dict[str, Any]:
    return {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "slug": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["active", "suspended"]),
    }


def _pair_fields() -> dict[str, Any]:
    return {
        "access": serializers.CharField(help_text="Send as `Authorization: Bearer <access>`."),
        "refresh": serializers.CharField(help_text="POST it to refresh for a new pair; once."),
        "token_type": serializers.ChoiceField(choices=["Bearer"]),
        "expires_in": serializers.IntegerField(help_text="Seconds the access token lives."),
        "refresh_expires_in": serializers.IntegerField(
            help_text="Seconds the refresh token lives."
        ),
    }


UserOut = inline_serializer("User", _user_fields())
TenantOut = inline_serializer("Tenant", _tenant_fields())
TokenPairOut = inline_serializer("TokenPair", _pair_fields())
LoginOut = inline_serializer("LoginResult", {**_pair_fields(), "user": UserOut})
RegisterOut = inline_serializer(
    "RegisterResult", {**_pair_fields(), "user": UserOut, "tenant": TenantOut}
)
MeOut = inline_serializer("Me", {**_user_fields(), "tenant": TenantOut})


def listing(name: str, item: str, fields: dict[str, serializers.Field[Any, Any, Any, Any]]) -> Any:
    """``{"results": [item, ...], "next_cursor": str | null}``, the contract's list shape."""
    return inline_serializer(
        name,
        {
            "results": inline_serializer(item, fields, many=True),
            "next_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as `cursor` for the next page; null at the end."
            ),
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
        "current": serializers.BooleanField(help_text="The sign-in of this request's token."),
    },
)


def _member_fields() -> dict[str, Any]:
    return {
        **_person_fields(),
        "role": serializers.ChoiceField(choices=list(ROLES)),
        "created_at": serializers.DateTimeField(),
    }


MemberListOut = listing("MemberList", "Member", _member_fields())
MemberOut = inline_serializer("MemberDetail", _member_fields())


def _quota_fields(help_text: str, *, nullable: bool) -> dict[str, Any]:
    return {
        kind: serializers.IntegerField(allow_null=nullable, help_text=help_text)
        for kind in ("sessions", "bytes", "api_tokens")
    }


TenantDetailOut = inline_serializer(
    "TenantDetail",
    {
        **_tenant_fields(),
        "role": serializers.ChoiceField(choices=list(ROLES), help_text="The caller's role."),
        "created_at": serializers.DateTimeField(),
        "usage": inline_serializer(
            "TenantUsage",
            _quota_fields(
                "What the organisation uses: workspace sessions, stored bytes of session "
                "state and events, API tokens.",
                nullable=False,
            ),
        ),
        "quotas": inline_serializer(
            "TenantQuotas",
            _quota_fields("The quota in force; null: unlimited.", nullable=True),
        ),
    },
)
InvitationOut = inline_serializer(
    "Invitation",
    {
        "id": serializers.UUIDField(help_text="Names it in the list and to revoke it."),
        "token": serializers.CharField(help_text="Single use; shown this once."),
        "email": serializers.EmailField(),
        "role": serializers.ChoiceField(choices=list(ROLES)),
        "expires_at": serializers.DateTimeField(),
    },
)
InvitationListOut = listing(
    "InvitationList",
    "PendingInvitation",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "role": serializers.ChoiceField(choices=list(ROLES)),
        "created_by": serializers.UUIDField(help_text="The user who invited."),
        "created_at": serializers.DateTimeField(),
        "expires_at": serializers.DateTimeField(),
    },
)
JwksOut = inline_serializer(
    "Jwks",
    {
        "keys": inline_serializer(
            "Jwk",
            {
                "kty": serializers.ChoiceField(choices=["OKP"]),
                "crv": serializers.ChoiceField(choices=["Ed25519"]),
                "kid": serializers.CharField(),
                "x": serializers.CharField(help_text="The public key, base64url."),
                "use": serializers.ChoiceField(choices=["sig"]),
                "alg": serializers.ChoiceField(choices=["EdDSA"]),
            },
            many=True,
        )
    },
)
NO_CONTENT = OpenApiResponse(description="Done; no body.")


def _mfa_status_fields() -> dict[str, Any]:
    return fields(
        "totp_enabled:bool totp_enabled_at:time? enrollment_pending:bool recovery_codes_left:int"
    )


def _export_event() -> dict[str, Any]:
    return fields("seq:int event data:json? origin created_at:time")


ExportOut = inline_serializer(
    "PersonalDataExport",
    {
        "format": serializers.ChoiceField(choices=["coditect.export.v1"]),
        "exported_at": serializers.DateTimeField(),
        "user": inline_serializer(
            "ExportUser",
            fields(
                "id:uuid email:email display_name role locked:bool locked_reason "
                "created_at:time password_changed_at:time email_verified_at:time?"
            ),
        ),
        "tenant": inline_serializer(
            "ExportTenant",
            fields("id:uuid name slug role", role="Your role in it."),
        ),
        "mfa": inline_serializer("ExportMfa", _mfa_status_fields()),
        "auth_sessions": inline_serializer(
            "ExportAuthSession",
            fields(
                "id:uuid created_at:time last_used_at:time expires_at:time ip user_agent "
                "revoked_at:time? revoked_reason"
            ),
            many=True,
        ),
        "auth_events": inline_serializer(
            "ExportAuthEvent", fields("id:uuid type at:time ip user_agent data:dict"), many=True
        ),
        "api_tokens": inline_serializer(
            "ExportApiToken",
            fields(
                "id:uuid name scopes:strs created_at:time expires_at:time? last_used_at:time? "
                "addresses:strs"
            ),
            many=True,
        ),
        "invitations_sent": inline_serializer(
            "ExportInvitation",
            fields("email:email role created_at:time expires_at:time"),
            many=True,
        ),
        "workspace_sessions": inline_serializer(
            "ExportWorkspaceSession",
            fields(
                "id:uuid name workspace_path active_files:strs editor_state:dict "
                "terminal_state:dict parent_session_id:uuid? related_session_ids:uuids "
                "created_at:time last_active_at:time version:int seq:int events",
                events=lambda: inline_serializer("ExportSessionEvent", _export_event(), many=True),
            ),
            many=True,
        ),
        "presence": inline_serializer(
            "ExportPresence",
            {
                "connections": inline_serializer(
                    "ExportConnection",
                    fields(
                        "session_id:uuid connection_id user_id:uuid display_name "
                        "connected_at:time last_seen:time"
                    ),
                    many=True,
                ),
                "locks": inline_serializer(
                    "ExportLock",
                    fields(
                        "session_id:uuid path holder expires_at:time",
                        holder=lambda: inline_serializer(
                            "ExportLockHolder", fields("connection_id user_id:uuid")
                        ),
                    ),
                    many=True,
                ),
                "events_naming_you": inline_serializer(
                    "ExportEventNamingYou",
                    {"session_id": serializers.UUIDField(), **_export_event()},
                    many=True,
                ),
            },
        ),
    },
)
MfaStatusOut = inline_serializer("MfaStatus", _mfa_status_fields())
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
ACCEPTED = OpenApiResponse(
    description="Accepted: the same answer whether or not an account has this email."
)


# --- API tokens (CONTRACT §7) --------------------------------------------------------------


def _api_token_fields() -> dict[str, Any]:
    # Fresh field instances for each serializer: DRF's metaclass takes them over.
    return {
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
        **_api_token_fields(),
        "token": serializers.CharField(
            help_text="cdt_...: shown this once; only its digest is stored."
        ),
    },
)
ApiTokenListOut = listing("ApiTokenList", "ApiToken", _api_token_fields())


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

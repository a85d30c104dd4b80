"""REST views of account recovery and the second factor (docs/accounts.md): parse, call a
service, render. Login lives here too, with the second factor it may ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from accounts import schema, serializers
from accounts.api import (
    Public,
    caller_args,
    client_args,
    principal_of,
    service_handler,
    signed_in_json,
)
from accounts.permissions import SignedOutOrUser
from accounts.records import Tenant
from accounts.services import (
    LoggedIn,
    Principal,
    email_verification_confirm,
    email_verification_resend,
    mfa_status,
    password_reset_confirm,
    password_reset_request,
    recovery_codes_regenerate,
    tenant_settings_update,
    totp_disable,
    totp_enroll_confirm,
    totp_enroll_start,
    user_login,
    user_login_mfa,
)
from accounts.services.mfa import DIGITS, PERIOD_S, mfa_status_json
from core.conditional import if_match
from core.parsers import validated
from core.problems import ApiError
from core.rest import NO_STORE, etag_header


def _sign_in(
    service: Callable[..., LoggedIn],
    *,
    request: type[Serializer[Any]],
    refusals: schema.Codes,
    **operation: Any,
) -> Callable[..., Response]:
    """A sign-in step (login, its second factor) as a view method: ``service`` takes the
    body's credential and answers the token pair and the user (``signed_in_json``).
    ``refusals`` are the step's 401s; once the credential is right, a sign-in may still be
    refused as every sign-in is (``SIGN_IN_403``)."""

    @schema.operation(
        request=request,
        ok={200: schema.LoginOut},
        **schema.SIGNED_OUT,
        errors={401: refusals, 403: schema.SIGN_IN_403},
        **operation,
    )
    def handle(view: APIView, http: Request) -> Response:
        done = service(**client_args(http), **validated(request, http.data))
        return Response(signed_in_json(done))

    return handle


class LoginView(Public):
    post = _sign_in(
        user_login,
        request=serializers.LoginIn,
        refusals={
            "invalid_credentials": "Unknown email or wrong password (the same answer).",
            "mfa_required": (
                "The password was right and the account has a second factor: POST "
                "`mfa_challenge` and a code to login/mfa."
            ),
        },
        # mfa_required is a problem with the challenge beside (MfaRequired.problem_members).
        bodies={401: schema.MfaRequiredProblemOut},
    )


class LoginMfaView(Public):
    post = _sign_in(
        user_login_mfa,
        request=serializers.LoginMfaIn,
        refusals={**schema.MFA_CHALLENGE, **schema.MFA_CODE},
    )


class VerifyEmailView(Public):
    post = service_handler(
        email_verification_confirm,
        request=serializers.TokenIn,
        ok={204: schema.NO_CONTENT},
        **schema.SIGNED_OUT,
        errors={400: schema.one_time_token("verification")},
    )


class VerifyEmailResendView(APIView):
    """Signed in: the caller's own address (no body). Signed out: ``{"email"}``."""

    permission_classes = (SignedOutOrUser,)

    @schema.operation(
        request=serializers.ResendIn,
        ok={202: schema.ACCEPTED},
        auth="optional",
        throttled=True,
        errors={
            400: {"invalid": "Send either a bearer token or an email, not both and not neither."},
            409: {"email_already_verified": "Signed in, and the address is already verified."},
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(serializers.ResendIn, request.data)
        user = request.user
        signed_in = isinstance(user, Principal)
        if signed_in == ("email" in body):
            raise ApiError(
                400,
                "invalid",
                "Send either a bearer token or an email, not both and not neither.",
                [{"attr": "email", "code": "invalid", "detail": "bearer token xor email"}],
            )
        email_verification_resend(
            **client_args(request),
            principal=user if isinstance(user, Principal) else None,
            email=body.get("email", ""),
        )
        return Response(status=202)


class PasswordResetView(Public):
    post = service_handler(
        password_reset_request,
        request=serializers.EmailIn,
        ok={202: schema.ACCEPTED},
        **schema.SIGNED_OUT,
    )


class PasswordResetConfirmView(Public):
    post = service_handler(
        password_reset_confirm,
        request=serializers.PasswordResetConfirmIn,
        ok={204: schema.NO_CONTENT},
        **schema.SIGNED_OUT,
        errors={
            400: {
                **schema.one_time_token("reset"),
                **schema.WEAK_PASSWORD,
            }
        },
    )


# --- the signed-in user's second factor ------------------------------------------------------


class MfaView(APIView):
    @schema.operation(ok={200: schema.MfaStatusOut})
    def get(self, request: Request) -> Response:
        return Response(mfa_status_json(mfa_status(principal=principal_of(request))))


class TotpView(APIView):
    @schema.operation(
        request=serializers.PasswordConfirmIn,
        ok={201: schema.TotpEnrollmentOut},
        throttled=True,
        errors={
            400: {"wrong_password": "The password is incorrect."},
            403: schema.EMAIL_UNVERIFIED,
            409: {"mfa_already_enabled": "Two-factor authentication is already on."},
        },
    )
    def post(self, request: Request) -> Response:
        body = validated(serializers.PasswordConfirmIn, request.data)
        started = totp_enroll_start(**caller_args(request), **body)
        return Response(
            {
                "secret": started.secret,
                "otpauth_uri": started.uri,
                "digits": DIGITS,
                "period": PERIOD_S,
                "algorithm": "SHA1",
            },
            status=201,
            headers=NO_STORE,
        )


def _new_recovery_codes(
    service: Callable[..., list[str]], *, errors: Mapping[int, schema.Codes]
) -> Callable[..., Response]:
    """A step that takes a code of the second factor and answers a new set of recovery codes
    (finishing an enrolment, or replacing the set). ``errors`` are the step's own, beside a
    refused code's."""

    @schema.operation(
        request=serializers.CodeIn,
        ok={200: schema.RecoveryCodesOut},
        throttled=True,
        errors={400: schema.MFA_CODE, **errors},
    )
    def handle(view: APIView, http: Request) -> Response:
        codes = service(**caller_args(http), **validated(serializers.CodeIn, http.data))
        return Response({"recovery_codes": codes}, headers=NO_STORE)

    return handle


class TotpConfirmView(APIView):
    post = _new_recovery_codes(
        totp_enroll_confirm,
        errors={
            403: schema.EMAIL_UNVERIFIED,
            409: {
                "mfa_already_enabled": "Two-factor authentication is already on.",
                "mfa_not_enrolling": "Start an enrolment (POST mfa/totp) first.",
            },
        },
    )


class TotpDisableView(APIView):
    post = service_handler(
        totp_disable,
        request=serializers.TotpDisableIn,
        ok={204: schema.NO_CONTENT},
        throttled=True,
        errors={
            400: {"wrong_password": "The password is incorrect.", **schema.MFA_CODE},
            409: {"mfa_not_enabled": "Two-factor authentication is not on."},
        },
    )


class RecoveryCodesView(APIView):
    post = _new_recovery_codes(
        recovery_codes_regenerate,
        errors={409: {"mfa_not_enabled": "Two-factor authentication is not on."}},
    )


# --- the tenant's account settings -----------------------------------------------------------


def _settings_json(tenant: Tenant) -> dict[str, Any]:
    return {"require_email_verification": tenant.require_email_verification}


class TenantSettingsView(APIView):
    @schema.operation(ok={200: schema.TenantSettingsOut}, parameters=[schema.etag(200)])
    def get(self, request: Request) -> Response:
        tenant = principal_of(request).tenant
        return Response(_settings_json(tenant), headers=etag_header(tenant.version))

    @schema.operation(
        request=serializers.TenantSettingsIn,
        ok={200: schema.TenantSettingsOut},
        parameters=[schema.IF_MATCH, schema.etag(200)],
        errors={
            403: {
                **schema.MANAGERS_ONLY,
                "email_not_verified": "Verify your own email before requiring it of everyone.",
            },
            412: schema.VERSION_CONFLICT,
        },
    )
    def patch(self, request: Request) -> Response:
        body = validated(serializers.TenantSettingsIn, request.data)
        tenant = tenant_settings_update(
            **caller_args(request), expected_version=if_match(request), **body
        )
        return Response(_settings_json(tenant), headers=etag_header(tenant.version))

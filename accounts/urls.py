"""Routes of CONTRACT §2, each with and without its trailing slash."""

from django.urls import URLPattern

from accounts import api, api_audit, api_recovery
from core.routes import optional_slash

auth: list[URLPattern] = [
    *optional_slash("register", api.RegisterView.as_view(), name="auth-register"),
    # Served by api_recovery: its mfa_required problem carries the challenge.
    *optional_slash("login", api_recovery.LoginView.as_view(), name="auth-login"),
    *optional_slash("login/mfa", api_recovery.LoginMfaView.as_view(), name="auth-login-mfa"),
    *optional_slash("refresh", api.RefreshView.as_view(), name="auth-refresh"),
    *optional_slash("logout", api.LogoutView.as_view(), name="auth-logout"),
    *optional_slash("logout-all", api.LogoutAllView.as_view(), name="auth-logout-all"),
    *optional_slash("me", api.MeView.as_view(), name="auth-me"),
    *optional_slash("me/export", api.MeExportView.as_view(), name="auth-me-export"),
    *optional_slash("sessions", api.SessionsView.as_view(), name="auth-sessions"),
    *optional_slash(
        "sessions/<str:session_id>", api.SessionDetailView.as_view(), name="auth-session"
    ),
    *optional_slash("password", api.PasswordView.as_view(), name="auth-password"),
    *optional_slash("jwks", api.JwksView.as_view(), name="auth-jwks"),
    *optional_slash("api-tokens", api.ApiTokensView.as_view(), name="auth-api-tokens"),
    *optional_slash(
        "api-tokens/<str:token_id>", api.ApiTokenDetailView.as_view(), name="auth-api-token"
    ),
    *optional_slash(
        "verify-email", api_recovery.VerifyEmailView.as_view(), name="auth-verify-email"
    ),
    *optional_slash(
        "verify-email/resend",
        api_recovery.VerifyEmailResendView.as_view(),
        name="auth-verify-email-resend",
    ),
    *optional_slash(
        "password-reset", api_recovery.PasswordResetView.as_view(), name="auth-password-reset"
    ),
    *optional_slash(
        "password-reset/confirm",
        api_recovery.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
    *optional_slash("mfa", api_recovery.MfaView.as_view(), name="auth-mfa"),
    *optional_slash("mfa/totp", api_recovery.TotpView.as_view(), name="auth-mfa-totp"),
    *optional_slash(
        "mfa/totp/confirm", api_recovery.TotpConfirmView.as_view(), name="auth-mfa-totp-confirm"
    ),
    *optional_slash(
        "mfa/totp/disable", api_recovery.TotpDisableView.as_view(), name="auth-mfa-totp-disable"
    ),
    *optional_slash(
        "mfa/recovery-codes",
        api_recovery.RecoveryCodesView.as_view(),
        name="auth-mfa-recovery-codes",
    ),
]

tenant: list[URLPattern] = [
    *optional_slash("members/", api.MembersView.as_view(), name="tenant-members"),
    *optional_slash("members/<str:user_id>/", api.MemberDetailView.as_view(), name="tenant-member"),
    *optional_slash("invitations/", api.InvitationsView.as_view(), name="tenant-invitations"),
    *optional_slash(
        "invitations/<str:invitation_id>/",
        api.InvitationDetailView.as_view(),
        name="tenant-invitation",
    ),
    *optional_slash("settings/", api_recovery.TenantSettingsView.as_view(), name="tenant-settings"),
    *optional_slash("audit/", api_audit.TenantAuditView.as_view(), name="tenant-audit"),
    *optional_slash("api-tokens/", api.TenantApiTokensView.as_view(), name="tenant-api-tokens"),
    *optional_slash(
        "api-tokens/<str:token_id>/",
        api.TenantApiTokenDetailView.as_view(),
        name="tenant-api-token",
    ),
]

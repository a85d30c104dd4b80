"""What the accounts app does: each call is one or a few transactions (DESIGN §2)."""

from accounts.services.api_tokens import (
    IssuedApiToken,
    api_token_create,
    api_token_list,
    api_token_revoke,
    api_token_revoke_by_staff,
    api_tokens_of_tenant,
    api_tokens_of_user,
    bearer_authenticate,
)
from accounts.services.common import Client
from accounts.services.erasure import user_data_erase, user_erase, user_erase_finish, user_export
from accounts.services.issue import TokenPair
from accounts.services.login import LoggedIn, user_login
from accounts.services.mfa import (
    MfaStatus,
    TotpEnrollment,
    mfa_status,
    recovery_codes_regenerate,
    totp_disable,
    totp_enroll_confirm,
    totp_enroll_start,
    user_login_mfa,
)
from accounts.services.password_reset import password_reset_confirm, password_reset_request
from accounts.services.principal import (
    Principal,
    principal_authenticate,
    principal_check,
    principal_require_scope,
    principal_require_user,
    principals_check,
)
from accounts.services.refresh import token_refresh
from accounts.services.registration import Registered, user_register
from accounts.services.roles import (
    caller_key,
    manager_require,
    session_writer_require,
    writer_check,
)
from accounts.services.sessions import (
    auth_session_logout,
    auth_session_logout_all,
    auth_session_revoke,
    user_password_change,
)
from accounts.services.tenancy import (
    IssuedInvitation,
    auth_session_revoke_all,
    invitation_create,
    invitation_list,
    invitation_revoke,
    member_remove,
    member_role_set,
    tenant_resume,
    tenant_suspend,
    user_lock,
    user_unlock,
)
from accounts.services.verification import (
    email_verification_confirm,
    email_verification_resend,
    tenant_settings_update,
)

__all__ = [
    "Client",
    "IssuedApiToken",
    "IssuedInvitation",
    "LoggedIn",
    "MfaStatus",
    "Principal",
    "Registered",
    "TokenPair",
    "TotpEnrollment",
    "api_token_create",
    "api_token_list",
    "api_token_revoke",
    "api_token_revoke_by_staff",
    "api_tokens_of_tenant",
    "api_tokens_of_user",
    "auth_session_logout",
    "auth_session_logout_all",
    "auth_session_revoke",
    "auth_session_revoke_all",
    "bearer_authenticate",
    "caller_key",
    "email_verification_confirm",
    "email_verification_resend",
    "invitation_create",
    "invitation_list",
    "invitation_revoke",
    "manager_require",
    "member_remove",
    "member_role_set",
    "mfa_status",
    "password_reset_confirm",
    "password_reset_request",
    "principal_authenticate",
    "principal_check",
    "principal_require_scope",
    "principal_require_user",
    "principals_check",
    "recovery_codes_regenerate",
    "session_writer_require",
    "tenant_resume",
    "tenant_settings_update",
    "tenant_suspend",
    "token_refresh",
    "totp_disable",
    "totp_enroll_confirm",
    "totp_enroll_start",
    "user_data_erase",
    "user_erase",
    "user_erase_finish",
    "user_export",
    "user_lock",
    "user_login",
    "user_login_mfa",
    "user_password_change",
    "user_register",
    "user_unlock",
    "writer_check",
]

"""What the accounts app does: each call is one or a few transactions (DESIGN §2)."""

from accounts.services.common import Client
from accounts.services.issue import TokenPair
from accounts.services.login import LoggedIn, user_login
from accounts.services.principal import (
    Principal,
    principal_authenticate,
    principal_check,
    principals_check,
)
from accounts.services.refresh import token_refresh
from accounts.services.registration import Registered, user_register
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
    member_remove,
    tenant_resume,
    tenant_suspend,
    user_lock,
    user_unlock,
)

__all__ = [
    "Client",
    "IssuedInvitation",
    "LoggedIn",
    "Principal",
    "Registered",
    "TokenPair",
    "auth_session_logout",
    "auth_session_logout_all",
    "auth_session_revoke",
    "auth_session_revoke_all",
    "invitation_create",
    "member_remove",
    "principal_authenticate",
    "principal_check",
    "principals_check",
    "tenant_resume",
    "tenant_suspend",
    "token_refresh",
    "user_lock",
    "user_login",
    "user_password_change",
    "user_register",
    "user_unlock",
]

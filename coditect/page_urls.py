"""Routes of the platform's web pages and of their cookie sign-in endpoints (docs/web.md).

None is under /api/: Django's page middleware (sessions, CSRF) runs for every one of them.
"""

from django.urls import URLPattern, path

from accounts import pages as account_pages
from accounts import web_auth
from core.routes import optional_slash
from realtime import pages as realtime_pages
from workspaces import pages as workspace_pages

urlpatterns: list[URLPattern] = [
    path("", account_pages.home, name="web-home"),
    path("signin/", account_pages.signin, name="web-signin"),
    path("register/", account_pages.register, name="web-register"),
    path("signout/", account_pages.signout, name="web-signout"),
    path("account/", account_pages.account, name="web-account"),
    path("account/audit/", account_pages.audit, name="web-account-audit"),
    # The mail links to /verify-email#token=... and /reset-password#token=... (no slash).
    *optional_slash("verify-email", account_pages.verify_email, name="web-verify-email"),
    path("forgot-password/", account_pages.forgot_password, name="web-forgot-password"),
    *optional_slash("reset-password", account_pages.reset_password, name="web-reset-password"),
    path("sessions/", workspace_pages.dashboard, name="web-dashboard"),
    path("sessions/<uuid:session_id>/", realtime_pages.live, name="web-live"),
    *optional_slash("web/auth/login", web_auth.login, name="web-auth-login"),
    *optional_slash("web/auth/login/mfa", web_auth.login_mfa, name="web-auth-login-mfa"),
    *optional_slash("web/auth/register", web_auth.register, name="web-auth-register"),
    *optional_slash("web/auth/refresh", web_auth.refresh, name="web-auth-refresh"),
    *optional_slash("web/auth/logout", web_auth.logout, name="web-auth-logout"),
    *optional_slash("web/auth/logout-all", web_auth.logout_all, name="web-auth-logout-all"),
]

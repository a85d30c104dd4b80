"""Routes of CONTRACT §2, each with and without its trailing slash."""

from django.urls import URLPattern

from accounts import api
from coditect.routes import optional_slash

auth: list[URLPattern] = [
    *optional_slash("register", api.RegisterView.as_view(), name="auth-register"),
    *optional_slash("login", api.LoginView.as_view(), name="auth-login"),
    *optional_slash("refresh", api.RefreshView.as_view(), name="auth-refresh"),
    *optional_slash("logout", api.LogoutView.as_view(), name="auth-logout"),
    *optional_slash("logout-all", api.LogoutAllView.as_view(), name="auth-logout-all"),
    *optional_slash("me", api.MeView.as_view(), name="auth-me"),
    *optional_slash("sessions", api.SessionsView.as_view(), name="auth-sessions"),
    *optional_slash(
        "sessions/<str:session_id>", api.SessionDetailView.as_view(), name="auth-session"
    ),
    *optional_slash("password", api.PasswordView.as_view(), name="auth-password"),
    *optional_slash("jwks", api.JwksView.as_view(), name="auth-jwks"),
]

tenant: list[URLPattern] = [
    *optional_slash("members/", api.MembersView.as_view(), name="tenant-members"),
    *optional_slash("members/<str:user_id>/", api.MemberDetailView.as_view(), name="tenant-member"),
    *optional_slash("invitations/", api.InvitationsView.as_view(), name="tenant-invitations"),
]

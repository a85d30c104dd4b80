"""DRF serializers: request validation and the JSON shapes of the platform's contract."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken

from .models import Tenant, User, WorkspaceSession
from .problems import Conflict

ACCESS_SECONDS = int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds())
REFRESH_SECONDS = int(jwt_settings.REFRESH_TOKEN_LIFETIME.total_seconds())


def token_pair(refresh: RefreshToken | str, access: str) -> dict[str, Any]:
    """The contract's token pair: the tokens plus what a client needs to schedule a refresh."""
    return {
        "access": access,
        "refresh": str(refresh),
        "token_type": "Bearer",
        "expires_in": ACCESS_SECONDS,
        "refresh_expires_in": REFRESH_SECONDS,
    }


def pair_for_user(user: User) -> dict[str, Any]:
    refresh = RefreshToken.for_user(user)  # records the token as outstanding
    return token_pair(refresh, str(refresh.access_token))


class TenantSerializer(serializers.ModelSerializer[Tenant]):
    class Meta:
        model = Tenant
        fields = ("id", "name", "created_at")


class UserSerializer(serializers.ModelSerializer[User]):
    tenant_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = User
        fields: tuple[str, ...] = ("id", "email", "display_name", "tenant_id", "role")


class MeSerializer(UserSerializer):
    tenant = TenantSerializer(read_only=True)

    class Meta(UserSerializer.Meta):
        fields = (*UserSerializer.Meta.fields, "tenant")


class RegisterSerializer(serializers.Serializer[User]):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=1024, trim_whitespace=False)
    tenant_name = serializers.CharField(required=False, max_length=200, allow_blank=False)
    display_name = serializers.CharField(required=False, max_length=200, allow_blank=True)

    def validate_email(self, value: str) -> str:
        return value.lower()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Django's validators (length, common, numeric, similar to the email) on a user that is
        # not saved, so the similarity check sees the email and display name.
        candidate = User(email=attrs["email"], display_name=attrs.get("display_name", ""))
        try:
            validate_password(attrs["password"], candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs

    def create(self, validated_data: dict[str, Any]) -> User:
        email = validated_data["email"]
        display_name = validated_data.get("display_name") or email.split("@", 1)[0]
        if User.objects.filter(email=email).exists():
            raise Conflict("An account with this email exists.", "email_taken")
        # Hashed before the transaction: with IMMEDIATE transactions the write lock is held
        # for the whole block, and Argon2's ~100 ms must not stall every other writer.
        password = make_password(validated_data["password"])
        try:
            with transaction.atomic():
                tenant = Tenant.objects.create(
                    name=validated_data.get("tenant_name") or f"{display_name}'s workspace"
                )
                return User.objects.create(
                    email=email,
                    password=password,
                    display_name=display_name,
                    tenant=tenant,
                    role=User.Role.OWNER,
                )
        except IntegrityError as exc:  # a concurrent registration won the unique email
            raise Conflict("An account with this email exists.", "email_taken") from exc


class LoginSerializer(serializers.Serializer[User]):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=1024, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # ModelBackend hashes the password even for an unknown email, so both failures cost
        # the same and answer the same.
        user = authenticate(
            self.context.get("request"), email=attrs["email"].lower(), password=attrs["password"]
        )
        if user is None:
            raise exceptions.AuthenticationFailed(
                "Email or password is incorrect.", "invalid_credentials"
            )
        attrs["user"] = user
        return attrs


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's rotation and blacklisting, answering with the contract's token pair."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            data = super().validate(attrs)
        except User.DoesNotExist as exc:  # the account was deleted after the token was issued
            raise exceptions.AuthenticationFailed(
                "No active account found for the given token.", "no_active_account"
            ) from exc
        return token_pair(data["refresh"], data["access"])


class LogoutSerializer(serializers.Serializer[None]):
    refresh = serializers.CharField(required=False)


class WorkspaceSessionSerializer(serializers.ModelSerializer[WorkspaceSession]):
    tenant_id = serializers.UUIDField(read_only=True)
    owner_id = serializers.UUIDField(read_only=True)
    active_files = serializers.ListField(
        child=serializers.CharField(max_length=4096, trim_whitespace=False),
        required=False,
        max_length=10_000,
    )
    editor_state = serializers.DictField(required=False)
    terminal_state = serializers.DictField(required=False)
    parent_session_id = serializers.UUIDField(source="parent_id", required=False, allow_null=True)

    class Meta:
        model = WorkspaceSession
        fields = (
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "workspace_path",
            "active_files",
            "editor_state",
            "terminal_state",
            "parent_session_id",
            "created_at",
            "last_active_at",
            "version",
        )
        read_only_fields = ("id", "created_at", "last_active_at", "version")

    def validate_parent_session_id(self, value: Any) -> Any:
        if value is None:
            return None
        if self.instance is not None:
            # The parent is fixed at creation (forking sets it); PATCH may not move a session.
            raise serializers.ValidationError("The parent of a session cannot change.")
        tenant_id = self.context["request"].user.tenant_id
        if not WorkspaceSession.objects.filter(pk=value, tenant_id=tenant_id).exists():
            raise serializers.ValidationError("No such session.", "parent_not_found")
        return value

"""Request bodies of the accounts API: strict (unknown fields are errors), never trimmed."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from accounts.passwords import MAX_LENGTH
from accounts.records import ROLES, SCOPES


def _fresh(field: Any) -> Any:
    """A field like the declared prototype ``field``, for one serializer instance.

    DRF deep-copies each declared field for every serializer instance, re-running each
    field's __init__ (107 of the 268 microseconds of validating a session create). Declared
    fields are unbound prototypes that validation does not change, so a shallow copy serves;
    a list's child is copied and re-parented to the copy, and nested serializers keep DRF's way.
    """
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    fresh = object.__new__(type(field))  # copy.copy, without its reduce protocol
    fresh.__dict__.update(field.__dict__)
    child = getattr(field, "child", None)
    if child is not None:
        fresh.child = _fresh(child)
        fresh.child.parent = fresh  # bound as the prototype's was, to this copy
    return fresh


class Strict(serializers.Serializer[Any]):
    """Refuses fields it does not declare, so a typo is an error instead of being ignored."""

    def get_fields(self) -> dict[str, Any]:
        return {name: _fresh(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


class _SurrogateCheck(ProhibitSurrogateCharactersValidator):
    """DRF's check, with UTF-8 encoding (which fails exactly on surrogates) looking first:
    DRF's own looks at each character in Python (a tenth of validating a session create)."""

    def __call__(self, value: Any) -> None:
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            super().__call__(value)  # names the first surrogate, as DRF does


class Text(serializers.CharField):
    """A string field that refuses numbers and booleans instead of converting them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            _SurrogateCheck() if type(v) is ProhibitSurrogateCharactersValidator else v
            for v in self.validators
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Email(serializers.EmailField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _password() -> serializers.CharField:
    # Passwords are taken exactly as typed: no trimming, no truncation.
    return Text(trim_whitespace=False, max_length=MAX_LENGTH, allow_blank=True)


class RegisterIn(Strict):
    email = Email(max_length=254)
    password = _password()
    tenant_name = Text(max_length=200, required=False, allow_blank=True)
    display_name = Text(max_length=200, required=False, allow_blank=True)
    invitation = Text(max_length=200, required=False)


class LoginIn(Strict):
    email = Text(max_length=254)
    password = _password()


class RefreshIn(Strict):
    refresh = Text(max_length=4096)


class PasswordIn(Strict):
    current_password = _password()
    new_password = _password()


class InvitationIn(Strict):
    email = Email(max_length=254)
    role = serializers.ChoiceField(choices=list(ROLES))


class MemberRoleIn(Strict):
    role = serializers.ChoiceField(choices=list(ROLES))


class EmptyIn(Strict):
    pass


class Flag(serializers.BooleanField):
    """A JSON boolean only: ``"yes"``, ``1`` and ``"true"`` are refused, not converted."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def _token() -> serializers.CharField:
    # Longer than any token we issue (about 110 characters), short of anything abusive.
    return Text(max_length=300)


class TokenIn(Strict):
    token = _token()


class EmailIn(Strict):
    email = Email(max_length=254)


class ResendIn(Strict):
    """Without a bearer token, the address to send to; with one, nothing."""

    email = Email(max_length=254, required=False)


class PasswordResetConfirmIn(Strict):
    token = _token()
    new_password = _password()


class LoginMfaIn(Strict):
    challenge = _token()
    code = Text(max_length=64)


class PasswordConfirmIn(Strict):
    password = _password()


class CodeIn(Strict):
    code = Text(max_length=64)


class TotpDisableIn(Strict):
    password = _password()
    code = Text(max_length=64)


class EraseIn(Strict):
    password = _password()
    code = Text(max_length=64, required=False, help_text="Required when two-factor is on.")


class TenantSettingsIn(Strict):
    require_email_verification = Flag(required=False)


class ApiTokenIn(Strict):
    name = Text(max_length=100)
    # Empty is allowed: such a token can only say who it is (GET me).
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(SCOPES)), max_length=len(SCOPES) * 2
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

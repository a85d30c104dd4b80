"""``manage.py staff_otp add|list|remove``: the staff admin's TOTP devices (docs/operations.md).

Staff sign in to the admin with a password and the code of a TOTP device (django-otp);
``add`` makes a device and prints its ``otpauth://`` URI once, for the staff member's
authenticator app. Enrolments and removals are written to the staff audit log.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import StaffAuditEntry
from operations.management.commands import counted
from operations.management.output import OperatorCommand, table

OPERATOR = "manage.py staff_otp"


def _staff(username: str) -> Any:
    model = get_user_model()
    try:
        return model.objects.get(**{model.USERNAME_FIELD: username})
    except model.DoesNotExist:
        raise CommandError(f"no Django account named {username!r}") from None


def _audit(user: Any, action: str, reason: str) -> None:
    StaffAuditEntry.objects.create(
        staff_id=user.pk,
        staff_username=user.get_username(),
        action=action,
        target_type="staff",
        target_id=str(user.pk),
        reason=f"{reason} (by {OPERATOR})",
    )


class Command(OperatorCommand):
    help = "Staff second factor: enrol a TOTP device, list devices, remove them."

    def arguments_add(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="the device's name")

    def arguments_remove(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def do_add(self, **options: Any) -> None:
        """Enrol a TOTP device for a staff account; prints its otpauth:// URI once."""
        user = _staff(options["username"])
        if not user.is_staff:
            raise CommandError(f"{user.get_username()!r} is not staff: give staff status first")
        name = options["name"].strip() or "authenticator"
        with transaction.atomic():
            device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
            _audit(user, "staff_otp_add", f"TOTP device {name!r} enrolled")
        uri = device.config_url
        data = {"username": user.get_username(), "device": name, "otpauth_uri": uri}
        text = (
            f"TOTP device {name!r} enrolled for {user.get_username()}. Add this to their "
            f"authenticator app now; it is not shown again:\n{uri}"
        )
        self.emit(options, data, text)

    def do_list(self, **options: Any) -> None:
        """List the staff accounts' TOTP devices."""
        devices = TOTPDevice.objects.select_related("user").order_by("user_id", "id")
        rows = [
            [d.user.get_username(), d.name, d.confirmed, d.created_at, d.last_used_at]
            for d in devices
        ]
        data = [
            {
                "username": d.user.get_username(),
                "device": d.name,
                "confirmed": d.confirmed,
                "created_at": d.created_at,
                "last_used_at": d.last_used_at,
            }
            for d in devices
        ]
        text = table(["username", "device", "confirmed", "created", "last used"], rows)
        self.emit(options, data, text)

    def do_remove(self, **options: Any) -> None:
        """Remove every TOTP device of a staff account (it can no longer sign in)."""
        user = _staff(options["username"])
        with transaction.atomic():
            count, _ = TOTPDevice.objects.filter(user=user).delete()
            if count:
                _audit(user, "staff_otp_remove", f"{counted(count, 'TOTP device')} removed")
        data = {"username": user.get_username(), "removed": count}
        removed = f"{counted(count, 'TOTP device')} of {user.get_username()} removed"
        self.emit(options, data, removed)

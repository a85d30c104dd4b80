"""Admin tests: the accounts personas in a fresh memory store, and staff accounts (ORM).

Staff roles are the groups that the accounts migrations create: "Support (read-only)"
(views only) and "Support" (views and actions). Staff log in with ``force_login`` and a
TOTP device marked as verified in their session (what the login form does after a valid
code; tests/admin/test_login.py signs in through the form itself).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie

__all__ = ["accounts_environment", "alice", "api", "bob", "charlie"]


def _account(username: str, *, is_staff: bool, group: str | None = None) -> User:
    user = User.objects.create(username=username, is_staff=is_staff)
    user.set_unusable_password()
    user.save()
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def plain_user(db) -> User:
    """A Django account without staff status."""
    return _account("visitor", is_staff=False, group="Support")


@pytest.fixture
def bare_staff(db) -> User:
    """Staff status, but no support permission."""
    return _account("intern", is_staff=True)


@pytest.fixture
def readonly_staff(db) -> User:
    return _account("viewer", is_staff=True, group="Support (read-only)")


@pytest.fixture
def support_staff(db) -> User:
    return _account("agent", is_staff=True, group="Support")


def otp_verified(client: Client, user: User) -> TOTPDevice:
    """Mark ``client``'s session as verified by a TOTP device of ``user`` (made if needed)."""
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="test phone", defaults={"confirmed": True}
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def logged_in(user: User | None, *, otp: bool = True, **kwargs) -> Client:
    """A client signed in as ``user``, past the second factor unless ``otp=False``."""
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
        if otp:
            otp_verified(client, user)
    return client


@pytest.fixture(autouse=True)
def staff_tables(db) -> None:
    """Every admin test reads the ORM (sessions, permissions, the audit log)."""

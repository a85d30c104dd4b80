"""Signing in to the staff admin: password and TOTP code (django-otp), lockout after repeated
failures per username and per client address, and every sign-in, refusal and sign-out in
the staff audit log. Everything goes through the login form, as a browser would."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import StaffAuditEntry
from tests.accounts.helpers import Persona
from tests.admin.conftest import logged_in
from tests.admin.helpers import support

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock(time_machine):
    """Time stands still a few seconds into an hour: no lockout window ends by chance."""
    start = datetime.now(UTC).replace(minute=0, second=5, microsecond=0) + timedelta(hours=1)
    time_machine.move_to(start, tick=False)
    return time_machine


@pytest.fixture(autouse=True)
def limits(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_ADMIN_LOGIN_FAILURES_PER_USERNAME = 5
    settings.CODITECT_ADMIN_LOGIN_FAILURES_PER_ADDRESS = 20
    settings.CODITECT_ADMIN_LOGIN_LOCKOUT_S = 900


def staff_account(username: str = "agent") -> User:
    user = User.objects.create(username=username, is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name="Support"))
    return user


@pytest.fixture
def agent(db) -> User:
    return staff_account()


def enrol(username: str) -> str:
    """``staff_otp add``, as an operator runs it: the otpauth:// URI it prints."""
    out = io.StringIO()
    call_command("staff_otp", "add", username, stdout=out)
    (uri,) = [line for line in out.getvalue().splitlines() if line.startswith("otpauth://")]
    return uri


def code(uri: str) -> str:
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return totp.now()


def sign_in(client: Client, username: str, password: str, token: str | None = None):
    data = {"username": username, "password": password}
    if token is not None:
        data["otp_token"] = token
    return client.post(LOGIN, data)


def can_read_tenants(client: Client, persona: Persona) -> bool:
    response = client.get(support("tenant", persona.tenant_id))
    return response.status_code == 200


def actions() -> list[tuple[str, str]]:
    return [(e.action, e.staff_username) for e in StaffAuditEntry.objects.order_by("id")]


def test_password_alone_does_not_sign_in(agent: User, alice: Persona, clock) -> None:
    enrol("agent")
    client = Client()
    response = sign_in(client, "agent", PASSWORD)
    assert response.status_code == 200
    assert b"Please enter your OTP token" in response.content
    assert not can_read_tenants(client, alice)
    wrong = sign_in(client, "agent", PASSWORD, "000000")
    assert wrong.status_code == 200
    assert b"Invalid token" in wrong.content
    assert not can_read_tenants(client, alice)
    assert actions() == [
        ("staff_otp_add", "agent"),
        ("admin_login_failed", "agent"),
        ("admin_login_failed", "agent"),
    ]


def test_password_and_a_valid_code_sign_in(agent: User, alice: Persona, clock) -> None:
    uri = enrol("agent")
    assert uri.startswith("otpauth://totp/Coditect%20admin%3Aagent?secret=")
    client = Client()
    response = sign_in(client, "agent", PASSWORD, code(uri))
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert can_read_tenants(client, alice)
    entry = StaffAuditEntry.objects.get(action="admin_login")
    assert (entry.staff, entry.target_type, entry.target_id) == (agent, "admin_site", "127.0.0.1")
    assert entry.reason == "password and TOTP device 'authenticator'"
    # The code is spent: it does not sign in a second time.
    again = sign_in(Client(), "agent", PASSWORD, code(uri))
    assert again.status_code == 200


def test_a_code_of_another_staff_member_s_device_does_not_count(
    agent: User, alice: Persona, clock
) -> None:
    staff_account("other")
    theirs = enrol("other")
    enrol("agent")
    client = Client()
    device = TOTPDevice.objects.get(user__username="other")
    response = client.post(
        LOGIN,
        {
            "username": "agent",
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": code(theirs),
        },
    )
    assert response.status_code == 200
    assert not can_read_tenants(client, alice)


def test_staff_without_a_device_cannot_sign_in_and_are_told_how_to_enrol(
    agent: User, alice: Persona, clock
) -> None:
    client = Client()
    response = sign_in(client, "agent", PASSWORD, "123456")
    assert response.status_code == 200
    assert b"has no second-factor device" in response.content
    assert b"manage.py staff_otp add agent" in response.content
    assert not can_read_tenants(client, alice)
    assert actions() == [("admin_login_failed", "agent")]
    assert StaffAuditEntry.objects.get().reason == "no_device"


def test_a_session_signed_in_without_the_second_factor_cannot_read_tenants(
    agent: User, alice: Persona
) -> None:
    """A session that has the password's sign-in but no verified device (a session from
    before the requirement, or any other way round the form) is sent to the login page."""
    unverified = logged_in(agent, otp=False)
    response = unverified.get(support("tenant", alice.tenant_id))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert unverified.get("/admin/").status_code == 302
    assert can_read_tenants(logged_in(agent), alice)


def test_without_the_requirement_the_password_is_enough(
    settings, agent: User, alice: Persona, clock
) -> None:
    settings.CODITECT_STAFF_OTP_REQUIRED = False
    client = Client()
    assert sign_in(client, "agent", PASSWORD).status_code == 302
    assert can_read_tenants(client, alice)
    assert StaffAuditEntry.objects.get().reason == "password"


def test_repeated_failures_lock_the_username(agent: User, alice: Persona, clock) -> None:
    uri = enrol("agent")
    for _ in range(5):
        assert sign_in(Client(), "agent", "wrong password").status_code == 200
    # Locked: even the right password and code are refused, before they are checked.
    client = Client()
    locked = sign_in(client, "agent", PASSWORD, code(uri))
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 900 - 5
    assert b"Too many failed sign-ins" in locked.content
    assert not can_read_tenants(client, alice)
    # Other usernames from another address are not locked with it.
    staff_account("other")
    other_uri = enrol("other")
    elsewhere = Client(REMOTE_ADDR="10.0.0.2")
    assert sign_in(elsewhere, "other", PASSWORD, code(other_uri)).status_code == 302
    assert [a for a, _ in actions() if a.startswith("admin_login")] == [
        *["admin_login_failed"] * 5,
        "admin_login_locked",
        "admin_login",
    ]
    assert StaffAuditEntry.objects.get(action="admin_login_locked").reason == (
        "too many failed sign-ins; locked for 895 s"
    )
    # The lock ends with its window.
    clock.shift(timedelta(seconds=900))
    assert sign_in(client, "agent", PASSWORD, code(uri)).status_code == 302
    assert can_read_tenants(client, alice)


def test_repeated_failures_lock_the_client_address(agent: User, alice: Persona, clock) -> None:
    uri = enrol("agent")
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(20):
        assert sign_in(attacker, f"guess{n}", "wrong").status_code == 200
    locked = sign_in(attacker, "agent", PASSWORD, code(uri))
    assert locked.status_code == 429
    assert not can_read_tenants(attacker, alice)
    locks = StaffAuditEntry.objects.filter(action="admin_login_locked")
    assert [(e.staff_username, e.target_id) for e in locks] == [("guess19", "203.0.113.7")]
    # The staff member signs in from their own address meanwhile.
    assert sign_in(Client(), "agent", PASSWORD, code(uri)).status_code == 302


def test_sign_out_is_audited(agent: User, clock) -> None:
    uri = enrol("agent")
    client = Client()
    assert sign_in(client, "agent", PASSWORD, code(uri)).status_code == 302
    assert client.post("/admin/logout/").status_code == 200
    assert actions()[-2:] == [("admin_login", "agent"), ("admin_logout", "agent")]
    assert client.get("/admin/").status_code == 302


def test_enrolment_command(agent: User, db) -> None:
    out = io.StringIO()
    call_command("staff_otp", "add", "agent", "--name", "phone", "--json", stdout=out)
    assert '"otpauth_uri": "otpauth://totp/' in out.getvalue()
    listed = io.StringIO()
    call_command("staff_otp", "list", stdout=listed)
    assert "agent" in listed.getvalue() and "phone" in listed.getvalue()
    call_command("staff_otp", "remove", "agent", stdout=io.StringIO())
    assert not TOTPDevice.objects.exists()
    assert [a for a, _ in actions()] == ["staff_otp_add", "staff_otp_remove"]
    with pytest.raises(CommandError, match="no Django account"):
        call_command("staff_otp", "add", "nobody")
    User.objects.create(username="visitor")
    with pytest.raises(CommandError, match="not staff"):
        call_command("staff_otp", "add", "visitor")


def test_a_form_with_missing_fields_is_asked_again(agent: User, clock) -> None:
    enrol("agent")
    for data in ({}, {"username": "agent"}, {"username": "agent", "otp_token": "123456"}):
        response = Client().post(LOGIN, data)
        assert response.status_code == 200, data
        assert b"This field is required" in response.content


@pytest.mark.parametrize(
    "device", ["x", "auth.user/1", "otp_totp.totpdevice/99999999999999999999999", "a.b.c/1"]
)
def test_a_made_up_device_is_not_looked_up(agent: User, alice: Persona, clock, device) -> None:
    uri = enrol("agent")
    staff_account("other")
    enrol("other")
    data = {"username": "agent", "password": PASSWORD, "otp_device": device, "otp_token": "1"}
    assert Client().post(LOGIN, data).status_code == 200
    # With one device of their own, the right code still signs in whatever was sent (once
    # django-otp's backoff after the wrong code has passed).
    clock.shift(timedelta(seconds=2))
    client = Client()
    response = client.post(LOGIN, data | {"otp_token": code(uri)})
    assert response.status_code == 302
    assert can_read_tenants(client, alice)

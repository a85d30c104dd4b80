"""The pages' sign-in endpoints under /web/auth/: the refresh token lives in a cookie page
script cannot read, every POST needs the CSRF token, and rotation, reuse detection,
sign-out and sign-out-everywhere behave as the REST API's (they call the same services)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from accounts.web_auth import COOKIE_PATH, REFRESH_COOKIE
from tests.accounts.helpers import (
    AUTH,
    PASSWORD,
    Api,
    Persona,
    field_attrs,
    problem,
)
from tests.accounts.recovery import verify_email
from tests.web.helpers import Web, set_cookie_of

ROOT = Path(__file__).resolve().parents[2]
ENDPOINTS = ["login", "login/mfa", "register", "refresh", "logout", "logout-all"]


def me(api: Api, access: str) -> int:
    return api.me(access).status_code


# --- the cookie -------------------------------------------------------------------------


def test_login_answers_the_access_token_and_keeps_the_refresh_token_in_the_cookie(
    web: Web, api: Api, alice: Persona
) -> None:
    response = web.post("login", {"email": alice.email, "password": PASSWORD})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "token_type", "expires_in", "user", "tenant", "csrf_token"}
    assert "refresh" not in body
    assert body["user"]["id"] == alice.user_id
    assert body["tenant"]["id"] == alice.tenant_id
    assert response["Cache-Control"] == "no-store"
    assert me(api, body["access"]) == 200

    cookie = set_cookie_of(response)
    assert cookie.value
    assert cookie.value != body["access"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == COOKIE_PATH == "/web/auth/"
    assert int(cookie["max-age"]) > 86_400
    # Tests run as a developer's machine does (DEBUG settings): plain HTTP, no Secure.
    assert not cookie["secure"]


def test_the_cookie_is_secure_when_the_setting_says_so(settings, web: Web, alice: Persona) -> None:
    settings.CODITECT_WEB_COOKIE_SECURE = True
    response = web.post("login", {"email": alice.email, "password": PASSWORD})
    assert set_cookie_of(response)["secure"] is True
    cleared = web.post("logout")
    assert set_cookie_of(cleared)["secure"] is True


def test_the_cookie_is_secure_whenever_debug_is_off(tmp_path: Path) -> None:
    script = "from django.conf import settings; print(settings.CODITECT_WEB_COOKIE_SECURE)"
    ours = ("DJANGO_", "CODITECT_", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    answers = {}
    for debug in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env={
                **env,
                "DJANGO_DEBUG": debug,
                "DJANGO_SECRET_KEY": "web-tests-" + "s" * 50,
                "DJANGO_ALLOWED_HOSTS": "coditect.example.com",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'staff.sqlite3'}",
                "CODITECT_STORAGE_URL": "memory:",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answers[debug] = done.stdout.strip().splitlines()[-1]
    assert answers == {"0": "True", "1": "False"}


def test_register_signs_in_with_the_cookie(web: Web, api: Api) -> None:
    response = web.post(
        "register",
        {
            "email": "dana@example.com",
            "password": PASSWORD,
            "display_name": "Dana",
            "tenant_name": "Initech",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert "refresh" not in body
    assert body["tenant"]["name"] == "Initech"
    assert set_cookie_of(response)["httponly"] is True
    assert me(api, body["access"]) == 200
    assert web.refresh().status_code == 200


def test_register_with_an_invitation_joins_its_team(web: Web, api: Api, alice: Persona) -> None:
    invitation = api.invite(alice.access, "erin@example.com").json()["token"]
    response = web.post(
        "register",
        {"email": "erin@example.com", "password": PASSWORD, "invitation": invitation},
    )
    assert response.status_code == 201, response.content
    assert response.json()["user"]["tenant_id"] == alice.tenant_id
    assert response.json()["user"]["role"] == "member"


# --- CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_refuses_a_post_without_the_csrf_token(
    web: Web, alice: Persona, endpoint: str
) -> None:
    web.login(alice.email, PASSWORD)
    before = web.cookie
    response = web.post(endpoint, {}, csrf=False)
    body = problem(response, 403, "csrf_failed")
    assert "CSRF" in body["detail"]
    assert web.cookie == before  # nothing rotated or cleared


@pytest.mark.parametrize("endpoint", ["login", "refresh", "logout-all"])
def test_a_post_from_another_origin_is_refused_even_with_the_token(
    web: Web, alice: Persona, endpoint: str
) -> None:
    web.login(alice.email, PASSWORD)
    body = {"email": alice.email, "password": PASSWORD} if endpoint == "login" else {}
    response = web.post(endpoint, body, origin="https://evil.example")
    problem(response, 403, "csrf_failed")


def test_a_token_from_another_browser_does_not_pass(web: Web, alice: Persona) -> None:
    other = Web()
    other.page()
    web.page()
    web.csrf = other.csrf  # a valid token, but not for this browser's csrftoken cookie
    response = web.post("login", {"email": alice.email, "password": PASSWORD})
    problem(response, 403, "csrf_failed")


def test_signing_in_rotates_the_csrf_secret(web: Web, alice: Persona) -> None:
    web.page()
    planted = web.client.cookies["csrftoken"].value
    answer = web.login(alice.email, PASSWORD)
    assert web.client.cookies["csrftoken"].value != planted
    # The page carries on with the token of the answer.
    assert answer["csrf_token"] == web.csrf
    assert web.refresh().status_code == 200


def test_the_admin_keeps_djangos_own_csrf_page(client) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


# --- refresh: rotation, grace, reuse ----------------------------------------------------


def test_refresh_rotates_the_cookie_and_answers_a_working_access_token(
    web: Web, api: Api, alice: Persona
) -> None:
    web.login(alice.email, PASSWORD)
    first = web.cookie
    response = web.refresh()
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "token_type", "expires_in", "user", "tenant"}
    assert body["user"]["email"] == alice.email
    assert response["Cache-Control"] == "no-store"
    assert web.cookie != first
    assert me(api, body["access"]) == 200
    # The rotated-in token works in turn.
    assert web.refresh().status_code == 200


def test_two_tabs_refreshing_at_once_both_succeed(
    web: Web, api: Api, alice: Persona, time_machine
) -> None:
    time_machine.move_to(datetime.now(UTC))
    web.login(alice.email, PASSWORD)
    shared = web.cookie
    assert shared is not None
    first = web.refresh()
    rotated = set_cookie_of(first).value  # read now: the jar shares this cookie object
    web.set_cookie(shared)  # the second tab's request left before the first's answer came
    second = web.refresh()
    assert first.status_code == second.status_code == 200
    assert me(api, second.json()["access"]) == 200
    # The grace answer sets no cookie (issue 15, finding 6): it holds no live token, and a
    # spent one written over the first tab's would get the session revoked as reuse later.
    assert REFRESH_COOKIE not in second.cookies
    # The browser keeps the rotated token, which still works once the window is over.
    time_machine.shift(timedelta(seconds=30))
    web.set_cookie(rotated)
    third = web.refresh()
    assert third.status_code == 200, third.content
    assert me(api, third.json()["access"]) == 200


def test_a_reused_refresh_cookie_revokes_the_whole_family(
    settings, web: Web, api: Api, alice: Persona
) -> None:
    settings.CODITECT_REFRESH_GRACE_S = 0
    web.login(alice.email, PASSWORD)
    stolen = web.cookie
    assert stolen is not None
    access = web.refresh().json()["access"]
    current = web.cookie

    thief = Web()
    thief.set_cookie(stolen)
    reused = thief.refresh()
    problem(reused, 401, "token_reused")
    assert set_cookie_of(reused).value == ""  # a dead token is cleared from the jar

    assert current is not None
    web.set_cookie(current)
    problem(web.refresh(), 401, "session_revoked")
    assert me(api, access) == 401


def test_refresh_without_the_cookie_is_401(web: Web) -> None:
    problem(web.refresh(), 401, "not_authenticated")


def test_a_forged_cookie_is_401_and_cleared(web: Web) -> None:
    web.set_cookie("not-a-token")
    response = web.refresh()
    problem(response, 401, "invalid_token")
    assert set_cookie_of(response).value == ""


# --- sign out ---------------------------------------------------------------------------


def test_logout_revokes_the_session_and_clears_the_cookie(
    web: Web, api: Api, alice: Persona
) -> None:
    access = web.login(alice.email, PASSWORD)["access"]
    response = web.post("logout", token=access)
    assert response.status_code == 204
    cleared = set_cookie_of(response)
    assert cleared.value == ""
    assert cleared["max-age"] == 0
    assert cleared["path"] == COOKIE_PATH
    assert cleared["httponly"] is True
    assert me(api, access) == 401
    problem(web.refresh(), 401)


def test_logout_with_only_the_cookie_still_revokes(web: Web, api: Api, alice: Persona) -> None:
    access = web.login(alice.email, PASSWORD)["access"]
    cookie = web.cookie
    assert web.post("logout").status_code == 204
    assert me(api, access) == 401
    assert cookie is not None
    web.set_cookie(cookie)
    problem(web.refresh(), 401, "session_revoked")


def test_logout_when_signed_out_already_is_harmless(web: Web) -> None:
    response = web.post("logout")
    assert response.status_code == 204
    assert set_cookie_of(response).value == ""


def test_logout_all_signs_out_every_device(web: Web, api: Api, alice: Persona) -> None:
    laptop_access = web.login(alice.email, PASSWORD)["access"]
    phone = Web(user_agent="Phone")
    phone_access = phone.login(alice.email, PASSWORD)["access"]

    response = phone.post("logout-all", token=phone_access)
    assert response.status_code == 204
    assert set_cookie_of(response).value == ""
    assert me(api, laptop_access) == 401
    assert me(api, phone_access) == 401
    problem(web.refresh(), 401, "session_revoked")


def test_logout_all_needs_someone_signed_in(web: Web) -> None:
    problem(web.post("logout-all"), 401, "not_authenticated")


def test_signing_out_one_device_leaves_the_others(web: Web, api: Api, alice: Persona) -> None:
    web.login(alice.email, PASSWORD)
    phone = Web(user_agent="Phone")
    phone.login(alice.email, PASSWORD)
    assert phone.post("logout").status_code == 204
    assert web.refresh().status_code == 200


# --- errors, next to their field --------------------------------------------------------


def test_wrong_password_is_invalid_credentials(web: Web, alice: Persona) -> None:
    response = web.post("login", {"email": alice.email, "password": "wrong-" + PASSWORD})
    problem(response, 401, "invalid_credentials")
    assert web.cookie is None


def test_a_weak_password_names_the_password_field(web: Web) -> None:
    response = web.post("register", {"email": "fay@example.com", "password": "123"})
    body = problem(response, 400, "invalid")
    assert field_attrs(body) == {"password"}


def test_a_bad_email_names_the_email_field(web: Web) -> None:
    response = web.post("register", {"email": "not an email", "password": PASSWORD})
    body = problem(response, 400, "invalid")
    assert field_attrs(body) == {"email"}


def test_a_taken_email_names_the_email_field(web: Web, alice: Persona) -> None:
    response = web.post("register", {"email": alice.email, "password": PASSWORD})
    body = problem(response, 409, "email_taken")
    assert field_attrs(body) == {"email"}


def test_a_bad_invitation_names_the_invitation_field(web: Web) -> None:
    response = web.post(
        "register", {"email": "gil@example.com", "password": PASSWORD, "invitation": "nope"}
    )
    body = problem(response, 400, "invalid_invitation")
    assert field_attrs(body) == {"invitation"}


def test_unknown_fields_and_malformed_json_are_400(web: Web) -> None:
    body = problem(web.post("login", {"email": "a@b.c", "password": "x", "extra": 1}), 400)
    assert field_attrs(body) == {"extra"}
    problem(web.post("login", raw=b"{not json"), 400, "malformed_json")
    problem(web.post("login", raw=b"[1, 2]"), 400, "malformed_json")
    problem(web.post("refresh", {"refresh": "x"}), 400, "invalid")


def test_other_methods_are_405(web: Web) -> None:
    response = web.client.get(COOKIE_PATH + "refresh")
    problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_both_spellings_are_served(web: Web, alice: Persona) -> None:
    web.login(alice.email, PASSWORD)
    web.page()
    response = web.client.post(
        COOKIE_PATH + "refresh/",
        b"{}",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=web.csrf,
    )
    assert response.status_code == 200, response.content


# --- a second factor --------------------------------------------------------------------


def test_a_second_factor_is_asked_for_and_completes_the_sign_in(
    web: Web, api: Api, alice: Persona
) -> None:
    verify_email(api, alice)  # a second factor needs a verified address
    started = api.post(AUTH + "mfa/totp", {"password": PASSWORD}, alice.access)
    assert started.status_code == 201, started.content
    code = pyotp.TOTP(started.json()["secret"]).now()
    confirmed = api.post(AUTH + "mfa/totp/confirm", {"code": code}, alice.access)
    assert confirmed.status_code == 200, confirmed.content
    recovery = confirmed.json()["recovery_codes"][0]

    asked = web.post("login", {"email": alice.email, "password": PASSWORD})
    body = problem(asked, 401, "mfa_required")
    assert body["mfa_challenge"]
    assert web.cookie is None

    wrong = web.post("login/mfa", {"challenge": body["mfa_challenge"], "code": "000000"})
    assert field_attrs(problem(wrong, 401)) == {"code"}
    done = web.post("login/mfa", {"challenge": body["mfa_challenge"], "code": recovery})
    assert done.status_code == 200, done.content
    assert set_cookie_of(done)["httponly"] is True
    assert me(api, done.json()["access"]) == 200
    assert web.refresh().status_code == 200


def test_the_cookie_name_is_stable() -> None:
    # Pages, docs and operators' proxies refer to it.
    assert REFRESH_COOKIE == "coditect_refresh"

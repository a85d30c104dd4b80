"""Account recovery and the second factor in a real browser (issue 9's screens).

The server writes its mail to files (Django's file backend); a test reads the link out of the
mail and opens it, as a user clicks it. Verify an email address from the mail, reset a
forgotten password end to end and sign in with the new one, and enrol an authenticator app
(codes computed with pyotp from the key the page shows), sign in with password and code, make
new recovery codes and turn the factor off.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.accounts.helpers import PASSWORD
from tests.browser.helpers import (
    Authenticator,
    Tabs,
    expect,
    mail_links,
    wait_for_mail_link,
)
from tests.realtime.servers import Http, Server, register

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NEW_PASSWORD = "Brand-new-passphrase-42"


def mail_dir(server: Server) -> Path:
    return Path(server.env["EMAIL_FILE_PATH"])


def test_verify_the_email_from_the_mail_and_reset_a_forgotten_password(
    tabs: Tabs, server: Server
) -> None:
    http = Http(server)
    email = "erin@example.com"
    register(http, "Erin", email, "Erin's team")
    laptop = tabs("erin-laptop")
    page = laptop.page
    laptop.sign_in(email, PASSWORD, then="/account/")
    verified = page.locator("#profile-verified")
    expect(verified).to_have_attribute("data-verified", "no")
    # The mail of the registration went astray: ask for another one from the account page.
    page.get_by_role("button", name="Send the verification mail again").click()
    expect(page.locator("#verify-resend-done")).to_contain_text(email)
    link = wait_for_mail_link(mail_dir(server), email, "/verify-email", count=2)
    assert link.startswith(server.base_url + "/verify-email#token=")

    page.goto(link)
    expect(page.locator("#verify-done")).to_be_visible()
    # The token leaves the address bar (and so the history) once read.
    assert "#token" not in page.url
    page.get_by_role("link", name="Go to your account").click()
    page.wait_for_url(re.compile(r"/account/$"))
    expect(verified).to_have_attribute("data-verified", "yes")
    expect(verified).to_have_text("Yes")
    expect(page.get_by_role("button", name="Send the verification mail again")).to_be_hidden()
    # A link works once; the one the resend replaced never works again either.
    replaced, newest = mail_links(mail_dir(server), email, "/verify-email")
    assert newest == link
    for used in (link, replaced):
        page.goto(used)
        expect(page.locator("#verify-error")).to_be_visible()
        expect(page.locator("#verify-done")).to_be_hidden()

    # On another device, Erin has forgotten the password.
    phone = tabs("erin-phone")
    other = phone.page
    phone.goto("/signin/")
    other.get_by_role("link", name="Forgot your password?").click()
    other.wait_for_url(re.compile(r"/forgot-password/$"))
    other.get_by_label("Email").fill("not-an-email")
    other.get_by_role("button", name="Send the link").click()
    expect(other.locator("#forgot-email-error")).to_be_visible()
    other.get_by_label("Email").fill(email)
    other.get_by_role("button", name="Send the link").click()
    done = other.locator("#forgot-done")
    expect(done).to_be_visible()
    said = done.inner_text()
    # The same words for an address nobody has.
    stranger = tabs("stranger")
    stranger.goto("/forgot-password/")
    stranger.page.get_by_label("Email").fill("nobody@example.com")
    stranger.page.get_by_role("button", name="Send the link").click()
    expect(stranger.page.locator("#forgot-done")).to_have_text(said)

    reset_link = wait_for_mail_link(mail_dir(server), email, "/reset-password")
    other.goto(reset_link)
    assert "#token" not in other.url
    new_password = other.get_by_label("New password", exact=True)
    again = other.get_by_label("New password again")
    new_password.fill(NEW_PASSWORD)
    again.fill(NEW_PASSWORD + "!")
    other.get_by_role("button", name="Set the new password").click()
    expect(other.locator("#reset-confirm_password-error")).to_have_text(
        "The two new passwords differ."
    )
    # The API's refusal lands next to its field (errors[].attr = new_password).
    new_password.fill("12345678")
    again.fill("12345678")
    other.get_by_role("button", name="Set the new password").click()
    expect(other.locator("#reset-new_password-error")).to_be_visible()
    expect(new_password).to_have_attribute("aria-invalid", "true")
    expect(other.locator("#reset-confirm_password-error")).to_be_hidden()
    new_password.fill(NEW_PASSWORD)
    again.fill(NEW_PASSWORD)
    other.get_by_role("button", name="Set the new password").click()
    expect(other.locator("#reset-done")).to_be_visible()

    # Every device was signed out: the laptop's next page goes to sign-in.
    laptop.goto("/account/")
    page.wait_for_url(re.compile(r"/signin/\?next=%2Faccount%2F$"))
    # The old password is gone, the new one works.
    other.get_by_role("link", name="Sign in").click()
    other.wait_for_url(re.compile(r"/signin/$"))
    other.get_by_label("Email").fill(email)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    expect(other.locator("#signin-form .form-error")).to_have_text(
        "Email or password is incorrect."
    )
    other.get_by_label("Password").fill(NEW_PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.wait_for_url(re.compile(r"/sessions/$"))
    # The reset link was spent: the page learns it when it tries the token.
    other.goto(reset_link)
    other.get_by_label("New password", exact=True).fill("Yet-another-passphrase-7")
    other.get_by_label("New password again").fill("Yet-another-passphrase-7")
    other.get_by_role("button", name="Set the new password").click()
    expect(other.locator("#reset-link-error")).to_be_visible()
    expect(other.locator("#reset-form")).to_be_hidden()


def test_enrol_an_authenticator_sign_in_with_a_code_and_turn_it_off(
    tabs: Tabs, server: Server
) -> None:
    http = Http(server)
    email = "finn@example.com"
    register(http, "Finn", email, "Finn's team")
    tab = tabs("finn")
    page = tab.page
    # A second factor needs a confirmed address: confirm it from the registration mail first.
    page.goto(wait_for_mail_link(mail_dir(server), email, "/verify-email"))
    expect(page.locator("#verify-done")).to_be_visible()
    tab.sign_in(email, PASSWORD, then="/account/")
    status = page.locator("#mfa-status")
    expect(status).to_have_attribute("data-state", "off")

    start = page.locator("#totp-start-form")
    start.get_by_label("Your password").fill("wrong-" + PASSWORD)
    start.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("#totp-start-password-error")).to_have_text("The password is incorrect.")
    start.get_by_label("Your password").fill(PASSWORD)
    start.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("#totp-enroll")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    uri = page.get_by_label("Setup link").input_value()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri, uri
    app = Authenticator(secret)

    confirm = page.locator("#totp-confirm-form")
    wrong = next(code for code in ("000000", "111111", "222222") if code not in app.codes_now())
    confirm.get_by_label("Code from the app").fill(wrong)
    confirm.get_by_role("button", name="Turn on").click()
    expect(page.locator("#totp-confirm-code-error")).to_have_text("The code is incorrect.")
    confirm.get_by_label("Code from the app").fill(app.code())
    confirm.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    recovery = codes.all_inner_texts()
    assert all(re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}", code) for code in recovery), recovery
    assert not page.locator("#totp-secret").inner_text()  # the key is not kept on the page
    expect(status).to_have_attribute("data-state", "on")
    page.get_by_role("button", name="I have saved them").click()
    expect(page.locator("#totp-on")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(0)
    expect(status).to_contain_text("10 recovery codes left")

    # New recovery codes, with one of the old ones as the proof.
    renew = page.locator("#recovery-form")
    renew.get_by_label("Code from your app, or a recovery code").fill(recovery[0])
    renew.get_by_role("button", name="Make new recovery codes").click()
    expect(page.locator("#recovery-notice")).to_contain_text("previous ones no longer work")
    expect(codes).to_have_count(10)
    renewed = codes.all_inner_texts()
    assert not set(renewed) & set(recovery)
    page.get_by_role("button", name="I have saved them").click()
    expect(status).to_contain_text("10 recovery codes left")

    # Sign out; signing in now takes the password and then a code.
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(re.compile(r"/signin/\?reason=signed_out$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    mfa = page.locator("#mfa-form")
    expect(mfa).to_be_visible()
    mfa.get_by_label("Code").fill(recovery[1])  # replaced by the renewal
    mfa.get_by_role("button", name="Verify").click()
    expect(page.locator("#mfa-code-error")).to_have_text("The code is incorrect.")
    mfa.get_by_label("Code").fill(app.code())
    mfa.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/sessions/$"))

    # Turn it off: the password and a code.
    tab.goto("/account/")
    expect(status).to_have_attribute("data-state", "on")
    disable = page.locator("#totp-disable-form")
    disable.get_by_label("Your password").fill(PASSWORD)
    disable.get_by_label("Code from your app, or a recovery code").fill(app.code())
    disable.get_by_role("button", name="Turn off").click()
    expect(status).to_have_attribute("data-state", "off")
    expect(page.locator("#totp-start-form")).to_be_visible()
    # The password alone signs in again.
    http.expect(200, "POST", "/api/v5/auth/login", {"email": email, "password": PASSWORD})

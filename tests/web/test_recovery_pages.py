"""The shells of email verification, password reset and two-step verification (issue 9).

The mail links to ``/verify-email#token=...`` and ``/reset-password#token=...``: the pages
are served at exactly those paths (with or without a slash), identical for every visitor, and
the token never reaches the server in the URL (it is in the fragment; the script POSTs it).
The account page carries the forms of the second factor and no user's data.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail

from tests.accounts.helpers import PASSWORD, Api, Persona
from tests.web.helpers import Web

RECOVERY_PAGES = ["/verify-email", "/verify-email/", "/reset-password", "/reset-password/"]


def _without_tokens(html: str) -> str:
    return re.sub(r'content="[^"]+"', 'content=""', html)


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/verify-email", "verify-email"),
        ("/verify-email/", "verify-email"),
        ("/forgot-password/", "forgot-password"),
        ("/reset-password", "reset-password"),
        ("/reset-password/", "reset-password"),
    ],
)
def test_recovery_pages_are_served_at_the_paths_the_mail_links_to(
    web: Web, path: str, page: str
) -> None:
    response = web.page(path)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert f'data-page="{page}"' in html
    assert "/static/accounts/pages.js" in html
    # A page anyone may open: no navigation of a signed-in user, nothing waits on a sign-in.
    assert 'data-auth="required"' not in html
    assert 'id="nav-signout"' not in html


def test_the_mails_link_to_these_pages_with_the_token_in_the_fragment(
    api: Api, alice: Persona
) -> None:
    mail.outbox.clear()
    assert api.post("/api/v5/auth/password-reset", {"email": alice.email}).status_code == 202
    assert api.post("/api/v5/auth/verify-email/resend", None, alice.access).status_code == 202
    links = [re.search(r"http\S+#token=\S+", str(message.body)) for message in mail.outbox]
    assert all(links), [message.body for message in mail.outbox]
    paths = set()
    for link in links:
        assert link is not None
        parts = urlsplit(link.group(0))
        assert parts.query == ""  # the token is in the fragment only
        assert parts.fragment.startswith("token=")
        paths.add(parts.path)
        response = Web().page(parts.path)
        assert response.status_code == 200, parts.path
        assert parts.fragment.removeprefix("token=") not in response.content.decode()
    assert paths == {"/reset-password", "/verify-email"}


def test_recovery_pages_refuse_writes(web: Web) -> None:
    web.page("/reset-password")
    for path in [*RECOVERY_PAGES, "/forgot-password/"]:
        response = web.client.post(path, {"token": "x"}, HTTP_X_CSRFTOKEN=web.csrf)
        assert response.status_code == 405, path


def test_recovery_pages_ignore_a_token_in_the_query_and_echo_nothing(web: Web) -> None:
    planted = '"><script>alert(1)</script>'
    for path in RECOVERY_PAGES:
        plain = web.page(path).content.decode()
        poked = web.page(f"{path}?token={planted}&email=x@example.com").content.decode()
        assert _without_tokens(plain) == _without_tokens(poked), path
        assert "alert(1)" not in poked


def test_sign_in_links_to_forgot_password(web: Web) -> None:
    html = web.page("/signin/").content.decode()
    assert 'href="/forgot-password/"' in html
    assert "Forgot your password?" in html


def test_the_account_shell_has_the_second_factor_forms_with_labelled_fields(web: Web) -> None:
    html = web.page("/account/").content.decode()
    for form in ("totp-start-form", "totp-confirm-form", "recovery-form", "totp-disable-form"):
        assert f'id="{form}"' in html, form
    for field in (
        "totp-start-password",
        "totp-confirm-code",
        "recovery-code",
        "totp-disable-password",
        "totp-disable-code",
    ):
        assert f'<label for="{field}">' in html, field
        assert f'id="{field}-error"' in html, field
    assert '<label for="totp-uri">' in html
    assert 'id="verify-resend"' in html


def test_the_account_shell_is_the_same_for_every_user(alice: Persona, charlie: Persona) -> None:
    shells = []
    for persona in (alice, charlie):
        web = Web()
        web.login(persona.email, PASSWORD)
        html = web.page("/account/").content.decode()
        for text in (alice.email, charlie.email):
            assert text not in html
        shells.append(_without_tokens(html))
    assert shells[0] == shells[1]

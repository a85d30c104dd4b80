"""A browser stand-in for the web pages: cookies, the CSRF token from the page, JSON posts."""

from __future__ import annotations

import json
import re
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any

from django.test import Client

from accounts.web_auth import COOKIE_PATH, REFRESH_COOKIE

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
else:
    from django.http import HttpResponse as Response

ORIGIN = "http://testserver"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class Web:
    """One browser: its own cookie jar (so one device, one auth session)."""

    def __init__(self, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0") -> None:
        self.client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=user_agent)
        self.csrf = ""

    def page(self, path: str = "/signin/") -> Response:
        """GET a page and take its CSRF token, as the page script does."""
        response = self.client.get(path)
        found = _CSRF_META.search(response.content.decode())
        if found:
            self.csrf = found.group(1)
        return response

    def post(
        self,
        name: str,
        body: Any = None,
        *,
        csrf: bool = True,
        token: str | None = None,
        origin: str | None = ORIGIN,
        raw: bytes | None = None,
    ) -> Response:
        """POST JSON to /web/auth/<name>, with the page's CSRF header unless told not to."""
        if not self.csrf:
            self.page()
        headers: dict[str, Any] = {}
        if csrf:
            headers["HTTP_X_CSRFTOKEN"] = self.csrf
        if origin is not None:
            headers["HTTP_ORIGIN"] = origin
        if token is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        response = self.client.post(
            COOKIE_PATH + name, data, content_type="application/json", **headers
        )
        if response.status_code < 300 and response.content:
            answer = response.json()
            if isinstance(answer, dict) and answer.get("csrf_token"):
                self.csrf = answer["csrf_token"]  # rotated at sign-in
        return response

    def login(self, email: str, password: str) -> dict[str, Any]:
        response = self.post("login", {"email": email, "password": password})
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def refresh(self) -> Response:
        return self.post("refresh")

    @property
    def cookie(self) -> str | None:
        """The refresh cookie's value in this browser's jar ('' once cleared)."""
        morsel = self.client.cookies.get(REFRESH_COOKIE)
        return None if morsel is None else morsel.value

    def set_cookie(self, value: str) -> None:
        self.client.cookies[REFRESH_COOKIE] = value


def set_cookie_of(response: Response) -> Morsel[str]:
    """The refresh cookie as the response set it."""
    morsel = response.cookies.get(REFRESH_COOKIE)
    assert morsel is not None, f"no {REFRESH_COOKIE} cookie set: {response.cookies}"
    return morsel

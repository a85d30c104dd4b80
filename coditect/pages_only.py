"""Django's page middleware (sessions, CSRF, auth user, messages, APPEND_SLASH) for pages only.

The API authenticates with bearer tokens and never reads a cookie, so these do nothing for it
(a browser does not send a header token on its own, so it needs no CSRF check). Under daphne
each of them also moves every request and response to a thread and back (Django runs
MiddlewareMixin hooks through sync_to_async): skipping them on API paths takes about ten thread
hops off every API request. Pages (the admin) keep all of them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware

from core.problems import is_api_path


def _for_pages(base: type[Any]) -> type[Any]:
    class PagesOnly(base):
        def __call__(self, request: HttpRequest) -> Any:
            if self.async_mode:
                return self.__acall__(request)
            if is_api_path(request.path_info):
                return self.get_response(request)
            return super().__call__(request)

        async def __acall__(self, request: HttpRequest) -> Any:
            if is_api_path(request.path_info):
                return await self.get_response(request)
            return await super().__acall__(request)

    PagesOnly.__name__ = PagesOnly.__qualname__ = base.__name__
    return PagesOnly


Session = _for_pages(SessionMiddleware)
Common = _for_pages(CommonMiddleware)
Csrf = _for_pages(CsrfViewMiddleware)
Authentication = _for_pages(AuthenticationMiddleware)
Messages = _for_pages(MessageMiddleware)

"""Django's page middleware (sessions, CSRF, auth user, OTP, messages, APPEND_SLASH) for pages
only.

The API authenticates with bearer tokens and never reads a cookie, so these do nothing for it
(a browser does not send a header token on its own, so it needs no CSRF check). Under daphne
each of them also moves every request and response to a thread and back (Django runs
MiddlewareMixin hooks through sync_to_async): skipping them on API paths takes about ten thread
hops off every API request. Pages (the admin) keep all of them.

The API lane (coditect/api_lane.py), which serves API paths only, builds its middleware chain
without them at all (coditect/api_chain.py): each raises MiddlewareNotUsed there, as Django lets a
middleware do, so no API request passes through five layers that would only hand it on (and
CSRF's view hook), about 3% of a create's CPU.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django_otp.middleware import OTPMiddleware

from coditect.api_chain import building_api_chain
from core.problems import is_api_path


def _for_pages(base: type[Any]) -> type[Any]:
    class PagesOnly(base):
        def __init__(self, get_response: Any) -> None:
            if building_api_chain():
                raise MiddlewareNotUsed  # it would hand every request of that chain on
            super().__init__(get_response)
            self._pages_async = iscoroutinefunction(get_response)

        def __call__(self, request: HttpRequest) -> Any:
            if self._pages_async:
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

# Marks the admin's user as verified by a TOTP device: API paths have no such user.
Otp = _for_pages(OTPMiddleware)

"""Opaque list cursors, sealed with an HMAC so a tampered one is refused, not followed.

The records layer's continuations already never read outside the queried range; the seal
adds that a client can only hand back cursors this deployment issued, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings

from fdb_backend.records import InvalidContinuation

_MAC_BYTES = 12


def _mac(continuation: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), b"cursor:" + continuation.encode(), hashlib.sha256
    ).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def cursor_seal(continuation: str | None) -> str | None:
    if continuation is None:
        return None
    return f"{_mac(continuation)}.{continuation}"


def cursor_open(cursor: str | None) -> str | None:
    """The continuation inside ``cursor``; raises InvalidContinuation if it was altered."""
    if cursor is None:
        return None
    mac, _, continuation = cursor.partition(".")
    # Every cursor this server issues is ASCII (a base64 seal and continuation); anything else
    # was not issued here. Checked first: compare_digest raises TypeError on non-ASCII text,
    # and encoding a lone surrogate for the HMAC would raise too.
    if not continuation or not cursor.isascii():
        raise InvalidContinuation("cursor was not issued by this server")
    if not hmac.compare_digest(mac.encode(), _mac(continuation).encode()):
        raise InvalidContinuation("cursor was not issued by this server")
    return continuation

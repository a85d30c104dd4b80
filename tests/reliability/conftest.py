"""Reliability fixtures: the accounts personas and the realtime environment, imported by name.

Every test gets a fresh memory store (``accounts_environment``), a fresh in-memory channel
layer and hosts that the origin check accepts (``realtime_environment``); a test that needs
another store (the crash test's embedded file) changes ``settings.CODITECT_STORAGE_URL``.
"""

from __future__ import annotations

from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie
from tests.realtime.conftest import alice_session, realtime_environment, sessions, sockets

__all__ = [
    "accounts_environment",
    "alice",
    "alice_session",
    "api",
    "bob",
    "charlie",
    "realtime_environment",
    "sessions",
    "sockets",
]

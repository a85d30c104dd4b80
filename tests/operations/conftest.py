"""Operators' command tests: a fresh memory store per test and the accounts personas.

Alice owns tenant Acme (Bob is a member), Charlie owns Globex; the fixtures come from
tests/accounts, imported here by name.
"""

from __future__ import annotations

from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie

__all__ = ["accounts_environment", "alice", "api", "bob", "charlie"]

"""Workspace session fixtures: the accounts personas (imported, not redefined) and a few more.

Non-root conftests may not declare ``pytest_plugins``, so the accounts fixtures are imported
by name; ``accounts_environment`` is autouse, so every test here gets a fresh memory store.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie
from tests.accounts.helpers import Persona, invite_and_register
from tests.workspaces.helpers import SessionApi, create_session

__all__ = [
    "accounts_environment",
    "alice",
    "alice_session",
    "api",
    "bob",
    "charlie",
    "dana",
    "sessions",
]


@pytest.fixture
def sessions() -> SessionApi:
    return SessionApi()


@pytest.fixture
def dana(sessions: SessionApi, alice: Persona) -> Persona:
    """An admin of tenant A (Alice's tenant)."""
    return invite_and_register(sessions, alice, "Dana", "dana@example.com", role="admin")


@pytest.fixture
def alice_session(sessions: SessionApi, alice: Persona) -> dict[str, Any]:
    """A workspace session Alice created, with some state in it."""
    return create_session(
        sessions,
        alice,
        name="Alice's workspace",
        workspace_path="/home/alice/project",
        active_files=["/home/alice/project/main.py", "/home/alice/project/README.md"],
        editor_state={"cursor": {"line": 3, "column": 7}, "theme": "dark"},
        terminal_state={"cwd": "/home/alice/project", "history": ["ls", "make test"]},
    )

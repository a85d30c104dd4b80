"""Accounts fixtures: a fresh memory store per test (or the emptied store that
``CODITECT_TEST_STORAGE_URL`` names: tests/store.py), cheap Argon2, and the three personas.

Alice owns tenant A, Bob is a member of tenant A (he joined through Alice's invitation) and
Charlie owns tenant B and must see nothing of theirs. Throttle limits are scaled far up, so
only the throttle tests (which scale them back down) ever see a 429.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import fdb_backend
from tests.accounts.helpers import Api, Persona, invite_and_register, register_persona
from tests.store import store_for_test


@pytest.fixture(autouse=True)
def accounts_environment(settings) -> Iterator[None]:
    fdb_backend.reset_database()
    settings.CODITECT_STORAGE_URL = store_for_test()
    settings.CODITECT_ARGON2_TIME_COST = 1
    settings.CODITECT_ARGON2_MEMORY_KIB = 8
    settings.CODITECT_ARGON2_PARALLELISM = 1
    settings.CODITECT_THROTTLE_SCALE = 1000
    yield
    fdb_backend.reset_database()


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def alice(api: Api) -> Persona:
    return register_persona(
        api, "Alice", "alice@example.com", tenant_name="Acme", display_name="Alice"
    )


@pytest.fixture
def bob(api: Api, alice: Persona) -> Persona:
    return invite_and_register(api, alice, "Bob", "bob@example.com", role="member")


@pytest.fixture
def charlie(api: Api) -> Persona:
    return register_persona(
        api, "Charlie", "charlie@example.org", tenant_name="Globex", display_name="Charlie"
    )

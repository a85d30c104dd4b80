"""Fixtures shared by every app's tests.

pytest-django imports the settings before any conftest, so environment variables set here
come too late for them: a test that needs another setting uses the ``settings`` fixture
(``fdb_backend.get_database()`` follows ``settings.CODITECT_STORAGE_URL`` when it changes).
"""

from collections.abc import Iterator

import pytest

from tests.store import clear_named_store


@pytest.fixture(autouse=True)
def empty_named_store() -> Iterator[None]:
    """With CODITECT_TEST_STORAGE_URL set, every test starts on an empty store (tests/store.py),
    the servers it starts included; without it, nothing to do."""
    clear_named_store()
    yield

"""Creates under injected commit faults (1020 not committed; 1021 applied or not, unknown):
every acknowledged session exists exactly once, with what it was given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import fdb_backend
from tests.accounts.helpers import Persona
from tests.workspaces.helpers import SessionApi, create_session, list_ids, read_session


@pytest.fixture
def faults(alice: Persona) -> Iterator[None]:
    db = fdb_backend.get_database()
    db.set_fault_injection(0.4, seed=7)
    yield
    db.set_fault_injection(0.0)


def test_creates_and_forks_survive_unknown_commit_results(
    sessions: SessionApi, alice: Persona, faults: None
) -> None:
    parent = create_session(sessions, alice, name="parent", workspace_path="/p")
    made: dict[str, dict[str, Any]] = {}
    for n in range(30):
        fields: dict[str, Any] = {"name": f"s{n}", "workspace_path": f"/p/{n}"}
        fields["editor_state"] = {"n": n}
        if n % 3 == 0:
            fields["parent_session_id"] = parent["id"]
        body = create_session(sessions, alice, **fields)
        made[body["id"]] = fields
    fdb_backend.get_database().set_fault_injection(0.0)
    listed = list_ids(sessions, alice)
    assert sorted(listed) == sorted([*made, parent["id"]])
    for session_id, fields in made.items():
        stored = read_session(sessions, alice, session_id)
        assert (stored["name"], stored["editor_state"]) == (fields["name"], fields["editor_state"])
        assert stored["version"] == 1 and stored["seq"] == 0
    children = {i for i, f in made.items() if "parent_session_id" in f}
    related = read_session(sessions, alice, parent["id"])["related_session_ids"]
    assert set(related) == children

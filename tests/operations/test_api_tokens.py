"""API tokens in operators' tools: ``storage check`` knows their index and their owner,
``storage purge`` takes long-expired ones, and a tenant's export and import carry them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

import fdb_backend
from fdb_backend import keyspace
from tests.accounts.helpers import AUTH, Api, Persona, problem
from tests.operations.helpers import run


def make_token(api: Api, persona: Persona, **fields: Any) -> dict[str, Any]:
    body = {"name": "ci", "scopes": ["sessions:read"], **fields}
    response = api.post(AUTH + "api-tokens", body, persona.access)
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


def test_check_finds_and_repairs_api_token_problems(api: Api, alice: Persona, bob: Persona) -> None:
    db = fdb_backend.get_database()
    alices, bobs = make_token(api, alice), make_token(api, bob)
    acme = keyspace.tenant(alice.tenant_uuid)
    assert run("storage", "check", "--json").json()["problems"] == []
    # Alice's token loses its index entry; Bob's user record vanishes, leaving his token.
    by_user = acme.collection("api_tokens").index("api_tokens_by_user").subspace

    @fdb_backend.transactional
    def damage(tr: Any) -> None:
        tr.clear(by_user.pack((alice.user_uuid, uuid.UUID(alices["id"]))))
        r = acme.collection("users").records.range((bob.user_uuid,))
        tr.clear_range(r.start, r.stop)

    damage(db)
    with pytest.raises(CommandError, match="problems left"):
        run("storage", "check")
    found = run("storage", "check", "--repair", "--json").json()
    kinds = sorted((p["kind"], p["what"]) for p in found["problems"])
    assert ("missing", "api_tokens.api_tokens_by_user") in kinds
    assert ("orphan", "API token of a missing user") in kinds
    assert found["unrepaired"] == 0
    assert run("storage", "check", "--json").json()["problems"] == []
    listed = api.get(AUTH + "api-tokens", alice.access).json()["results"]
    assert [t["id"] for t in listed] == [alices["id"]]
    problem(api.me(bobs["token"]), 401, "invalid_token")


def test_purge_takes_tokens_a_week_after_they_expired(
    api: Api, alice: Persona, time_machine: Any
) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    lapsing = make_token(api, alice, expires_at=(start + timedelta(days=1)).isoformat())
    forever = make_token(api, alice)
    time_machine.move_to(start + timedelta(days=7), tick=False)
    assert run("storage", "purge", "--only", "api_tokens", "--json").json()["removed"] == {
        "api_tokens": 0
    }
    time_machine.move_to(start + timedelta(days=8, seconds=1), tick=False)
    assert run("storage", "purge", "--only", "api_tokens", "--json").json()["removed"] == {
        "api_tokens": 1
    }
    refreshed = api.refresh(alice.refresh).json()["access"]
    listed = api.get(AUTH + "api-tokens", refreshed).json()["results"]
    assert [t["id"] for t in listed] == [forever["id"]]
    problem(api.me(lapsing["token"]), 401, "invalid_token")


def test_export_and_import_carry_the_tenants_tokens(
    api: Api, alice: Persona, charlie: Persona, tmp_path: Path
) -> None:
    alices = make_token(api, alice)
    path = tmp_path / "acme.jsonl"
    run("tenants", "export", alice.tenant_id, "--output", str(path))
    run("tenants", "delete", alice.tenant_id, "--yes")
    problem(api.me(alices["token"]), 401, "invalid_token")
    run("tenants", "import", str(path))
    assert api.me(alices["token"]).status_code == 200
    assert [t["id"] for t in api.get(AUTH + "api-tokens", alice.access).json()["results"]] == [
        alices["id"]
    ]
    assert api.get(AUTH + "api-tokens", charlie.access).json()["results"] == []

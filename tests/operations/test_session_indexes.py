"""A store made before ``sessions_by_owner_workspace`` existed: ``storage check`` reports
every session's entry missing, ``--repair`` builds the index in batches, and ``tenants
import`` of an export made before it writes the entries the file lacks."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import fdb_backend
from fdb_backend import keyspace, maintenance
from tests.accounts.helpers import Api, Persona
from tests.operations.helpers import run

INDEX = "sessions_by_owner_workspace"


def new_index(persona: Persona) -> Any:
    return keyspace.tenant(persona.tenant_uuid).collection("workspace_sessions").index(INDEX)


def drop_new_index(persona: Persona) -> None:
    """The store as the previous release left it: every other key, none of this index."""
    fdb_backend.get_database().clear_range(*new_index(persona).range())


def create(api: Api, persona: Persona, path: str) -> str:
    response = api.post("/api/v5/sessions", {"name": "S", "workspace_path": path}, persona.access)
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def both_filters(api: Api, persona: Persona, path: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query: dict[str, str] = {"owner": "me", "workspace_path": path, "limit": "50"}
        if cursor:
            query["cursor"] = cursor
        body = api.client.get(
            "/api/v5/sessions", query, HTTP_AUTHORIZATION=f"Bearer {persona.access}"
        ).json()
        ids.extend(item["id"] for item in body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def test_repair_builds_the_new_index_of_an_existing_store_in_batches(
    monkeypatch: pytest.MonkeyPatch, api: Api, alice: Persona, bob: Persona
) -> None:
    mine = [create(api, alice, "/w/a") for _ in range(230)]
    for _ in range(20):
        create(api, bob, "/w/a")
    drop_new_index(alice)
    assert both_filters(api, alice, "/w/a") == []  # what an upgraded store answers before

    with pytest.raises(CommandError, match="250 problems left; run storage check --repair"):
        run("storage", "check")
    batches: list[int] = []
    original = maintenance._repair_batch

    def counted(db: Any, collection: Any, issues: list[Any]) -> list[bool]:
        batches.append(len(issues))
        return list(original(db, collection, issues))

    monkeypatch.setattr(maintenance, "_repair_batch", counted)
    text = run("storage", "check", "--repair").out
    lines = text.splitlines()
    assert lines[0] == "checked 1 tenant: 250 problems, 250 repaired"
    # Past 100 problems the table counts them by kind, what and tenant (--json lists each).
    assert any(
        "missing" in line and f"workspace_sessions.{INDEX}" in line and "250" in line
        for line in lines
    ), text
    assert lines[-1] == "(more than 100 problems: --json lists each)"
    assert batches == [100, 100, 50]  # one transaction per hundred entries, not per entry

    report = run("storage", "check", "--json").json()
    assert report["problems"] == []
    found = both_filters(api, alice, "/w/a")
    assert sorted(found) == sorted(mine)
    assert len(found) == 230


def test_check_json_lists_each_missing_entry(api: Api, alice: Persona) -> None:
    ids = {create(api, alice, "/w/b") for _ in range(3)}
    drop_new_index(alice)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("storage", "check", "--json", stdout=out, stderr=io.StringIO())
    problems = json.loads(out.getvalue())["problems"]
    assert sorted(p["key"] for p in problems) == sorted(ids)
    assert {(p["kind"], p["what"]) for p in problems} == {
        ("missing", f"workspace_sessions.{INDEX}")
    }


def test_import_of_an_export_older_than_the_index(
    api: Api, alice: Persona, bob: Persona, tmp_path: Path
) -> None:
    mine = [create(api, alice, "/w/a") for _ in range(3)]
    create(api, bob, "/w/a")
    create(api, alice, "/w/b")
    path = tmp_path / "acme.jsonl"
    run("tenants", "export", alice.tenant_id, "--output", str(path))
    # The export an earlier release made: no line of the new index (the end line's counts
    # are made to match, as that release's would).
    prefix = new_index(alice).subspace.key()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kept, dropped_keys, dropped_bytes = [], 0, 0
    for line in lines:
        key = _key_of(line)
        if key is not None and key.startswith(prefix):
            dropped_keys += 1
            dropped_bytes += len(key) + len(_value_of(line))
            continue
        kept.append(line)
    assert dropped_keys == 5
    kept[-1]["keys"] -= dropped_keys
    kept[-1]["bytes"] -= dropped_bytes
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps(line) + "\n" for line in kept))

    report = run("tenants", "import", str(old), "--replace", "--json").json()
    assert report["entries_rebuilt"] == 5
    assert run("storage", "check", "--json").json()["problems"] == []
    assert sorted(both_filters(api, alice, "/w/a")) == sorted(mine)
    text = run("tenants", "import", str(old), "--replace").out
    assert "5 index entries the file lacks (an older export) written" in text
    # An export of this release has them all: nothing to write.
    assert run("tenants", "import", str(path), "--replace", "--json").json()["entries_rebuilt"] == 0


def _key_of(line: dict[str, Any]) -> bytes | None:
    return base64.b64decode(line["key"]) if "key" in line else None


def _value_of(line: dict[str, Any]) -> bytes:
    return base64.b64decode(line["value"])


def test_repair_racing_writes_leaves_a_consistent_index(api: Api, alice: Persona) -> None:
    """``--repair`` may run while the platform serves: writes racing it (paths moved,
    sessions deleted) keep the index right, and a fix re-checks its record first, so the
    store ends consistent and the filters list what they match."""
    ids = [create(api, alice, "/w/a") for _ in range(150)]
    drop_new_index(alice)
    moved, deleted = ids[:60:2], ids[1:60:2]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            writes = Api()
            for moving, going in zip(moved, deleted, strict=True):
                url = f"/api/v5/sessions/{moving}"
                response = writes.client.patch(
                    url,
                    json.dumps({"workspace_path": "/w/b"}),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {alice.access}",
                )
                assert response.status_code == 200, response.content
                response = writes.delete(f"/api/v5/sessions/{going}", alice.access)
                assert response.status_code == 204, response.content
        except BaseException as error:  # reported by the test's thread
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    with contextlib.suppress(CommandError):  # a fix its race made needless stays "unrepaired"
        run("storage", "check", "--repair")
    thread.join()
    assert errors == []
    assert run("storage", "check", "--json").json()["problems"] == []
    assert sorted(both_filters(api, alice, "/w/b")) == sorted(moved)
    left = [i for i in ids if i not in moved and i not in deleted]
    assert sorted(both_filters(api, alice, "/w/a")) == sorted(left)


def test_repair_rechecks_what_changed_since_the_check(
    monkeypatch: pytest.MonkeyPatch, api: Api, alice: Persona
) -> None:
    """Sessions moved or deleted between the check and its repair: their fixes find the
    record changed or gone and write nothing (reported unrepaired), the writes themselves
    kept the index right."""
    ids = [create(api, alice, "/w/a") for _ in range(20)]
    drop_new_index(alice)
    moved, deleted = ids[:10:2], ids[1:10:2]
    original = maintenance._repair_batch

    def after_writes(db: Any, collection: Any, issues: list[Any]) -> list[bool]:
        for moving, going in zip(moved, deleted, strict=True):
            response = api.client.patch(
                f"/api/v5/sessions/{moving}",
                json.dumps({"workspace_path": "/w/b"}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {alice.access}",
            )
            assert response.status_code == 200, response.content
            assert api.delete(f"/api/v5/sessions/{going}", alice.access).status_code == 204
        monkeypatch.setattr(maintenance, "_repair_batch", original)
        return list(original(db, collection, issues))

    monkeypatch.setattr(maintenance, "_repair_batch", after_writes)
    out = io.StringIO()
    with pytest.raises(CommandError, match="10 problems left"):
        call_command("storage", "check", "--repair", "--json", stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue())
    assert report["repaired"] == 10
    unrepaired = sorted(p["key"] for p in report["problems"] if not p["repaired"])
    assert unrepaired == sorted(moved + deleted)
    assert run("storage", "check", "--json").json()["problems"] == []
    assert sorted(both_filters(api, alice, "/w/b")) == sorted(moved)
    assert sorted(both_filters(api, alice, "/w/a")) == sorted(ids[10:])

"""``tenants export`` and ``tenants import``: JSON Lines in bounded batches, a byte-exact
round trip, idempotent imports, other stores, conflicts and malformed files; an import
checks every record of the file before writing any, never touches the signing keyring and
never writes over a tenant without ``--replace``."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management.base import CommandError

import fdb_backend
from fdb_backend import keyspace, maintenance
from tests.accounts.helpers import Api, Persona, invite_and_register, problem, register_persona
from tests.operations.helpers import Terminal, run


def everything() -> dict[bytes, bytes]:
    """Every key of the platform in the current store."""
    db = fdb_backend.get_database()
    return {
        kv.key: kv.value for batch in maintenance.walk(db, keyspace.GLOBAL.range()) for kv in batch
    }


def export(ref: str, path: Path, *extra: str) -> list[dict]:
    run("tenants", "export", ref, "--output", str(path), *extra)
    return [json.loads(line) for line in path.read_text().splitlines()]


def workspace(api: Api, persona: Persona) -> str:
    response = api.post(
        "/api/v5/sessions",
        {"name": "Main", "workspace_path": "/work/app", "editor_state": {"big": "x" * 150_000}},
        persona.access,
    )
    assert response.status_code == 201, response.content
    session_id = str(response.json()["id"])
    event = {"event": "build", "data": {"ok": True}}
    assert (
        api.post(f"/api/v5/sessions/{session_id}/events", event, persona.access).status_code == 202
    )
    return session_id


def test_the_export_format(api: Api, alice: Persona, bob: Persona, tmp_path: Path) -> None:
    workspace(api, alice)
    lines = export(alice.tenant["slug"], tmp_path / "acme.jsonl")
    header, *body, end = lines
    assert header["format"] == "coditect-tenant-export/1"
    assert header["tenant_id"] == alice.tenant_id
    assert header["engine"] == "embedded"
    assert header["exported_at"].endswith("Z")
    assert "verification_keys" not in header  # the platform's keys, not the tenant's
    scopes = [line["scope"] for line in body]
    assert scopes == sorted(scopes)  # "global" entries first, then the tenant's range
    assert scopes.count("global") == 4
    tenant = keyspace.tenant(alice.tenant_uuid)
    for line in body:
        key = base64.b64decode(line["key"])
        assert (line["scope"] == "tenant") == tenant.contains(key)
    assert end == {"end": True, "keys": len(body), "bytes": end["bytes"]}
    # The 150 kB editor state is stored split in two chunks, exported as they are.
    states = tenant.collection("workspace_states").range()
    assert sum(states.contains(base64.b64decode(line["key"])) for line in body) == 2


def test_round_trip_export_delete_import(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, tmp_path: Path
) -> None:
    session_id = workspace(api, alice)
    before = everything()
    first = export(alice.tenant_id, tmp_path / "first.jsonl")

    run("tenants", "delete", alice.tenant_id, "--yes")
    problem(api.me(alice.access), 401, "session_revoked")
    problem(api.refresh(bob.refresh), 401, "invalid_token")

    report = run("tenants", "import", str(tmp_path / "first.jsonl"), "--json").json()
    assert report["keys"] == len(first) - 2
    assert report["replaced"] is False

    second = export(alice.tenant_id, tmp_path / "second.jsonl")
    assert first[1:] == second[1:]
    assert {k: v for k, v in first[0].items() if k != "exported_at"} == {
        k: v for k, v in second[0].items() if k != "exported_at"
    }
    # Byte for byte what was there, but for what the delete and import touched outside
    # the tenant (throttle counters of the failed login and refresh above).
    after = everything()
    throttle = keyspace.GLOBAL.space("throttle").range()

    def kept(store: dict[bytes, bytes]) -> dict[bytes, bytes]:
        return {k: v for k, v in store.items() if not throttle.start <= k < throttle.stop}

    assert kept(after) == kept(before)
    # Logins, token families and sessions work again.
    assert api.me(alice.access).status_code == 200
    refreshed = api.refresh(bob.refresh)
    assert refreshed.status_code == 200, refreshed.content
    assert api.me(refreshed.json()["access"]).status_code == 200
    assert api.login(alice.email, alice.password).status_code == 200
    got = api.get(f"/api/v5/sessions/{session_id}", bob.access)
    assert got.status_code == 200
    assert len(got.json()["editor_state"]["big"]) == 150_000
    events = api.get(f"/api/v5/sessions/{session_id}/events?after_seq=0", alice.access).json()
    assert [(e["seq"], e["event"]) for e in events["results"]] == [(1, "build")]
    assert api.me(charlie.access).status_code == 200


def test_import_twice_changes_nothing(alice: Persona, bob: Persona, tmp_path: Path) -> None:
    path = tmp_path / "acme.jsonl"
    export(alice.tenant_id, path)
    run("tenants", "delete", alice.tenant_id, "--yes")
    run("tenants", "import", str(path))
    once = everything()
    # Again, over the copy it made: only with --replace, and to the same bytes.
    with pytest.raises(CommandError, match="exists here; import with --replace"):
        run("tenants", "import", str(path))
    assert everything() == once
    for _ in range(2):
        run("tenants", "import", str(path), "--replace")
        assert everything() == once


def test_an_interrupted_import_is_finished_by_running_it_again(
    api: Api, alice: Persona, bob: Persona, tmp_path: Path, monkeypatch
) -> None:
    path, later = tmp_path / "acme.jsonl", tmp_path / "later.jsonl"
    export(alice.tenant_id, path)
    workspace(api, alice)
    export(alice.tenant_id, later)  # one workspace session more
    run("tenants", "delete", alice.tenant_id, "--yes")
    empty = everything()
    run("tenants", "import", str(path))
    done = everything()
    run("tenants", "delete", alice.tenant_id, "--yes")
    # An import of the later file dies after the range's first batch: the tenant stays
    # invisible, and the file it is finished with need not be the same one.
    original = maintenance.write_batches

    def dying(db, items):
        for written in original(db, items):
            yield written
            raise KeyboardInterrupt

    monkeypatch.setattr(maintenance, "write_batches", dying)
    with pytest.raises(KeyboardInterrupt):
        run("tenants", "import", str(later))
    monkeypatch.undo()
    assert everything() != empty
    with pytest.raises(CommandError, match="unknown tenant"):
        run("tenants", "show", alice.tenant_id)
    run("tenants", "import", str(path))  # no --replace: there is no tenant to replace
    assert everything() == done


def test_import_into_another_store(settings, api: Api, tmp_path: Path) -> None:
    settings.CODITECT_STORAGE_URL = f"embedded://{tmp_path}/a.sqlite3"
    ann = register_persona(api, "Ann", "ann@example.com", tenant_name="Acme")
    ben = invite_and_register(api, ann, "Ben", "ben@example.com")
    session_id = workspace(api, ann)
    export(ann.tenant_id, tmp_path / "acme.jsonl")
    source = everything()

    settings.CODITECT_STORAGE_URL = f"embedded://{tmp_path}/b.sqlite3"
    zed = register_persona(api, "Zed", "zed@example.com", tenant_name="Other")
    keyring = run("signing_keys", "list", "--json").json()
    report = run("tenants", "import", str(tmp_path / "acme.jsonl"), "--json").json()
    assert report["verification_keys_ignored"] == 0
    target = everything()
    tenant_range = keyspace.tenant(ann.tenant_uuid).range()
    assert {k: v for k, v in target.items() if tenant_range.contains(k)} == {
        k: v for k, v in source.items() if tenant_range.contains(k)
    }
    # The keyring here is untouched: tokens of the first store do not verify here, and the
    # tenant's users sign in again with their passwords, which came along.
    assert run("signing_keys", "list", "--json").json() == keyring
    problem(api.me(ann.access), 401, "invalid_token")
    problem(api.refresh(ben.refresh), 401, "invalid_token")
    ben_here = api.login(ben.email, ben.password)
    assert ben_here.status_code == 200
    access = ben_here.json()["access"]
    assert api.get(f"/api/v5/sessions/{session_id}", access).status_code == 200
    assert api.me(zed.access).status_code == 200


def test_import_refuses_an_email_held_by_another_tenant(settings, api: Api, tmp_path: Path) -> None:
    settings.CODITECT_STORAGE_URL = f"embedded://{tmp_path}/a.sqlite3"
    ann = register_persona(api, "Ann", "ann@example.com", tenant_name="Acme")
    export(ann.tenant_id, tmp_path / "acme.jsonl")

    settings.CODITECT_STORAGE_URL = f"embedded://{tmp_path}/b.sqlite3"
    register_persona(api, "Other Ann", "ANN@example.com", tenant_name="Elsewhere")
    before = everything()
    with pytest.raises(CommandError) as caught:
        run("tenants", "import", str(tmp_path / "acme.jsonl"))
    assert str(caught.value) == "cannot import: email 'ann@example.com' is held by another tenant"
    assert everything() == before


def test_replace_deletes_the_copy_here_first(
    api: Api, alice: Persona, bob: Persona, tmp_path: Path
) -> None:
    path = tmp_path / "acme.jsonl"
    export(alice.tenant_id, path)
    late = api.post("/api/v5/sessions", {"name": "Late", "workspace_path": "/w"}, alice.access)
    late_id = late.json()["id"]
    before = everything()
    with pytest.raises(CommandError) as refused:  # over the live tenant: refused
        run("tenants", "import", str(path))
    assert str(refused.value) == (
        f"cannot import: tenant {alice.tenant_id} exists here; import with --replace to "
        "delete it and put the file's copy in its place"
    )
    assert everything() == before
    assert api.get(f"/api/v5/sessions/{late_id}", alice.access).status_code == 200
    report = run("tenants", "import", str(path), "--replace", "--json").json()
    assert report["replaced"] is True
    assert api.get(f"/api/v5/sessions/{late_id}", alice.access).status_code == 404


def test_export_to_standard_output(alice: Persona) -> None:
    ran = run("tenants", "export", alice.tenant_id)
    lines = ran.out.splitlines()
    assert json.loads(lines[0])["tenant_id"] == alice.tenant_id
    assert json.loads(lines[-1])["end"] is True
    assert "exported tenant" in ran.err  # the summary stays off the data


def test_progress_bars_draw_on_a_terminal_only(alice: Persona, tmp_path: Path) -> None:
    path = tmp_path / "acme.jsonl"
    quiet = run("tenants", "export", alice.tenant_id, "-o", str(path))
    assert "\r" not in quiet.err
    terminal = Terminal()
    run("tenants", "export", alice.tenant_id, "-o", str(path), stderr=terminal)
    assert "\rexporting [" in terminal.getvalue()
    assert "100%" in terminal.getvalue()
    silenced = Terminal()
    run("tenants", "export", alice.tenant_id, "-o", str(path), "--no-progress", stderr=silenced)
    assert "\r" not in silenced.getvalue()
    run("tenants", "delete", alice.tenant_id, "--yes")
    terminal = Terminal()
    run("tenants", "import", str(path), stderr=terminal)
    assert "\rimporting [" in terminal.getvalue()
    assert "100%" in terminal.getvalue()


def test_exports_read_in_bounded_batches(
    api: Api, alice: Persona, tmp_path: Path, monkeypatch
) -> None:
    for _ in range(3):
        workspace(api, alice)  # a 150 kB state each: two chunks of up to 100 kB
    sizes: list[int] = []
    original = maintenance._read_batch

    def counting(tr, begin, end):
        kvs, exhausted = original(tr, begin, end)
        sizes.append(sum(len(kv.key) + len(kv.value) for kv in kvs))
        return kvs, exhausted

    monkeypatch.setattr(maintenance, "_read_batch", counting)
    monkeypatch.setattr(maintenance, "TARGET_BYTES", 250_000)
    lines = export(alice.tenant_id, tmp_path / "acme.jsonl")
    assert sum(sizes) > 450_000
    assert len(sizes) >= 3
    assert max(sizes) <= 250_000
    assert lines[-1]["keys"] == len(lines) - 2


# --- bad input -------------------------------------------------------------------------


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def good_export(alice: Persona, bob: Persona, tmp_path: Path) -> list[str]:
    path = tmp_path / "acme.jsonl"
    export(alice.tenant_id, path)
    run("tenants", "delete", alice.tenant_id, "--yes")
    return lines_of(path)


def _key(line: str) -> bytes:
    return base64.b64decode(json.loads(line)["key"])


def _with_key(line: str, key: bytes) -> str:
    obj = json.loads(line)
    obj["key"] = base64.b64encode(key).decode()
    return json.dumps(obj)


def bad_files(lines: list[str], charlie_tenant: keyspace.TenantKeys) -> dict[str, tuple[str, str]]:
    header, *body = lines
    tenant_line = next(i for i, line in enumerate(body) if json.loads(line)["scope"] == "tenant")
    foreign = charlie_tenant.collection("users").records.pack(("x", 0))
    other_header = json.loads(header) | {"format": "something-else/2"}
    return {
        "empty": ("", "the file is empty"),
        "not json": (header + "\n{nope\n", "line 2: not JSON"),
        "not an object": (header + "\n[1, 2]\n", "line 2: not a JSON object"),
        "format": (json.dumps(other_header) + "\n", "format is not"),
        "bad tenant id": (json.dumps(json.loads(header) | {"tenant_id": "x"}), "not a UUID"),
        "bad base64": (
            "\n".join([header, body[0].replace('"key": "', '"key": "!!')]),
            "key is not base64",
        ),
        "key outside": (
            "\n".join(
                [header, *body[: tenant_line + 1], _with_key(body[tenant_line], foreign), *body]
            ),
            "key outside the tenant's range",
        ),
        "truncated": ("\n".join([header, *body[:-3]]), "truncated"),
        "counts": (
            "\n".join([header, *body[:-2], body[-1]]),
            "counts do not match",
        ),
        "no tenant record": ("\n".join([header, *body[tenant_line:]]), "no tenant record"),
        "after the end": ("\n".join([header, *body, body[-2]]), "content after the end line"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "not json",
        "not an object",
        "format",
        "bad tenant id",
        "bad base64",
        "key outside",
        "truncated",
        "counts",
        "no tenant record",
        "after the end",
    ],
)
def test_import_refuses_malformed_files(
    good_export: list[str], api: Api, alice: Persona, charlie: Persona, tmp_path: Path, case: str
) -> None:
    content, reason = bad_files(good_export, keyspace.tenant(charlie.tenant_uuid))[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    before = everything()
    with pytest.raises(CommandError) as caught:
        run("tenants", "import", str(path))
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert everything() == before  # the whole file is checked before anything is written
    # Whatever was written, the tenant never appears half-imported.
    problem(api.login(alice.email, alice.password), 401, "invalid_credentials")
    assert api.me(charlie.access).status_code == 200


def test_import_of_a_missing_file_and_export_of_an_unknown_tenant(
    alice: Persona, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run("tenants", "import", str(tmp_path / "nope.jsonl"))
    with pytest.raises(CommandError, match="unknown tenant"):
        run("tenants", "export", "nope")
    with pytest.raises(CommandError, match="cannot write"):
        run("tenants", "export", alice.tenant_id, "-o", str(tmp_path))


def test_import_from_standard_input(
    good_export: list[str], api: Api, alice: Persona, monkeypatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(good_export) + "\n"))
    assert run("tenants", "import", "-", "--json").json()["tenant_id"] == alice.tenant_id
    assert api.login(alice.email, alice.password).status_code == 200


def test_replace_checks_the_whole_file_before_deleting(
    good_export: list[str], api: Api, alice: Persona, tmp_path: Path
) -> None:
    path = tmp_path / "acme.jsonl"
    path.write_text("\n".join(good_export) + "\n")
    run("tenants", "import", str(path))
    path.write_text("\n".join(good_export[:-2]) + "\n")  # truncated
    with pytest.raises(CommandError, match="truncated"):
        run("tenants", "import", str(path), "--replace")
    assert api.login(alice.email, alice.password).status_code == 200  # never deleted


def test_replace_from_standard_input(
    good_export: list[str], api: Api, alice: Persona, tmp_path: Path, monkeypatch
) -> None:
    content = "\n".join(good_export) + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(content))
    run("tenants", "import", "-")
    truncated = "\n".join(good_export[:-2]) + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(truncated))
    with pytest.raises(CommandError, match="truncated"):
        run("tenants", "import", "-", "--replace")
    assert api.login(alice.email, alice.password).status_code == 200  # never deleted
    monkeypatch.setattr("sys.stdin", io.StringIO(content))
    assert run("tenants", "import", "-", "--replace", "--json").json()["replaced"] is True


# --- an import checks what it imports (issue 15, finding 10) ---------------------------


def _value(line: str) -> bytes:
    return base64.b64decode(json.loads(line)["value"])


def _with_value(line: str, value: bytes) -> str:
    obj = json.loads(line)
    obj["value"] = base64.b64encode(value).decode()
    return json.dumps(obj)


def _record(value: bytes) -> dict:
    assert value[:1] == b"\x01"  # the storage layer's JSON record format
    return json.loads(value[1:])


def _encoded(fields: dict) -> bytes:
    return b"\x01" + json.dumps(fields, separators=(",", ":")).encode()


def _user_lines(lines: list[str], tenant_id: str) -> list[int]:
    """Indexes of the lines that hold the tenant's user records."""
    users = keyspace.tenant(uuid.UUID(tenant_id)).collection("users").range()
    return [i for i, line in enumerate(lines[:-1]) if i and users.contains(_key(line))]


def _with_counts(lines: list[str]) -> list[str]:
    """The file with its end line's counts made right again (a forger can do as much)."""
    *rest, _ = lines
    body = [json.loads(line) for line in rest[1:]]
    size = sum(len(base64.b64decode(o["key"])) + len(base64.b64decode(o["value"])) for o in body)
    return [*rest, json.dumps({"end": True, "keys": len(body), "bytes": size})]


def forged_files(
    lines: list[str], alice: Persona, charlie: Persona
) -> dict[str, tuple[list[str], str]]:
    first, second = _user_lines(lines, alice.tenant_id)[:2]
    user = _record(_value(lines[first]))
    tenant = keyspace.tenant(alice.tenant_uuid)
    emails = keyspace.GLOBAL.index("user_by_email")
    email_line = next(i for i, line in enumerate(lines[:-1]) if i and emails.contains(_key(line)))
    cases = {
        "record that does not decode": (
            _with_value(lines[first], b"\x01{not json"),
            "users record that does not decode",
        ),
        "record without its fields": (
            _with_value(lines[first], _encoded({"id": user["id"]})),
            "users record that does not decode (record lacks required fields)",
        ),
        "record under another record's key": (
            _with_value(lines[first], _value(lines[second])),
            "users record stored under another record's key",
        ),
        "record of another tenant": (
            _with_value(lines[first], _encoded(user | {"tenant_id": charlie.tenant_id})),
            "users record of another tenant",
        ),
        "email entry the records do not make": (
            _with_key(lines[email_line], emails.pack(("mallory@example.com",))),
            "an index entry that no record of the file makes",
        ),
        "key of no known space": (
            _with_key(lines[first], tenant.subspace.pack(("mystery", 1))),
            "a key of no known collection or space: 'mystery'",
        ),
    }
    index = {"email entry the records do not make": email_line}
    return {
        name: (
            _with_counts(
                [*lines[: index.get(name, first)], line, *lines[index.get(name, first) + 1 :]]
            ),
            reason,
        )
        for name, (line, reason) in cases.items()
    }


@pytest.mark.parametrize(
    "case",
    [
        "record that does not decode",
        "record without its fields",
        "record under another record's key",
        "record of another tenant",
        "email entry the records do not make",
        "key of no known space",
    ],
)
def test_import_checks_every_record_before_writing_anything(
    good_export: list[str], api: Api, alice: Persona, charlie: Persona, tmp_path: Path, case: str
) -> None:
    lines, reason = forged_files(good_export, alice, charlie)[case]
    path = tmp_path / "forged.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = everything()
    with pytest.raises(CommandError) as caught:
        run("tenants", "import", str(path))
    message = str(caught.value)
    assert message.startswith("malformed export, line "), message
    assert reason in message
    assert "\n" not in message
    assert everything() == before  # not one key written
    problem(api.login(alice.email, alice.password), 401, "invalid_credentials")


def test_the_bad_line_is_refused_before_anything_is_written(
    good_export: list[str], alice: Persona, tmp_path: Path
) -> None:
    """A bad record at the very end: the range before it is not written either."""
    last = _user_lines(good_export, alice.tenant_id)[-1]
    lines = [*good_export]
    lines[last] = _with_value(lines[last], b"\x01[]")
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(_with_counts(lines)) + "\n")
    before = everything()
    with pytest.raises(CommandError, match=f"line {last + 1}: a users record"):
        run("tenants", "import", str(path))
    assert everything() == before


def test_import_never_adds_the_file_s_verification_keys(
    good_export: list[str], api: Api, alice: Persona, tmp_path: Path
) -> None:
    """An export used to carry verification keys, which import added to the keyring that
    verifies every tenant's tokens: a forged file could make any token valid."""
    forger = Ed25519PrivateKey.generate()
    raw = forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    jwk = {"kty": "OKP", "crv": "Ed25519", "kid": "forged", "x": x, "use": "sig", "alg": "EdDSA"}
    header = json.loads(good_export[0]) | {"verification_keys": [jwk]}
    path = tmp_path / "acme.jsonl"
    path.write_text("\n".join([json.dumps(header), *good_export[1:]]) + "\n")
    keyring = run("signing_keys", "list", "--json").json()
    jwks = api.get("/.well-known/jwks.json").json()

    ran = run("tenants", "import", str(path))
    assert "1 verification key of the file ignored" in ran.out
    assert run("signing_keys", "list", "--json").json() == keyring
    assert api.get("/.well-known/jwks.json").json() == jwks
    # A token signed with the file's key is worth nothing here.
    claims = pyjwt.decode(alice.access, options={"verify_signature": False})
    forged = pyjwt.encode(
        claims, forger, algorithm="EdDSA", headers={"kid": "forged", "typ": "at+jwt"}
    )
    problem(api.me(forged), 401, "invalid_token")
    assert api.login(alice.email, alice.password).status_code == 200

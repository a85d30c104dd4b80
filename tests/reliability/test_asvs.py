"""OWASP ASVS 4.0.3 V2 (authentication) and V3 (session management): the requirements that
apply to this API and had no test of their own elsewhere (docs/security.md maps every one).
Each test names its requirement."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core import mail
from django.core.management import call_command

from tests.accounts.helpers import (
    AUTH,
    Api,
    Persona,
    login_pair,
    problem,
    register_persona,
    token_parts,
)
from tests.workspaces.helpers import SESSIONS

ARGON2 = re.compile(rb"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")


def exported(tenant_id: str, tmp_path: Path) -> bytes:
    """Every stored byte of a tenant, as the operators' export writes it."""
    path = tmp_path / f"{tenant_id}.jsonl"
    call_command("tenants", "export", tenant_id, "-o", str(path), "--no-progress")
    stored = b""
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "value" in entry:
            stored += base64.b64decode(entry["key"]) + b"\n" + base64.b64decode(entry["value"])
    return stored


# --- V2.1 password security -----------------------------------------------------------------


def test_v2_1_4_any_printable_unicode_spaces_and_emoji(api: Api) -> None:
    password = "  correct horse 🐎 battery — ñandú 𝄞  "
    persona = register_persona(api, "Uni", "uni@example.com", password)
    assert api.login(persona.email, password).status_code == 200
    # Taken exactly as typed: every character counts, spaces included.
    for near in (password.strip(), password.replace("🐎", "🐴"), password.replace("  ", " ")):
        problem(api.login(persona.email, near), 401, "invalid_credentials")


def test_v2_1_9_no_composition_rules(api: Api) -> None:
    # Lowercase letters and spaces only: no digit, capital or symbol is demanded.
    for index, password in enumerate(["purple monkey dishwasher galaxy", "zebracrossingsunset"]):
        response = api.register(f"plain{index}@example.com", password)
        assert response.status_code == 201, response.content


def test_v2_1_10_passwords_never_expire(api: Api, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    persona = register_persona(api, "Old", "old@example.com")
    time_machine.shift(timedelta(days=800))
    assert api.login(persona.email, persona.password).status_code == 200


# --- V2.4 credential storage ----------------------------------------------------------------


def test_v2_4_1_and_2_4_2_passwords_are_salted_argon2id_never_plain(
    api: Api, alice: Persona, bob: Persona, tmp_path: Path
) -> None:
    assert alice.password == bob.password  # the same password ...
    stored = exported(alice.tenant_id, tmp_path)
    hashes = ARGON2.findall(stored)
    assert len(hashes) == 2, stored[:2000]
    salts = [base64.b64decode(salt + b"=" * (-len(salt) % 4)) for salt, _ in hashes]
    assert all(len(salt) >= 16 for salt in salts)  # 128 bits (ASVS: at least 32)
    assert salts[0] != salts[1]
    assert hashes[0][1] != hashes[1][1]  # ... two different hashes
    assert alice.password.encode() not in stored


# --- V2.5 credential recovery ------------------------------------------------------------------


def test_v2_5_2_no_password_hints(api: Api) -> None:
    for field in ("password_hint", "security_question", "security_answer"):
        response = api.register("hint@example.com", **{field: "my dog"})
        problem(response, 400, "invalid")


def test_v2_5_3_recovery_never_reveals_the_password(api: Api, alice: Persona) -> None:
    mail.outbox.clear()
    assert api.post(AUTH + "password-reset", {"email": alice.email}).status_code == 202
    (message,) = mail.outbox
    assert isinstance(message, mail.EmailMultiAlternatives)
    (html, _), *_ = message.alternatives
    for text in (message.subject, message.body, html):
        assert isinstance(text, str)
        assert alice.password not in text


def test_v2_5_4_no_default_or_shared_accounts(api: Api, django_user_model) -> None:
    out = io.StringIO()
    call_command("tenants", "list", "--json", stdout=out)
    assert json.loads(out.getvalue()) == []  # a fresh store holds no account at all
    assert not django_user_model.objects.exists()  # nor a staff account
    for email, password in [("admin@example.com", "admin"), ("root@localhost", "root")]:
        problem(api.login(email, password), 401, "invalid_credentials")


# --- V3.1 tokens stay out of URLs --------------------------------------------------------------


def test_v3_1_1_tokens_in_the_url_are_never_accepted(api: Api, alice: Persona) -> None:
    for name in ("access_token", "token", "bearer", "jwt", "auth"):
        problem(api.get(f"{AUTH}me?{name}={alice.access}"), 401)
    created = api.post(SESSIONS, {"name": "n", "workspace_path": "/w"}, alice.access)
    assert created.status_code == 201
    for value in (created["Location"], *created.json().values()):
        assert alice.access not in str(value)
        assert alice.refresh not in str(value)


# --- V3.2 session binding ----------------------------------------------------------------------


def test_v3_2_1_every_sign_in_is_a_new_session(api: Api, alice: Persona) -> None:
    first = login_pair(api, alice)
    # Signing in again while holding a live token: nothing of the old session is reused.
    second = api.login(alice.email, alice.password, HTTP_AUTHORIZATION=f"Bearer {first['access']}")
    assert second.status_code == 200
    pairs = [first, second.json()]
    claims = [token_parts(pair["refresh"])[1] for pair in pairs]
    assert claims[0]["session_id"] != claims[1]["session_id"]
    assert claims[0]["token_family"] != claims[1]["token_family"]
    assert pairs[0]["access"] != pairs[1]["access"]
    assert alice.session_id(api, first["access"]) != alice.session_id(api, second.json()["access"])


def test_v3_2_2_and_3_2_4_token_ids_are_random_uuid4(api: Api, alice: Persona) -> None:
    seen: set[str] = set()
    for _ in range(20):
        pair = login_pair(api, alice)
        for token in (pair["access"], pair["refresh"]):
            header, claims = token_parts(token)
            assert header["alg"] == "EdDSA"
            for name in ("jti", "token_family", "session_id"):
                value = uuid.UUID(claims[name])
                assert value.version == 4, (name, value)  # 122 random bits (ASVS: 64)
            assert claims["jti"] not in seen
            seen.add(claims["jti"])

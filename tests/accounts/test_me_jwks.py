"""GET /api/v5/auth/me and the JWKS that lets other services verify access tokens."""

from __future__ import annotations

import jwt
import pytest
from django.conf import settings

from tests.accounts.helpers import (
    AUTH,
    TENANT_FIELDS,
    USER_FIELDS,
    Api,
    Persona,
    token_parts,
)


@pytest.mark.parametrize("path", [AUTH + "me", AUTH + "me/"])
def test_me_is_the_user_with_tenant_and_role(api: Api, alice: Persona, path: str) -> None:
    response = api.get(path, alice.access)
    assert response.status_code == 200, response.content
    me = response.json()
    assert me.keys() >= USER_FIELDS | {"tenant"}
    assert {key: me[key] for key in USER_FIELDS} == {key: alice.user[key] for key in USER_FIELDS}
    assert me["role"] == "owner"
    assert me["tenant"].keys() >= TENANT_FIELDS
    assert {key: me["tenant"][key] for key in TENANT_FIELDS} == {
        key: alice.tenant[key] for key in TENANT_FIELDS
    }
    assert me["tenant"]["status"] == "active"
    assert "password" not in me
    assert not any("hash" in key for key in me)


def test_me_of_a_member(api: Api, bob: Persona, alice: Persona) -> None:
    me = api.me(bob.access).json()
    assert me["id"] == bob.user_id
    assert me["email"] == "bob@example.com"
    assert me["display_name"] == "Bob"
    assert me["role"] == "member"
    assert me["tenant_id"] == alice.tenant_id
    assert me["tenant"]["id"] == alice.tenant_id


def test_me_of_another_tenant(api: Api, charlie: Persona, alice: Persona) -> None:
    me = api.me(charlie.access).json()
    assert me["tenant"]["id"] == charlie.tenant_id != alice.tenant_id
    assert me["tenant"]["name"] == "Globex"


JWKS_PATHS = [AUTH + "jwks", AUTH + "jwks/", "/.well-known/jwks.json"]


@pytest.mark.parametrize("path", JWKS_PATHS)
def test_jwks_lists_ed25519_public_keys(api: Api, alice: Persona, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/")
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "OKP"
        assert key["crv"] == "Ed25519"
        assert key["use"] == "sig"
        assert key["alg"] == "EdDSA"
        assert isinstance(key["kid"], str)
        assert key["kid"]
        assert isinstance(key["x"], str)
        assert key["x"]
        assert "d" not in key  # never the private part
    assert len({key["kid"] for key in keys}) == len(keys)


def test_jwks_paths_agree(api: Api, alice: Persona) -> None:
    bodies = [api.get(path).json() for path in JWKS_PATHS]
    assert all(body == bodies[0] for body in bodies)


@pytest.mark.parametrize("path", JWKS_PATHS[:1] + JWKS_PATHS[2:])
def test_access_token_verifies_with_the_jwks(api: Api, alice: Persona, path: str) -> None:
    keys = {key["kid"]: key for key in api.get(path).json()["keys"]}
    header, _ = token_parts(alice.access)
    assert header["alg"] == "EdDSA"
    assert header["kid"] in keys
    public_key = jwt.PyJWK(keys[header["kid"]]).key
    claims = jwt.decode(
        alice.access,
        public_key,
        algorithms=["EdDSA"],
        audience=settings.CODITECT_JWT_AUDIENCE,
        issuer=settings.CODITECT_JWT_ISSUER,
    )
    assert claims["sub"] == alice.user_id
    assert claims["tenant_id"] == alice.tenant_id
    for claim in ("session_id", "token_family", "jti", "iat", "exp"):
        assert claim in claims


def test_refresh_token_is_signed_by_a_listed_key_too(api: Api, alice: Persona) -> None:
    kids = {key["kid"] for key in api.get(AUTH + "jwks").json()["keys"]}
    header, _ = token_parts(alice.refresh)
    assert header["kid"] in kids
    assert header["alg"] == "EdDSA"


def test_every_token_carries_its_own_jti(api: Api, alice: Persona) -> None:
    pair = api.login(alice.email, alice.password).json()
    jtis = {token_parts(token)[1]["jti"] for token in (alice.access, pair["access"])}
    assert len(jtis) == 2

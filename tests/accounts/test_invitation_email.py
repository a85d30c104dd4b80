"""An invitation is for the person it names: another email cannot redeem it."""

from __future__ import annotations

from tests.accounts.helpers import AUTH, Api, Persona, problem


def test_an_invitation_only_admits_its_own_email(api: Api, alice: Persona) -> None:
    token = api.invite(alice.access, "dora@example.com", "member").json()["token"]
    stranger = {
        "email": "mallory@example.com",
        "password": "a long pass phrase 42",
        "invitation": token,
    }
    problem(api.post(AUTH + "register", stranger), 400, "invalid_invitation")
    # Still unused: the right person (any letter case) joins with it.
    dora = {"email": "Dora@Example.com", "password": "a long pass phrase 42", "invitation": token}
    response = api.post(AUTH + "register", dora)
    assert response.status_code == 201, response.content
    assert response.json()["tenant"]["id"] == alice.tenant["id"]

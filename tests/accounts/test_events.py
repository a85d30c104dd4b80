"""The auth event log of each tenant (accounts.selectors.auth_event_list)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accounts import selectors
from tests.accounts.helpers import (
    AUTH,
    OTHER_PASSWORD,
    TENANT,
    Api,
    Persona,
    login_pair,
)


def events(persona: Persona, limit: int = 200) -> list:
    return list(selectors.auth_event_list(tenant_id=persona.tenant_uuid, limit=limit))


def types(persona: Persona) -> list[str]:
    return [str(event.type) for event in events(persona)]


def test_every_kind_of_event_is_logged(
    api: Api, alice: Persona, bob: Persona, time_machine
) -> None:
    time_machine.move_to(datetime.now(UTC))
    ua = {"REMOTE_ADDR": "10.4.4.4", "HTTP_USER_AGENT": "Events/2.0"}
    assert api.login(alice.email, OTHER_PASSWORD, **ua).status_code == 401
    pair = login_pair(api, alice, **ua)
    second = api.refresh(pair["refresh"], **ua).json()
    assert api.refresh(second["refresh"], **ua).status_code == 200
    assert api.refresh(pair["refresh"], **ua).status_code == 401  # token_reused
    laptop = login_pair(api, alice)
    assert api.post(AUTH + "logout", None, laptop["access"]).status_code == 204
    body = {"current_password": alice.password, "new_password": OTHER_PASSWORD}
    assert api.post(AUTH + "password", body, alice.access).status_code == 204
    assert api.delete(TENANT + "members/" + bob.user_id, alice.access).status_code == 204

    logged = types(alice)
    for kind in (
        "login",
        "login_failed",
        "refresh",
        "token_reused",
        "logout",
        "password_changed",
        "member_removed",
        "invitation_created",
    ):
        assert kind in logged, (kind, logged)


def test_events_are_newest_first_with_address_and_agent(
    api: Api, alice: Persona, time_machine
) -> None:
    time_machine.move_to(datetime.now(UTC))
    time_machine.shift(timedelta(seconds=10))
    assert api.login(alice.email, OTHER_PASSWORD, REMOTE_ADDR="10.5.5.5").status_code == 401
    time_machine.shift(timedelta(seconds=10))
    login_pair(api, alice, REMOTE_ADDR="10.6.6.6", HTTP_USER_AGENT="Newest/1.0")
    logged = events(alice)
    stamps = [event.at for event in logged]
    assert stamps == sorted(stamps, reverse=True)
    newest = logged[0]
    assert newest.type == "login"
    assert str(newest.user_id) == alice.user_id
    assert newest.ip == "10.6.6.6"
    assert newest.user_agent == "Newest/1.0"
    failed = next(event for event in logged if event.type == "login_failed")
    assert failed.ip == "10.5.5.5"
    assert str(failed.user_id) == alice.user_id


def test_limit_is_honoured(api: Api, alice: Persona) -> None:
    for _ in range(4):
        login_pair(api, alice)
    assert len(events(alice, limit=2)) == 2
    assert len(events(alice, limit=200)) >= 5


def test_events_stay_in_their_tenant(api: Api, alice: Persona, charlie: Persona) -> None:
    login_pair(api, charlie)
    login_pair(api, alice, REMOTE_ADDR="10.7.7.7")
    assert api.login(alice.email, OTHER_PASSWORD).status_code == 401
    for event in events(charlie):
        assert str(event.user_id) != alice.user_id
        assert event.ip != "10.7.7.7"
    assert any(str(event.user_id) == charlie.user_id for event in events(charlie))


def test_invitation_created_is_logged_for_the_inviter(api: Api, alice: Persona) -> None:
    assert api.invite(alice.access, "new@example.com").status_code == 201
    created = [event for event in events(alice) if event.type == "invitation_created"]
    assert created
    assert str(created[0].user_id) == alice.user_id

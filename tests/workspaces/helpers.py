"""Helpers of the workspace session tests: a client with PATCH and If-Match, and shape checks."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync

from tests.accounts.helpers import Api, Persona, rfc3339

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
else:
    from django.http import HttpResponse as Response

SESSIONS = "/api/v5/sessions"
SESSION_FIELDS = {
    "id",
    "tenant_id",
    "owner_id",
    "name",
    "workspace_path",
    "active_files",
    "editor_state",
    "terminal_state",
    "parent_session_id",
    "related_session_ids",
    "created_at",
    "last_active_at",
    "version",
    "seq",
}
EVENT_FIELDS = {"seq", "event", "data", "origin", "created_at"}


def session_url(session_id: str, tail: str = "") -> str:
    return f"{SESSIONS}/{session_id}" + (f"/{tail}" if tail else "")


def with_query(path: str, **params: Any) -> str:
    query = {key: value for key, value in params.items() if value is not None}
    return path + ("?" + urlencode(query) if query else "")


def etag(version: int) -> str:
    return f'"{version}"'


class SessionApi(Api):
    """The accounts JSON client, plus PATCH and the If-Match header."""

    @staticmethod
    def _if_match(extra: dict[str, Any], if_match: str | int | None) -> dict[str, Any]:
        if if_match is not None:
            extra["HTTP_IF_MATCH"] = etag(if_match) if isinstance(if_match, int) else if_match
        return extra

    def patch(
        self,
        path: str,
        body: Any,
        token: str | None = None,
        if_match: str | int | None = None,
        **extra: Any,
    ) -> Response:
        return self.patch_raw(path, json.dumps(body).encode(), token, if_match, **extra)

    def patch_raw(
        self,
        path: str,
        data: bytes,
        token: str | None = None,
        if_match: str | int | None = None,
        **extra: Any,
    ) -> Response:
        headers = self._headers(token, self._if_match(extra, if_match))
        return self.client.patch(path, data, content_type="application/json", **headers)

    def delete_if(
        self, path: str, token: str | None = None, if_match: str | int | None = None
    ) -> Response:
        return self.delete(path, token, **self._if_match({}, if_match))

    # --- flows -------------------------------------------------------------------------

    def create(self, token: str, **fields: Any) -> Response:
        return self.post(SESSIONS, fields, token)

    def read(self, token: str, session_id: str) -> Response:
        return self.get(session_url(session_id), token)

    def listing(self, token: str, **params: Any) -> Response:
        return self.get(with_query(SESSIONS, **params), token)

    def publish(self, token: str, session_id: str, event: str, data: Any = None) -> Response:
        return self.post(session_url(session_id, "events"), {"event": event, "data": data}, token)

    def events(self, token: str, session_id: str, after_seq: Any = None) -> Response:
        return self.get(with_query(session_url(session_id, "events"), after_seq=after_seq), token)


def assert_session(body: dict[str, Any]) -> dict[str, Any]:
    """Assert the shape of a workspace session; return it."""
    assert set(body) >= SESSION_FIELDS, sorted(SESSION_FIELDS - set(body))
    uuid.UUID(body["id"])
    uuid.UUID(body["tenant_id"])
    uuid.UUID(body["owner_id"])
    assert isinstance(body["name"], str)
    assert isinstance(body["workspace_path"], str)
    assert isinstance(body["active_files"], list)
    assert all(isinstance(name, str) for name in body["active_files"])
    assert isinstance(body["editor_state"], dict)
    assert isinstance(body["terminal_state"], dict)
    assert body["parent_session_id"] is None or uuid.UUID(body["parent_session_id"])
    assert isinstance(body["related_session_ids"], list)
    for related in body["related_session_ids"]:
        uuid.UUID(related)
    for stamp in ("created_at", "last_active_at"):
        assert body[stamp].endswith("Z"), body[stamp]
        rfc3339(body[stamp])
    assert type(body["version"]) is int
    assert body["version"] >= 1
    assert type(body["seq"]) is int
    assert body["seq"] >= 0
    return body


def assert_event(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) >= EVENT_FIELDS, body
    assert type(body["seq"]) is int
    assert isinstance(body["event"], str)
    assert body["created_at"].endswith("Z"), body["created_at"]
    rfc3339(body["created_at"])
    return body


def create_session(api: SessionApi, persona: Persona, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "workspace")
    fields.setdefault("workspace_path", "/srv/project")
    response = api.create(persona.access, **fields)
    assert response.status_code == 201, response.content
    return assert_session(response.json())


def read_session(api: SessionApi, persona: Persona, session_id: str) -> dict[str, Any]:
    response = api.read(persona.access, session_id)
    assert response.status_code == 200, response.content
    return assert_session(response.json())


def list_ids(api: SessionApi, persona: Persona, **params: Any) -> list[str]:
    """Every session id of a listing, following the cursors."""
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        response = api.listing(persona.access, cursor=cursor, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        ids.extend(str(assert_session(item)["id"]) for item in body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the listing never ends")


def all_events(
    api: SessionApi, persona: Persona, session_id: str, after_seq: int = 0
) -> list[dict[str, Any]]:
    """Every event after ``after_seq``, asking again after the last one until none is left."""
    events: list[dict[str, Any]] = []
    for _ in range(1000):
        response = api.events(persona.access, session_id, after_seq)
        assert response.status_code == 200, response.content
        page = [assert_event(event) for event in response.json()["results"]]
        if not page:
            return events
        events.extend(page)
        after_seq = page[-1]["seq"]
    raise AssertionError("the event log never ends")


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [int(event["seq"]) for event in events]


def receive_all(layer: Any, channel: str, quiet_s: float = 0.3) -> list[dict[str, Any]]:
    """Every message waiting on a channel of the channel layer, until none comes for quiet_s."""

    async def drain() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), quiet_s))
            except TimeoutError:
                return messages

    result: list[dict[str, Any]] = async_to_sync(drain)()
    return result


def names_field(body: dict[str, Any], name: str) -> bool:
    """Whether a problem's errors name the field ``name`` (or an item of it: ``name.0``)."""
    attrs = {str(error.get("attr")) for error in body.get("errors") or []}
    return any(attr == name or attr.startswith(name + ".") for attr in attrs)

"""Schema fuzzing (issue 8): schemathesis over every operation of our own OpenAPI schema.

The schema is loaded from ``/api/v5/schema/`` through the WSGI application, in this process,
and every operation becomes one test (``test_operation[POST /api/v5/sessions]``) with a fresh
memory store and a signed-in tenant owner (Alice, with a bearer token). Each example is sent
through WSGI and must pass:

* ``not_a_server_error``: no 5xx, whatever the input;
* ``response_schema_conformance`` and ``content_type_conformance``: a documented status
  answers the documented shape and media type;
* ``negative_data_rejection``: input the schema forbids is a 4xx;
* ``ignored_auth``: an operation that declares bearer auth refuses the request without it;
* ``problem_details`` (ours): every 4xx is ``application/problem+json`` with the problem
  fields of CONTRACT §1.

Random ids would only ever reach the 404 paths, so path parameters are sometimes replaced by
real ids (Alice's workspace session, her other device, Bob's user id) and by tenant B's ids
(which must be a 404 too), and positive examples sometimes carry Alice's real email, password
or refresh token, so the success paths and their response shapes are fuzzed as well. What an
example changes (a logout, a deleted session, a changed password) is followed, so the next
example still has a live token and live ids.

Bounded: ``CODITECT_FUZZ_EXAMPLES`` examples per operation (default 15) plus schemathesis's
own coverage cases, derandomized so the test command sees the same examples every run.
``bench/fuzz_schema.py`` runs the same test with more, random examples and prints counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client, override_settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
)

from coditect.wsgi import application
from tests.accounts.helpers import (
    PROBLEM_FIELDS,
    Persona,
    invite_and_register,
    login_pair,
    problem,
    token_parts,
)
from tests.reliability.routes import api_operations
from tests.workspaces.helpers import SESSIONS, SessionApi, create_session, session_url

pytestmark = pytest.mark.slow

SCHEMA_PATH = "/api/v5/schema/?format=json"
EXAMPLES = int(os.environ.get("CODITECT_FUZZ_EXAMPLES", "15"))
# The benchmark wants new examples each run; the test command the same ones every time.
RANDOM = os.environ.get("CODITECT_FUZZ_RANDOM") == "1"
STATS_FILE = os.environ.get("CODITECT_FUZZ_STATS", "")


def load_schema() -> Any:
    """Our OpenAPI schema, fetched from the WSGI application (no network, no server)."""
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                # Unknown query parameters are ignored by design (as most APIs do); unknown
                # body fields are refused, and negative bodies still test that.
                "allow-extra-parameters": False,
                # The bearer token is the fixture's, set on every call.
                "with-security-parameters": False,
            }
        }
    )
    # The WSGI client asks for host "localhost"; pytest-django has DEBUG off.
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        return schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=config)


@contextlib.contextmanager
def _connections_left_alone() -> Iterator[None]:
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


class _Closing:
    """A WSGI response whose close() (which sends request_finished) is unhooked too."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        with _connections_left_alone():
            close = getattr(self.result, "close", None)
            if close is not None:
                close()


def unhooked(app: Any) -> Any:
    """The WSGI application as Django's test client runs it: without the request signals'
    handling of database connections, which would open the staff database (pytest-django
    forbids that here) or close it under another test's transaction."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        with _connections_left_alone():
            return _Closing(app(environ, start_response))

    return wsgi


schema = load_schema()
schema.app = unhooked(application)


class Active:
    """The world of the running test: the auth provider below reads its token."""

    world: World | None = None


@schema.auth(refresh_interval=None)
class WorldBearer:
    """Alice's current access token on every example (it changes when an example ends it)."""

    def get(self, case: Any, context: Any) -> str | None:
        return Active.world.access if Active.world is not None else None

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def problem_details(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """Every error is an RFC 9457 problem: its media type and CONTRACT §1's fields."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered as {content_type!r}, not application/problem+json"
    )
    body = json.loads(response.content)
    assert isinstance(body, dict), body
    missing = PROBLEM_FIELDS - set(body)
    assert not missing, f"problem without {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, body
    assert isinstance(body["code"], str), body
    assert body["code"], body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    assert isinstance(body.get("errors", []), list), body
    return True


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
    ignored_auth,
]


# --- the world an example runs in ------------------------------------------------------------


@dataclass
class World:
    """Alice (owner of tenant A) signed in, her data, and tenant B's ids to try."""

    api: SessionApi
    alice: Persona
    charlie: Persona
    password: str
    access: str
    refresh: str
    workspace_session: str
    other_device: str
    member_id: str
    foreign_session: str
    foreign_device: str

    # --- what an example may use ----------------------------------------------------------

    def path_ids(self, path: str, name: str) -> list[str]:
        """Real ids for a path parameter: tenant A's, then tenant B's (must be a 404)."""
        if path.startswith("/api/v5/sessions/") and name == "session_id":
            return [self.workspace_session, self.foreign_session]
        if path.startswith("/api/v5/auth/sessions/") and name == "session_id":
            return [self.other_device, self.foreign_device]
        if name == "user_id":
            return [self.member_id, self.charlie.user_id]
        return []

    def credentials(self, path: str) -> dict[str, str]:
        """Body fields that a real client of this path would know."""
        return {
            "/api/v5/auth/login": {"email": self.alice.email, "password": self.password},
            "/api/v5/auth/refresh": {"refresh": self.refresh},
            "/api/v5/auth/password": {"current_password": self.password},
            "/api/v5/auth/mfa/totp": {"password": self.password},
            "/api/v5/auth/mfa/totp/disable": {"password": self.password},
            "/api/v5/auth/password-reset": {"email": self.alice.email},
        }.get(path, {})

    # --- following what an example changed ----------------------------------------------

    def sign_in(self) -> None:
        pair = login_pair(self.api, self.alice_with_password())
        self.access, self.refresh = pair["access"], pair["refresh"]

    def alice_with_password(self) -> Persona:
        self.alice.password = self.password
        return self.alice

    def new_device(self) -> str:
        """Another sign-in of Alice's: its auth session id (from its token's claims, as a
        long run gives her more devices than one page of the list shows)."""
        pair = login_pair(self.api, self.alice_with_password())
        return str(token_parts(pair["access"])[1]["session_id"])

    def follow(self, method: str, path: str, case: Any, status: int, body: Any) -> None:
        if status == 401 and self.api.me(self.access).status_code == 401:
            self.sign_in()  # the example ended this sign-in (logout, a revoked device, ...)
        if status >= 300 or method == "OPTIONS":
            return
        if (method, path) == ("POST", "/api/v5/auth/refresh") and isinstance(body, dict):
            if case.body == {"refresh": self.refresh}:
                self.access, self.refresh = body["access"], body["refresh"]
        elif (method, path) == ("POST", "/api/v5/auth/password"):
            self.password = case.body["new_password"]
            self.other_device = self.new_device()  # a password change ends the others
        elif (method, path) == ("DELETE", "/api/v5/auth/sessions/{session_id}"):
            self.other_device = self.new_device()
        elif (method, path) == ("DELETE", "/api/v5/sessions/{session_id}"):
            self.workspace_session = create_session(self.api, self.alice)["id"]
        elif (method, path) == ("DELETE", "/api/v5/tenant/members/{user_id}/"):
            self.member_id = invite_and_register(
                self.api, self.alice, "Member", f"m-{uuid.uuid4().hex[:8]}@example.com"
            ).user_id
        if self.api.me(self.access).status_code == 401:
            self.sign_in()


@pytest.fixture
def world(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, db: None
) -> Iterator[World]:
    # db: the audit log reads the staff entries (ORM).
    alice_session = create_session(sessions, alice, name="fuzzed", workspace_path="/srv/fuzz")
    charlies = create_session(sessions, charlie, name="tenant B", workspace_path="/srv/fuzz")
    pair = login_pair(sessions, alice)
    Active.world = World(
        api=sessions,
        alice=alice,
        charlie=charlie,
        password=alice.password,
        access=pair["access"],
        refresh=pair["refresh"],
        workspace_session=alice_session["id"],
        other_device=alice.session_id(sessions),
        member_id=bob.user_id,
        foreign_session=charlies["id"],
        foreign_device=charlie.session_id(sessions),
    )
    yield Active.world
    Active.world = None


# --- statistics, for the benchmark --------------------------------------------------------------

STATS: Counter[tuple[str, str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def statistics() -> Iterator[None]:
    yield
    if STATS_FILE:
        rows = [
            {"operation": operation, "mode": mode, "status": status, "count": count}
            for (operation, mode, status), count in sorted(STATS.items())
        ]
        Path(STATS_FILE).write_text(json.dumps(rows))


# --- the test -----------------------------------------------------------------------------------


def _positive(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return True
    if location == ParameterLocation.BODY and meta.generation.mode != GenerationMode.POSITIVE:
        return False
    return not meta.is_negative_at(location)


def _chooser(case: Any) -> random.Random:
    """Choices that follow from the example itself, so a failing example replays the same."""
    seen = (case.operation.label, case.path_parameters, case.query, case.body)
    return random.Random(zlib.crc32(repr(seen).encode()))


def steer(case: Any, world: World) -> None:
    """Point some examples at real data, where that keeps them as valid as they were."""
    choose = _chooser(case)
    path = case.operation.path
    if case.path_parameters and _positive(case, ParameterLocation.PATH):
        for name in list(case.path_parameters):
            choice = choose.choice([None, *world.path_ids(path, name)])
            if choice is not None:
                case.path_parameters[name] = choice
    if _positive(case, ParameterLocation.QUERY) and isinstance(case.query, dict):
        _absolute_path(case.query)
    if not (_positive(case, ParameterLocation.BODY) and isinstance(case.body, dict)):
        return
    body = case.body
    known = world.credentials(path)
    if known and choose.random() < 0.5:
        body.update(known)
    # The schema says "string" where the API wants an absolute path.
    _absolute_path(body)
    if body.get("parent_session_id") is not None:
        body["parent_session_id"] = choose.choice(
            [body["parent_session_id"], world.workspace_session, world.foreign_session]
        )


def _absolute_path(container: dict[str, Any]) -> None:
    value = container.get("workspace_path")
    if isinstance(value, str) and not value.startswith("/"):
        container["workspace_path"] = "/" + value


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_operation(case: Any, world: World) -> None:
    steer(case, world)
    # The current token (an example before this one may have ended the last); schemathesis's
    # coverage cases are built before the fixtures exist, so they get theirs here too.
    case.operation.schema.auth.set(
        case, schemathesis.AuthContext(operation=case.operation, app=application)
    )
    response = case.call()
    # The coverage phase also sends other methods (OPTIONS, unsupported ones) to each path.
    method, path = case.method.upper(), case.operation.path
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    STATS[(f"{case.operation.label} ({method})", mode, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS, additional_checks=[problem_details])
    try:
        body = response.json()
    except ValueError:
        body = None
    world.follow(method, path, case, response.status_code, body)


def test_the_schema_lists_every_rest_route() -> None:
    """So the parametrised test above fuzzes every operation the URL resolver serves."""
    listed = {
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = api_operations() - {("GET", "/api/v5/schema/")}  # the schema itself
    assert listed == served, {"not in the schema": served - listed, "not served": listed - served}


# --- inputs schemathesis does not generate ----------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB: far below the body limit


@pytest.mark.parametrize("path", ["/api/v5/auth/login", "/api/v5/sessions"])
def test_deeply_nested_json_is_a_400_not_a_500(alice: Persona, path: str) -> None:
    client = Client(raise_request_exception=False)
    response = client.post(
        path, DEEP, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice.access}"
    )
    problem(response, 400, "malformed_json")


def test_deeply_nested_json_on_the_pages_sign_in_is_a_400_not_a_500() -> None:
    client = Client(raise_request_exception=False)
    response = client.post("/web/auth/login", DEEP, content_type="application/json")
    assert response.status_code == 400, response.status_code


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_over_rest(
    sessions: SessionApi, alice: Persona, number: str
) -> None:
    session = create_session(sessions, alice)
    body = b'{"event": "n", "data": {"v": %s}}' % number.encode()
    response = sessions.post_raw(session_url(session["id"], "events"), body, alice.access)
    assert response.status_code == 400, response.content
    body = b'{"name": "n", "workspace_path": "/w", "editor_state": {"v": %s}}' % number.encode()
    assert sessions.post_raw(SESSIONS, body, alice.access).status_code == 400

"""POST password-reset does the same work on the request for known and unknown emails
(issue 15, finding 9): the throttles, then a job handed to the background thread, which
finds the account, stores the token and sends the mail. Proved by what runs where, not by
timing (bench/reset_timing.py measures)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.mail.backends.base import BaseEmailBackend

import fdb_backend
from accounts.services import password_reset
from accounts.services.common import background_drain
from tests.accounts.helpers import AUTH, Api, Persona

SENT: list[tuple[int, Any]] = []
_sent = threading.Condition()


class Recorder(BaseEmailBackend):
    """A mail backend that keeps each message with the thread that sent it."""

    def send_messages(self, email_messages: Any) -> int:
        with _sent:
            for message in email_messages:
                SENT.append((threading.get_ident(), message))
            _sent.notify_all()
        return len(email_messages)


def wait_sent(count: int) -> None:
    """Until ``count`` messages went out (the mail thread is a hop after the job)."""
    with _sent:
        assert _sent.wait_for(lambda: len(SENT) >= count, timeout=10), SENT


class Where:
    """Which thread opened each storage transaction and looked an email up."""

    def __init__(self) -> None:
        self.transactions: list[int] = []
        self.lookups: list[int] = []

    def on_request(self) -> tuple[int, int]:
        me = threading.get_ident()
        return self.transactions.count(me), self.lookups.count(me)

    def clear(self) -> None:
        self.transactions.clear()
        self.lookups.clear()


@pytest.fixture
def where(settings, monkeypatch) -> Iterator[Where]:
    # Any backend but locmem: account mail and background jobs then leave the request.
    settings.EMAIL_BACKEND = f"{__name__}.Recorder"
    SENT.clear()
    seen = Where()
    db = fdb_backend.get_database()
    create = db.create_transaction

    def recorded_create() -> Any:
        seen.transactions.append(threading.get_ident())
        return create()

    monkeypatch.setattr(db, "create_transaction", recorded_create)
    find = password_reset.find_by_email

    def recorded_find(*args: Any, **kwargs: Any) -> Any:
        seen.lookups.append(threading.get_ident())
        return find(*args, **kwargs)

    monkeypatch.setattr(password_reset, "find_by_email", recorded_find)
    yield seen
    assert background_drain(timeout=10)


def reset(api: Api, email: str, where: Where) -> tuple[int, int]:
    """Ask for a reset; what the request thread did, once the background is done."""
    where.clear()
    response = api.post(AUTH + "password-reset", {"email": email})
    assert response.status_code == 202, response.content
    assert response.content == b""
    on_request = where.on_request()
    assert background_drain(timeout=10)
    return on_request


def test_known_and_unknown_emails_do_the_same_work_on_the_request(
    api: Api, alice: Persona, where: Where
) -> None:
    known = reset(api, alice.email, where)
    assert len(where.lookups) == 1  # looked up, but not on the request thread
    assert len(where.transactions) > known[0]  # stored, off the request as well
    unknown = reset(api, "nobody@example.com", where)
    assert len(where.lookups) == 1
    assert known == unknown
    assert known[1] == 0  # no lookup on the request, for either


def test_the_reset_mail_is_found_stored_and_sent_off_the_request(
    api: Api, alice: Persona, where: Where
) -> None:
    request_thread = threading.get_ident()
    reset(api, alice.email, where)
    wait_sent(1)
    ((sender, message),) = SENT
    assert sender != request_thread
    assert message.to == [alice.email]
    assert all(thread != request_thread for thread in where.lookups)
    # The token it carries works: the job stored it.
    token = message.body.split("#token=")[1].split()[0]
    body = {"token": token, "new_password": "a fresh pass phrase 77"}
    assert api.post(AUTH + "password-reset/confirm", body).status_code == 204
    reset(api, "nobody@example.com", where)
    reset(api, alice.email, where)
    wait_sent(2)  # the mail thread keeps order: nothing went out for the unknown email
    assert [message.to for _, message in SENT] == [[alice.email], [alice.email]]

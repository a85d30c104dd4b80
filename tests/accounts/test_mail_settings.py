"""Mail settings from the environment, and delivery through real backends: a file backend
(in the background, off the request) and an SMTP server that cannot be reached."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.accounts.helpers import AUTH, Api, Persona

BASE_DIR = Path(__file__).resolve().parents[2]
OURS = ("DJANGO_", "CODITECT_", "EMAIL_", "DEFAULT_FROM_EMAIL", "DATABASE_URL", "REDIS_URL")
SHOWN = (
    "settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS, "
    "settings.EMAIL_USE_SSL, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD, "
    "settings.DEFAULT_FROM_EMAIL, settings.EMAIL_TIMEOUT, settings.CODITECT_PUBLIC_URL"
)


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, "CODITECT_STORAGE_URL": "memory:", **environ},
        capture_output=True,
        text=True,
        timeout=120,
    )


def shown(**environ: str) -> tuple:
    code = f"from django.conf import settings; print(repr(({SHOWN})))"
    result = manage("shell", "--no-imports", "-c", code, **environ)
    assert result.returncode == 0, result.stderr
    value: tuple = ast.literal_eval(result.stdout.strip())
    return value


def test_console_backend_by_default() -> None:
    assert shown() == (
        "django.core.mail.backends.console.EmailBackend",
        "",
        587,
        True,
        False,
        "",
        "",
        "Coditect <noreply@localhost>",
        10,
        "http://127.0.0.1:8000",
    )


def test_smtp_as_soon_as_a_host_is_set() -> None:
    assert shown(
        EMAIL_HOST="smtp.example.com",
        EMAIL_HOST_USER="mailer",
        EMAIL_HOST_PASSWORD="s3cret",
        DEFAULT_FROM_EMAIL="IDE <ide@example.com>",
        CODITECT_PUBLIC_URL="https://ide.example.com/",
    ) == (
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.com",
        587,
        True,
        False,
        "mailer",
        "s3cret",
        "IDE <ide@example.com>",
        10,
        "https://ide.example.com",
    )


def test_implicit_tls_changes_the_default_port() -> None:
    values = shown(EMAIL_HOST="smtp.example.com", EMAIL_USE_SSL="1", EMAIL_TIMEOUT="3")
    assert values[2:5] == (465, False, True)
    assert values[8] == 3
    assert shown(EMAIL_HOST="mail", EMAIL_PORT="2525", EMAIL_USE_TLS="off")[2:5] == (
        2525,
        False,
        False,
    )


def test_any_backend_by_its_path() -> None:
    values = shown(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend")
    assert values[0] == "django.core.mail.backends.filebased.EmailBackend"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"},
            "EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL",
        ),
        ({"EMAIL_USE_TLS": "maybe"}, "EMAIL_USE_TLS must be one of"),
        ({"EMAIL_PORT": "smtp"}, "EMAIL_PORT must be an integer"),
        ({"CODITECT_PUBLIC_URL": "ide.example.com"}, "CODITECT_PUBLIC_URL must start with"),
    ],
)
def test_bad_values_stop_the_process(environ: dict[str, str], message: str) -> None:
    result = manage("check", **environ)
    assert result.returncode != 0
    assert message in result.stderr


def wait_for(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_file_backend_receives_text_and_html_in_the_background(
    api: Api, alice: Persona, settings, tmp_path: Path
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    settings.CODITECT_PUBLIC_URL = "https://ide.example.com"
    response = api.post(AUTH + "password-reset", {"email": alice.email})
    assert response.status_code == 202
    wait_for(lambda: any(tmp_path.iterdir()))
    (path,) = tmp_path.iterdir()
    wait_for(lambda: "text/html" in path.read_text())
    written = path.read_text()
    assert "Subject: Reset your Coditect password for Acme" in written
    assert "To: alice@example.com" in written
    assert "text/plain" in written
    assert "https://ide.example.com/reset-password#token=" in written


def test_a_mail_server_that_fails_does_not_fail_the_request(
    api: Api, alice: Persona, settings, caplog
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 9  # discard: nothing listens, the connection is refused
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 2
    caplog.set_level(logging.ERROR, logger="accounts.mail")
    assert api.post(AUTH + "password-reset", {"email": alice.email}).status_code == 202
    wait_for(lambda: any(r.message == "account mail not sent" for r in caplog.records))
    (record,) = [r for r in caplog.records if r.message == "account mail not sent"]
    assert getattr(record, "template", None) == "password_reset"
    assert "alice@example.com" not in record.getMessage()

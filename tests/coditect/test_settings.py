"""Settings come from the environment; production mode refuses to start half-configured.

Settings are read once per process, so these tests start `manage.py` in a subprocess with the
environment under test.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from coditect import env

BASE_DIR = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("DJANGO_", "CODITECT_", "DATABASE_URL", "REDIS_URL")


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def production(tmp_path):
    return {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "coditect.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'staff.sqlite3'}",
        "CODITECT_STORAGE_URL": "memory:",
    }


def test_check_deploy_is_clean_in_production(production):
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "no issues" in output


def test_check_deploy_is_clean_behind_a_proxy(production):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_TRUST_X_FORWARDED_PROTO="1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://coditect.example.com",
        CODITECT_TRUSTED_PROXIES="10.0.0.2, 10.0.1.0/24",
        **production,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_trusting_x_forwarded_proto_without_a_trusted_proxy_is_a_warning(production):
    # The header is removed from untrusted peers' requests: nothing would ever be HTTPS.
    result = manage("check", DJANGO_TRUST_X_FORWARDED_PROTO="1", **production)
    assert "coditect.W002" in result.stdout + result.stderr


def test_trusted_proxies_are_networks(production):
    values = shown(
        "settings.CODITECT_TRUSTED_PROXIES",
        **production,
        CODITECT_TRUSTED_PROXIES=" 10.0.0.2, 10.1.2.3/16 ,::1,",
    )
    assert values == repr(["10.0.0.2/32", "10.1.0.0/16", "::1/128"])
    assert shown("settings.CODITECT_TRUSTED_PROXIES", **production) == "[]"
    result = manage("check", **production, CODITECT_TRUSTED_PROXIES="10.0.0.1,proxy.internal")
    assert result.returncode != 0
    assert "CODITECT_TRUSTED_PROXIES must list IP addresses" in result.stderr
    assert "'proxy.internal'" in result.stderr


def test_production_without_a_secret_key_refuses_to_start(production):
    del production["DJANGO_SECRET_KEY"]
    result = manage("check", **production)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in result.stderr


def test_a_misspelt_boolean_refuses_to_start(production):
    result = manage("check", **{**production, "DJANGO_DEBUG": "flase"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be one of" in result.stderr


def shown(expression: str, **environ: str) -> str:
    """repr() of ``expression`` over the settings, evaluated in a fresh `manage.py shell`."""
    code = f"from django.conf import settings; print(repr(({expression})))"
    result = manage("shell", "--no-imports", "-c", code, **environ)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_development_defaults():
    values = shown(
        "settings.DEBUG, settings.CHANNEL_LAYERS['default']['BACKEND'], "
        "settings.CODITECT_STORAGE_URL, settings.DATABASES['default']['NAME'], "
        "settings.SECURE_SSL_REDIRECT, settings.CODITECT_THROTTLE_SCALE, "
        "settings.DATA_UPLOAD_MAX_MEMORY_SIZE"
    )
    var = BASE_DIR / "var"
    assert values == repr(
        (
            True,
            "channels.layers.InMemoryChannelLayer",
            f"embedded://{var / 'store.sqlite3'}",
            str(var / "staff.sqlite3"),
            False,
            1.0,
            2 * 1024 * 1024,
        )
    )


def test_scale_out_variables(production):
    values = shown(
        "settings.CHANNEL_LAYERS['default'], settings.CODITECT_STORAGE_URL, "
        "settings.DATABASES['default']['ENGINE'], settings.SECURE_SSL_REDIRECT, "
        "settings.SECURE_PROXY_SSL_HEADER, settings.CODITECT_THROTTLE_SCALE",
        **{
            **production,
            "REDIS_URL": "redis://cache.internal:6379/2",
            "CODITECT_STORAGE_URL": "fdb:///etc/foundationdb/fdb.cluster",
            "DATABASE_URL": "postgres://staff:pw@db.internal:5432/staff",
            "DJANGO_SECURE_SSL_REDIRECT": "off",
            "DJANGO_TRUST_X_FORWARDED_PROTO": "yes",
            "CODITECT_THROTTLE_SCALE": "1000",
        },
    )
    assert values == repr(
        (
            {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [{"address": "redis://cache.internal:6379/2", "socket_timeout": 30}]
                },
            },
            "fdb:///etc/foundationdb/fdb.cluster",
            "django.db.backends.postgresql",
            False,
            ("HTTP_X_FORWARDED_PROTO", "https"),
            1000.0,
        )
    )


class TestEnvReaders:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("1", True), ("TRUE", True), ("on", True), ("0", False), ("No", False), ("", None)],
    )
    def test_booleans(self, monkeypatch, raw, expected):
        monkeypatch.setenv("X_FLAG", raw)
        assert env.env_bool("X_FLAG", default=None) is expected  # type: ignore[arg-type]

    @pytest.mark.parametrize("raw", ["2", "y", "enabled", "tru"])
    def test_booleans_are_strict(self, monkeypatch, raw):
        monkeypatch.setenv("X_FLAG", raw)
        with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
            env.env_bool("X_FLAG", default=False)

    def test_lists_drop_blanks(self, monkeypatch):
        monkeypatch.setenv("X_HOSTS", " a.example, ,b.example,")
        assert env.env_list("X_HOSTS", default=[]) == ["a.example", "b.example"]

    @pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "lots"])
    def test_scale_must_be_a_positive_number(self, monkeypatch, raw):
        monkeypatch.setenv("X_SCALE", raw)
        with pytest.raises(ImproperlyConfigured, match="X_SCALE"):
            env.env_positive_float("X_SCALE", default=1.0)

    @pytest.mark.parametrize("raw", ["0", "1.5", "many"])
    def test_integers_have_a_minimum(self, monkeypatch, raw):
        monkeypatch.setenv("X_BYTES", raw)
        with pytest.raises(ImproperlyConfigured, match="X_BYTES"):
            env.env_int("X_BYTES", default=10, minimum=1)

    def test_dev_secret_key_is_made_once_and_kept_private(self, tmp_path):
        path = tmp_path / "var" / "dev-secret-key"
        key = env.dev_secret_key(path)
        assert len(key) > 50
        assert env.dev_secret_key(path) == key
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["dev-secret-key"]


def test_check_deploy_runs_djangos_security_checks_on_our_middlewares(production):
    # Our stand-ins for SecurityMiddleware and friends must not switch Django's checks of
    # their settings off: without HSTS the deploy check still says so.
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECURE_HSTS_SECONDS="0", **production
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "security.W004" in output


def test_check_deploy_names_a_missing_security_middleware(settings):
    from django.core.checks import run_checks

    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "coditect.middleware.security_middleware"
    ]
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    assert "coditect.W001" in ids
    assert "security.W004" not in ids  # no security middleware: its settings do not matter


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HOST": "", "PORT": ""}, "http://127.0.0.1:8000"),
        ({"HOST": "127.0.0.1", "PORT": "8791"}, "http://127.0.0.1:8791"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://localhost:9000"),
        ({"HOST": "::1", "PORT": "9000"}, "http://[::1]:9000"),
        (
            {"HOST": "0.0.0.0", "PORT": "9000", "CODITECT_PUBLIC_URL": "https://ide.example/"},
            "https://ide.example",
        ),
    ],
)
def test_public_url_follows_host_and_port_when_unset(environ, expected):
    # `PORT=8791 make start` must not send mail whose links point at port 8000.
    assert shown("settings.CODITECT_PUBLIC_URL", **environ) == repr(expected)

"""Settings of the conventional comparison app.

Everything a benchmark may vary comes from the environment (run.py sets it):
``COMPAPP_DB_DIR`` (where ``compapp.sqlite3`` lives) and ``COMPAPP_SECRET_KEY``.
The configuration is what a careful production deployment of a plain DRF + simplejwt API
would use, so the comparison is against the conventional build at its best, not a strawman.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Bench-only app bound to 127.0.0.1; the fallback key exists so that manage.py works by hand.
SECRET_KEY = (
    os.environ.get("COMPAPP_SECRET_KEY") or "compapp-bench-only-key-not-a-secret-0123456789"
)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # auth and contenttypes: the custom user model and simplejwt's models import them.
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "compapp",
]

# A bearer-token JSON API needs no sessions, CSRF, messages or auth middleware; security
# headers are what a production API would still keep. Trailing slashes are handled by the URL
# patterns themselves, so CommonMiddleware's APPEND_SLASH redirects are not wanted either.
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
APPEND_SLASH = False

ROOT_URLCONF = "compapp.urls"
WSGI_APPLICATION = "compapp.wsgi.application"
ASGI_APPLICATION = "compapp.asgi.application"
TEMPLATES: list[dict[str, object]] = []

DB_DIR = Path(os.environ.get("COMPAPP_DB_DIR") or BASE_DIR / "var")
DB_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its directory
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_DIR / "compapp.sqlite3",
        # Persistent connections: SQLite has no server to drop them, and reopening per request
        # would re-run the PRAGMAs below on every request.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # WAL lets readers run beside the one writer (gunicorn workers are separate
            # processes); synchronous=FULL matches the platform's embedded engine, which is
            # durable when a commit returns, so neither side buys speed with durability.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
            # atomic() blocks take the write lock up front, so read-check-write blocks (PATCH
            # with a version check, token rotation) serialise instead of failing with
            # "database is locked" when a stale WAL snapshot tries to upgrade to a writer.
            "transaction_mode": "IMMEDIATE",
            # Seconds a writer waits for the lock before giving up.
            "timeout": 20,
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "compapp.User"
# Django's Argon2 hasher with its default parameters, as the platform uses.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "compapp.problems.exception_handler",
    # No throttling: benchmarks register and log in many users from one address.
    "DEFAULT_THROTTLE_CLASSES": [],
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # A login must not write to the user row: that would serialise logins on SQLite's lock.
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # Tracebacks of 500s go to the server's log instead of being mailed to ADMINS; 4xx lines
    # (WARNING) are left out, as a benchmark's deliberate failures would flood the log.
    "loggers": {"django": {"handlers": ["console"], "level": "ERROR", "propagate": False}},
}

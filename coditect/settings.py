"""Django settings, every one of them read from the environment (docs/configuration.md).

The defaults suit one developer's machine (DEBUG on, SQLite, embedded storage, in-memory
channel layer). With DJANGO_DEBUG=0 the process refuses to start without a secret key, and
turns on the HTTPS-only settings that `manage.py check --deploy` asks for.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from coditect.channel_layers import channel_layers_config
from coditect.env import (
    dev_secret_key,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_positive_float,
    env_str,
)
from coditect.logging_setup import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DJANGO_DEBUG", default=True)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG=0 the platform needs a long random "
            "secret key, for example: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    SECRET_KEY = dev_secret_key(VAR_DIR / "dev-secret-key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS: on by default in production. Probes reach the process over plain HTTP from inside the
# network, so they are exempt from the redirect (a 301 would read as healthy to a prober).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies whose X-Forwarded-For, X-Forwarded-Proto and X-Real-IP are believed
# (coditect/proxies.py): IP addresses or CIDR networks. Empty: nobody's, every client is the
# peer of the TCP connection.
CODITECT_TRUSTED_PROXIES = env_networks("CODITECT_TRUSTED_PROXIES")
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's, so `manage.py runserver` speaks ASGI.
    "daphne",
    "operations.apps.SupportAdminConfig",  # django.contrib.admin, with the support views
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Staff's second factor in the admin (TOTP devices in the ORM, docs/operations.md).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "channels",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc as static files of this server (/api/v5/docs/, /api/v5/redoc/).
    "drf_spectacular_sidecar",
    "fdb_backend",
    "accounts",
    "workspaces",
    "realtime",
    "operations",
    "coditect",
]

MIDDLEWARE = [
    # First: times all the others; counts and logs each request (coditect/metrics.py).
    "coditect.metrics.observe_middleware",
    "coditect.middleware.request_id_middleware",
    # Outside everything that answers, so its headers reach errors and the lean path too.
    "corsheaders.middleware.CorsMiddleware",
    "coditect.middleware.security_middleware",
    # Outside the problem middleware, so the headers reach the errors it rewrites.
    "coditect.middleware.rate_limit_middleware",
    "coditect.middleware.api_problem_middleware",
    # Django's page middleware, skipped on API paths (coditect/pages_only.py says why).
    "coditect.pages_only.Session",
    "coditect.pages_only.Common",
    "coditect.pages_only.Csrf",
    "coditect.pages_only.Authentication",
    # Marks the admin's user as verified by a TOTP device.
    "coditect.pages_only.Otp",
    "coditect.pages_only.Messages",
    "coditect.middleware.frame_options_middleware",
    # Last: answers the hot API operations without DRF's dispatch (coditect/lean.py).
    "coditect.lean.lean_middleware",
]
# The three middlewares above that stand in for Django's classes under other paths: Django's
# checks that look for the class paths are replaced by coditect/checks.py.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "coditect.urls"
ASGI_APPLICATION = "coditect.asgi.application"
WSGI_APPLICATION = "coditect.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Staff accounts of the admin. Tenants' users live in the storage layer, not here.
_database_url = env_str("DATABASE_URL", default="")
if not _database_url:
    # SQLite creates the file but not its folder; the default must work on a fresh clone.
    VAR_DIR.mkdir(exist_ok=True)
    _database_url = f"sqlite:///{VAR_DIR / 'staff.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The storage layer (fdb_backend.get_database() opens this URL once per process).
CODITECT_STORAGE_URL = env_str(
    "CODITECT_STORAGE_URL", default="embedded://" + quote(str(VAR_DIR / "store.sqlite3"))
)

REDIS_URL = env_str("REDIS_URL", default="")
CHANNEL_LAYERS = channel_layers_config(REDIS_URL)

# Multiplies every throttle limit (load tests raise it instead of turning throttling off).
CODITECT_THROTTLE_SCALE = env_positive_float("CODITECT_THROTTLE_SCALE", default=1.0)

# Largest request body accepted; API requests above it get a 413 before any view runs.
CODITECT_MAX_BODY_BYTES = env_int("CODITECT_MAX_BODY_BYTES", default=2 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = CODITECT_MAX_BODY_BYTES

# Threads of a daphne process that run the API's storage-bound views (coditect/lean.py);
# 0: the storage engine's default (1 embedded, 8 cluster).
CODITECT_API_THREADS = env_int("CODITECT_API_THREADS", default=0, minimum=0)


def _origins(name: str) -> list[str]:
    """A comma-separated list of origins, scheme://host[:port], each exactly that."""
    origins = env_list(name, default=[])
    for origin in origins:
        try:
            parts = urlsplit(origin)
            exact = parts.scheme in ("http", "https") and bool(parts.hostname)
            exact = exact and origin == f"{parts.scheme}://{parts.netloc}" and parts.port != 0
        except ValueError:  # a broken IPv6 literal or port
            exact = False
        if not exact:
            raise ImproperlyConfigured(
                f"{name} takes origins, scheme://host[:port] separated by commas, without a "
                f"path or a trailing slash; got {origin!r}"
            )
    return origins


# Cross-origin API calls (CONTRACT §1), e.g. from an IDE front end served elsewhere: none by
# default. The same origins may open sockets (coditect/origins.py). Credentials never: the API
# authenticates with bearer tokens, and no cookie may ride a cross-origin call.
CODITECT_CORS_ORIGINS = _origins("CODITECT_CORS_ORIGINS")
CORS_ALLOWED_ORIGINS = CODITECT_CORS_ORIGINS
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ["authorization", "content-type", "if-match", "x-request-id"]
CORS_EXPOSE_HEADERS = [
    "etag",
    "location",
    "retry-after",
    "x-request-id",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
]

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "core.problems.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "accounts.schema.ScopedAutoSchema",
    # A view that forgets its permissions is closed rather than open.
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ScopedAccess"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Coditect platform API",
    "DESCRIPTION": (
        "REST API of the Coditect platform. Errors are RFC 9457 problem details "
        "(application/problem+json)."
    ),
    "VERSION": "5",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v5",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": ["viewer", "member", "admin", "owner"],
    },
    # The docs pages load Swagger UI and Redoc from this server (drf-spectacular-sidecar's
    # static files), never from a CDN; coditect/api_docs.py serves them under their own CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        # "Try it out" on every operation without a click; requests go to this origin.
        "tryItOutEnabled": True,
        "displayRequestDuration": True,
        # Swagger UI's default asks validator.swagger.io for a badge: nothing leaves the site.
        "validatorUrl": None,
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

_log_level = env_str("DJANGO_LOG_LEVEL", default="INFO").upper()
# text (the default) or json: one JSON object per line (coditect/logging_setup.py).
CODITECT_LOG_FORMAT = env_str("CODITECT_LOG_FORMAT", default="text").lower()
if CODITECT_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"CODITECT_LOG_FORMAT is text or json; got {CODITECT_LOG_FORMAT!r}")
LOGGING = logging_config(level=_log_level, log_format=CODITECT_LOG_FORMAT)
# Clients that may read GET /metrics (IP addresses and CIDR networks); loopback by default.
# (An empty value counts as unset, as everywhere: the loopback addresses.)
CODITECT_METRICS_ALLOW = env_networks("CODITECT_METRICS_ALLOW") or ["127.0.0.1/32", "::1/128"]

# --- accounts (docs/configuration.md) --------------------------------------------------
# Argon2id parameters: RFC 9106's second recommended option by default.
CODITECT_ARGON2_TIME_COST = env_int("CODITECT_ARGON2_TIME_COST", default=3, minimum=1)
CODITECT_ARGON2_MEMORY_KIB = env_int("CODITECT_ARGON2_MEMORY_KIB", default=65_536, minimum=8)
CODITECT_ARGON2_PARALLELISM = env_int("CODITECT_ARGON2_PARALLELISM", default=4, minimum=1)
# Hashes a process computes at once (each holds CODITECT_ARGON2_MEMORY_KIB); 0: its CPU cores.
CODITECT_ARGON2_CONCURRENCY = env_int("CODITECT_ARGON2_CONCURRENCY", default=0, minimum=0)

CODITECT_JWT_ISSUER = env_str("CODITECT_JWT_ISSUER", default="coditect")
CODITECT_JWT_AUDIENCE = env_str("CODITECT_JWT_AUDIENCE", default="coditect-api")
CODITECT_JWT_LEEWAY_S = env_int("CODITECT_JWT_LEEWAY_S", default=0)
CODITECT_ACCESS_TOKEN_TTL_S = env_int("CODITECT_ACCESS_TOKEN_TTL_S", default=900, minimum=1)
CODITECT_REFRESH_IDLE_TTL_S = env_int("CODITECT_REFRESH_IDLE_TTL_S", default=14 * 86_400, minimum=1)
CODITECT_REFRESH_ABSOLUTE_TTL_S = env_int(
    "CODITECT_REFRESH_ABSOLUTE_TTL_S", default=30 * 86_400, minimum=1
)
# A just-rotated refresh token presented again within this window returns the current pair
# (two tabs refreshing at once) instead of revoking the family.
CODITECT_REFRESH_GRACE_S = env_int("CODITECT_REFRESH_GRACE_S", default=10)
# Verification keys are re-read from storage this often, so a rotation reaches every process.
CODITECT_SIGNING_KEYS_REFRESH_S = env_int("CODITECT_SIGNING_KEYS_REFRESH_S", default=30)
CODITECT_INVITATION_TTL_S = env_int("CODITECT_INVITATION_TTL_S", default=7 * 86_400, minimum=1)

# Throttles (each multiplied by CODITECT_THROTTLE_SCALE): per minute unless named otherwise.
CODITECT_THROTTLE_LOGIN_PER_EMAIL = env_int("CODITECT_THROTTLE_LOGIN_PER_EMAIL", default=10)
CODITECT_THROTTLE_LOGIN_PER_ADDRESS = env_int("CODITECT_THROTTLE_LOGIN_PER_ADDRESS", default=60)
CODITECT_THROTTLE_REGISTER_PER_ADDRESS = env_int(
    "CODITECT_THROTTLE_REGISTER_PER_ADDRESS", default=20
)  # per hour
# Rate limits of the authenticated API (accounts/ratelimit.py), per minute, each multiplied by
# CODITECT_THROTTLE_SCALE: per principal (a user's access tokens together, or one API token)
# and per tenant, reads (GET, HEAD, OPTIONS) and writes apart.
CODITECT_RATE_READ_PER_MIN = env_int("CODITECT_RATE_READ_PER_MIN", default=1200, minimum=1)
CODITECT_RATE_WRITE_PER_MIN = env_int("CODITECT_RATE_WRITE_PER_MIN", default=600, minimum=1)
CODITECT_RATE_TENANT_READ_PER_MIN = env_int(
    "CODITECT_RATE_TENANT_READ_PER_MIN", default=6000, minimum=1
)
CODITECT_RATE_TENANT_WRITE_PER_MIN = env_int(
    "CODITECT_RATE_TENANT_WRITE_PER_MIN", default=3000, minimum=1
)
# Most units of a window a process leases from storage in one transaction (and then spends
# without a commit): larger is cheaper per request, smaller shares a window more evenly.
CODITECT_RATE_LEASE_MAX = env_int("CODITECT_RATE_LEASE_MAX", default=1000, minimum=1)
# ASVS 2.2.1: at most this many failed logins per account per hour.
CODITECT_LOGIN_FAILURES_PER_HOUR = env_int("CODITECT_LOGIN_FAILURES_PER_HOUR", default=100)

# --- the staff admin (docs/operations.md) -----------------------------------------------
# Staff must pass a TOTP second factor (django-otp) to use the admin; off only in tests.
CODITECT_STAFF_OTP_REQUIRED = env_bool("CODITECT_STAFF_OTP_REQUIRED", default=True)
# Failed admin sign-ins per username and per client address before the login form locks
# (HTTP 429) until the window ends (each multiplied by CODITECT_THROTTLE_SCALE).
CODITECT_ADMIN_LOGIN_FAILURES_PER_USERNAME = env_int(
    "CODITECT_ADMIN_LOGIN_FAILURES_PER_USERNAME", default=5, minimum=1
)
CODITECT_ADMIN_LOGIN_FAILURES_PER_ADDRESS = env_int(
    "CODITECT_ADMIN_LOGIN_FAILURES_PER_ADDRESS", default=20, minimum=1
)
CODITECT_ADMIN_LOGIN_LOCKOUT_S = env_int("CODITECT_ADMIN_LOGIN_LOCKOUT_S", default=900, minimum=1)
# The name authenticator apps show beside a staff member's admin entry.
OTP_TOTP_ISSUER = env_str("CODITECT_STAFF_TOTP_ISSUER", default="Coditect admin")

# --- workspaces -------------------------------------------------------------------------
# Events kept per workspace session for replay (by count and by age); older ones answer 410.
CODITECT_EVENT_LOG_MAX = env_int("CODITECT_EVENT_LOG_MAX", default=1000, minimum=1)
CODITECT_EVENT_LOG_MAX_AGE_S = env_int("CODITECT_EVENT_LOG_MAX_AGE_S", default=86_400, minimum=1)
# --- the tenant audit log --------------------------------------------------------------
# Auth events and staff audit entries older than this are removed by `storage purge`.
CODITECT_AUDIT_RETENTION_DAYS = env_int("CODITECT_AUDIT_RETENTION_DAYS", default=365, minimum=1)
# Largest serialized JSON of each of active_files, editor_state, terminal_state (413 past it).
CODITECT_SESSION_STATE_MAX_BYTES = env_int(
    "CODITECT_SESSION_STATE_MAX_BYTES", default=1_048_576, minimum=2
)

# Per-tenant quotas (docs/accounts.md "Quotas"; 0: unlimited). Overrides per tenant:
# ``manage.py tenants quota`` and the support admin.
CODITECT_QUOTA_SESSIONS = env_int("CODITECT_QUOTA_SESSIONS", default=1_000_000, minimum=0)
CODITECT_QUOTA_BYTES = env_int("CODITECT_QUOTA_BYTES", default=10 * 1024**3, minimum=0)
CODITECT_QUOTA_API_TOKENS = env_int("CODITECT_QUOTA_API_TOKENS", default=1_000, minimum=0)

# --- realtime (CONTRACT §4) -------------------------------------------------------------
CODITECT_WS_AUTH_TIMEOUT_S = env_positive_float("CODITECT_WS_AUTH_TIMEOUT_S", default=5.0)
CODITECT_WS_IDLE_TIMEOUT_S = env_positive_float("CODITECT_WS_IDLE_TIMEOUT_S", default=60.0)
CODITECT_WS_MAX_MESSAGE_BYTES = env_int(
    "CODITECT_WS_MAX_MESSAGE_BYTES", default=1_048_576, minimum=64
)
# permessage-deflate for clients that offer it (coditect/serve.py; plain daphne never offers).
CODITECT_WS_COMPRESSION = env_bool("CODITECT_WS_COMPRESSION", default=True)
# zlib's level for what the server sends (1 fastest .. 9 smallest): docs/benchmarks.md.
CODITECT_WS_COMPRESSION_LEVEL = env_int("CODITECT_WS_COMPRESSION_LEVEL", default=1, minimum=1)
if CODITECT_WS_COMPRESSION_LEVEL > 9:
    raise ImproperlyConfigured("CODITECT_WS_COMPRESSION_LEVEL is a zlib level, 1 to 9")
# Messages the server sends shorter than this go uncompressed (acks, pongs): docs/protocol.md.
CODITECT_WS_COMPRESSION_MIN_BYTES = env_int("CODITECT_WS_COMPRESSION_MIN_BYTES", default=128)
CODITECT_WS_RATE_PER_S = env_positive_float("CODITECT_WS_RATE_PER_S", default=50.0)
CODITECT_WS_RATE_BURST = env_int("CODITECT_WS_RATE_BURST", default=100, minimum=1)
# How often an open socket re-checks that its auth session is still active.
CODITECT_WS_AUTH_CHECK_S = env_positive_float("CODITECT_WS_AUTH_CHECK_S", default=1.0)
# Connections refresh last_seen this often; one not seen for the timeout is a ghost.
CODITECT_WS_HEARTBEAT_S = env_positive_float("CODITECT_WS_HEARTBEAT_S", default=10.0)
CODITECT_WS_PRESENCE_TIMEOUT_S = env_positive_float("CODITECT_WS_PRESENCE_TIMEOUT_S", default=30.0)
# Large rooms (docs/protocol.md): from this many live connections presence changes go out as
# one presence.batch per transaction; a welcome lists at most PAGE connections.
CODITECT_WS_PRESENCE_BATCH_MIN = env_int("CODITECT_WS_PRESENCE_BATCH_MIN", default=100, minimum=1)
CODITECT_WS_PRESENCE_PAGE = env_int("CODITECT_WS_PRESENCE_PAGE", default=100, minimum=1)
if CODITECT_WS_PRESENCE_PAGE > 500:
    raise ImproperlyConfigured("CODITECT_WS_PRESENCE_PAGE is at most 500")

# --- email and account recovery (docs/configuration.md, docs/accounts.md) ---------------
# Console by default (mail is printed to the server's standard output); SMTP as soon as
# EMAIL_HOST is set; EMAIL_BACKEND picks any other Django backend (e.g. the file backend).
EMAIL_HOST = env_str("EMAIL_HOST", default="")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=not EMAIL_USE_SSL)
if EMAIL_USE_SSL and EMAIL_USE_TLS:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS) exclude each other; set one"
    )
EMAIL_PORT = env_int("EMAIL_PORT", default=465 if EMAIL_USE_SSL else 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", default="")
# Django waits forever by default; mail leaves on a background thread, which must not hang.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", default=10, minimum=1)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="Coditect <noreply@localhost>")
# Where people reach the platform: links in mail point here (no trailing slash). Unset, it
# follows HOST/PORT, where `make start` and `python -m coditect.serve` listen; a wildcard
# address is not somewhere a link can point, so it becomes localhost.
_SERVE_HOST = env_str("HOST", default="127.0.0.1") or "127.0.0.1"
if _SERVE_HOST in ("0.0.0.0", "::", "[::]"):  # noqa: S104 (a test of, not a binding to)
    _SERVE_HOST = "localhost"
elif ":" in _SERVE_HOST and not _SERVE_HOST.startswith("["):
    _SERVE_HOST = f"[{_SERVE_HOST}]"
_SERVE_PORT = env_str("PORT", default="8000") or "8000"
CODITECT_PUBLIC_URL = env_str(
    "CODITECT_PUBLIC_URL", default=f"http://{_SERVE_HOST}:{_SERVE_PORT}"
).rstrip("/")
if not CODITECT_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"CODITECT_PUBLIC_URL must start with http:// or https://; got {CODITECT_PUBLIC_URL!r}"
    )
# The name authenticator apps show beside a TOTP entry.
CODITECT_TOTP_ISSUER = env_str("CODITECT_TOTP_ISSUER", default="Coditect")

CODITECT_EMAIL_VERIFICATION_TTL_S = env_int(
    "CODITECT_EMAIL_VERIFICATION_TTL_S", default=3 * 86_400, minimum=1
)
CODITECT_PASSWORD_RESET_TTL_S = env_int("CODITECT_PASSWORD_RESET_TTL_S", default=3600, minimum=1)
CODITECT_MFA_CHALLENGE_TTL_S = env_int("CODITECT_MFA_CHALLENGE_TTL_S", default=300, minimum=1)
# Throttles (each multiplied by CODITECT_THROTTLE_SCALE).
# Password-reset mails and verification resends per email address, each per hour.
CODITECT_THROTTLE_MAIL_PER_EMAIL = env_int("CODITECT_THROTTLE_MAIL_PER_EMAIL", default=5)
# Password-reset and resend requests per client address per hour.
CODITECT_THROTTLE_MAIL_PER_ADDRESS = env_int("CODITECT_THROTTLE_MAIL_PER_ADDRESS", default=20)
# Token confirmations (verify-email, password-reset/confirm) per client address per minute.
CODITECT_THROTTLE_TOKENS_PER_ADDRESS = env_int("CODITECT_THROTTLE_TOKENS_PER_ADDRESS", default=30)
# Second-factor codes tried per user per minute, and failed ones per user per hour.
CODITECT_THROTTLE_MFA_PER_USER = env_int("CODITECT_THROTTLE_MFA_PER_USER", default=5)
CODITECT_MFA_FAILURES_PER_HOUR = env_int("CODITECT_MFA_FAILURES_PER_HOUR", default=10)

# --- web pages (docs/web.md) ------------------------------------------------------------
# The pages keep their refresh token in an HttpOnly cookie; Secure like the CSRF cookie, so
# it is off only under DEBUG (a developer's plain-HTTP server and the browser tests).
CODITECT_WEB_COOKIE_SECURE = not DEBUG
# A refused CSRF check on the pages' JSON endpoints answers problem+json; elsewhere (the
# admin) Django's own page, unchanged.
CSRF_FAILURE_VIEW = "accounts.web_auth.csrf_failure"

"""Log records with the request id (or a socket's connection id), as text or JSON lines.

settings.LOGGING installs ``ContextFilter`` on its handler, so every record that reaches it
(the access lines, Django's ``Unauthorized: /api/v5/auth/me``, a service's warning) carries
``request_id`` and ``connection_id`` from core/request_id.py's context variables ("-" when
outside a request or a socket). ``CODITECT_LOG_FORMAT=json`` formats each record as one JSON
object with those fields and the record's extras; plain text is the default.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.signals import request_finished
from pythonjsonlogger.json import JsonFormatter

from core.request_id import current_connection_id, current_request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(context_id)s] %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id", "connection_id"]


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``connection_id`` and ``context_id`` (the request id, else
    ``ws:`` and the connection id, else "-") to every record; filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A record may carry its own (a socket's lines name their connection as extra).
        request_id = getattr(record, "request_id", None) or current_request_id.get()
        connection_id = getattr(record, "connection_id", None) or current_connection_id.get()
        record.request_id = request_id or "-"
        record.connection_id = connection_id or "-"
        if request_id:
            record.context_id = request_id
        else:
            record.context_id = f"ws:{connection_id}" if connection_id else "-"
        return True


class UTCFormatter(logging.Formatter):
    """Text lines with an ISO 8601 UTC time (``2026-12-07T04:01:02.345Z``)."""

    def __init__(self, fmt: str = TEXT_FORMAT, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, ids and the extras."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level"})
        super().__init__(JSON_FIELDS, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("context_id", None)  # the text format's, redundant here


def _utc(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def logging_config(*, level: str, log_format: str) -> dict[str, Any]:
    """settings.LOGGING: one console handler with the context filter and the chosen format.

    The access and socket lines (loggers ``coditect.access``, ``coditect.sockets``) are INFO
    and written whatever DJANGO_LOG_LEVEL says, unless it is DEBUG.
    """
    formatter = "json" if log_format == "json" else "text"
    access_level = "DEBUG" if level == "DEBUG" else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {
            "text": {"()": UTCFormatter},
            "json": {"()": JsonLineFormatter},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["context"],
                "formatter": formatter,
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default config logs request errors to the console only under DEBUG,
            # and mails them otherwise; a server without ADMINS would then lose every
            # traceback.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "coditect.access": {"level": access_level},
            "coditect.sockets": {"level": access_level},
        },
    }


def _request_done(**kwargs: Any) -> None:
    # A WSGI thread serves one request after another in one context: the id must not stay
    # on the lines it writes between them.
    current_request_id.set(None)


request_finished.connect(_request_done, dispatch_uid="coditect.logging_setup.request_done")

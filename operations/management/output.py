"""What the operators' commands share: tables, JSON, a progress bar, errors as one line.

Commands are interfaces (DESIGN §2): they parse, call a service and render. Human-readable
tables by default, ``--json`` for scripts; any refusal is a ``CommandError`` whose message
is one line (exit status 1).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from accounts.errors import AccountError
from accounts.signing_keys import SigningKeyError
from core.time import rfc3339
from operations.errors import MaintenanceError


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, indent=2, sort_keys=True)


def fields(record: Any, names: Sequence[str]) -> dict[str, Any]:
    """The named attributes of a record for ``--json``: a chosen few, so a field added to
    the record (a key's secret, say) never reaches a script's output unasked."""
    return {name: getattr(record, name) for name in names}


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return rfc3339(value)
    return " ".join(str(value).split())  # one line per row, whatever the data holds


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell; an empty table says so."""
    text = [[cell(v) for v in row] for row in rows]
    if not text:
        return "(none)"
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(line.rstrip() for line in lines)


def one_line(error: BaseException) -> str:
    """An error's message on one line."""
    if isinstance(error, AccountError):
        message = error.detail
    elif isinstance(error, SigningKeyError):
        message = error.reason + (f": {error.kid}" if error.kid else "")
    else:
        message = str(error)
    return " ".join(message.split())


class Progress:
    """A progress bar on a terminal (stderr), redrawn at most 10 times a second; silent on
    anything that is not a terminal, so pipes and logs get no control characters."""

    def __init__(self, stream: Any, *, total: int | None, label: str, enabled: bool) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._done = 0
        self._shown = 0.0
        isatty = getattr(stream, "isatty", None)
        self.enabled = enabled and callable(isatty) and bool(isatty())

    def __call__(self, amount: int) -> None:
        self._done += amount
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown >= 0.1:
            self._shown = now
            self._draw()

    def _draw(self) -> None:
        if self._total:
            share = min(1.0, self._done / self._total)
            filled = int(share * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%}"
        else:
            bar = f"{self._done:,}"
        self._stream.write(f"\r{self._label} {bar}", ending="")
        self._stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self._stream.write("")


class OperatorCommand(BaseCommand):
    """A command with subcommands (``tenants list``), ``--json`` on each, and the services'
    refusals turned into one-line CommandErrors.

    A subcommand is a method ``do_<name>`` whose docstring is its help, with its own
    arguments added by ``arguments_<name>``, if any; they are listed in the order the
    class defines them."""

    @classmethod
    def actions(cls) -> dict[str, str]:
        """Each subcommand's name and help."""
        return {
            name.removeprefix("do_"): " ".join((handler.__doc__ or "").split())
            for name, handler in vars(cls).items()
            if name.startswith("do_")
        }

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        for name, help_text in self.actions().items():
            action = sub.add_parser(name, help=help_text, description=help_text)
            action.add_argument("--json", action="store_true", help="machine-readable output")
            getattr(self, f"arguments_{name}", lambda _: None)(action)

    def handle(self, *args: Any, **options: Any) -> None:
        handler: Callable[..., None] = getattr(self, f"do_{options['action']}")
        try:
            handler(**options)
        except (MaintenanceError, AccountError, SigningKeyError) as error:
            raise CommandError(one_line(error)) from None

    def emit(self, options: dict[str, Any], data: Any, text: str) -> None:
        self.stdout.write(to_json(data) if options["json"] else text)


@contextmanager
def opened_for_writing(path: str, stdout: OutputWrapper) -> Iterator[Callable[[str], None]]:
    """A line writer to ``path`` (``-``: standard output)."""
    if path == "-":
        yield lambda line: stdout.write(line, ending="\n")
        return
    try:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - a `with` here would turn the body's OSErrors into "cannot write"
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror}") from None
    with handle:

        def write(line: str) -> None:
            handle.write(line + "\n")

        yield write

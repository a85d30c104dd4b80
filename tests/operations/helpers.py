"""Running commands the way an operator does: output captured, errors as CommandError."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command


class Terminal(io.StringIO):
    """A stream that says it is a terminal (progress bars draw on it)."""

    def isatty(self) -> bool:
        return True


@dataclass
class Ran:
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(*args: str, stderr: io.StringIO | None = None) -> Ran:
    out, err = io.StringIO(), stderr or io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return Ran(out.getvalue(), err.getvalue())

"""``manage.py signing_keys list|rotate|retire`` (CONTRACT §5, docs/accounts.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

import fdb_backend
from accounts.records import SigningKey
from accounts.signing_keys import signing_key_list, signing_key_retire, signing_key_rotate
from operations.management.output import OperatorCommand, fields, table


def _key_json(key: SigningKey) -> dict[str, Any]:
    return fields(key, ("kid", "status", "created_at", "retired_at"))


class Command(OperatorCommand):
    help = "JWT signing keys: list them, rotate to a new one, retire an old one."

    def arguments_retire(self, parser: CommandParser) -> None:
        parser.add_argument("kid")

    def do_list(self, **options: Any) -> None:
        """List the signing keys, oldest first."""
        keys = signing_key_list(db=fdb_backend.get_database())
        rows = [[k.kid, k.status, k.created_at, k.retired_at] for k in keys]
        self.emit(
            options,
            [_key_json(k) for k in keys],
            table(["kid", "status", "created", "retired"], rows),
        )

    def do_rotate(self, **options: Any) -> None:
        """Make a new active key; the previous one keeps verifying its tokens."""
        key = signing_key_rotate(db=fdb_backend.get_database())
        self.emit(options, _key_json(key), f"new active key {key.kid}")

    def do_retire(self, **options: Any) -> None:
        """Stop trusting a key that no longer signs (its tokens are refused)."""
        key = signing_key_retire(db=fdb_backend.get_database(), kid=options["kid"])
        self.emit(options, _key_json(key), f"retired {key.kid}")

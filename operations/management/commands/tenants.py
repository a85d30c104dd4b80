"""``manage.py tenants list|show|create|suspend|resume|delete|export|import|quota``
(CONTRACT §5)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError, CommandParser

import fdb_backend
from accounts.records import QUOTA_KINDS
from accounts.services.quotas import QUOTA_MAX, quota_usage
from operations.management.commands import counted
from operations.management.output import (
    OperatorCommand,
    Progress,
    fields,
    opened_for_writing,
    table,
)
from operations.tenants import (
    tenant_create,
    tenant_delete,
    tenant_details,
    tenant_export,
    tenant_import,
    tenant_list,
    tenant_quota_set,
    tenant_resolve,
    tenant_size,
    tenant_status_set,
)


def _tenant_json(tenant: Any) -> dict[str, Any]:
    return fields(tenant, ("id", "slug", "name", "status", "status_reason", "created_at"))


class Command(OperatorCommand):
    help = "Tenant maintenance: list, show, create, suspend, resume, delete, export, import."

    # --- arguments -------------------------------------------------------------------

    def arguments_list(self, parser: CommandParser) -> None:
        parser.add_argument("--status", choices=["active", "suspended"])

    def arguments_show(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")

    def arguments_create(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--slug", help="default: made from the name")

    def arguments_suspend(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")
        parser.add_argument("--reason", required=True)

    def arguments_resume(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")
        parser.add_argument("--reason", default="")

    def arguments_delete(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")
        parser.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")

    def arguments_export(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")
        parser.add_argument("--output", "-o", default="-", help="file (default: standard output)")
        parser.add_argument("--no-progress", action="store_true")

    def arguments_import(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="an export (- for standard input)")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="if the tenant exists here, delete it and import the file's copy in its place "
            "(without: refused)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def arguments_quota(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="tenant id or slug")
        for kind in QUOTA_KINDS:
            parser.add_argument(
                "--" + kind.replace("_", "-"), type=_quota_value, metavar="N", dest=kind
            )
        parser.add_argument(
            "--reset",
            action="append",
            default=[],
            choices=[*QUOTA_KINDS, "all"],
            help="back to the default (repeatable)",
        )

    # --- actions ---------------------------------------------------------------------

    def do_list(self, **options: Any) -> None:
        """List tenants."""
        found = list(tenant_list(db=fdb_backend.get_database(), status=options["status"]))
        rows = [[t.id, t.slug, t.name, t.status, t.created_at] for t in found]
        self.emit(
            options,
            [_tenant_json(t) for t in found],
            table(["id", "slug", "name", "status", "created"], rows),
        )

    def do_show(self, **options: Any) -> None:
        """Show one tenant (id or slug) with its members and counts."""
        db = fdb_backend.get_database()
        tenant = tenant_resolve(db=db, ref=options["tenant"])
        details = tenant_details(db=db, tenant_id=tenant.id)
        members = [
            {"id": u.id, "email": u.email, "role": u.role, "locked": u.locked}
            for u in details.members
        ]
        spaces = {
            name: {"keys": s.keys, "bytes": s.bytes, "records": s.records}
            for name, s in sorted(details.spaces.items())
        }
        quotas = quota_usage(db, tenant_id=tenant.id)
        data = {
            **_tenant_json(tenant),
            "members": members,
            "spaces": spaces,
            "quotas": {
                kind: {"used": q.used, "limit": q.limit, "override": q.override}
                for kind, q in quotas.items()
            },
        }
        text = "\n".join(
            [
                f"{tenant.name} ({tenant.slug})",
                f"id:      {tenant.id}",
                f"status:  {tenant.status}"
                + (f" ({tenant.status_reason})" if tenant.status_reason else ""),
                f"created: {tenant.created_at:%Y-%m-%d %H:%M:%S}Z",
                "",
                "members" + (" (first 100)" if details.more_members else ""),
                table(
                    ["id", "email", "role", "locked"],
                    [[m["id"], m["email"], m["role"], m["locked"]] for m in members],
                ),
                "",
                "storage",
                table(
                    ["space", "records", "keys", "bytes"],
                    [[n, s["records"], s["keys"], s["bytes"]] for n, s in spaces.items()],
                ),
                "",
                "quotas",
                _quota_table(quotas),
            ]
        )
        self.emit(options, data, text)

    def do_create(self, **options: Any) -> None:
        """Create a tenant and an invitation for its owner."""
        created = tenant_create(
            db=fdb_backend.get_database(),
            name=options["name"],
            owner_email=options["owner_email"],
            slug=options["slug"],
        )
        tenant = created.tenant
        data = {
            **_tenant_json(tenant),
            "owner_invitation": {
                "token": created.token,
                "email": created.invitation.email,
                "expires_at": created.invitation.expires_at,
            },
        }
        text = (
            f"created tenant {tenant.slug} ({tenant.id})\n"
            f"owner invitation for {created.invitation.email}, shown once, valid until "
            f"{created.invitation.expires_at:%Y-%m-%d %H:%M}Z:\n{created.token}"
        )
        self.emit(options, data, text)

    def _status(self, options: dict[str, Any], *, suspended: bool) -> None:
        db = fdb_backend.get_database()
        tenant = tenant_resolve(db=db, ref=options["tenant"])
        changed = tenant_status_set(
            db=db, tenant_id=tenant.id, suspended=suspended, reason=options["reason"]
        )
        self.emit(
            options, _tenant_json(changed), f"{changed.slug} ({changed.id}): {changed.status}"
        )

    def do_suspend(self, **options: Any) -> None:
        """Suspend a tenant: its users are refused at once."""
        if not options["reason"].strip():
            raise CommandError("--reason must not be empty")
        self._status(options, suspended=True)

    def do_resume(self, **options: Any) -> None:
        """Resume a suspended tenant."""
        self._status(options, suspended=False)

    def do_delete(self, **options: Any) -> None:
        """Delete a tenant and everything it holds (needs --yes)."""
        db = fdb_backend.get_database()
        tenant = tenant_resolve(db=db, ref=options["tenant"])
        if not options["yes"]:
            raise CommandError(
                f"refusing to delete tenant {tenant.slug} ({tenant.id}) without --yes"
            )
        progress = Progress(self.stderr, total=None, label="deleting keys", enabled=True)
        report = tenant_delete(db=db, tenant_id=tenant.id, progress=progress)
        progress.close()
        data = {
            "tenant_id": tenant.id,
            "slug": tenant.slug,
            "keys": report.keys,
            "bytes": report.bytes,
            "global_keys": report.global_keys,
            "spaces": report.spaces,
        }
        text = "\n".join(
            [
                f"deleted tenant {tenant.slug} ({tenant.id}): {counted(report.keys, 'key')}, "
                f"{counted(report.bytes, 'byte')}, "
                f"{counted(report.global_keys, 'global entry', 'global entries')}",
                table(["space", "keys"], sorted(report.spaces.items())),
            ]
        )
        self.emit(options, data, text)

    def do_export(self, **options: Any) -> None:
        """Write a tenant as JSON Lines to a file or standard output."""
        db = fdb_backend.get_database()
        tenant = tenant_resolve(db=db, ref=options["tenant"])
        enabled = not options["no_progress"] and self.stderr.isatty()
        total = tenant_size(db=db, tenant_id=tenant.id) if enabled else None
        progress = Progress(self.stderr, total=total, label="exporting", enabled=enabled)
        with opened_for_writing(options["output"], self.stdout) as write:
            report = tenant_export(db=db, tenant_id=tenant.id, write=write, progress=progress)
        progress.close()
        summary = {"tenant_id": tenant.id, "keys": report.keys, "bytes": report.bytes}
        message = f"exported tenant {tenant.slug} ({tenant.id}): {counted(report.keys, 'key')}"
        # The export may be on standard output: the summary goes to stderr.
        self.stderr.write(message if not options["json"] else _json_line(summary))

    def do_import(self, **options: Any) -> None:
        """Restore a tenant from an export, checked whole before anything is written."""
        enabled = not options["no_progress"]
        with _source(options["file"]) as (lines, total):
            checking = Progress(self.stderr, total=total, label="checking", enabled=enabled)
            progress = Progress(self.stderr, total=total, label="importing", enabled=enabled)
            try:
                report = tenant_import(
                    db=fdb_backend.get_database(),
                    lines=lines,
                    replace=options["replace"],
                    progress=progress,
                    checking=checking,
                )
            finally:
                checking.close()
                progress.close()
        data = {
            "tenant_id": report.tenant_id,
            "keys": report.keys,
            "bytes": report.bytes,
            "verification_keys_ignored": report.verification_keys_ignored,
            "replaced": report.replaced is not None,
            "entries_rebuilt": report.entries_rebuilt,
        }
        text = (
            f"imported tenant {report.tenant_id}: {counted(report.keys, 'key')}, "
            f"{counted(report.bytes, 'byte')}"
        )
        if report.replaced is not None:
            text += " (the copy that was here deleted first)"
        if report.entries_rebuilt:
            rebuilt = counted(report.entries_rebuilt, "index entry", "index entries")
            text += f"; {rebuilt} the file lacks (an older export) written"
        if report.verification_keys_ignored:
            text += (
                f"; {counted(report.verification_keys_ignored, 'verification key')} "
                "of the file ignored "
                "(tokens issued elsewhere do not verify here: users sign in again)"
            )
        self.emit(options, data, text)

    def do_quota(self, **options: Any) -> None:
        """Show a tenant's quotas and usage, or set (0: unlimited) or reset its own."""
        db = fdb_backend.get_database()
        tenant = tenant_resolve(db=db, ref=options["tenant"])
        reset = set(QUOTA_KINDS) if "all" in options["reset"] else set(options["reset"])
        overrides: dict[str, int | None] = {kind: None for kind in sorted(reset)}
        for kind in QUOTA_KINDS:
            if options[kind] is not None:
                if kind in reset:
                    raise CommandError(f"--{kind.replace('_', '-')} and --reset {kind} together")
                overrides[kind] = options[kind]
        if overrides:
            quotas = tenant_quota_set(db=db, tenant_id=tenant.id, overrides=overrides)
        else:
            quotas = quota_usage(db, tenant_id=tenant.id)
        data = {
            "tenant_id": tenant.id,
            "slug": tenant.slug,
            "quotas": {
                kind: {"used": q.used, "limit": q.limit, "override": q.override}
                for kind, q in quotas.items()
            },
        }
        text = f"{tenant.slug} ({tenant.id})\n" + _quota_table(quotas)
        self.emit(options, data, text)


def _quota_table(quotas: dict[str, Any]) -> str:
    rows = [
        [kind, q.used, q.limit or "unlimited", "default" if q.override is None else "own"]
        for kind, q in quotas.items()
    ]
    return table(["quota", "used", "limit", "set"], rows)


def _quota_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= QUOTA_MAX:
        raise argparse.ArgumentTypeError(f"out of range (0 to {QUOTA_MAX}; 0: unlimited): {value}")
    return value


def _json_line(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, default=str)


@contextmanager
def _source(path: str) -> Iterator[tuple[Callable[[], Iterator[str]], int | None]]:
    """A way to read the export twice (the import checks it whole, then writes it), and its
    size in bytes. Standard input is kept in a temporary file for the second reading."""
    if path != "-":
        try:
            total = os.path.getsize(path)
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error.strerror}") from None
        yield (lambda: _lines(path)), total
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        try:
            spool.writelines(sys.stdin)
        except UnicodeDecodeError:
            raise CommandError("malformed export: standard input is not UTF-8 text") from None

        def spooled() -> Iterator[str]:
            spool.seek(0)
            yield from spool

        yield spooled, spool.tell()


def _lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from sys.stdin
        return
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - the `with` below: only the open means "cannot read"
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        try:
            yield from handle
        except UnicodeDecodeError:
            raise CommandError(f"malformed export: {path} is not UTF-8 text") from None

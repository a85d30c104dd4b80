"""``manage.py storage check|stats|purge`` (CONTRACT §5)."""

from __future__ import annotations

import collections
from typing import Any

from django.core.management.base import CommandError, CommandParser

import fdb_backend
from operations.management.commands import counted
from operations.management.output import OperatorCommand, table
from operations.storage import (
    purge_task_names,
    storage_check,
    storage_purge,
    storage_stats,
)

TABLE_ROWS = 100  # problems listed one a row; past this, counted by kind and tenant


class Command(OperatorCommand):
    help = "Storage maintenance: check (and repair) indexes, statistics, purge expired data."

    def arguments_check(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="fix what is found")

    def arguments_stats(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--top", type=int, default=20, help="largest tenants listed (default 20, 0: all)"
        )

    def arguments_purge(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, remove nothing")
        parser.add_argument(
            "--only", action="append", metavar="KIND", help="repeatable; default: every kind"
        )

    def do_check(self, **options: Any) -> None:
        """Verify every index entry against its record; find orphaned data."""
        report = storage_check(db=fdb_backend.get_database(), repair=options["repair"])
        problems = [
            {
                "kind": p.kind,
                "what": p.what,
                "tenant_id": p.tenant_id,
                "key": p.key,
                "repaired": p.repaired,
            }
            for p in report.problems
        ]
        left = len(problems) - report.repaired
        data = {
            "tenants": report.tenants,
            "problems": problems,
            "repaired": report.repaired,
            "unrepaired": left,
        }
        checked = f"checked {counted(report.tenants, 'tenant')}"
        summary = f"{checked}: {counted(len(problems), 'problem')}" + (
            f", {report.repaired} repaired" if options["repair"] else ""
        )
        rows = [[p["kind"], p["what"], p["tenant_id"], p["key"], p["repaired"]] for p in problems]
        text = summary
        if len(problems) > TABLE_ROWS:
            # A new index on an existing store is one missing entry per record: counted here
            # by kind, what and tenant, each listed by --json.
            counts = collections.Counter((r[0], r[1], r[2], r[4]) for r in rows)
            grouped = [[*key, n] for key, n in sorted(counts.items(), key=str)]
            text += "\n" + table(["kind", "what", "tenant", "repaired", "problems"], grouped)
            text += f"\n(more than {TABLE_ROWS} problems: --json lists each)"
        elif problems:
            text += "\n" + table(["kind", "what", "tenant", "key", "repaired"], rows)
        self.emit(options, data, text)
        if left:
            # Scripts and monitoring see a store that needs attention.
            raise CommandError(
                f"{left} problems left"
                + ("" if options["repair"] else "; run storage check --repair")
            )

    def do_stats(self, **options: Any) -> None:
        """Keys and bytes per top-level space and per tenant."""
        if options["top"] < 0:
            raise CommandError("--top must be 0 or more")
        found = storage_stats(db=fdb_backend.get_database())
        spaces = {
            name: {"keys": s.keys, "bytes": s.bytes} for name, s in sorted(found.spaces.items())
        }
        ranked = sorted(found.tenants.items(), key=lambda item: -item[1].bytes)
        tenants = [
            {"id": tid, "slug": found.slugs.get(tid), "keys": s.keys, "bytes": s.bytes}
            for tid, s in ranked
        ]
        shown = tenants[: options["top"]] if options["top"] else tenants
        total_keys = sum(s["keys"] for s in spaces.values())
        total_bytes = sum(s["bytes"] for s in spaces.values())
        data = {
            "keys": total_keys,
            "bytes": total_bytes,
            "spaces": spaces,
            "tenants": tenants,
        }
        text = "\n".join(
            [
                f"{counted(total_keys, 'key')}, {counted(total_bytes, 'byte')}, "
                f"{counted(len(tenants), 'tenant')} with data",
                "",
                table(
                    ["space", "keys", "bytes"],
                    [[n, s["keys"], s["bytes"]] for n, s in spaces.items()],
                ),
                "",
                "largest tenants" if len(shown) < len(tenants) else "tenants",
                table(
                    ["tenant", "slug", "keys", "bytes"],
                    [[t["id"], t["slug"] or "(no record)", t["keys"], t["bytes"]] for t in shown],
                ),
            ]
        )
        self.emit(options, data, text)

    def do_purge(self, **options: Any) -> None:
        """Remove expired auth sessions, invitations, events, locks and connections, and
        audit entries past the retention."""
        known = purge_task_names()
        only = options["only"]
        unknown = sorted(set(only or ()) - set(known))
        if unknown:
            raise CommandError(f"unknown kind {unknown[0]!r}; known: {', '.join(known)}")
        report = storage_purge(db=fdb_backend.get_database(), dry_run=options["dry_run"], only=only)
        verb = "would remove" if report.dry_run else "removed"
        data = {"dry_run": report.dry_run, "tenants": report.tenants, "removed": report.removed}
        text = "\n".join(
            [
                f"{verb} {counted(sum(report.removed.values()), 'record')} "
                f"in {counted(report.tenants, 'tenant')}",
                table(["kind", verb], sorted(report.removed.items())),
            ]
        )
        self.emit(options, data, text)

"""What a person's export and erasure cost (issue 16 part 3), in one process on a temporary
embedded store.

Run from the repository root::

    python bench/data_rights.py [--sessions N] [--events N] [--json]

A tenant of two people: the owner and a member. Each owns ``--sessions`` workspace sessions
of ``--events`` events; the member has also joined each of the owner's sessions once (a
connection record and its presence events). Then the member's export, and their erasure
(their sessions deleted, their presence dropped, the tenant's event logs scrubbed, their auth
events stripped), are timed. It checks that the member's sessions are gone and the owner's
are not. A benchmark, not a test: see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/data_rights.py` puts bench/ first

PASSWORD = "Tr0ub4dor&3-horse-staple"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        os.environ["CODITECT_STORAGE_URL"] = f"embedded:///{directory}/store.sqlite3"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
        os.environ.setdefault("CODITECT_ARGON2_TIME_COST", "1")
        os.environ.setdefault("CODITECT_ARGON2_MEMORY_KIB", "64")
        os.environ.setdefault("CODITECT_THROTTLE_SCALE", "1000")
        os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
        import django

        django.setup()
        report = run(args.sessions, args.events)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['sessions_each']} sessions x {report['events_each']} events each, two people; "
        f"{report['keys_before']} keys in the tenant"
    )
    print(f"setup   {report['setup_s']:.1f} s")
    print(f"export  {report['export_s']:.2f} s  ({report['export_bytes']} bytes of JSON)")
    print(f"erase   {report['erase_s']:.2f} s  ({report['keys_after']} keys left)")


def run(sessions: int, events: int) -> dict[str, Any]:
    import fdb_backend
    from accounts.services import (
        Client,
        invitation_create,
        principal_authenticate,
        user_erase,
        user_export,
        user_register,
    )
    from fdb_backend import keyspace
    from realtime.services import connection_new, connections_change
    from workspaces.services import session_create, session_event_publish, session_ids_of_owner

    db = fdb_backend.get_database()
    client = Client(ip="192.0.2.1", user_agent="bench")
    started = time.perf_counter()
    owner = user_register(
        db=db, email="owner@example.com", password=PASSWORD, tenant_name="Bench", client=client
    )
    owner_p = principal_authenticate(db=db, token=owner.tokens.access)
    invited = invitation_create(
        db=db, principal=owner_p, email="member@example.com", role="member", client=client
    )
    member = user_register(
        db=db,
        email="member@example.com",
        password=PASSWORD,
        display_name="Member",
        invitation=invited.token,
        client=client,
    )
    member_p = principal_authenticate(db=db, token=member.tokens.access)
    owned: dict[str, list[Any]] = {"owner": [], "member": []}
    for who, principal in (("owner", owner_p), ("member", member_p)):
        for n in range(sessions):
            view = session_create(
                db=db,
                principal=principal,
                name=f"{who} {n}",
                workspace_path=f"/srv/{who}/{n % 10}",
                editor_state={"cursor": n, "text": "x" * 200},
            )
            owned[who].append(view.head.id)
            for e in range(events):
                session_event_publish(
                    db=db, principal=principal, session_id=view.head.id,
                    event="build", data={"step": e},
                )  # fmt: skip
    for session_id in owned["owner"]:
        opening = connection_new(
            principal=member_p, session_id=session_id, connection_id=session_id.hex
        )
        connections_change(
            db=db, tenant_id=member_p.tenant_id, session_id=session_id, changes=[opening]
        )
    tenant = keyspace.tenant(owner.tenant.id)
    keys_before = len(db.get_range(*tenant.range()))
    setup_s = time.perf_counter() - started

    started = time.perf_counter()
    exported = user_export(db=db, principal=member_p)
    export_s = time.perf_counter() - started
    export_bytes = len(json.dumps(exported))

    started = time.perf_counter()
    user_erase(db=db, principal=member_p, password=PASSWORD, client=client)
    erase_s = time.perf_counter() - started
    left = session_ids_of_owner(db=db, tenant_id=owner.tenant.id, user_id=member.user.id)
    kept = session_ids_of_owner(db=db, tenant_id=owner.tenant.id, user_id=owner.user.id)
    assert left == [], left
    assert len(kept) == sessions, len(kept)
    return {
        "sessions_each": sessions,
        "events_each": events,
        "keys_before": keys_before,
        "keys_after": len(db.get_range(*tenant.range())),
        "setup_s": setup_s,
        "export_s": export_s,
        "export_bytes": export_bytes,
        "erase_s": erase_s,
    }


if __name__ == "__main__":
    main()

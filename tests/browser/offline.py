"""Publish an event to a session while its server is down: run as a child process.

``python -m tests.browser.offline EMAIL PASSWORD SESSION_ID EVENT DATA_JSON`` with the
server's environment (the same store). It signs in and publishes through the services, as a
REST call would, and prints the event's seq.
"""

from __future__ import annotations

import json
import sys
import uuid


def main(argv: list[str]) -> None:
    import django

    django.setup()
    import fdb_backend
    from accounts.services import Client, principal_authenticate, user_login
    from workspaces.services import session_event_publish

    email, password, session_id, event, data = argv
    db = fdb_backend.get_database()
    done = user_login(db=db, email=email, password=password, client=Client("127.0.0.1", "cli"))
    principal = principal_authenticate(db=db, token=done.tokens.access)
    seq = session_event_publish(
        db=db,
        principal=principal,
        session_id=uuid.UUID(session_id),
        event=event,
        data=json.loads(data),
    )
    print(seq)


if __name__ == "__main__":
    main(sys.argv[1:])

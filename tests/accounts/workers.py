"""Code that runs in child processes of the accounts tests: ``python -m tests.accounts.workers``.

The parent passes one JSON argument: the requests each thread makes in order (``path``,
``body``; ``method`` when not POST; ``extra`` WSGI headers), how many threads,
an optional frozen time, and two files: the child creates ``ready`` once Django is up, then
waits for ``go`` so that children start their requests together. The child prints one JSON
line: for each thread, the list of ``{"status", "body"}`` it saw.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any


def _run(requests: list[dict[str, Any]], barrier: threading.Barrier) -> list[dict[str, Any]]:
    from django.test import Client

    client = Client(raise_request_exception=False)
    barrier.wait(timeout=30)
    seen = []
    for request in requests:
        response = client.generic(
            request.get("method", "POST"),
            request["path"],
            json.dumps(request["body"]) if "body" in request else "",
            content_type="application/json",
            **request.get("extra", {}),
        )
        body = json.loads(response.content) if response.content else None
        seen.append({"status": response.status_code, "body": body})
    return seen


def main(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    import django

    django.setup()
    from django.test import Client

    traveller = None
    if spec.get("freeze"):
        import time_machine

        traveller = time_machine.travel(datetime.fromisoformat(spec["freeze"]), tick=False)
        traveller.start()
    # Warm up: the first request loads the URLconf and opens the store.
    Client(raise_request_exception=False).get("/readyz")
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 120
    while not Path(spec["go"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal within 120 s")
        time.sleep(0.001)
    threads = int(spec.get("threads", 1))
    barrier = threading.Barrier(threads)
    results: list[list[dict[str, Any]]] = [[] for _ in range(threads)]

    def work(index: int) -> None:
        results[index] = _run(spec["requests"], barrier)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if traveller is not None:
        traveller.stop()
    return results


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))

"""Password-reset request timing: a known email against an unknown one (issue 15, finding 9).

Run from the repository root::

    python bench/reset_timing.py [--requests N] [--accounts N] [--json]

In one process, with Django's test client (the whole middleware stack, no network), against
an embedded store in a temporary directory and the dummy mail backend (mail rendered, handed
to the mail thread, sent nowhere), it registers ``--accounts`` accounts, then asks for
``--requests`` resets alternating a registered email and an unknown one, and prints p50, p90
and p99 of each kind in milliseconds, each request timed alone (the background work a
request leaves is drained before the next one starts). Throttles are scaled out of the way.
Run it on two revisions to compare them; a benchmark, not a test
(tests/accounts/test_reset_work.py proves the equal work structurally).
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
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/reset_timing.py` puts bench/ first

from bench import common

PASSWORD = "Tr0ub4dor&3-horse-staple"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="resets of each kind")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="coditect.settings",
            DJANGO_ALLOWED_HOSTS="testserver",
            CODITECT_STORAGE_URL="embedded://" + quote(str(Path(tmp) / "store.sqlite3")),
            CODITECT_THROTTLE_SCALE="1000000",
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
            # Registration is setup here, not what is measured: a cheap Argon2.
            CODITECT_ARGON2_TIME_COST="1",
            CODITECT_ARGON2_MEMORY_KIB="8",
            CODITECT_ARGON2_PARALLELISM="1",
        )
        import django

        django.setup()
        from django.test import Client

        from accounts.services.common import background_drain

        client = Client()
        known = [f"reset-bench-{n}@example.com" for n in range(args.accounts)]
        for email in known:
            answer = client.post(
                "/api/v5/auth/register",
                {"email": email, "password": PASSWORD},
                content_type="application/json",
            )
            assert answer.status_code == 201, answer.content

        def timed(email: str) -> float:
            started = time.perf_counter()
            answer = client.post(
                "/api/v5/auth/password-reset", {"email": email}, content_type="application/json"
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 202, answer.content
            # Each request is timed alone: the previous one's background job (if any) does
            # not run during it, as it would not for requests spaced out by an observer.
            background_drain(timeout=60)
            return elapsed

        for n in range(20):  # warm-up: templates, caches, the first transactions
            timed(known[n % len(known)])
            timed(f"warm-{n}@nowhere.example")
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        for n in range(args.requests):
            times["known"].append(timed(known[n % len(known)]))
            times["unknown"].append(timed(f"nobody-{n}@nowhere.example"))

    report: dict[str, dict[str, Any]] = {
        kind: {
            f"p{int(q * 100)}_ms": round(common.percentile(values, q), 2) for q in (0.5, 0.9, 0.99)
        }
        for kind, values in times.items()
    }
    report["meta"] = {
        "requests_each": args.requests,
        "revision": common.revision("accounts"),
        "cpu": common.cpu_model(),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"password-reset request, {args.requests} of each kind ({report['meta']['revision']})")
    for kind in ("known", "unknown"):
        row = report[kind]
        print(
            f"  {kind:8} p50 {row['p50_ms']:6.2f} ms  p90 {row['p90_ms']:6.2f} ms"
            f"  p99 {row['p99_ms']:6.2f} ms"
        )


if __name__ == "__main__":
    main()

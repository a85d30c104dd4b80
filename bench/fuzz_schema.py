"""Schema fuzzing, the long run: schemathesis over every operation with many random examples.

Run from the repository root::

    python bench/fuzz_schema.py [--examples N] [--seed N] [--json]

It runs ``tests/reliability/test_schema_fuzz.py::test_operation`` (one test per operation of
``/api/v5/schema/``, checks described there) with ``N`` examples per operation (default 500)
instead of the test command's bounded, derandomized dozen, new random examples every run
(``--seed`` repeats one), and prints what was sent: requests per operation by status, totals,
the failures if any, the time taken and the command that reproduces the run. Exit status is
pytest's: 0 when every check held. Not a test: ``make test`` runs the bounded version.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/reliability/test_schema_fuzz.py::test_operation"


def run(examples: int, seed: int | None) -> tuple[int, list[dict[str, Any]], str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        env = {
            **os.environ,
            "CODITECT_FUZZ_EXAMPLES": str(examples),
            "CODITECT_FUZZ_RANDOM": "1",
            "CODITECT_FUZZ_STATS": str(stats),
        }
        command = [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"]
        command += ["-o", "log_level=ERROR", "--show-capture=no", "--timeout=0"]
        if seed is not None:
            command.append(f"--hypothesis-seed={seed}")
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.monotonic() - started
        rows = json.loads(stats.read_text()) if stats.exists() else []
    return done.returncode, rows, done.stdout[-20_000:], elapsed


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    operations: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for row in rows:
        # "GET /api/v5/sessions (GET)": the operation, and the method actually sent (the
        # coverage phase also sends other methods to each path).
        label, _, sent = row["operation"].rpartition(" (")
        key = label if sent.rstrip(")") == label.split(" ")[0] else "other methods"
        operations[key][str(row["status"])] += row["count"]
    totals: collections.Counter[str] = collections.Counter()
    for counts in operations.values():
        for status, count in counts.items():
            totals[status[0] + "xx"] += count
    return {
        "operations": {op: dict(sorted(c.items())) for op, c in sorted(operations.items())},
        "totals": dict(sorted(totals.items())),
        "requests": sum(totals.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="per operation (default 500)")
    parser.add_argument("--seed", type=int, help="Hypothesis seed, to repeat a run")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args()
    status, rows, output, elapsed = run(args.examples, args.seed)
    summary = summarize(rows)
    argv = ["python", "bench/fuzz_schema.py", "--examples", str(args.examples)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    report = {
        **summary,
        "examples_per_operation": args.examples,
        "seconds": round(elapsed, 1),
        "passed": status == 0,
        "pytest_status": status,
        "command": shlex.join(argv),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max([len(op) for op in summary["operations"]] + [9])
        print(f"{'operation':<{width}}  requests by status")
        for op, counts in summary["operations"].items():
            text = ", ".join(f"{s}: {n}" for s, n in counts.items())
            print(f"{op:<{width}}  {text}")
        print()
        totals = ", ".join(f"{s}: {n}" for s, n in summary["totals"].items())
        print(f"{summary['requests']} requests ({totals}) in {elapsed:.0f} s")
        fuzzed = [op for op in summary["operations"] if op != "other methods"]
        print(f"{len(fuzzed)} operations, {args.examples} examples each (and coverage cases)")
        print("every check held" if status == 0 else f"FAILED (pytest exit status {status})")
        print(f"command: {report['command']}")
    if status != 0:
        print(output, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Storage before/after: bench/storage.py ratios and CPU per commit of two revisions, interleaved.

Run from the repository root::

    python bench/storage_compare.py [--before-rev 38de4e1] [--rounds 3] [--seconds 2] [--json]

The revision before (by default 38de4e1, the engine before the MVCC window) is checked out
from this repository into a temporary detached worktree (``--before PATH`` uses a checkout
already there); the revision after is this tree. Each round runs, in both trees and in
alternating order (so a burst of other load hits both alike):

* ``bench/storage.py --seconds S --json`` in a child process: the engine / raw sqlite3
  ratios of single-key commits and point reads (each ratio is the engine against raw sqlite3
  measured in the same child, so a slower moment slows both sides);
* CPU per commit in process (``time.process_time``, a non-durable store so no fsync hides
  it): single-key and 10-key blind commits, through ``create_transaction``/``commit``
  (the engine alone) and through ``fdb_backend.transactional`` (what storage.py times).

It reports min/median/max over the rounds of each figure, and the machine's load average
at the start and end of each child. ``--callgrind N`` adds instructions per operation under
valgrind's callgrind (N operations, less a run of none), for 1- and 10-key blind commits and
transactions of 1 and 100 point reads: counts that other load on a shared machine does not
disturb (the checkpointer thread's included). This is a benchmark, not a test; it
downloads nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE_REV = "38de4e1"  # the embedded engine before the MVCC window (issue 20)
RATIOS = (
    "single-key commits",
    "point reads, 100 per transaction",
    "point reads, 1 per transaction",
)

# Both children run in the tree measured (cwd), with that tree's fdb_backend, on the same
# in-memory store of 10,000 keys (the same random keys and values in every run).
_STORE = r"""
import json, random, sys, time
sys.path.insert(0, ".")
import fdb_backend
from fdb_backend.engines import embedded

db = embedded.open_memory()
rng = random.Random(1)
keys = [b"u" + rng.randbytes(43) for _ in range(10_000)]
tr = db.create_transaction()
for key in keys:
    tr[key] = rng.randbytes(200)
tr.commit().wait()
value = bytes(range(200))
"""

# Microseconds of CPU per commit, the best of a few repetitions (the least disturbed by
# other load).
_CPU_CHILD = (
    _STORE
    + r"""
commits = int(sys.argv[1])

def engine(batch):
    tr = db.create_transaction()
    for key in batch:
        tr[key] = value
    tr.commit().wait()

@fdb_backend.transactional
def retried(tr, batch):
    for key in batch:
        tr[key] = value

out = {}
for size in (1, 10):
    draws = [[rng.choice(keys) for _ in range(size)] for _ in range(4096)]
    for name, put in (("engine", engine), ("transactional", lambda b: retried(db, b))):
        n = max(commits // size, 100)
        for i in range(n // 4):
            put(draws[i & 4095])
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for i in range(n):
                put(draws[i & 4095])
            best = min(best, (time.process_time() - start) / n)
        out[f"{name}, {size}-key commit"] = best * 1e6
db.close()
print(json.dumps(out))
"""
)


# Under callgrind: one kind of operation, `n` times after the same set-up and warm-up, so
# the count of a run of none can be taken off.
_COUNT_CHILD = (
    _STORE
    + r"""
kind, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
draws = [[rng.choice(keys) for _ in range(size)] for _ in range(4096)]

def op(i):
    tr = db.create_transaction()
    if kind == "commit":
        for key in draws[i & 4095]:
            tr[key] = value
    else:
        for key in draws[i & 4095]:
            tr[key]
    tr.commit().wait()

for i in range(300):
    op(i)
for i in range(n):
    op(i)
db.close()
"""
)
COUNTED = (("commit", 1), ("commit", 10), ("read", 1), ("read", 100))


def instructions(tree: Path, kind: str, size: int, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                "-c",
                _COUNT_CHILD,
                kind,
                str(size),
                str(n),
            ],
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise RuntimeError("no callgrind total", done.stderr[-500:])
    return int(match.group(1))


def run_callgrind(trees: dict[str, Path], n: int) -> dict[str, dict[str, float]]:
    """Instructions per operation, each side's runs of N and of none taken in turn."""
    counts: dict[str, dict[str, float]] = {side: {} for side in trees}
    for kind, size in COUNTED:
        name = f"{size}-key commit" if kind == "commit" else f"{size} point reads"
        ops = max(n // size, 50) if kind == "commit" else max(n // max(size // 10, 1), 50)
        for side, tree in trees.items():
            print(f"callgrind: {side} {name}", file=sys.stderr)
            total = instructions(tree, kind, size, ops) - instructions(tree, kind, size, 0)
            counts[side][name] = total / ops
    return counts


def load() -> float:
    return os.getloadavg()[0]


def run_storage(tree: Path, seconds: float) -> dict[str, Any]:
    start = load()
    done = subprocess.run(
        [sys.executable, "bench/storage.py", "--seconds", f"{seconds:g}", "--json"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    ratios = {r["name"]: r["ratio"] for r in report["results"] if r["name"] in RATIOS}
    return {"ratios": ratios, "window": report.get("window"), "load": (start, load())}


def run_cpu(tree: Path, commits: int) -> dict[str, Any]:
    start = load()
    done = subprocess.run(
        [sys.executable, "-c", _CPU_CHILD, str(commits)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return {"us_per_commit": json.loads(done.stdout), "load": (start, load())}


@contextlib.contextmanager
def checkout(rev: str, path: str | None) -> Iterator[Path]:
    """A tree of ``rev``: ``path`` if given, else a temporary detached worktree."""
    if path:
        yield Path(path).resolve()
        return
    tree = Path(tempfile.mkdtemp(prefix="coditect-before-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(tree), rev], cwd=ROOT, check=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(tree.parent, ignore_errors=True)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side, rounds in runs.items():
        figures: dict[str, list[float]] = {}
        for round_ in rounds:
            for name, ratio in round_["storage"]["ratios"].items():
                figures.setdefault(f"ratio: {name}", []).append(ratio)
            for name, us in round_["cpu"]["us_per_commit"].items():
                figures.setdefault(f"CPU us: {name}", []).append(us)
        summary[side] = {name: spread(values) for name, values in figures.items()}
    return summary


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"storage before/after, {report['rounds']} rounds, --seconds {report['seconds']:g},"
        f" before = {report['before']}, after = {report['after']}",
        "",
        f"{'figure':<46} {'side':<7} {'min':>8} {'median':>8} {'max':>8}",
    ]
    before, after = report["summary"]["before"], report["summary"]["after"]
    for name in before:
        for side, figures in (("before", before), ("after", after)):
            f = figures.get(name)
            if f:
                lines.append(
                    f"{name:<46} {side:<7} {f['min']:8.3f} {f['median']:8.3f} {f['max']:8.3f}"
                )
    lines += ["", "load average (1 min) at start-end of each child:"]
    for side, rounds in report["runs"].items():
        for i, round_ in enumerate(rounds):
            s, c = round_["storage"]["load"], round_["cpu"]["load"]
            lines.append(
                f"  {side} round {i + 1}: storage.py {s[0]:.2f}-{s[1]:.2f},"
                f" CPU per commit {c[0]:.2f}-{c[1]:.2f}"
            )
    counted = report.get("instructions")
    if counted:
        lines += ["", "instructions per operation (callgrind):"]
        for name, before_count in counted["before"].items():
            after_count = counted["after"][name]
            lines.append(
                f"  {name:<20} before {before_count:>12,.0f}  after {after_count:>12,.0f}"
                f"  ({after_count / before_count:.3f}x)"
            )
    after_runs = report["runs"]["after"]
    window = after_runs[-1]["storage"].get("window") if after_runs else None
    if window:
        lines += ["", f"MVCC window (after, last round): {json.dumps(window)}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--before-rev", default=BEFORE_REV, help="the revision before")
    parser.add_argument("--before", default=None, help="a checkout of it already there")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="storage.py --seconds")
    parser.add_argument("--commits", type=int, default=5_000, help="commits per CPU figure")
    parser.add_argument(
        "--callgrind", type=int, default=0, metavar="N", help="also count instructions"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with checkout(args.before_rev, args.before) as before:
        trees = {"before": before, "after": ROOT}
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for side in order:
                print(f"round {round_ + 1}: {side}", file=sys.stderr)
                runs[side].append(
                    {
                        "storage": run_storage(trees[side], args.seconds),
                        "cpu": run_cpu(trees[side], args.commits),
                    }
                )
        counted = run_callgrind(trees, args.callgrind) if args.callgrind else None
    report = {
        "before": args.before or args.before_rev,
        "after": str(ROOT),
        "rounds": args.rounds,
        "seconds": args.seconds,
        "runs": runs,
        "summary": summarise(runs),
        "instructions": counted,
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

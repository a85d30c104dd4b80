"""Storage benchmark: the embedded engine against raw sqlite3, in one run on one machine.

Run from the repository root::

    python bench/storage.py [--seconds N] [--json] [--dir PATH]

Each operation is timed for a fixed time after a short warm-up, through
``fdb_backend.open_database("embedded:///...")`` and with plain ``sqlite3`` statements on a
second file with the same table (``kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT
ROWID``), WAL and ``synchronous=FULL`` on both, the two sides taking turns in rounds. Figures
are operations per second; the ratio is engine / raw sqlite3. This is a benchmark, not a
test: it checks nothing except that the contended counters add up. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/storage.py` puts bench/, not the root, first

import fdb.tuple  # fdb_backend makes it work without libfdb_c

import fdb_backend
from bench import common
from fdb_backend.engines import embedded

KEY_COUNT = 10_000
VALUE_SIZE = 200
READS_PER_TRANSACTION = 100
RANGE_LIMIT = 100
PROCESSES = 2
BAR = 0.5  # the engine must reach this fraction of raw sqlite3
ONE = struct.pack("<q", 1)
TENANT = uuid.UUID("6f1c2a52-3f5e-4a3b-9a55-2b7c4e1d9f00")
USERS = fdb.tuple.pack(("t", TENANT, "users"))
USERS_END = USERS + b"\xff"
COUNTER_RMW = fdb.tuple.pack(("t", TENANT, "counters", "rmw"))
COUNTER_ADD = fdb.tuple.pack(("t", TENANT, "counters", "add"))

Op = Callable[[], int]  # does some work, returns how many operations it did


# --- data and connections ------------------------------------------------------------


def make_data(seed: int = 2) -> list[tuple[bytes, bytes]]:
    """10,000 sorted (key, value): 44-byte tuple keys as real user records, 200-byte values."""
    rng = random.Random(seed)
    keys = {
        USERS + fdb.tuple.pack((uuid.UUID(int=rng.getrandbits(128)),)) for _ in range(KEY_COUNT)
    }
    return [(key, rng.randbytes(VALUE_SIZE)) for key in sorted(keys)]


def raw_connect(path: Path) -> sqlite3.Connection:
    """A connection set up as the engine sets up its own: autocommit, WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def raw_create(path: Path, data: list[tuple[bytes, bytes]]) -> sqlite3.Connection:
    conn = raw_connect(path)
    conn.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", data)
    conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (COUNTER_RMW, bytes(8)))
    conn.execute("COMMIT")
    return conn


def engine_create(url: str, data: list[tuple[bytes, bytes]]) -> Any:
    db = fdb_backend.open_database(url)

    @fdb_backend.transactional
    def load(tr: Any) -> None:
        for key, value in data:
            tr[key] = value
        tr[COUNTER_RMW] = bytes(8)

    load(db)
    return db


SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def pragmas(conn: sqlite3.Connection) -> str:
    (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
    (sync,) = conn.execute("PRAGMA synchronous").fetchone()
    return f"journal_mode={journal} synchronous={SYNCHRONOUS[sync]}"


# --- timing --------------------------------------------------------------------------


def run_for(seconds: float, op: Op) -> tuple[int, float]:
    """Call ``op`` until ``seconds`` have passed; return operations done and time taken."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += op()
        now = time.perf_counter()
        if now >= deadline:
            return done, now - start


ROUNDS = 6  # engine and raw take turns, so a burst of other load hits both sides alike


def measure_pair(seconds: float, engine_op: Op, raw_op: Op) -> tuple[float, float, list[float]]:
    """Ops/s of each side over ``seconds`` each, in alternating rounds after a warm-up.

    Returns the engine's and raw's rates over all rounds, and each round's ratio (its
    spread shows how steady the machine was).
    """
    warm_up = min(0.5, seconds / 10)
    run_for(warm_up, engine_op)
    run_for(warm_up, raw_op)
    totals = {"engine": [0, 0.0], "raw": [0, 0.0]}
    ratios = []
    for round_ in range(ROUNDS):
        order = [("engine", engine_op), ("raw", raw_op)]
        rates = {}
        for side, op in order if round_ % 2 == 0 else order[::-1]:
            done, elapsed = run_for(seconds / ROUNDS, op)
            totals[side][0] += done
            totals[side][1] += elapsed
            rates[side] = done / elapsed
        ratios.append(rates["engine"] / rates["raw"])
    engine, raw = (totals[side][0] / totals[side][1] for side in ("engine", "raw"))
    return engine, raw, ratios


def key_stream(keys: list[bytes], seed: int) -> Callable[[], bytes]:
    """Random keys from ``keys``, drawn in advance so both sides pay the same for them."""
    rng = random.Random(seed)
    drawn = [rng.choice(keys) for _ in range(1 << 16)]
    position = [0]

    def next_key() -> bytes:
        position[0] = (position[0] + 1) & 0xFFFF
        return drawn[position[0]]

    return next_key


# --- the operations, engine and raw ----------------------------------------------------


def engine_reads(db: Any, next_key: Callable[[], bytes], per_tr: int) -> Op:
    def op() -> int:
        tr = db.create_transaction()
        for _ in range(per_tr):
            tr[next_key()]
        tr.commit().wait()
        return per_tr

    return op


def raw_reads(conn: sqlite3.Connection, next_key: Callable[[], bytes], per_tr: int) -> Op:
    sql = "SELECT value FROM kv WHERE key = ?"

    def one() -> int:  # autocommit: the SELECT is its own implicit transaction
        conn.execute(sql, (next_key(),)).fetchone()
        return 1

    def many() -> int:
        conn.execute("BEGIN")
        for _ in range(per_tr):
            conn.execute(sql, (next_key(),)).fetchone()
        conn.execute("COMMIT")
        return per_tr

    return one if per_tr == 1 else many


def engine_commits(db: Any, next_key: Callable[[], bytes], value: bytes) -> Op:
    @fdb_backend.transactional
    def put(tr: Any, key: bytes) -> None:
        tr[key] = value

    def op() -> int:
        put(db, next_key())
        return 1

    return op


def raw_commits(conn: sqlite3.Connection, next_key: Callable[[], bytes], value: bytes) -> Op:
    def op() -> int:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (next_key(), value))
        conn.execute("COMMIT")
        return 1

    return op


def engine_ranges(db: Any, next_start: Callable[[], bytes]) -> Op:
    def op() -> int:
        tr = db.create_transaction()
        rows = tr.get_range(next_start(), USERS_END, limit=RANGE_LIMIT)
        tr.commit().wait()
        assert len(rows) == RANGE_LIMIT
        return 1

    return op


def raw_ranges(conn: sqlite3.Connection, next_start: Callable[[], bytes]) -> Op:
    sql = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?"

    def op() -> int:
        rows = conn.execute(sql, (next_start(), USERS_END, RANGE_LIMIT)).fetchall()
        assert len(rows) == RANGE_LIMIT
        return 1

    return op


# --- the contended counter, in separate processes -----------------------------------------


def engine_counter_op(db: Any, kind: str, attempts: list[int]) -> Op:
    @fdb_backend.transactional
    def increment(tr: Any) -> None:
        attempts[0] += 1  # counts every run, so runs - successes = retries
        value = tr[COUNTER_RMW]
        (count,) = struct.unpack("<q", value)
        tr[COUNTER_RMW] = struct.pack("<q", count + 1)

    @fdb_backend.transactional
    def add(tr: Any) -> None:
        attempts[0] += 1
        tr.add(COUNTER_ADD, ONE)

    chosen = increment if kind == "engine-rmw" else add

    def op() -> int:
        chosen(db)
        return 1

    return op


def raw_counter_op(conn: sqlite3.Connection, attempts: list[int]) -> Op:
    def op() -> int:
        attempts[0] += 1
        conn.execute("BEGIN IMMEDIATE")
        (value,) = conn.execute("SELECT value FROM kv WHERE key = ?", (COUNTER_RMW,)).fetchone()
        (count,) = struct.unpack("<q", value)
        conn.execute(
            "UPDATE kv SET value = ? WHERE key = ?", (struct.pack("<q", count + 1), COUNTER_RMW)
        )
        conn.execute("COMMIT")
        return 1

    return op


def slowest_of(op: Op, slowest: list[float]) -> Op:
    """``op``, keeping in ``slowest[0]`` the longest one call took: a starved process shows."""

    def timed() -> int:
        start = time.perf_counter()
        done = op()
        slowest[0] = max(slowest[0], time.perf_counter() - start)
        return done

    return timed


def counter_worker(kind: str, target: str, seconds: float, barrier: Any, results: Any) -> None:
    """One process of the contended counter: warm up, wait for the other, count for a while."""
    db: Any = None
    conn: sqlite3.Connection | None = None
    attempts = [0]
    if kind == "raw-rmw":
        conn = raw_connect(Path(target))
        op = raw_counter_op(conn, attempts)
    else:
        db = fdb_backend.open_database(target)
        op = engine_counter_op(db, kind, attempts)
    warm, _ = run_for(0.1, op)
    slowest = [0.0]
    barrier.wait(timeout=120)  # a worker that failed to start breaks it instead of hanging
    done, elapsed = run_for(seconds, slowest_of(op, slowest))
    results.put(
        {
            "done": done,
            "total": warm + done,
            "attempts": attempts[0],
            "elapsed": elapsed,
            "slowest": slowest[0],
        }
    )
    if db is not None:
        db.close()
    if conn is not None:
        conn.close()


def contended(kind: str, target: str, seconds: float) -> dict[str, Any]:
    """Run ``PROCESSES`` spawned workers on one counter; sum their rates, retries and totals."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=counter_worker, args=(kind, target, seconds, barrier, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=seconds + 180) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
    total = sum(r["total"] for r in reports)
    return {
        "rate": sum(r["done"] / r["elapsed"] for r in reports),
        "retries": sum(r["attempts"] - r["total"] for r in reports),
        "increments": total,
        "per_process": [r["done"] for r in reports],
        "slowest_ms": round(max(r["slowest"] for r in reports) * 1000, 1),
    }


def read_counter_engine(db: Any, key: bytes) -> int:
    value = db[key]
    return struct.unpack("<q", value)[0] if value is not None else 0


def read_counter_raw(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute("SELECT value FROM kv WHERE key = ?", (COUNTER_RMW,)).fetchone()
    return int(struct.unpack("<q", value)[0])


# --- the run ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    unit: str
    engine: float
    raw: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.engine / self.raw if self.raw else float("nan")


def single_process_results(
    db: Any, conn: sqlite3.Connection, keys: list[bytes], seconds: float
) -> list[Result]:
    value = bytes(range(VALUE_SIZE))
    starts = keys[: len(keys) - RANGE_LIMIT]  # every start has 100 keys after it
    specs: list[tuple[str, str, Op, Op]] = [
        (
            f"point reads, {READS_PER_TRANSACTION} per transaction",
            "reads",
            engine_reads(db, key_stream(keys, 1), READS_PER_TRANSACTION),
            raw_reads(conn, key_stream(keys, 1), READS_PER_TRANSACTION),
        ),
        (
            "point reads, 1 per transaction",
            "reads",
            engine_reads(db, key_stream(keys, 2), 1),
            raw_reads(conn, key_stream(keys, 2), 1),
        ),
        (
            "single-key commits",
            "commits",
            engine_commits(db, key_stream(keys, 3), value),
            raw_commits(conn, key_stream(keys, 3), value),
        ),
        (
            f"{RANGE_LIMIT}-key range reads",
            "ranges",
            engine_ranges(db, key_stream(starts, 4)),
            raw_ranges(conn, key_stream(starts, 4)),
        ),
    ]
    results = []
    for name, unit, engine_op, raw_op in specs:
        engine, raw, ratios = measure_pair(seconds, engine_op, raw_op)
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        results.append(Result(name, unit, engine, raw, {"ratio_per_round": spread}))
    return results


def window_cost(db: Any, keys: list[bytes]) -> dict[str, Any]:
    """What the MVCC window keeps under steady single-key commits (docs/storage.md).

    Commits run for longer than the retention, so the write log holds a full window; its
    rows (one per commit), the before-images they hold and their bytes (the images column:
    what the window adds to each row) are counted at the end, with the commit rate.
    """
    retention = embedded.WRITE_LOG_RETENTION_S
    done, elapsed = run_for(
        retention + 1.0, engine_commits(db, key_stream(keys, 5), bytes(VALUE_SIZE))
    )
    conn = sqlite3.connect(f"file:{db.path}?mode=ro", uri=True)
    try:
        blobs = [
            blob
            for (blob,) in conn.execute("SELECT images FROM write_log WHERE images IS NOT NULL")
        ]
        (log_rows,) = conn.execute("SELECT COUNT(*) FROM write_log").fetchone()
    finally:
        conn.close()
    return {
        "commits_per_s": done / elapsed,
        "retention_s": retention,
        "history_rows": len(blobs),
        "history_images": sum(1 for blob in blobs for _ in embedded._decode_images(blob)),
        "history_bytes": sum(len(blob) for blob in blobs),
        "write_log_rows": log_rows,
    }


def counted(kind: str, target: str, seconds: float, read: Callable[[], int]) -> dict[str, Any]:
    """Run a contended counter and check that it moved by the increments that succeeded."""
    before = read()
    stats = contended(kind, target, seconds)
    stats["check"] = "OK" if read() - before == stats["increments"] else "MISMATCH"
    return stats


def counter_notes(side: str, stats: dict[str, Any]) -> dict[str, Any]:
    names = ("retries", "per_process", "slowest_ms", "check")
    return {f"{side}_{name}": stats[name] for name in names if name in stats}


def counter_results(
    db: Any, url: str, conn: sqlite3.Connection, raw_path: Path, seconds: float
) -> list[Result]:
    engine_rmw = counted("engine-rmw", url, seconds, lambda: read_counter_engine(db, COUNTER_RMW))
    engine_add = counted("engine-add", url, seconds, lambda: read_counter_engine(db, COUNTER_ADD))
    raw_rmw = counted("raw-rmw", str(raw_path), seconds, lambda: read_counter_raw(conn))
    del raw_rmw["retries"]  # BEGIN IMMEDIATE waits for the lock: nothing to retry
    return [
        Result(
            f"counter read-modify-write (RMW), {PROCESSES} processes",
            "increments",
            engine_rmw["rate"],
            raw_rmw["rate"],
            {**counter_notes("engine", engine_rmw), **counter_notes("raw", raw_rmw)},
        ),
        Result(
            f"counter atomic add, {PROCESSES} processes (raw: RMW)",
            "increments",
            engine_add["rate"],
            raw_rmw["rate"],
            counter_notes("engine", engine_add),
        ),
    ]


def bars(results: list[Result]) -> list[dict[str, Any]]:
    """The bar: point reads and commits at least half as fast as raw sqlite3."""
    checked = [r for r in results if r.unit in ("reads", "commits")]
    return [
        {"name": r.name, "ratio": r.ratio, "minimum": BAR, "passed": r.ratio >= BAR}
        for r in checked
    ]


def machine() -> dict[str, Any]:
    model = common.cpu_model()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_1min": os.getloadavg()[0],  # other work on the machine skews the figures
    }


def command(seconds: float, directory: str | None) -> str:
    """The command line that reproduces the figures, from the repository root."""
    words = ["python", "bench/storage.py", "--seconds", f"{seconds:g}"]
    if directory:
        words += ["--dir", directory]
    return shlex.join(words)


def revision() -> str:
    return common.revision("fdb_backend")


def run(seconds: float, directory: str | None) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    host = machine()  # before the run, so the load average is the machine's, not ours
    tmp = Path(tempfile.mkdtemp(prefix="coditect-bench-", dir=directory))
    try:
        data = make_data()
        keys = [key for key, _ in data]
        url = f"embedded://{tmp / 'store.sqlite3'}"
        raw_path = tmp / "raw.sqlite3"
        db = engine_create(url, data)
        conn = raw_create(raw_path, data)
        try:
            settings = {"engine": pragmas(db._writer), "raw": pragmas(conn)}
            results = single_process_results(db, conn, keys, seconds)
            window = window_cost(db, keys)
            results += counter_results(db, url, conn, raw_path, seconds)
        finally:
            db.close()
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": revision(),
        "command": command(seconds, directory),
        "store": str(tmp.parent),
        "settings": settings,
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
        "bars": bars(results),
        "window": window,
        "machine": host,
    }


# --- output ----------------------------------------------------------------------------


def format_notes(notes: dict[str, Any]) -> list[str]:
    """One line per side: ``engine_retries=3`` is shown as ``engine: retries=3``."""
    by_side: dict[str, list[str]] = {}
    for name, value in notes.items():
        side, _, what = name.partition("_")
        if side not in ("engine", "raw"):
            side, what = "", name
        by_side.setdefault(side, []).append(f"{what}={value}")
    return [
        f"    {side + ': ' if side else ''}{', '.join(items)}" for side, items in by_side.items()
    ]


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{'operation':<52} {'unit':<10} {'engine/s':>10} {'sqlite3/s':>10} {'ratio':>6}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['name']:<52} {r['unit']:<10} {r['engine']:>10,.0f} {r['raw']:>10,.0f}"
            f" {r['ratio']:>6.2f}"
        )
        lines += format_notes(r["notes"])
    lines.append("")
    lines.append(
        f"bar: point reads >= {BAR:.0%} of raw sqlite3, commits >= {BAR:.0%} of raw sqlite3"
    )
    for b in report["bars"]:
        verdict = "PASS" if b["passed"] else "FAIL"
        lines.append(f"  {verdict}  {b['name']}: {b['ratio']:.3f}")
    w = report.get("window")
    if w:
        lines += [
            "",
            f"MVCC window: {w['history_rows']:,} write_log rows with before-images"
            f" ({w['history_images']:,} images, {w['history_bytes']:,} bytes),"
            f" {w['write_log_rows']:,} write_log rows in all after {w['retention_s'] + 1:.0f} s of"
            f" single-key commits at {w['commits_per_s']:,.0f}/s ({VALUE_SIZE}-byte values)",
        ]
    m = report["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}",
        f"         {m['platform']}, load average {m['load_1min']:.2f} at start",
        f"stores:  {report['store']} (engine {report['settings']['engine']};"
        f" raw {report['settings']['raw']})",
        f"date:    {report['date']}, revision {report['revision']}",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--dir", default=None, help="where the temporary stores go (a disk)")
    args = parser.parse_args(argv)
    report = run(args.seconds, args.dir)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""gunicorn config hooks for bench/percore.py --profile: cProfile in every thread of a worker,
timed by the thread's own CPU time (``time.thread_time``), so threads waiting for the GIL, a
lock or the network count nothing, and C calls (SQLite's steps) count for what they cost.

Written to ``$CODITECT_BENCH_PROFILE_DIR/<pid>.pstats`` when the worker exits.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import threading
import time
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start() -> None:
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()


def _hook(frame: Any, event: str, arg: Any) -> None:
    _start()  # the first event of a new thread: from here on its own profiler runs


def post_worker_init(worker: Any) -> None:
    threading.setprofile(_hook)
    _start()


def worker_exit(server: Any, worker: Any) -> None:
    out = os.environ.get("CODITECT_BENCH_PROFILE_DIR")
    if not out:
        return
    with _lock:
        profiles = list(_profiles)
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(os.path.join(out, f"{os.getpid()}.pstats"))

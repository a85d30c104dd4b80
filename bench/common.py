"""What every benchmark reports the same way: the CPU, the revision measured, and the
platform's per-core command line."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def cpu_model() -> str:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return model


def revision(*apps: str) -> str:
    """The commit measured, and the Python files of ``apps`` that differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
        status = git("status", "--porcelain", *apps)
    except OSError:
        return "unknown"
    changed = [line[3:] for line in status.splitlines() if line[3:].endswith(".py")]
    return f"{head} (modified: {', '.join(changed)})" if changed else head


def hash_concurrency_env(processes: int) -> dict[str, str]:
    """The environment of one of ``processes`` platform processes sharing this machine:
    password hashes at once per process, the cores divided among them, as
    docs/configuration.md advises (CODITECT_ARGON2_CONCURRENCY)."""
    cores = len(os.sched_getaffinity(0))
    return {"CODITECT_ARGON2_CONCURRENCY": str(max(1, cores // processes))}


def platform_daphne(*where: str) -> list[str]:
    """One daphne process of the platform as operators start it (``make start``, docs/
    operations.md): ``python -m coditect.serve``, daphne with the platform's options, at
    verbosity 0 (no access-log line per request, as the comparison's launcher runs daphne).
    ``where``: daphne's listening options (``-b HOST -p PORT``, ``--fd N``)."""
    return [sys.executable, "-m", "coditect.serve", *where, "--verbosity", "0"]


def platform_percore(port: int, processes: int) -> list[str]:
    """The platform's per-core deployment (docs/operations.md, ``python -m coditect.percore``):
    nginx on ``port`` balancing each request over a REST process (uvicorn and the API lane)
    and a daphne per core. All in the launcher's process group (start it in a session of its
    own: the group's CPU is the deployment's); the in-process channel layer, for REST loads."""
    return [
        *(sys.executable, "-m", "coditect.percore", "--processes", str(processes)),
        *("--bind", f"{HOST}:{port}", "--one-group", "--local-layer"),
    ]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log = getattr(proc, "log_path", None)
            tail = Path(log).read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}:\n{tail}")
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"server on port {port} not listening after {timeout} s")
        time.sleep(0.1)


def redis_flush(url: str) -> str | None:
    """FLUSHDB on ``url``; the reason it failed, or None."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        client.flushdb()
        client.close()
    except Exception as error:  # any failure means: no Redis variant
        return f"{type(error).__name__}: {error}"
    return None


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (NaN for none): what every benchmark that
    keeps its samples reports as p50 and p99."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]

"""ReusedRequestThreads: each request's thread-sensitive work on a kept thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asgiref.sync import sync_to_async

from coditect.request_threads import ReusedRequestThreads


async def _receive() -> Any:
    return {}


async def _send(message: Any) -> None:
    return None


def _app(
    block: threading.Event | None = None,
    seen: list[int] | None = None,
    started: list[int] | None = None,
) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        def work() -> int:
            if started is not None:
                started.append(threading.get_ident())
            if block is not None:
                block.wait(5)
            return threading.get_ident()

        # Two calls, as Django makes (request_started, then the view): one thread for both.
        first = await sync_to_async(work)()
        second = await sync_to_async(threading.get_ident)()
        assert first == second
        if seen is not None:
            seen.append(first)

    return app


async def test_requests_one_after_another_share_one_kept_thread() -> None:
    seen: list[int] = []
    threads = ReusedRequestThreads(_app(seen=seen))
    for _ in range(5):
        await threads({"type": "http"}, _receive, _send)
    assert len(set(seen)) == 1
    assert seen[0] != threading.get_ident()


async def test_concurrent_requests_get_threads_of_their_own() -> None:
    seen: list[int] = []
    release = threading.Event()
    threads = ReusedRequestThreads(_app(block=release, seen=seen))
    running = [asyncio.create_task(threads({"type": "http"}, _receive, _send)) for _ in range(4)]
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.gather(*running)
    assert len(set(seen)) == 4
    # All four are kept, and the next four requests reuse them.
    again: list[int] = []
    threads.app = _app(seen=again)
    await asyncio.gather(*(threads({"type": "http"}, _receive, _send) for _ in range(4)))
    assert set(again) <= set(seen)


async def test_a_thread_still_busy_after_a_cancelled_request_is_not_kept() -> None:
    started: list[int] = []
    release = threading.Event()
    threads = ReusedRequestThreads(_app(block=release, started=started))
    task = asyncio.create_task(threads({"type": "http"}, _receive, _send))
    await asyncio.sleep(0.2)
    assert len(started) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert threads._idle == []
    release.set()
    later: list[int] = []
    threads.app = _app(seen=later)
    await threads({"type": "http"}, _receive, _send)
    assert later and later[0] != started[0]


async def test_keeps_at_most_keep_idle_threads() -> None:
    release = threading.Event()
    threads = ReusedRequestThreads(_app(block=release), keep_idle=2)
    running = [asyncio.create_task(threads({"type": "http"}, _receive, _send)) for _ in range(5)]
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.gather(*running)
    assert len(threads._idle) == 2


async def test_other_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    threads = ReusedRequestThreads(app)
    await threads({"type": "websocket"}, _receive, _send)
    await threads({"type": "lifespan"}, _receive, _send)
    assert calls == ["websocket", "lifespan"]
    assert threads._idle == []

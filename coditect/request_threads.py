"""Each HTTP request's thread-sensitive work on a thread kept from earlier requests.

Django gives every ASGI request a ThreadSensitiveContext of its own, so the request's sync
work (the ``request_started`` and ``request_finished`` signals, sync middleware and views)
runs on a thread made for that request and joined after it: a thread start and a join per
request, about 0.3 ms of CPU each on the machines we measured (docs/benchmarks.md). This ASGI
middleware hands each request a one-thread executor from a free list instead; Django's own
context nests inside it and uses it. Like a WSGI worker's thread, the thread serves one request
at a time and then the next.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
App = Callable[[Scope, Any, Any], Awaitable[None]]

# Threads kept idle between requests; more concurrent requests than this start new threads,
# which end with their request.
KEEP_IDLE = 64


class RequestThread(ThreadPoolExecutor):
    """One thread, and whether it has work in hand."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._lock = threading.Lock()
        self._pending = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def idle(self) -> bool:
        with self._lock:
            return self._pending == 0


class ReusedRequestThreads:
    def __init__(self, app: App, *, keep_idle: int = KEEP_IDLE) -> None:
        self.app = app
        self.keep_idle = keep_idle
        self._idle: list[RequestThread] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        thread = self._idle.pop() if self._idle else RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.app(scope, receive, send)
        finally:
            # A cancelled request can leave its sync call running; that thread is not reused.
            if thread.idle() and len(self._idle) < self.keep_idle:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)

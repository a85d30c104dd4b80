"""What higher layers plug into workspaces.

A lower app never imports a higher one (docs/architecture.md), so where workspaces needs an
answer only a higher app has, it offers a hook and that app registers itself in its
``AppConfig.ready``. The sessions list shows live connection counts, which the realtime app
keeps; without it (a process that serves no sockets, or a test without it) every count is 0.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class LiveCounts(Protocol):
    def __call__(
        self, *, db: Any, principal: Any, session_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, int]: ...


_live_counts: list[LiveCounts] = []


def live_counts_register(counter: LiveCounts) -> None:
    """Make ``counter`` the source of live connection counts (the last one registered wins)."""
    _live_counts[:] = [counter]


def live_counts(*, db: Any, principal: Any, session_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many live connections each session has, by the registered counter."""
    if not _live_counts:
        return dict.fromkeys(session_ids, 0)
    return _live_counts[0](db=db, principal=principal, session_ids=session_ids)

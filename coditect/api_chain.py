"""Whether the middleware being built is that of a handler serving API paths only.

The API lane (coditect/api_lane.py) builds its own middleware chain within ``api_chain()``;
the page middleware (coditect/pages_only.py), which would hand every API request on
untouched, leaves itself out of that chain (MiddlewareNotUsed). A module of its own: the lane
is imported before Django is set up, the page middleware only after.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_building = contextvars.ContextVar("building_api_chain", default=False)


@contextlib.contextmanager
def api_chain() -> Iterator[None]:
    """While a handler that serves API paths only loads its middleware."""
    token = _building.set(True)
    try:
        yield
    finally:
        _building.reset(token)


def building_api_chain() -> bool:
    return _building.get()

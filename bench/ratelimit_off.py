"""The platform's ASGI application with the API's rate limits taken out: the baseline that
bench/ratelimit.py measures their cost against (``daphne bench.ratelimit_off:application``).

Every authenticated request is allowed without spending anything, and no RateLimit-* header is
written; all else is ``coditect.asgi:application`` unchanged. Never serve this.
"""

from __future__ import annotations

from typing import Any

from coditect.asgi import application  # first: it sets Django up


def _take_out_rate_limits() -> None:
    import accounts.authentication
    import coditect.middleware
    from accounts.ratelimit import RateLimit

    allowed = RateLimit(allowed=True, limit=0, remaining=0, reset=0)

    def spend(**kwargs: Any) -> RateLimit:
        return allowed

    def nothing(request: Any) -> None:
        return None

    accounts.authentication.rate_limit_spend = spend
    coditect.middleware.rate_limit_of = nothing


_take_out_rate_limits()

__all__ = ["application"]

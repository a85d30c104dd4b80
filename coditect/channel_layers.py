"""The Channels layer configuration: in-memory for one process, Redis for several."""

from __future__ import annotations

from typing import Any


def channel_layers_config(redis_url: str) -> dict[str, Any]:
    if not redis_url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels_redis waits up to 5 s on Redis for new messages; redis-py 8 gives up
            # reading after 5 s by default, which would kill every quiet socket.
            "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": 30}]},
        }
    }

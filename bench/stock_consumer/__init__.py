"""A stock Channels consumer: the baseline bench/realtime.py compares the platform's socket with.

Run (repository root)::

    DJANGO_SETTINGS_MODULE=bench.stock_consumer.settings \
        daphne -b 127.0.0.1 -p 8003 bench.stock_consumer.asgi:application

No auth, no persistence, no checks: the least a fan-out over a Channels group can do.
``REDIS_URL`` switches the channel layer from in-memory to channels_redis.
"""

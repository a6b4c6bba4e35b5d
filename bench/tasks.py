"""Benchmark-only Celery tasks (the worker started by bench/flow.py loads them with `--include`)."""

from __future__ import annotations

import time

from controlplane.celery import app


@app.task(name="bench.tasks.hop")
def hop(remaining: int, key: str) -> None:
    """One no-op hop: send the next one, or, as the last, write the time to Redis under `key`."""
    if remaining > 1:
        hop.apply_async(args=[remaining - 1, key])
        return
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).set(key, time.time_ns(), ex=600)

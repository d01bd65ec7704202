"""Redis for the limit and routing tests: skipped without TEST_REDIS_URL; each user gets a key prefix of its
own, deleted afterwards (the CI Redis is shared with other runs)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

REDIS_ENV = "TEST_REDIS_URL"
SKIP_REASON = f"needs a Redis server: set {REDIS_ENV}, e.g. redis://127.0.0.1:6379/0"
needs_redis = pytest.mark.skipif(not os.environ.get(REDIS_ENV), reason=SKIP_REASON)


def new_prefix() -> str:
    return f"rp-test-{uuid.uuid4().hex[:8]}:"


@asynccontextmanager
async def async_redis(prefix: str) -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(os.environ[REDIS_ENV])
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@contextmanager
def sync_redis(prefix: str) -> Iterator[Any]:
    if not os.environ.get(REDIS_ENV):
        pytest.skip(SKIP_REASON)
    import redis

    client = redis.Redis.from_url(os.environ[REDIS_ENV])
    try:
        yield client
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()

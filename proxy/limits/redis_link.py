"""`RedisLink`: the Redis connection behind shared limits, and what happens while it does not answer.

After a failure the link reports itself down for `REDIS_RETRY_SECONDS`, so calls count in this process
instead of each waiting on a dead connection; one warning is logged when it goes down and one when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .redis_counters import RedisCounters

log = logging.getLogger("proxy.governance")

REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5


class RedisLink:
    def __init__(self, role: str | None = "rate limits and budgets are counted in this process") -> None:
        self.role = role
        """What happens while Redis is away, for the warning; None: the link's user warns itself."""
        self.counters: RedisCounters | None = None
        """Set once connected (whether or not Redis answers right now)."""
        self.errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
        """What a Redis call raises when Redis is away."""
        self._client: Any = None
        self._down_until = 0.0
        self._degraded = False

    def connect(self, url: str | None, prefix: str) -> None:
        if not url:
            return
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError:
            log.error("redis_url is set but the redis package is missing (pip install 'rerank-proxy[redis]'); "
                      "rate limits and budgets are counted per process")
            return
        self.errors = (RedisError, OSError, asyncio.TimeoutError)
        self._client = aioredis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0))
        self.counters = RedisCounters(self._client, prefix)

    def client(self) -> Any:
        """The Redis client for other users of this connection (the result cache), or None when not
        configured or down."""
        if self._client is None or time.monotonic() < self._down_until:
            return None
        return self._client

    def available(self) -> RedisCounters | None:
        """The shared counters, or None when not configured or down."""
        if self.counters is None or time.monotonic() < self._down_until:
            return None
        return self.counters

    def failed(self, exc: BaseException) -> None:
        if not self._degraded and self.role is not None:
            log.warning("Redis unavailable (%s); %s until it answers again (retried every %.0fs)",
                        type(exc).__name__, self.role, REDIS_RETRY_SECONDS)
            self._degraded = True
        self._down_until = time.monotonic() + REDIS_RETRY_SECONDS

    def ok(self) -> None:
        if self._degraded:
            log.warning("Redis is back")
            self._degraded = False

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

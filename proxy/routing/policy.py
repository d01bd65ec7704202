"""Retries and time limits: how many attempts an alias gets, how long to wait between them, when to stop.

Moving to a deployment not yet tried in this request is immediate; trying one again waits a jittered
exponential backoff (`retry_after` doubling per retry, at most `max_retry_after`), and at least the
upstream's `Retry-After` when it sent one (also capped). An overall `timeout` bounds every attempt and
wait of one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from random import Random


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int = 2
    retry_after: float = 0.05
    """Backoff base, seconds: the first retry waits about this long, each later one twice as long."""
    max_retry_after: float = 2.0
    """Cap on any single wait, including an upstream's Retry-After."""
    timeout: float | None = None
    """Overall limit for one request across all attempts, seconds."""

    def __post_init__(self) -> None:
        if self.num_retries < 0:
            raise ValueError(f"num_retries must be >= 0, got {self.num_retries}")
        if self.retry_after < 0 or self.max_retry_after < 0:
            raise ValueError("retry_after and max_retry_after must be >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")

    def attempts_for(self, deployments: int) -> int:
        """Attempts one alias gets: 1 + num_retries, and at least one per deployment."""
        return max(1 + self.num_retries, deployments)

    def wait(self, retry: int, upstream_retry_after: float | None, rng: Random) -> float:
        """Seconds to wait before retry number `retry` (0 first): equal-jitter exponential backoff."""
        step = min(self.max_retry_after, self.retry_after * (2 ** retry))
        delay = step / 2 + rng.uniform(0, step / 2)
        if upstream_retry_after:
            delay = max(delay, min(upstream_retry_after, self.max_retry_after))
        return delay

    def deadline(self) -> float | None:
        return time.monotonic() + self.timeout if self.timeout is not None else None

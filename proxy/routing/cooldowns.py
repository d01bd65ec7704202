"""Cooldowns: a deployment that keeps failing is skipped for a while, so requests stop paying for it.

After `allowed_fails` failures within a minute a deployment cools down for `cooldown_time` seconds. An
upstream rate limit (429) or a refusal of our credentials (401/403) cools it at once: calling again
cannot help. A 429's Retry-After makes the cooldown at least that long, capped at `max_cooldown_time`.
The caller's own bad requests never count. A cooled deployment is still tried when nothing else is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ProxyError, UpstreamAuthError, UpstreamRateLimitError
from .state import State

log = logging.getLogger("proxy.routing")

FAILURE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    max_cooldown_time: float = 60.0

    def __post_init__(self) -> None:
        if self.allowed_fails < 1:
            raise ValueError(f"allowed_fails must be >= 1, got {self.allowed_fails}")
        if self.cooldown_time < 0 or self.max_cooldown_time < 0:
            raise ValueError("cooldown_time and max_cooldown_time must be >= 0")

    def immediate(self, error: ProxyError) -> float | None:
        """Cooldown seconds for an error that cools at once, None for one that is counted."""
        if isinstance(error, UpstreamRateLimitError):
            hinted = min(error.retry_after or 0.0, self.max_cooldown_time)
            return max(self.cooldown_time, hinted)
        if isinstance(error, UpstreamAuthError):
            return self.cooldown_time
        return None


class Cooldowns:
    """Applies a `CooldownPolicy` to failures, keeping the numbers in a `State`."""

    def __init__(self, state: State, policy: CooldownPolicy):
        self.state = state
        self.policy = policy

    async def failed(self, member_id: str, error: ProxyError, now: float) -> float:
        """Record a failed attempt; the time the deployment is cooled until (0 when it is not)."""
        if not error.retryable or self.policy.cooldown_time <= 0:
            return 0.0
        seconds = self.policy.immediate(error)
        if seconds is None:
            failures = await self.state.count_failure(member_id, now, FAILURE_WINDOW)
            if failures < self.policy.allowed_fails:
                return 0.0
            seconds = self.policy.cooldown_time
            reason = f"{failures} failures within {FAILURE_WINDOW:g}s"
        else:
            reason = f"upstream answered {getattr(error, 'upstream_status', None) or error.status}"
        until = now + seconds
        self.state.cool(member_id, until, now)
        log.warning("deployment %s cooled down for %.3gs after %s (last: %s)", member_id, seconds, reason,
                    error.kind)
        return until

    def recovered(self, member_id: str) -> None:
        self.state.recover(member_id)

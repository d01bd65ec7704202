"""Our own per-deployment limits: `rpm`/`tpm` this minute (when enforced) and `max_parallel_requests` in flight.

A deployment at one of them is skipped for the rest of the request, without calling it. When nothing else
can serve, each such refusal is a `DeploymentAtCapacityError` (429) whose Retry-After says when it frees
up: the next minute for rpm/tpm, a second for calls in flight.
"""

from __future__ import annotations

from ..errors import DeploymentAtCapacityError
from .state import Stats
from .table import Member

IN_FLIGHT_RETRY_AFTER = 1.0
"""Seconds to wait for a call in flight to end: rerank calls take well under a second."""


def at_capacity(member: Member, stats: Stats, now: float, minute: int, enforce: bool
                ) -> DeploymentAtCapacityError | None:
    """Why `member` takes no call now, or None when it may: rpm/tpm only if `enforce`, then calls in flight."""
    if enforce:
        if member.rpm is not None and stats.used_in(minute) >= member.rpm:
            return rpm_full(member, now)
        if member.tpm is not None and stats.tokens_in(minute) >= member.tpm:
            return DeploymentAtCapacityError(f"deployment '{member.id}' is at its tpm limit ({member.tpm}/min)",
                                             retry_after=60 - now % 60)
    if member.max_parallel is not None and stats.busy + stats.others >= member.max_parallel:
        return parallel_full(member)
    return None


def rpm_full(member: Member, now: float) -> DeploymentAtCapacityError:
    return DeploymentAtCapacityError(f"deployment '{member.id}' is at its rpm limit ({member.rpm}/min)",
                                     retry_after=60 - now % 60)


def parallel_full(member: Member) -> DeploymentAtCapacityError:
    return DeploymentAtCapacityError(
        f"deployment '{member.id}' is at its max_parallel_requests ({member.max_parallel} calls in flight)",
        retry_after=IN_FLIGHT_RETRY_AFTER)

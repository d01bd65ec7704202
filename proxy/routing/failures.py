"""When every attempt of a request failed: one error keeping every cause, its Retry-After, one log line.

Only the failure path reads this, so the router's request path stays short.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..errors import AllDeploymentsFailedError, ProxyError
from .outcome import Outcome, Trip
from .state import State
from .table import Member

log = logging.getLogger("proxy.routing")


def all_failed(alias: str, query: str, outcome: Outcome, trip: Trip, *, chain_members: Iterable[Member],
               state: State, max_cooldown_time: float, now: float) -> AllDeploymentsFailedError:
    """The caller's error for a request nothing could serve; logs one line listing every cause."""
    causes: list[tuple[str, ProxyError]] = list(outcome.attempts)
    attempted = {d for d, _ in causes}
    causes += [(dep_id, full) for dep_id, full in trip.full.items() if dep_id not in attempted]
    wait = retry_after(causes, chain_members, state, max_cooldown_time, now)
    error = AllDeploymentsFailedError(alias, causes, retry_after=wait, timed_out=trip.timed_out)
    described = "; ".join(describe(dep_id, exc, query) for dep_id, exc in causes)
    # Refusals at our own limits reached no upstream: INFO, so a busy minute does not flood the log.
    level = logging.WARNING if outcome.attempts or not trip.full else logging.INFO
    log.log(level, "all deployments failed for model '%s'%s: %s", alias,
            " (overall timeout)" if trip.timed_out else "", described or "no deployment was available")
    return error


def retry_after(causes: list[tuple[str, ProxyError]], chain_members: Iterable[Member], state: State,
                max_cooldown_time: float, now: float) -> float:
    """The causes' longest hint (capped), else the soonest end of a cooldown in the chain, else 1 s."""
    hinted = [exc.retry_after for _, exc in causes if exc.retry_after]
    if hinted:
        return min(max(hinted), max(max_cooldown_time, 1.0))
    cooling = [until - now for m in chain_members if (until := state.cooled_until(m.id)) > now]
    return min(cooling) if cooling else 1.0


def describe(deployment_id: str, error: ProxyError, query: str) -> str:
    """One cause for the log: deployment, error kind and a short message with the query cut out."""
    message = error.message.replace(query, "<query>") if query and len(query) > 2 else error.message
    if len(message) > 300:
        message = message[:300] + "..."
    return f"{deployment_id} {error.kind}: {message}"

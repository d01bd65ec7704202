"""What one routed request carries: the caller's `Outcome` and the router's own bookkeeping (`Trip`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import DeploymentAtCapacityError, InternalError, ProxyError
from ..normalise import Ranked
from ..providers import Deployment
from .state import Stats

if TYPE_CHECKING:
    from .plan import Plan
    from .table import Group


@dataclass(slots=True)
class Outcome:
    """What the router did for one call, for headers, spend rows and logs."""

    response: Ranked | None = None
    deployment: Deployment | None = None
    alias: str = ""
    fallback_used: bool = False
    upstream_ms: float = 0.0
    attempts: list[tuple[str, ProxyError]] = field(default_factory=list)
    timeline: list[tuple[Deployment, float, float, ProxyError | None]] = field(default_factory=list)
    """(deployment, perf_counter start, end, error) of every attempt: trace spans are built from it."""

    def answer(self) -> Ranked:
        """The response of a route that returned (a route that fails raises instead, so None here is a bug)."""
        if self.response is None:
            raise InternalError()
        return self.response


class Trip:
    """One request's bookkeeping across aliases: what was tried, cooled, full, and the time left."""

    __slots__ = ("plan", "groups", "deadline", "tried", "cooled", "full", "spent", "retries", "last_error", "views",
                 "timed_out", "repeats", "unusable")

    def __init__(self, plan: Plan, deadline: float | None):
        self.plan = plan
        """The routing plan this request started with (a reload mid-request does not change it)."""
        self.groups: Mapping[str, Group] = plan.groups
        """Alias → the members this request may reach: the plan's, or narrowed to its tags (tagging.py)."""
        self.deadline = deadline
        self.tried: set[str] = set()
        self.cooled: set[str] = set()
        self.full: dict[str, DeploymentAtCapacityError] = {}
        """Deployments skipped at one of our own limits (rpm, tpm, max_parallel_requests) → why."""
        self.spent: dict[str, int] = {}
        self.retries = 0
        self.last_error: dict[str, ProxyError] = {}
        self.views: dict[str, Sequence[Stats]] = {}
        self.timed_out = False
        self.repeats: dict[str, int] = {}
        """Deployment id → times it was tried again in this request (checked against its `max_retries`)."""
        self.unusable: set[str] = set()
        """Deployments that cannot be called as configured (ConfigurationError): never tried again."""

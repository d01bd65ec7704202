"""Budgets and rate limits: what a call counts against (`rules`), and where the counting happens —
per process (`local`) or shared by every replica through Redis (`redis_counters`, over the process's
`RedisLink`)."""

from __future__ import annotations

from .end_users import EndUserRecords
from .local import LocalCounters, Refused
from .periods import current_period
from .redis_counters import RedisCounters, SharedAdmission
from .rules import Limit, ProxyBudget, call_limits, refusal

__all__ = [
    "EndUserRecords", "Limit", "LocalCounters", "ProxyBudget", "RedisCounters", "Refused",
    "SharedAdmission", "call_limits", "current_period", "refusal",
]

"""What one call must fit in: the rate limits and budgets of its key, user, team, end-user, tags and the proxy.

A `Limit` names a counter (shared by every call that counts against it), its ceiling and, for budgets,
the current period and the spend the database already holds for it. `refusal` turns the first limit
that does not fit into the 429 the caller sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..errors import RateLimitError
from ..spend.records import CustomerRecord, KeyRecord
from .periods import current_period

RPM_WINDOW_SECONDS = 60.0
TPM_MINUTE_SECONDS = 60


def tpm_minute(now: datetime) -> int:
    """The wall-clock minute a `tpm_limit` counts in (the same on every replica)."""
    return int(now.timestamp()) // TPM_MINUTE_SECONDS


def seconds_to_next_minute(now: datetime) -> int:
    """Whole seconds until the next minute starts (1 to 60): a refused call may retry then."""
    return math.ceil(TPM_MINUTE_SECONDS - now.timestamp() % TPM_MINUTE_SECONDS)


@dataclass(frozen=True, slots=True)
class Limit:
    kind: str
    """"rpm", "tpm", "parallel" or "budget"."""
    counter: str
    """e.g. "key:<hash>", "key:<hash>:model:<alias>", "end_user:<id>", "proxy"."""
    limit: int | Decimal
    label: str
    """Who the limit belongs to, for messages: "key 'team-a'", "end-user 'bob'", "the proxy"."""
    setting: str
    """The config/admin field that set it, e.g. "rpm_limit", "max_budget"."""
    period_end: datetime | None = None
    seed: Decimal = Decimal(0)
    """Budgets: spend the database already holds for the current period."""


@dataclass(frozen=True, slots=True)
class ProxyBudget:
    max_budget: Decimal
    budget_duration: str | None
    spend: Decimal = Decimal(0)
    reset_at: datetime | None = None


def key_label(record: KeyRecord) -> str:
    name = record.key_alias or record.key_name
    return f"key '{name}'" if name else "this key"


def _budget(counter: str, label: str, setting: str, max_budget: Any, reset_at: datetime | None,
            budget_duration: str | None, spend: Any, now: datetime) -> Limit:
    period_end, seed = current_period(reset_at, budget_duration, spend, now)
    return Limit("budget", counter, Decimal(max_budget), label, setting, period_end, seed)


def _holder(limits: list[Limit], counter: str, label: str, record: Any, now: datetime) -> None:
    """A team's, internal user's or tag's rpm, tpm, parallel and budget limits (the fields keys have)."""
    if record.rpm_limit is not None:
        limits.append(Limit("rpm", counter, record.rpm_limit, label, "rpm_limit"))
    if record.tpm_limit is not None:
        limits.append(Limit("tpm", counter, record.tpm_limit, label, "tpm_limit"))
    if record.max_parallel_requests is not None:
        limits.append(Limit("parallel", counter, record.max_parallel_requests, label, "max_parallel_requests"))
    if record.max_budget is not None:
        limits.append(_budget(counter, label, "max_budget", record.max_budget, record.budget_reset_at,
                              record.budget_duration, record.spend, now))


def call_limits(*, key_hash: str | None, key: KeyRecord | None, alias: str, end_user_id: str | None,
                end_user: CustomerRecord | None, default_end_user_budget: Decimal | None, proxy: ProxyBudget | None,
                now: datetime,
                team: Any = None, user: Any = None, tags: tuple[Any, ...] = ()) -> list[Limit]:
    """Every limit this call counts against (empty for most deployments: then nothing is checked): its key,
    the key's internal user and team, its end-user, its tags and the proxy, in that order."""
    limits: list[Limit] = []
    # Most keys set no limit: then no label or counter name is built per call.
    if key is not None and key_hash is not None and (
            key.rpm_limit is not None or key.tpm_limit is not None or key.model_rpm_limit
            or key.max_parallel_requests is not None or key.max_budget is not None):
        label, counter = key_label(key), f"key:{getattr(key, 'key_id', None) or key_hash}"
        if key.rpm_limit is not None:
            limits.append(Limit("rpm", counter, key.rpm_limit, label, "rpm_limit"))
        if key.tpm_limit is not None:
            limits.append(Limit("tpm", counter, key.tpm_limit, label, "tpm_limit"))
        model_limit = (key.model_rpm_limit or {}).get(alias)
        if model_limit is not None:
            limits.append(Limit("rpm", f"{counter}:model:{alias}", int(model_limit), label,
                                f"model_rpm_limit for model '{alias}'"))
        if key.max_parallel_requests is not None:
            limits.append(Limit("parallel", counter, key.max_parallel_requests, label, "max_parallel_requests"))
        if key.max_budget is not None:
            limits.append(_budget(counter, label, "max_budget", key.max_budget, key.budget_reset_at,
                                  key.budget_duration, key.spend, now))
    if user is not None:
        _holder(limits, f"user:{user.user_id}", f"user '{user.user_id}'", user, now)
    if team is not None:
        _holder(limits, f"team:{team.team_id}", f"team '{team.team_id}'", team, now)
    if end_user_id is not None:
        label, counter = f"end-user '{end_user_id}'", f"end_user:{end_user_id}"
        if end_user is not None:
            if end_user.rpm_limit is not None:
                limits.append(Limit("rpm", counter, end_user.rpm_limit, label, "rpm_limit"))
            if end_user.tpm_limit is not None:
                limits.append(Limit("tpm", counter, end_user.tpm_limit, label, "tpm_limit"))
            if end_user.max_parallel_requests is not None:
                limits.append(Limit("parallel", counter, end_user.max_parallel_requests, label,
                                    "max_parallel_requests"))
        if end_user is not None and end_user.max_budget is not None:
            limits.append(_budget(counter, label, "max_budget", end_user.max_budget, end_user.budget_reset_at,
                                  end_user.budget_duration, end_user.spend, now))
        elif default_end_user_budget is not None:
            limits.append(_budget(counter, label, "max_end_user_budget", default_end_user_budget, None, None,
                                  end_user.spend if end_user is not None else 0, now))
    for tag in tags:
        _holder(limits, f"tag:{tag.tag_name}", f"tag '{tag.tag_name}'", tag, now)
    if proxy is not None:
        limits.append(_budget("proxy", "the proxy", "max_budget", proxy.max_budget, proxy.reset_at,
                              proxy.budget_duration, proxy.spend, now))
    return limits


def money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.000001")).normalize(), "f")


def refusal(limit: Limit, *, now: datetime, retry_after: float | None = None,
            used: Decimal | None = None) -> RateLimitError:
    """The 429 for a call that does not fit `limit` (never names the key itself, only its alias)."""
    if limit.kind == "rpm":
        wait = max(1, math.ceil(retry_after)) if retry_after and retry_after > 0 else 1
        return RateLimitError(f"Rate limit exceeded for {limit.label}: {limit.setting} is {limit.limit} "
                              f"requests per minute; retry in {wait}s.", retry_after=wait)
    if limit.kind == "tpm":
        wait = seconds_to_next_minute(now)
        used_now = f" ({int(used)} used this minute)" if used is not None else ""
        return RateLimitError(f"Token rate limit exceeded for {limit.label}: {limit.setting} is {limit.limit} "
                              f"tokens per minute{used_now}; retry in {wait}s.", retry_after=wait)
    if limit.kind == "parallel":
        return RateLimitError(f"Too many parallel requests for {limit.label}: {limit.setting} is {limit.limit}.",
                              retry_after=1)
    spent = f"spent ${money(used)} of" if used is not None else "reached"
    message = f"Budget exceeded for {limit.label}: {spent} {limit.setting} ${money(Decimal(limit.limit))}"
    if limit.period_end is None:
        return RateLimitError(message + "; this budget does not reset (no budget_duration), so retrying will "
                              "not help.", resets=False)
    wait = math.ceil((limit.period_end - now).total_seconds())
    return RateLimitError(message + f"; it resets at {limit.period_end.isoformat()}.", retry_after=max(1, wait))

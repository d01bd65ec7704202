"""What the store returns: frozen records whose fields are the tables' columns (money `Decimal`, times aware UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


class AlreadyExistsError(ValueError):
    """A key with this digest or alias, or an end user with this id, already exists."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key (`verification_tokens` row). `token` is the key's SHA-256 hex digest."""

    token: str
    key_alias: str | None
    key_name: str | None
    user_id: str | None
    models: list[str]
    """Allowed model aliases; empty means all."""
    expires: datetime | None
    blocked: bool
    metadata: dict[str, Any]
    spend: Decimal
    max_budget: Decimal | None
    budget_duration: str | None
    budget_reset_at: datetime | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None
    model_rpm_limit: dict[str, int] | None
    guardrails: list[str] | None
    fallbacks: Any
    created_at: datetime
    updated_at: datetime
    key_id: str
    """Stable across `/key/regenerate` (the digest changes): spend history follows it."""
    team_id: str | None
    tags: list[str] | None
    previous_token: str | None
    """The digest `/key/regenerate` replaced, still accepted until `previous_token_expires`."""
    previous_token_expires: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """An end user (LiteLLM "customer"), named by the `user` field of requests."""

    user_id: str
    alias: str | None
    spend: Decimal
    max_budget: Decimal | None
    budget_duration: str | None
    budget_reset_at: datetime | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None
    blocked: bool
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SpendLogRecord:
    """One `spend_logs` row: the persisted form of a `SpendEvent`."""

    request_id: str
    started_at: datetime
    key_hash: str | None
    key_alias: str | None
    user_id: str | None
    end_user: str | None
    model_alias: str
    deployment: str | None
    provider: str | None
    provider_model: str | None
    search_units: float
    input_tokens: int | None
    total_tokens: int | None
    cost: Decimal
    latency_ms: float
    status: int
    error_class: str | None
    fallback_used: bool
    guardrails: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    key_id: str | None = None
    team_id: str | None = None
    tags: list[str] | None = None
    cache: str | None = None
    """hit | partial | miss when the result cache was consulted."""
    cost_saved: Decimal = Decimal(0)
    """USD the result cache saved (`cost` is what was paid)."""


@dataclass(frozen=True, slots=True)
class ProxySpendRecord:
    """The proxy-wide running total and its optional budget."""

    name: str
    spend: Decimal
    max_budget: Decimal | None
    budget_duration: str | None
    budget_reset_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetHolderRecord:
    """What every budget holder (team, internal user, tag) has: the tables' `_budgeted()` columns."""

    spend: Decimal
    max_budget: Decimal | None
    budget_duration: str | None
    budget_reset_at: datetime | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamRecord(BudgetHolderRecord):
    """A team: its keys may only use `models` (empty: all), and count against its budget and limits."""

    team_id: str
    team_alias: str | None
    models: list[str]
    tags: list[str] | None
    blocked: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord(BudgetHolderRecord):
    """An internal user (LiteLLM's): owns keys (`user_id` on a key), belongs to teams, has a budget."""

    user_id: str
    user_alias: str | None
    user_email: str | None
    user_role: str | None
    models: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TagRecord(BudgetHolderRecord):
    """A request tag with an optional budget and limits."""

    tag_name: str
    description: str | None
    models: list[str] | None


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    team_id: str
    user_id: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One admin change: who, what, the object before and the values after (never a secret)."""

    id: int
    updated_at: datetime
    changed_by: str
    action: str
    table_name: str
    object_id: str
    before_value: dict[str, Any] | None
    updated_values: dict[str, Any] | None

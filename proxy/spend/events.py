"""The spend event: one per request that reached a provider (or was refused by us), success or failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class SpendEvent:
    request_id: str
    started_at: datetime
    """UTC, timezone-aware."""
    model_alias: str
    status: int
    latency_ms: float
    key_hash: str | None = None
    key_alias: str | None = None
    user_id: str | None = None
    """The key owner's `user_id`."""
    end_user: str | None = None
    deployment: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    search_units: float = 0.0
    input_tokens: int | None = None
    total_tokens: int | None = None
    cost: Decimal = Decimal(0)
    error_class: str | None = None
    fallback_used: bool = False
    guardrails: list[dict[str, Any]] | None = None
    """Guardrail decisions, e.g. `[{"name": "pii", "action": "masked"}]`; never the content."""
    metadata: dict[str, Any] | None = field(default=None)
    cache: str | None = None
    """hit | partial | miss when the result cache was consulted."""
    cost_saved: Decimal = Decimal(0)
    """USD the result cache saved (`cost` is what was paid)."""
    key_id: str | None = None
    """The key's stable id (kept across /key/regenerate, unlike `key_hash`)."""
    team_id: str | None = None
    tags: list[str] | None = None
    """The request's tags (body, header, key, team and deployment), for chargeback and tag budgets."""

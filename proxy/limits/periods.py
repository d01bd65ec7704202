"""Which budget period a record is in, computed from the record alone so every replica agrees.

A record's `budget_reset_at` only moves when the background reset runs; until then a passed reset time
means a new period has begun whose spend is zero, whatever the (not yet reset) record says.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from ..spend.durations import Duration, parse_duration


@lru_cache(maxsize=256)
def duration(text: str) -> Duration | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


def current_period(reset_at: datetime | None, budget_duration: str | None, spend: Decimal | None,
                   now: datetime) -> tuple[datetime | None, Decimal]:
    """(end of the current period or None for a lifetime budget, spend recorded in it so far)."""
    recorded = Decimal(spend or 0)
    parsed = duration(budget_duration) if budget_duration else None
    if parsed is None or reset_at is None:
        return None, recorded
    if reset_at > now:
        return reset_at, recorded
    return parsed.next_after(reset_at, now), Decimal(0)

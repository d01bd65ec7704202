"""What a batch of new spend events adds: running totals per budget holder (key, end user, team, internal
user, tag, proxy) and the daily rollup rows that reports read instead of scanning spend logs.

Pure: the ledger turns these into statements. Every list is sorted, so concurrent writers (several workers)
take row locks in one order and cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from .events import SpendEvent
from .tables import ROLLUP_DIMENSIONS
from .transactions import utc_now

MEASURES = ("requests", "errors", "spend", "search_units", "input_tokens", "total_tokens", "cost_saved")


@dataclass(slots=True)
class Measures:
    requests: int = 0
    errors: int = 0
    spend: Decimal = Decimal(0)
    search_units: float = 0.0
    input_tokens: int = 0
    total_tokens: int = 0
    cost_saved: Decimal = Decimal(0)

    def add(self, event: SpendEvent, cost: Decimal) -> None:
        self.requests += 1
        self.errors += event.status >= 400
        self.spend += cost
        self.search_units += event.search_units
        self.input_tokens += event.input_tokens or 0
        self.total_tokens += event.total_tokens or 0
        self.cost_saved += event.cost_saved


RollupKey = tuple[datetime, str, str, str, str, str, str]
"""(day, *ROLLUP_DIMENSIONS) with '' for a dimension the event lacks."""


class Totals(NamedTuple):
    by_key: list[tuple[str, Decimal]]
    """Per key digest, for events without a `key_id` (written before keys had one)."""
    by_key_id: list[tuple[str, Decimal]]
    by_end_user: list[tuple[str, Decimal]]
    by_team: list[tuple[str, Decimal]]
    by_user: list[tuple[str, Decimal]]
    by_tag: list[tuple[str, Decimal]]
    total: Decimal
    at: datetime
    rollups: list[tuple[RollupKey, Measures]]
    end_user_rollups: list[tuple[tuple[datetime, str, str], Measures]]
    tag_rollups: list[tuple[tuple[datetime, str], Measures]]

    @classmethod
    def of(cls, events: Sequence[SpendEvent]) -> Totals:
        holders: dict[str, dict[str, Decimal]] = {name: defaultdict(Decimal) for name in
                                                  ("key", "key_id", "end_user", "team", "user", "tag")}
        rollups: dict[RollupKey, Measures] = defaultdict(Measures)
        end_user_rollups: dict[tuple[datetime, str, str], Measures] = defaultdict(Measures)
        tag_rollups: dict[tuple[datetime, str], Measures] = defaultdict(Measures)
        total = Decimal(0)
        for event in events:
            cost = event.cost if isinstance(event.cost, Decimal) else Decimal(str(event.cost))
            total += cost
            if event.key_id is not None:
                holders["key_id"][event.key_id] += cost
            elif event.key_hash is not None:
                holders["key"][event.key_hash] += cost
            for name, ident in (("end_user", event.end_user), ("team", event.team_id), ("user", event.user_id)):
                if ident is not None:
                    holders[name][ident] += cost
            bucket = day_of(event.started_at)
            rollups[(bucket, *(getattr(event, d) or "" for d in ROLLUP_DIMENSIONS))].add(event, cost)  # type: ignore[index]
            if event.end_user is not None:
                end_user_rollups[(bucket, event.end_user, event.model_alias)].add(event, cost)
            for tag in event.tags or ():
                holders["tag"][tag] += cost
                tag_rollups[(bucket, tag)].add(event, cost)
        by = {name: sorted(values.items()) for name, values in holders.items()}
        return cls(by["key"], by["key_id"], by["end_user"], by["team"], by["user"], by["tag"], total, utc_now(),
                   sorted(rollups.items()), sorted(end_user_rollups.items()), sorted(tag_rollups.items()))


def day_of(moment: datetime) -> datetime:
    """The start of the UTC day `moment` falls in: the rollup bucket. (Hours would multiply the rows by up to
    24 and make a month's report read hundreds of thousands of them.)"""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# statements of the SQLite fast path (the portable ones are built by the ledger) ----------------------

SQLITE_ADD_TO_HOLDERS = (  # (Totals field, statement)
    ("by_key_id", "UPDATE verification_tokens SET spend = spend + ? WHERE key_id = ?"),
    ("by_team", "UPDATE teams SET spend = spend + ? WHERE team_id = ?"),
    ("by_user", "UPDATE internal_users SET spend = spend + ? WHERE user_id = ?"),
    ("by_tag", "UPDATE tags SET spend = spend + ? WHERE tag_name = ?"),
)


def _sqlite_rollup(table: str, key: tuple[str, ...]) -> str:
    columns = (*key, *MEASURES)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES))


SQLITE_ROLLUP = _sqlite_rollup("spend_rollups", ("bucket", *ROLLUP_DIMENSIONS))
SQLITE_END_USER_ROLLUP = _sqlite_rollup("spend_end_user_rollups", ("bucket", "end_user", "model_alias"))
SQLITE_TAG_ROLLUP = _sqlite_rollup("spend_tag_rollups", ("bucket", "tag"))


def measures(m: Measures) -> dict[str, Any]:
    return {name: getattr(m, name) for name in MEASURES}


def sqlite_measures(m: Measures) -> tuple[Any, ...]:
    return (m.requests, m.errors, float(m.spend), m.search_units, m.input_tokens, m.total_tokens,
            float(m.cost_saved))

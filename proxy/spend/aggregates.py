"""What a batch of new spend events adds: running totals per budget holder (key, end user, team, internal
user, tag, proxy) and the hourly rollup rows (with latency histograms) that reports and the admin UI's
charts read instead of scanning spend logs.

Pure: the ledger turns these into statements. Every list is sorted, so concurrent writers (several workers)
take row locks in one order and cannot deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from .encoding import pg_array
from .events import SpendEvent
from .latency import BUCKETS, bucket_of
from .latency import COLUMNS as LATENCY_COLUMNS
from .tables import MODEL_DIMENSIONS, ROLLUP_DIMENSIONS
from .transactions import utc_now

MEASURES = ("requests", "errors", "spend", "search_units", "input_tokens", "total_tokens", "cost_saved")
ROLLUP_COLUMNS = (*MEASURES, *LATENCY_COLUMNS)
"""What a rollup row adds up: the measures, then the latency histogram."""


@dataclass(slots=True)
class Measures:
    requests: int = 0
    errors: int = 0
    spend: Decimal = Decimal(0)
    search_units: float = 0.0
    input_tokens: int = 0
    total_tokens: int = 0
    cost_saved: Decimal = Decimal(0)
    latency: dict[int, int] = field(default_factory=dict)
    """Requests per latency bucket, only the buckets that have some: most rows of a batch hold one request."""

    def add(self, failed: bool, cost: Decimal, event: SpendEvent, bucket: int) -> None:
        self.requests += 1
        self.errors += failed
        self.spend += cost
        self.search_units += event.search_units
        self.input_tokens += event.input_tokens or 0
        self.total_tokens += event.total_tokens or 0
        self.cost_saved += event.cost_saved
        self.latency[bucket] = self.latency.get(bucket, 0) + 1

    def merge(self, other: Measures) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.spend += other.spend
        self.search_units += other.search_units
        self.input_tokens += other.input_tokens
        self.total_tokens += other.total_tokens
        self.cost_saved += other.cost_saved
        for bucket, count in other.latency.items():
            self.latency[bucket] = self.latency.get(bucket, 0) + count

    def histogram(self) -> list[int]:
        """All the buckets' counts, bucket 0 first."""
        counts = [0] * BUCKETS
        for bucket, count in self.latency.items():
            counts[bucket] = count
        return counts


RollupKey = tuple[datetime, str, str, str, str, str, str, str]
"""(hour, *ROLLUP_DIMENSIONS) with '' for a dimension the event lacks."""
TagRollupKey = tuple[datetime, str, str, str, str, str, str, str, str]
"""(hour, tag, *ROLLUP_DIMENSIONS)."""
ModelRollupKey = tuple[datetime, str, str, str]
"""(hour, *MODEL_DIMENSIONS)."""


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
    model_rollups: list[tuple[ModelRollupKey, Measures]]
    tag_rollups: list[tuple[TagRollupKey, Measures]]

    @classmethod
    def of(cls, events: Sequence[SpendEvent]) -> Totals:
        holders: dict[str, dict[str, Decimal]] = {name: defaultdict(Decimal) for name in
                                                  ("key", "key_id", "end_user", "team", "user", "tag")}
        rollups: dict[RollupKey, Measures] = defaultdict(Measures)
        model_rollups: dict[ModelRollupKey, Measures] = defaultdict(Measures)
        tag_rollups: dict[TagRollupKey, Measures] = defaultdict(Measures)
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
            started = event.started_at
            hour = (started.replace(minute=0, second=0, microsecond=0) if started.tzinfo is UTC
                    else hour_of(started))
            failed, bucket = event.status >= 400, bucket_of(event.latency_ms)
            dimensions = (event.key_id or "", event.team_id or "", event.user_id or "", event.end_user or "",
                          event.model_alias or "", event.deployment or "", event.provider or "")
            rollups[(hour, *dimensions)].add(failed, cost, event, bucket)
            for tag in dict.fromkeys(event.tags or ()):  # a tag given twice counts once
                holders["tag"][tag] += cost
                tag_rollups[(hour, tag, *dimensions)].add(failed, cost, event, bucket)
        for key, measures in rollups.items():  # fewer rows than events: summed from the rollup, not added per event
            model_rollups[(key[0], *key[5:])].merge(measures)
        by = {name: sorted(values.items()) for name, values in holders.items()}
        return cls(by["key"], by["key_id"], by["end_user"], by["team"], by["user"], by["tag"], total, utc_now(),
                   sorted(rollups.items()), sorted(model_rollups.items()), sorted(tag_rollups.items()))


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in: the rollup bucket (a day's report sums its hours)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# statements of the SQLite fast path (the portable ones are built by the ledger) ----------------------

SQLITE_ADD_TO_HOLDERS = (  # (Totals field, statement)
    ("by_key_id", "UPDATE verification_tokens SET spend = spend + ? WHERE key_id = ?"),
    ("by_team", "UPDATE teams SET spend = spend + ? WHERE team_id = ?"),
    ("by_user", "UPDATE internal_users SET spend = spend + ? WHERE user_id = ?"),
    ("by_tag", "UPDATE tags SET spend = spend + ? WHERE tag_name = ?"),
)


def _sqlite_rollups(table: str, key: tuple[str, ...]) -> tuple[str, str]:
    """The upserts of a row into `table`: any row, and a row whose requests all fall in one latency bucket
    (most rows of a batch), which binds that bucket's index instead of 50 counts and lets SQLite spread it
    (`?n = i` is 1 or 0, times the requests): 16 values to build and bind instead of 65."""
    columns = ", ".join((*key, *ROLLUP_COLUMNS))
    upsert = (f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
              + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in ROLLUP_COLUMNS))
    width, requests = len(key) + len(MEASURES), len(key) + 1
    spread = [f"?{i}" for i in range(1, width + 1)] + [f"(?{width + 1} = {i}) * ?{requests}" for i in range(BUCKETS)]
    every = ", ".join("?" for _ in (*key, *ROLLUP_COLUMNS))
    return (f"INSERT INTO {table} ({columns}) VALUES ({every}) {upsert}",
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join(spread)}) {upsert}")


ROLLUPS = (  # (Totals field, table, key columns)
    ("rollups", "spend_rollups", ("bucket", *ROLLUP_DIMENSIONS)),
    ("model_rollups", "spend_model_rollups", ("bucket", *MODEL_DIMENSIONS)),
    ("tag_rollups", "spend_tag_rollups", ("bucket", "tag", *ROLLUP_DIMENSIONS)),
)
SQLITE_ROLLUPS = tuple((field, *_sqlite_rollups(table, key)) for field, table, key in ROLLUPS)
"""(Totals field, upsert of any row, upsert of a row with one latency bucket): rows as `sqlite_measures`."""

_PG_TYPES = {"bucket": "timestamptz", "requests": "int4", "errors": "int4", "spend": "numeric",
             "search_units": "float8", "input_tokens": "int8", "total_tokens": "int8", "cost_saved": "numeric"}


def _pg_rollup(table: str, key: tuple[str, ...]) -> str:
    """One upsert per batch and rollup: an array per key column and measure (as the spend rows' insert;
    SQLAlchemy's executemany of ~60 bound values a row doubled the writer's CPU per row), and the latency
    histograms as one rows × buckets array. Under psycopg's 50 parameters and 4,096 characters, so it parses
    the statement once (it parsed the one with an array per bucket on every batch, ~0.25 ms each)."""
    names = (*key, *MEASURES)
    arrays = ", ".join(f"%({name})s::{_PG_TYPES.get(name, 'varchar')}[]" for name in names)
    spread = ", ".join(f"x[n][{i}]" for i in range(1, BUCKETS + 1))
    return (f"INSERT INTO {table} AS r ({', '.join((*names, *LATENCY_COLUMNS))}) "
            f"SELECT {', '.join(names)}, {spread} FROM unnest({arrays}) WITH ORDINALITY AS u({', '.join(names)}, n), "
            f"(SELECT %(latency)s::int4[] AS x) AS h ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{m} = r.{m} + excluded.{m}" for m in ROLLUP_COLUMNS))


PG_ROLLUPS = tuple((field, _pg_rollup(table, key), key) for field, table, key in ROLLUPS)


def pg_rollup_values(key: tuple[str, ...], rows: list[tuple[tuple[Any, ...], Measures]]) -> dict[str, Any]:
    """The arrays a `PG_ROLLUPS` statement takes for `rows` (keys unique: one upsert touches a row once).
    Every column goes as an array literal made here (see `pg_array`; numbers need no quotes)."""
    values: dict[str, Any] = {name: pg_array([k[i] for k, _ in rows]) for i, name in enumerate(key)}
    for name in MEASURES:
        values[name] = _literal([getattr(m, name) for _, m in rows])
    values["latency"] = "{" + ",".join(_literal(m.histogram()) for _, m in rows) + "}"
    return values


def _literal(numbers: Sequence[Any]) -> str:
    return "{" + ",".join(map(str, numbers)) + "}"


def sqlite_measures(m: Measures) -> tuple[Any, ...]:
    """The values after a row's key: all the buckets' counts, or for a row with one bucket just its index
    (as `SQLITE_ROLLUPS`' second statement takes it)."""
    if len(m.latency) == 1:
        return (m.requests, m.errors, float(m.spend), m.search_units, m.input_tokens, m.total_tokens,
                float(m.cost_saved), *m.latency)
    return (m.requests, m.errors, float(m.spend), m.search_units, m.input_tokens, m.total_tokens,
            float(m.cost_saved), *m.histogram())

"""`Ledger`: spend rows and running totals — batches of spend events written once each, the spend-log
query, and the proxy-wide total with its optional budget.

Money is `Decimal`, timestamps aware UTC; a batch is one transaction that takes row locks in sorted order so
several workers writing at once cannot deadlock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Executable, bindparam, select, update
from sqlalchemy.exc import DBAPIError

from .aggregates import (
    PG_ROLLUPS,
    SQLITE_ADD_TO_HOLDERS,
    SQLITE_ROLLUPS,
    Totals,
    pg_rollup_values,
    sqlite_measures,
)
from .encoding import pg_array, to_json
from .events import SpendEvent
from .records import ProxySpendRecord
from .tables import (
    PROXY_ROW,
    end_users,
    internal_users,
    proxy_spend,
    tags,
    teams,
    verification_tokens,
)
from .transactions import Transactions, check_aware, chunks, start_budget_period, utc_now


class _SpendStatements(NamedTuple):
    add_to_keys: Executable
    add_to_key_ids: Executable
    add_to_end_users: Executable
    add_to_proxy: Executable
    add_to_holders: tuple[tuple[str, Executable], ...]
    """(Totals field, statement) for teams, internal users and tags: rows that exist get the cost."""


class Ledger(Transactions):
    def write_batch(self, events: Sequence[SpendEvent]) -> int:
        """Persist events in ONE transaction; returns how many were new.

        Idempotent on `request_id`: an event whose request_id is already logged (a retried batch, a
        re-ingested spill file) is skipped and its cost is not added again. For every new event, its cost
        is added to its key's spend (if the key still exists), to its end user's spend (creating the end
        user on first sight) and to the proxy-wide total. Row locks are taken in sorted order so
        concurrent writers (several workers) cannot deadlock.
        """
        first: dict[str, SpendEvent] = {}
        for event in events:
            check_aware(event.started_at)
            first.setdefault(event.request_id, event)
        unique = list(first.values())
        if not unique:
            return 0
        if self.engine.dialect.name == "sqlite":
            with self._spend_connection.taken() as raw:
                return _write_sqlite(raw, unique)
        with self._write() as connection:
            new = self._insert_postgres_logs(connection, unique)
            if not new:
                return 0
            totals = Totals.of(new)
            statements = self._spend_statements
            if totals.by_key:
                connection.execute(statements.add_to_keys, [{"k": key, "c": cost} for key, cost in totals.by_key])
            if totals.by_key_id:
                connection.execute(statements.add_to_key_ids, [{"k": k, "c": cost} for k, cost in totals.by_key_id])
            for field, statement in statements.add_to_holders:
                if getattr(totals, field):
                    connection.execute(statement, [{"k": k, "c": cost} for k, cost in getattr(totals, field)])
            for field, rollup, key in PG_ROLLUPS:
                if getattr(totals, field):
                    connection.exec_driver_sql(rollup, pg_rollup_values(key, getattr(totals, field)))
            for chunk in chunks(totals.by_end_user):
                connection.execute(
                    statements.add_to_end_users,
                    [
                        {"user_id": user, "spend": cost, "blocked": False, "metadata": {}, "created_at": totals.at}
                        for user, cost in chunk
                    ],
                )
            self._add_proxy_spend(connection, totals.total, totals.at)
        return len(new)

    @cached_property
    def _spend_connection(self) -> HeldConnection:
        return HeldConnection(self.engine)

    def release_spend_connection(self) -> None:
        """Return the connection kept for SQLite spend batches to the pool (before the engine is disposed)."""
        if "_spend_connection" in self.__dict__:
            self._spend_connection.release()

    def _insert_postgres_logs(self, connection: Connection, events: list[SpendEvent]) -> list[SpendEvent]:
        """Insert log rows, skipping request_ids already present; returns the events inserted.

        One statement per chunk with one array per column: ~5x faster than a 10,000-placeholder VALUES list.
        """
        inserted: set[str] = set()
        for chunk in chunks(events):
            columns = {name: pg_array([getattr(event, name) for event in chunk]) for name in LOG_COLUMNS
                       if name not in _JSON_COLUMNS}
            for name in _JSON_COLUMNS:
                columns[name] = pg_array([None if (value := getattr(event, name)) is None else to_json(value)
                                          for event in chunk])
            inserted.update(connection.exec_driver_sql(_PG_UNNEST_INSERT, columns).scalars())
        return [event for event in events if event.request_id in inserted]

    def _add_proxy_spend(self, connection: Connection, amount: Decimal, now: datetime) -> None:
        connection.execute(self._spend_statements.add_to_proxy, {"name": PROXY_ROW, "spend": amount, "updated_at": now})

    @cached_property
    def _spend_statements(self) -> _SpendStatements:
        """Built once: constructing these upserts took most of a batch's fixed cost (~0.5 of 0.9 ms)."""
        add_to_end_users = self._insert(end_users)
        add_to_proxy = self._insert(proxy_spend)

        def add_spend(table: Any, pk: str) -> Executable:
            return (update(table).where(table.c[pk] == bindparam("k"))
                    .values(spend=table.c.spend + bindparam("c", type_=table.c.spend.type)))

        return _SpendStatements(
            add_to_keys=add_spend(verification_tokens, "token"),
            add_to_key_ids=add_spend(verification_tokens, "key_id"),
            add_to_holders=(("by_team", add_spend(teams, "team_id")), ("by_user", add_spend(internal_users, "user_id")),
                            ("by_tag", add_spend(tags, "tag_name"))),
            add_to_end_users=add_to_end_users.on_conflict_do_update(
                index_elements=["user_id"], set_={"spend": end_users.c.spend + add_to_end_users.excluded.spend}
            ),
            add_to_proxy=add_to_proxy.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "spend": proxy_spend.c.spend + add_to_proxy.excluded.spend,
                    "updated_at": add_to_proxy.excluded.updated_at,
                },
            ),
        )

    def get_proxy_spend(self) -> ProxySpendRecord | None:
        """The proxy-wide total; None before the first spend or budget was recorded."""
        with self._read() as connection:
            row = connection.execute(select(proxy_spend).where(proxy_spend.c.name == PROXY_ROW)).one_or_none()
        return None if row is None else ProxySpendRecord(**row._mapping)

    def set_proxy_budget(
        self, *, max_budget: Decimal | None, budget_duration: str | None, now: datetime | None = None
    ) -> ProxySpendRecord:
        """Set (or clear, with None) the proxy-wide budget; a duration starts its first period now."""
        now = now or utc_now()
        values: dict[str, Any] = {"max_budget": max_budget, "budget_duration": budget_duration}
        start_budget_period(values, now, restart=True)
        with self._write() as connection:
            self._add_proxy_spend(connection, Decimal(0), now)
            row = connection.execute(
                update(proxy_spend)
                .where(proxy_spend.c.name == PROXY_ROW)
                .values(**values)
                .returning(*proxy_spend.c)
            ).one()
        return ProxySpendRecord(**row._mapping)


LOG_COLUMNS = {  # the spend_logs columns a SpendEvent fills, with their PostgreSQL array types
    "request_id": "varchar",
    "started_at": "timestamptz",
    "key_hash": "varchar",
    "key_alias": "varchar",
    "user_id": "varchar",
    "end_user": "varchar",
    "model_alias": "varchar",
    "deployment": "varchar",
    "provider": "varchar",
    "provider_model": "varchar",
    "search_units": "float8",
    "input_tokens": "int4",
    "total_tokens": "int4",
    "cost": "numeric",
    "latency_ms": "float8",
    "status": "int4",
    "error_class": "varchar",
    "fallback_used": "bool",
    "guardrails": "text",
    "metadata": "text",
    "cache": "varchar",
    "cost_saved": "numeric",
    "key_id": "varchar",
    "team_id": "varchar",
    "tags": "text",
}
_JSON_COLUMNS = ("guardrails", "metadata", "tags")
_PG_UNNEST_INSERT = (
    f"INSERT INTO spend_logs ({', '.join(LOG_COLUMNS)}) "
    f"SELECT {', '.join(f'{name}::json' if kind == 'text' else name for name, kind in LOG_COLUMNS.items())} "
    f"FROM unnest({', '.join(f'%({name})s::{kind}[]' for name, kind in LOG_COLUMNS.items())}) "
    f"AS t({', '.join(LOG_COLUMNS)}) "
    "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
)


@cache
def _insert_statement(rows: int) -> str:
    """The multi-row INSERT for `rows` rows (built once per size: there are at most ten)."""
    row = f"({', '.join('?' for _ in LOG_COLUMNS)})"
    return f"INSERT INTO spend_logs ({', '.join(LOG_COLUMNS)}) VALUES {', '.join([row] * rows)}"


@cache
def _lookup_statement(ids: int) -> str:
    """The look-up of `ids` request_ids (a power of two: built once per size, as `_insert_statement`)."""
    return f"SELECT request_id FROM spend_logs WHERE request_id IN ({', '.join('?' for _ in range(ids))})"


_SQLITE_ADD_TO_KEYS = "UPDATE verification_tokens SET spend = spend + ? WHERE token = ?"
_SQLITE_ADD_TO_END_USERS = (
    "INSERT INTO end_users (user_id, spend, blocked, metadata, created_at) VALUES (?, ?, 0, '{}', ?) "
    "ON CONFLICT (user_id) DO UPDATE SET spend = end_users.spend + excluded.spend")
_SQLITE_ADD_TO_PROXY = (
    "INSERT INTO proxy_spend (name, spend, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET spend = proxy_spend.spend + excluded.spend, updated_at = excluded.updated_at")


class HeldConnection:
    """One DBAPI connection kept out of the pool between SQLite spend batches.

    Checking a connection out of SQLAlchemy's pool and back in (its bookkeeping, in Python, with the GIL) was
    about 90 µs, a third of a small batch's fixed cost. One batch takes it at a time (a concurrent one checks
    out its own); after any error it goes back to the pool, so the next batch starts on a fresh connection.
    After `release()` (the store closing) a batch still in flight returns its connection instead of keeping it.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._kept: Any = None
        self._released = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def taken(self) -> Iterator[Any]:
        with self._lock:
            raw, self._kept = self._kept, None
        if raw is None:
            raw = self._engine.raw_connection()
        try:
            yield raw
        except BaseException:
            raw.close()
            raise
        with self._lock:
            if self._kept is None and not self._released:
                self._kept, raw = raw, None
        if raw is not None:
            raw.close()

    def release(self) -> None:
        with self._lock:
            raw, self._kept, self._released = self._kept, None, True
        if raw is not None:
            raw.close()


def _write_sqlite(raw: Any, events: list[SpendEvent]) -> int:
    """`write_batch` on SQLite: the same statements as the portable path, on the DBAPI connection.

    SQLAlchemy's execution layer cost ~300 of a batch's ~400 µs fixed cost, which kept batches large, and a
    large batch is a long burst of CPU that the event loop's requests wait behind on a busy core (p99).
    Values are stored as the columns' bind processors store them (`sqlite_row`, `sqlite_time`; a test
    holds them equal); errors come out as SQLAlchemy's exceptions, as from every other store method.
    Safe against other writers: BEGIN IMMEDIATE takes the write lock before the look-up.
    """
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            fresh = _fresh(cursor, events)
            if fresh:
                _insert_rows(cursor, [sqlite_row(event) for event in fresh])
                totals = Totals.of(fresh)
                cursor.executemany(_SQLITE_ADD_TO_KEYS, [(float(cost), key) for key, cost in totals.by_key])
                stamp = sqlite_time(totals.at)
                cursor.executemany(_SQLITE_ADD_TO_END_USERS,
                                   [(user, float(cost), stamp) for user, cost in totals.by_end_user])
                cursor.execute(_SQLITE_ADD_TO_PROXY, (PROXY_ROW, float(totals.total), stamp))
                for field, statement in SQLITE_ADD_TO_HOLDERS:
                    if getattr(totals, field):
                        cursor.executemany(statement, [(float(cost), k) for k, cost in getattr(totals, field)])
                hours = {key[0]: sqlite_time(key[0]) for key, _ in totals.model_rollups}  # a batch spans an hour or two
                for field, any_row, one_bucket in SQLITE_ROLLUPS:
                    rows = getattr(totals, field)
                    single = [(hours[key[0]], *key[1:], *sqlite_measures(m)) for key, m in rows if len(m.latency) == 1]
                    if single:
                        cursor.executemany(one_bucket, single)
                    if len(single) < len(rows):
                        cursor.executemany(any_row, [(hours[key[0]], *key[1:], *sqlite_measures(m))
                                                     for key, m in rows if len(m.latency) > 1])
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cursor.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise DBAPIError.instance(None, None, exc, sqlite3.Error, hide_parameters=True) from exc
    return len(fresh)


def _insert_rows(cursor: Any, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows with multi-row VALUES statements of power-of-two sizes (29 rows: 16 + 8 + 4 + 1).

    One statement per size, not one per row as `executemany`: the sqlite3 module lets go of the GIL around
    every statement step, and each hand-over costs the event loop's thread a context switch on a busy core.
    Few sizes, so SQLite's statement cache holds a handful of statements rather than one per batch size.
    """
    start = 0
    while start < len(rows):
        size = 1 << min((len(rows) - start).bit_length() - 1, 9)  # at most 512 rows (25 columns: 12,800 values)
        chunk = rows[start:start + size]
        cursor.execute(_insert_statement(size), [value for row in chunk for value in row])
        start += size


def _fresh(cursor: Any, events: list[SpendEvent]) -> list[SpendEvent]:
    """The events whose request_id is not logged yet."""
    existing: set[str] = set()
    for chunk in chunks(events):
        ids = [event.request_id for event in chunk]
        # Padded to a power of two with a repeated id: a handful of distinct statements for SQLite's
        # statement cache, not one per batch size (cached statements of every size grew the RSS).
        padded = ids + ids[-1:] * ((1 << (len(ids) - 1).bit_length()) - len(ids))
        cursor.execute(_lookup_statement(len(padded)), padded)
        existing.update(row[0] for row in cursor.fetchall())
    return [event for event in events if event.request_id not in existing]


def sqlite_time(value: datetime) -> str:
    """An aware datetime as `UTCDateTime` stores it on SQLite: naive UTC, ISO text with microseconds."""
    if value.tzinfo is UTC:  # the engine's own timestamps: cut the "+00:00" instead of converting
        return value.isoformat(" ", "microseconds")[:26]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_row(e: SpendEvent) -> tuple[Any, ...]:
    """The spend_logs row of `e`, in `LOG_COLUMNS` order, as the columns' SQLAlchemy bind processors store it
    on SQLite (a test holds the two equal): money and floats as REAL, booleans as 0/1, JSON as text. Written
    out because the generic per-column processors were about half of a row's cost."""
    return (
        e.request_id, sqlite_time(e.started_at), e.key_hash, e.key_alias, e.user_id, e.end_user, e.model_alias,
        e.deployment, e.provider, e.provider_model, float(e.search_units), e.input_tokens, e.total_tokens,
        float(e.cost), float(e.latency_ms), e.status, e.error_class, int(e.fallback_used),
        None if e.guardrails is None else to_json(e.guardrails),
        None if e.metadata is None else to_json(e.metadata),
        e.cache, float(e.cost_saved),
        e.key_id, e.team_id, None if e.tags is None else to_json(e.tags),
    )


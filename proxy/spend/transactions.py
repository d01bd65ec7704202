"""`Transactions`: the engine, short read and write transactions, and paging — what every part of the store
builds on — plus the small value checks they share.

Sync on purpose: callers on the event loop run store methods with `asyncio.to_thread`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from .db import WRITE
from .durations import parse_duration

CHUNK = 500  # rows per IN (...) list / multi-row statement
T = TypeVar("T")


class Transactions:
    """One sync SQLAlchemy engine (SQLite or PostgreSQL) and the dialect's upsert-capable `insert`."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
        self.engine = engine
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(**WRITE) as connection, connection.begin():
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def _page(
        self, table: Table, conditions: list[Any], order: tuple[Any, ...], page: int, size: int
    ) -> tuple[list[Mapping[str, Any]], int]:
        if page < 1 or size < 1:
            raise ValueError("page and size start at 1")
        with self._read() as connection:
            total = connection.execute(
                select(func.count()).select_from(table).where(*conditions)
            ).scalar_one()
            rows = connection.execute(
                select(table).where(*conditions).order_by(*order).limit(size).offset((page - 1) * size)
            ).all()
        return [dict(row._mapping) for row in rows], total


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_aware(value: object) -> None:
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")


def start_budget_period(values: dict[str, Any], now: datetime, *, restart: bool = False) -> None:
    """A `budget_duration` being written without a `budget_reset_at` starts its first period `now`;
    with `restart` (an update), clearing the duration clears the reset time too."""
    if "budget_reset_at" in values or (restart and "budget_duration" not in values):
        return
    duration = values.get("budget_duration")
    if duration is not None:
        values["budget_reset_at"] = parse_duration(duration).after(now)
    elif restart:
        values["budget_reset_at"] = None


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def checked_fields(fields: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """`fields` when every name is a column in `allowed`, datetimes are aware and a duration parses."""
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
    for value in fields.values():
        check_aware(value)
    if fields.get("budget_duration") is not None:
        parse_duration(fields["budget_duration"])  # fail now, not at the next reset
    return dict(fields)

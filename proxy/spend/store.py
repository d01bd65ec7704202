"""`Store`: every read and write of keys, end users and spend, each method one short transaction.

Sync on purpose: callers on the event loop run methods with `asyncio.to_thread`. The methods live with
their tables — `Accounts` (keys, end users, budget resets), `Holders` (teams, internal users, tags), `Audit` (admin
changes), `KeyChanges` (what other processes must evict), `Reports` (aggregates over the rollups) and
`Ledger` (spend rows, totals and rollups) — over the
shared `Transactions`; this class adds connecting and closing. Records come back as frozen dataclasses
(`KeyRecord`, `CustomerRecord`, `SpendLogRecord`, `ProxySpendRecord`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .accounts import Accounts
from .activity import Activity
from .audit import Audit
from .db import WRITE, check_schema, make_engine, migrate
from .holders import Holders
from .key_changes import KeyChanges
from .ledger import Ledger
from .records import AlreadyExistsError, CustomerRecord, KeyRecord, ProxySpendRecord, SpendLogRecord
from .reports import Reports
from .retention import RetentionQueries
from .stored_models import StoredModel, StoredModels

__all__ = ["AlreadyExistsError", "CustomerRecord", "KeyRecord", "ProxySpendRecord", "SpendLogRecord", "Store",
           "StoredModel"]


class Store(Accounts, Holders, Audit, Reports, RetentionQueries, Ledger, StoredModels, Activity, KeyChanges):
    """Persistence for keys, end users and spend on one sync SQLAlchemy engine (SQLite or PostgreSQL)."""

    @classmethod
    def connect(cls, url: str | None = None, *, migrate_schema: bool = True, **engine_options: Any) -> Store:
        """Engine for `url` (see `make_engine` for the default and options), migrated to head; with
        `migrate_schema=False` only checked to be there (`SchemaBehindError` otherwise)."""
        engine = make_engine(url, **engine_options)
        try:
            if migrate_schema:
                migrate(engine)
            else:
                check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @classmethod
    def open(cls, url: str | None = None, **engine_options: Any) -> Store:
        """Engine for `url`, not connected yet: `migrate(store.engine)` once the database answers."""
        return cls(make_engine(url, **engine_options))

    @property
    def flush_interval(self) -> float:
        """Seconds a spend row waits for its batch by default. SQLite 0.01: the row work runs in the
        worker's process, so small batches keep its bursts of CPU (which requests in flight wait behind)
        short. PostgreSQL 0.05: the row work runs in the database server, and each batch costs round trips."""
        return 0.01 if self.engine.dialect.name == "sqlite" else 0.05

    def close(self) -> None:
        self.release_spend_connection()
        self.engine.dispose()

    def ping(self, *, write: bool = False) -> bool:
        """True when the database answers a trivial query (`write`: in a write transaction, which SQLite
        cannot begin while another connection holds the write lock, though it still answers reads)."""
        try:
            with self.engine.connect().execution_options(**(WRITE if write else {})) as connection, \
                    connection.begin():
                connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

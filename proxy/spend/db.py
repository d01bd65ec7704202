"""Engine construction and schema migration: one place that knows SQLite and PostgreSQL differ.

SQLite files get WAL (readers never wait for the spend writer), a busy timeout, foreign keys, and
`BEGIN IMMEDIATE` for write transactions (see `WRITE`) so a read-then-write transaction cannot fail on
lock upgrade. `postgresql://` URLs are rewritten to the psycopg 3 driver. Migrations ship inside the package
and run with a programmatic Alembic config: no alembic.ini at runtime.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from .encoding import to_json

DEFAULT_URL = "sqlite:///./rerank_proxy.db"
MIGRATIONS = Path(__file__).with_name("migrations")
WRITE = {"rerank_proxy_write": True}
"""Execution options for a write transaction: `engine.connect().execution_options(**WRITE)`."""

_MIGRATION_LOCK = 0x52_52_50  # pg_advisory_xact_lock id: concurrent workers migrate one at a time


def database_url(url: str | None) -> URL:
    """The URL we will connect to: the SQLite default when none is given, psycopg 3 for plain postgresql."""
    parsed = make_url(url or DEFAULT_URL)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(
    url: str | None = None, *, busy_timeout_ms: int = 5000, connect_timeout_s: int = 5,
    statement_timeout_ms: int = 10_000, pool_limit: int | None = None, pool_timeout_s: float = 5.0, **kwargs: Any
) -> Engine:
    """A sync engine for `url` (default `sqlite:///./rerank_proxy.db`). Extra kwargs go to create_engine.

    `busy_timeout_ms` is how long a SQLite statement waits on another writer's lock before failing;
    `connect_timeout_s` bounds a PostgreSQL connection attempt and `statement_timeout_ms` each statement
    (server side), and TCP keepalives find a peer that vanished. `pool_limit` is the most connections this
    process opens (LiteLLM's `database_connection_pool_limit`; None: SQLAlchemy's 5 plus 10 overflow), and a
    thread waits at most `pool_timeout_s` for one. No pre-ping on checkout: a dead pooled connection fails
    its statement, SQLAlchemy then drops the whole pool, and the caller's outage policy takes over (the
    ping would cost every look-up a second round trip). Bound parameters are hidden from error messages,
    so an exception never carries row data into a log; JSON columns accept Decimal and datetime values.
    """
    parsed = database_url(url)
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_serializer", to_json)
    file_backed = parsed.database not in (None, "", ":memory:")
    if parsed.get_backend_name() != "sqlite" or file_backed:
        if pool_limit is not None:
            kwargs.setdefault("pool_size", pool_limit)
            kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", pool_timeout_s)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms, file_backed=file_backed)
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": connect_timeout_s,
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            "tcp_user_timeout": int(statement_timeout_ms),
            **kwargs.pop("connect_args", {}),
        }
        return create_engine(parsed, connect_args=connect_args, **kwargs)
    return create_engine(parsed, **kwargs)


def _use_wal(cursor: Any, attempts: int = 100) -> None:
    """Switch the file to WAL (it stays so). The switch needs the file to itself and ignores busy_timeout,
    so a worker that connects while another one migrates waits a little and tries again."""
    for _ in range(attempts):
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            time.sleep(0.02)


def _bind_none_directly() -> None:
    """Bind `None` as NULL without the sqlite3 module's adaptation protocol.

    The module adapts every parameter that is not an exact int, float, str or bytearray: for `None` that is a
    registry miss and two attribute look-ups (`__adapt__`, `__conform__`), about half of a spend row's binding
    cost (a row has up to seven NULLs). A registered adapter is found at once; `{}.get` is a C callable that
    returns None, so the stored value is the same NULL. Process-wide, as every sqlite3 adapter is. Measured
    (32-row INSERT of 25 columns, 9 of them NULL, in memory): 2.6 -> 1.35 µs a row.
    """
    sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, *, file_backed: bool) -> None:
    _bind_none_directly()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if file_backed:
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("rerank_proxy_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def alembic_config(connection: Connection) -> Config:
    """An Alembic config bound to `connection`; also usable for `command.revision(..., autogenerate=True)`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """`alembic upgrade head` (or to `revision`), safe to run from several workers at once."""
    with engine.connect().execution_options(**WRITE) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL statement_timeout = 0"))  # a migration may take long
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), revision)


class SchemaBehindError(RuntimeError):
    """The database has not been migrated to the revision this version needs (migrations were left to a Job)."""


def check_schema(engine: Engine) -> str:
    """The database's revision, when it is this version's head or one we do not know (a newer version
    migrated it: old replicas keep serving during a rolling update). Raises `SchemaBehindError` when the
    database is empty or behind, naming the command that fixes it."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if head in current:
        return head
    known = {revision.revision for revision in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if current and not current & known:
        return ", ".join(sorted(current))
    found = ", ".join(sorted(current)) or "none (an empty database)"
    raise SchemaBehindError(
        f"database schema revision is {found}, this version needs {head}: run `rerank-proxy migrate` with the "
        "same config (the Kubernetes migration Job does), or let the proxy migrate at start by removing "
        "general_settings.disable_schema_update")


def downgrade(engine: Engine, revision: str = "base") -> None:
    """`alembic downgrade` to `revision` (default: drop everything)."""
    with engine.connect().execution_options(**WRITE) as connection, connection.begin():
        command.downgrade(alembic_config(connection), revision)
